#include "tests/sim/sim_zk_journal.h"

#include <algorithm>
#include <sstream>

namespace pact::sim {
namespace {

constexpr int kRaiseAttempts = 10;
const Status kDown = Status::IoError("sim: the member's process is down");

std::vector<std::string> Lines(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

}  // namespace

SimZkJournal::SimZkJournal(SimZooKeeper* zk, int64_t session, std::string root, Process* process,
                           SimRandom* random, SimClock* clock, History* history)
    : zk_(zk),
      session_(session),
      root_(std::move(root)),
      epoch_path_(root_ + "/epoch"),
      process_(process),
      incarnation_(process->incarnation()),
      random_(random),
      clock_(clock),
      history_(history) {}

Result<std::unique_ptr<SimZkJournal>> SimZkJournal::Open(SimZooKeeper* zk, int64_t session,
                                                         std::string root, Process* process,
                                                         SimRandom* random, SimClock* clock,
                                                         History* history) {
  std::unique_ptr<SimZkJournal> journal(
      new SimZkJournal(zk, session, std::move(root), process, random, clock, history));
  for (const char* dir : {"/commits", "/participants", "/heuristics"}) {
    RETURN_NOT_OK(zk->CreateAll(session, journal->root_ + dir));
  }
  Result<std::string> created = zk->Create(session, journal->epoch_path_, "0");
  if (!created.ok() && created.status().code() != StatusCode::kFailedPrecondition) {
    return created.status();
  }
  return journal;
}

Result<ZkOp> SimZkJournal::EpochCheck() const {
  if (!epoch_version_) return Status::FailedPrecondition("sim: no write before RaiseEpoch");
  return ZkOp::Check(epoch_path_, *epoch_version_);
}

Result<std::vector<ZkOpResult>> SimZkJournal::Send(const std::string& what,
                                                   const std::vector<ZkOp>& ops, bool decision) {
  if (!Alive()) return kDown;
  if (decision && pause_at_commit_) {
    auto pause = std::move(pause_at_commit_);
    pause_at_commit_ = nullptr;
    pause();  // the multi goes out after it
    if (!Alive()) return kDown;
  }
  const bool kill = decision && kill_at_commit_;
  if (kill) kill_at_commit_ = false;
  // An armed pause strikes inside CountEvent: the multi goes out after it.
  if (process_->CountEvent() || kill) {
    const bool sent = random_->Chance(0.5);
    if (sent) (void)zk_->Multi(session_, ops);
    process_->Crash("at its ZooKeeper write " + what + (sent ? " (applied)" : " (not sent)"));
    return kDown;
  }
  if (!Alive()) return kDown;  // killed while paused at it
  return zk_->Multi(session_, ops);
}

Status SimZkJournal::ExplainRefusal(const Status& refused) {
  if (refused.code() != StatusCode::kFailedPrecondition || !epoch_version_) return refused;
  Result<std::optional<ZkStat>> epoch = zk_->Exists(session_, epoch_path_);
  if (!epoch.ok()) {
    return Status::Unavailable("sim: a write was refused and the epoch cannot be read: " +
                               epoch.status().message());
  }
  if (!epoch->has_value() || (*epoch)->version != *epoch_version_) {
    return Status::Fenced("sim: another member raised the epoch of " + root_ +
                          "; this one is replaced and wrote nothing");
  }
  return refused;
}

Status SimZkJournal::FencedMulti(const std::string& what, std::vector<ZkOp> ops) {
  ASSIGN_OR_RETURN(ZkOp check, EpochCheck());
  ops.insert(ops.begin(), std::move(check));
  Result<std::vector<ZkOpResult>> done = Send(what, ops);
  return done.ok() ? Status::Ok() : ExplainRefusal(done.status());
}

Result<int64_t> SimZkJournal::RaiseEpoch() {
  if (!Alive()) return kDown;
  for (int attempt = 0; attempt < kRaiseAttempts; ++attempt) {
    ASSIGN_OR_RETURN(ZkNode node, zk_->Get(session_, epoch_path_));
    const int64_t epoch = std::stoll(node.data);
    Result<std::vector<ZkOpResult>> raised =
        Send("epoch " + std::to_string(epoch + 1),
             {ZkOp::Set(epoch_path_, std::to_string(epoch + 1), node.stat.version)});
    if (raised.ok()) {
      epoch_version_ = raised->at(0).stat.version;
      epoch_ = epoch + 1;
      return epoch_;
    }
    if (raised.status().code() != StatusCode::kFailedPrecondition) return raised.status();
  }
  return Status::Busy("sim: the epoch kept changing");
}

Status SimZkJournal::LogCommit(const CommitRecord& record) {
  RETURN_NOT_OK(EpochCheck().status());
  std::string data = std::to_string(record.decided_at_ms);
  for (const std::string& branch : record.branches) data += "\n" + branch;
  const std::vector<ZkOp> ops = {*EpochCheck(), ZkOp::Create(CommitPath(record.txn_id), data)};
  Result<std::vector<ZkOpResult>> written = Send("COMMIT " + record.txn_id, ops, true);
  if (!written.ok() && written.status().code() == StatusCode::kUnavailable) {
    written = SettleUnknown(ops, written.status());
  }
  if (written.ok()) {
    stats_.commit_records++;
    stats_.fsync_batches++;
    Flush();  // the ENDs waiting go after the batch
    return Status::Ok();
  }
  Status refused = ExplainRefusal(written.status());
  if (refused.code() == StatusCode::kFailedPrecondition) {
    // Not fenced, so the record exists already (a caller retrying after an
    // unknown outcome): written alone, as the real one does for each record
    // of such a batch; still refused and not fenced, it is durable.
    Result<std::vector<ZkOpResult>> one = Send("COMMIT alone " + record.txn_id, ops);
    if (one.ok()) return Status::Ok();
    refused = ExplainRefusal(one.status());
    if (refused.code() == StatusCode::kFailedPrecondition) return Status::Ok();
  }
  history_->Add("journal of " + process_->name() + ": COMMIT " + record.txn_id + ": " +
                refused.ToString());
  return refused;
}

Result<std::vector<ZkOpResult>> SimZkJournal::SettleUnknown(const std::vector<ZkOp>& ops,
                                                            Status unknown) {
  const int64_t give_up = clock_->elapsed_ms() + 2 * zk_->session_timeout_ms();
  while (Alive() && clock_->elapsed_ms() < give_up) {
    Result<std::optional<ZkStat>> record = zk_->Exists(session_, ops.at(1).path);
    if (!record.ok()) {
      if (zk_->Reachable(process_->name()) && zk_->Expired(session_)) break;
      clock_->SleepFor(Millis(100));  // waits for the session to reconnect
      continue;
    }
    if (record->has_value()) return std::vector<ZkOpResult>{};  // written: durable
    Result<std::vector<ZkOpResult>> again = Send("COMMIT again " + ops.at(1).path, ops);
    if (again.ok() || again.status().code() != StatusCode::kUnavailable) return again;
  }
  if (!Alive()) return kDown;
  history_->Add("journal of " + process_->name() + ": a COMMIT is unsettled: " +
                unknown.ToString());
  return unknown;
}

void SimZkJournal::LogEnd(const std::string& txn_id) {
  if (Alive()) ends_.push_back(txn_id);
}

void SimZkJournal::Flush() {
  if (!Alive() || ends_.empty() || !epoch_version_) return;
  std::vector<ZkOp> deletes;
  for (const auto& id : ends_) deletes.push_back(ZkOp::Delete(CommitPath(id), kZkAnyVersion));
  Status st = FencedMulti("END x" + std::to_string(deletes.size()), deletes);
  if (st.code() == StatusCode::kNotFound) {
    // One record is gone already (LogAbort, an END sent twice): one by one.
    st = Status::Ok();
    for (const ZkOp& op : deletes) {
      Status one = FencedMulti("END " + op.path, {op});
      if (!one.ok() && one.code() != StatusCode::kNotFound) st = one;
    }
  }
  // A replaced member's records belong to its successor: they go too.
  if (st.ok() || st.code() == StatusCode::kFenced) ends_.clear();
}

Status SimZkJournal::LogAbort(const std::string& txn_id) {
  Status deleted =
      FencedMulti("ABORT " + txn_id, {ZkOp::Delete(CommitPath(txn_id), kZkAnyVersion)});
  if (deleted.code() == StatusCode::kNotFound) return FencedMulti("ABORT check " + txn_id, {});
  return deleted;
}

Result<std::vector<CommitRecord>> SimZkJournal::LoadUnfinished() {
  if (!Alive()) return kDown;
  ASSIGN_OR_RETURN(std::vector<std::string> names, zk_->Children(session_, root_ + "/commits"));
  std::vector<std::pair<int64_t, CommitRecord>> records;
  for (const std::string& name : names) {
    ASSIGN_OR_RETURN(ZkNode node, zk_->Get(session_, CommitPath(name)));
    std::vector<std::string> lines = Lines(node.data);
    CommitRecord record;
    record.txn_id = name;
    record.decided_at_ms = lines.empty() ? 0 : std::stoll(lines[0]);
    if (!lines.empty()) record.branches.assign(lines.begin() + 1, lines.end());
    records.emplace_back(node.stat.modified_zxid, std::move(record));
  }
  std::sort(records.begin(), records.end(),
            [](const auto& a, const auto& b) { return a.first < b.first; });
  std::vector<CommitRecord> out;
  for (auto& [zxid, record] : records) out.push_back(std::move(record));
  return out;
}

Status SimZkJournal::PutParticipant(const ParticipantRecord& participant) {
  const std::string path = root_ + "/participants/" + participant.name;
  const std::string data =
      participant.host + "\n" + std::to_string(participant.port) + "\n" + participant.backend;
  Status st = FencedMulti("participant " + participant.name,
                          {ZkOp::Set(path, data, kZkAnyVersion)});
  if (st.code() != StatusCode::kNotFound) return st;
  return FencedMulti("participant " + participant.name, {ZkOp::Create(path, data)});
}

Result<std::vector<ParticipantRecord>> SimZkJournal::LoadParticipants() {
  if (!Alive()) return kDown;
  const std::string dir = root_ + "/participants";
  ASSIGN_OR_RETURN(std::vector<std::string> names, zk_->Children(session_, dir));
  std::vector<ParticipantRecord> out;
  for (const std::string& name : names) {
    ASSIGN_OR_RETURN(ZkNode node, zk_->Get(session_, dir + "/" + name));
    std::vector<std::string> lines = Lines(node.data);
    if (lines.size() < 2) return Status::Corruption("sim: participant record " + name);
    out.push_back({name, lines[0], std::stoi(lines[1]), lines.size() > 2 ? lines[2] : ""});
  }
  return out;
}

Status SimZkJournal::DeleteParticipant(const std::string& name) {
  Status st = FencedMulti("delete participant " + name,
                          {ZkOp::Delete(root_ + "/participants/" + name, kZkAnyVersion)});
  return st.code() == StatusCode::kNotFound ? FencedMulti("delete participant " + name, {}) : st;
}

Status SimZkJournal::PutHeuristic(const HeuristicRecord& h) {
  const std::string parent = root_ + "/heuristics/" + h.txn_id;
  const std::string path = parent + "/" + h.participant;
  const std::string data = std::string(h.committed ? "1" : "0") + "\n" + h.decision + "\n" +
                           std::to_string(h.at_ms);
  Status st = FencedMulti("heuristic " + h.txn_id, {ZkOp::Set(path, data, kZkAnyVersion)});
  if (st.code() != StatusCode::kNotFound) return st;
  st = FencedMulti("heuristic " + h.txn_id, {ZkOp::Create(parent, ""), ZkOp::Create(path, data)});
  if (st.code() != StatusCode::kFailedPrecondition) return st;
  return FencedMulti("heuristic " + h.txn_id, {ZkOp::Create(path, data)});
}

Result<std::vector<HeuristicRecord>> SimZkJournal::LoadHeuristics() {
  if (!Alive()) return kDown;
  const std::string dir = root_ + "/heuristics";
  ASSIGN_OR_RETURN(std::vector<std::string> txns, zk_->Children(session_, dir));
  std::vector<HeuristicRecord> out;
  for (const std::string& txn_id : txns) {
    ASSIGN_OR_RETURN(std::vector<std::string> names, zk_->Children(session_, dir + "/" + txn_id));
    for (const std::string& participant : names) {
      ASSIGN_OR_RETURN(ZkNode node, zk_->Get(session_, dir + "/" + txn_id + "/" + participant));
      std::vector<std::string> lines = Lines(node.data);
      if (lines.size() != 3) return Status::Corruption("sim: heuristic record " + txn_id);
      out.push_back({txn_id, participant, lines[0] == "1", lines[1], std::stoll(lines[2])});
    }
  }
  return out;
}

Status SimZkJournal::ForgetHeuristics(const std::string& txn_id) {
  if (!Alive()) return kDown;
  const std::string parent = root_ + "/heuristics/" + txn_id;
  Result<std::vector<std::string>> names = zk_->Children(session_, parent);
  if (names.status().code() == StatusCode::kNotFound || (names.ok() && names->empty())) {
    return Status::NotFound("no heuristic record for transaction " + txn_id);
  }
  RETURN_NOT_OK(names.status());
  std::vector<ZkOp> deletes;
  for (const std::string& participant : *names) {
    deletes.push_back(ZkOp::Delete(parent + "/" + participant, kZkAnyVersion));
  }
  deletes.push_back(ZkOp::Delete(parent, kZkAnyVersion));
  return FencedMulti("forget heuristics " + txn_id, std::move(deletes));
}

}  // namespace pact::sim
