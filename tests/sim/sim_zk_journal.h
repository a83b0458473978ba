// The journal of an HA member: ZooKeeperJournal's semantics over the
// simulated ensemble and one member's session, synchronous (no writer
// thread; each LogCommit is its own batch). Under the shard's root:
// epoch (raised by compare-and-set), commits/<txn_id>, participants/<name>,
// heuristics/<txn_id>/<name>. Every write after RaiseEpoch is a multi that
// first checks the epoch znode's version: once another member raised it,
// this one's writes fail (kFenced) and change nothing. A COMMIT whose
// connection is lost waits (in simulated time) for the session to reach the
// ensemble again, reads whether the record exists and sends it again if not;
// it is kUnavailable (unknown) only once the session expired or twice the
// session timeout passed. ENDs are lazy: Flush (or the next COMMIT) sends them.
//
// Crashes: an armed crash strikes the member at a write (before it is sent,
// or after it was applied); an armed pause strikes there too (Process).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "journal/journal.h"
#include "tests/sim/history.h"
#include "tests/sim/process.h"
#include "tests/sim/sim_clock.h"
#include "tests/sim/sim_random.h"
#include "tests/sim/sim_zookeeper.h"

namespace pact::sim {

class SimZkJournal : public Journal {
 public:
  // Creates the shard's znodes that are missing (epoch 0 for a new shard).
  static Result<std::unique_ptr<SimZkJournal>> Open(SimZooKeeper* zk, int64_t session,
                                                    std::string root, Process* process,
                                                    SimRandom* random, SimClock* clock,
                                                    History* history);

  // Sends the lazy ENDs (the real one's writer does after a short delay).
  void Flush();
  // The epoch this journal raised the shard to (0 before RaiseEpoch).
  int64_t epoch() const { return epoch_; }
  // At the next COMMIT write, the member is killed (before it is sent or
  // after it was applied, as the seed says), or `pause` runs (a pause, a
  // stop) before it is sent.
  void KillAtNextCommit() { kill_at_commit_ = true; }
  void PauseAtNextCommit(std::function<void()> pause) { pause_at_commit_ = std::move(pause); }

  Result<int64_t> RaiseEpoch() override;
  Status LogCommit(const CommitRecord& record) override;
  Status LogAbort(const std::string& txn_id) override;
  void LogEnd(const std::string& txn_id) override;
  Result<std::vector<CommitRecord>> LoadUnfinished() override;
  Status PutParticipant(const ParticipantRecord& participant) override;
  Result<std::vector<ParticipantRecord>> LoadParticipants() override;
  Status DeleteParticipant(const std::string& name) override;
  Status PutHeuristic(const HeuristicRecord& heuristic) override;
  Result<std::vector<HeuristicRecord>> LoadHeuristics() override;
  Status ForgetHeuristics(const std::string& txn_id) override;
  JournalStats Stats() override { return stats_; }

 private:
  SimZkJournal(SimZooKeeper* zk, int64_t session, std::string root, Process* process,
               SimRandom* random, SimClock* clock, History* history);

  bool Alive() const { return process_->Alive(incarnation_); }
  std::string CommitPath(const std::string& txn_id) const { return root_ + "/commits/" + txn_id; }
  // The check that fences a write; kFailedPrecondition before RaiseEpoch.
  Result<ZkOp> EpochCheck() const;
  // Sends `ops` as one multi, as a write the member may crash or pause at.
  Result<std::vector<ZkOpResult>> Send(const std::string& what, const std::vector<ZkOp>& ops,
                                       bool decision = false);
  // Runs `ops` after the epoch check, atomically.
  Status FencedMulti(const std::string& what, std::vector<ZkOp> ops);
  // After a refused multi: kFenced if the epoch moved on, else `refused`.
  Status ExplainRefusal(const Status& refused);
  // A COMMIT multi whose outcome is unknown: see the header comment.
  Result<std::vector<ZkOpResult>> SettleUnknown(const std::vector<ZkOp>& ops, Status unknown);

  SimZooKeeper* const zk_;
  const int64_t session_;
  const std::string root_;
  const std::string epoch_path_;
  Process* const process_;
  const int incarnation_;
  SimRandom* const random_;
  SimClock* const clock_;
  History* const history_;
  std::optional<int32_t> epoch_version_;  // of the epoch znode after our raise
  int64_t epoch_ = 0;
  std::vector<std::string> ends_;
  JournalStats stats_;
  bool kill_at_commit_ = false;
  std::function<void()> pause_at_commit_;
};

}  // namespace pact::sim
