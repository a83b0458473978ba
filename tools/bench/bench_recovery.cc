#include "tools/bench/bench_recovery.h"

#include <atomic>
#include <chrono>
#include <thread>
#include <vector>

#include "journal/sqlite_journal.h"
#include "tools/bench/bench_sampling.h"

namespace pact {
namespace {

using BenchClock = std::chrono::steady_clock;

// Enough concurrent writers that group commit packs the records into few
// fsyncs: set-up takes seconds, not one fsync per record.
constexpr int kJournalWriters = 64;
constexpr int kRecoveryTimeoutMs = 120000;
constexpr int kPollMs = 10;

double SecondsSince(BenchClock::time_point t) {
  return std::chrono::duration<double>(BenchClock::now() - t).count();
}

// The journal a coordinator would leave had it crashed right after logging
// `decisions` COMMIT records, each with a branch on every participant.
Status WriteUnfinishedJournal(const BenchCluster& cluster, int64_t decisions) {
  SqliteJournalOptions options;
  options.coordinator_name = cluster.coordinator_name();
  ASSIGN_OR_RETURN(auto journal, SqliteJournal::Open(cluster.journal_path(), options));
  ASSIGN_OR_RETURN(int64_t epoch, journal->RaiseEpoch());
  std::vector<std::string> names = cluster.participant_names();
  for (size_t i = 0; i < names.size(); ++i) {
    RETURN_NOT_OK(journal->PutParticipant(
        {names[i], "127.0.0.1", cluster.participant_port(static_cast<int>(i)), "null"}));
  }
  std::atomic<int64_t> next{0};
  std::vector<Status> failures(kJournalWriters);
  std::vector<std::thread> writers;
  for (int w = 0; w < kJournalWriters; ++w) {
    writers.emplace_back([&, w] {
      for (int64_t i = next++; i < decisions && failures[w].ok(); i = next++) {
        CommitRecord record;
        record.txn_id =
            cluster.coordinator_name() + "." + std::to_string(epoch) + "." + std::to_string(i + 1);
        record.branches = names;
        failures[w] = journal->LogCommit(record);
      }
    });
  }
  for (auto& t : writers) t.join();
  for (const Status& st : failures) RETURN_NOT_OK(st);
  return Status::Ok();
}

Result<int64_t> CountUnfinished(const BenchCluster& cluster) {
  SqliteJournalOptions options;
  options.coordinator_name = cluster.coordinator_name();
  ASSIGN_OR_RETURN(auto journal, SqliteJournal::Open(cluster.journal_path(), options));
  ASSIGN_OR_RETURN(auto unfinished, journal->LoadUnfinished());
  return static_cast<int64_t>(unfinished.size());
}

// How many decisions are still COMMITTING. Asks the cheap stats() counter
// first and listTransactions([COMMITTING]) only once the counter says all are
// done: listing 10,000 transactions every 10 ms costs the coordinator a fifth
// of the CPU it recovers with, and would slow down what is measured.
Result<int64_t> CommittingLeft(BenchCluster& cluster, int64_t decisions) {
  ASSIGN_OR_RETURN(auto stats, cluster.CoordinatorStats());
  auto committed = stats.find("txns_committed");
  if (committed != stats.end() && committed->second < decisions) {
    return decisions - committed->second;
  }
  return cluster.CountTransactions({TxnState::kCommitting});
}

}  // namespace

Result<RecoveryReport> MeasureRecovery(const BenchClusterOptions& options, int64_t decisions) {
  RecoveryReport report;
  report.decisions = decisions;
  report.participants = options.participants;
  report.notes.push_back(
      "null participants hold no branch of these transactions: each answers commit with "
      "done (the null backend stores nothing), so this measures the coordinator's "
      "re-drive (journal load, RPCs, END records), not a database's commit");
  report.notes.push_back(
      "polled every 10 ms with stats(); the end is when listTransactions([COMMITTING]) is empty");

  ASSIGN_OR_RETURN(auto cluster, BenchCluster::Create(options));
  auto setup_started = BenchClock::now();
  RETURN_NOT_OK(WriteUnfinishedJournal(*cluster, decisions).WithContext("writing the journal"));
  report.journal_setup_seconds = SecondsSince(setup_started);

  RETURN_NOT_OK(cluster->LaunchParticipants());
  RETURN_NOT_OK(cluster->WaitParticipantsServing(15000));

  const auto started = BenchClock::now();
  RETURN_NOT_OK(cluster->LaunchCoordinator());
  bool answered = false;
  while (true) {
    Result<int64_t> committing = CommittingLeft(*cluster, decisions);
    if (committing.ok() && !answered) {
      answered = true;
      report.serving_seconds = SecondsSince(started);
    }
    if (committing.ok() && *committing == 0) break;
    if (!cluster->coordinator()->running()) {
      return Status::Unavailable("the coordinator exited during recovery; see " +
                                 cluster->coordinator()->log_path());
    }
    if (SecondsSince(started) * 1000 > kRecoveryTimeoutMs) {
      report.problems.push_back("decisions still COMMITTING after " +
                                std::to_string(kRecoveryTimeoutMs / 1000) + " s");
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(kPollMs));
  }
  report.finished_seconds = SecondsSince(started);
  if (auto sample = SampleProcess(cluster->coordinator()->pid()); sample.ok()) {
    report.coordinator_cpu_seconds = sample->cpu_seconds;
  }
  if (auto stats = cluster->CoordinatorStats(); stats.ok() && stats->count("txns_committed")) {
    report.committed = stats->at("txns_committed");
    if (*report.committed != decisions) {
      report.problems.push_back("the coordinator committed " + std::to_string(*report.committed) +
                                " of " + std::to_string(decisions) + " decisions");
    }
  }

  cluster->Stop();
  if (cluster->coordinator()->exit_code() != 0) {
    report.problems.push_back("the coordinator exited with code " +
                              std::to_string(cluster->coordinator()->exit_code()));
  }
  auto left = CountUnfinished(*cluster);
  if (left.ok()) {
    report.left_in_journal = *left;
    // END records are lazy, but a clean stop flushes them.
    if (*left != 0) {
      report.problems.push_back(std::to_string(*left) + " decisions still in the journal");
    }
  } else {
    report.problems.push_back("cannot reopen the journal: " + left.status().ToString());
  }
  return report;
}

}  // namespace pact
