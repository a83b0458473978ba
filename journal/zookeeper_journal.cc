#include "journal/zookeeper_journal.h"

#include <glog/logging.h>

#include <algorithm>
#include <chrono>
#include <sstream>

#include "common/txn_id.h"

namespace pact {
namespace {

// What one op adds to a request besides its path and data: its header,
// lengths, version, flags and (for a create) the open ACL.
constexpr size_t kOpOverheadBytes = 64;
constexpr int kRaiseAttempts = 10;

int64_t WallMillis() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// A txn id or participant name used as one znode name.
Status CheckNodeName(const std::string& name, const char* what) {
  if (name.empty() || name == "." || name == ".." || name.size() > 255 ||
      name.find('/') != std::string::npos ||
      std::any_of(name.begin(), name.end(), [](unsigned char c) { return c < 0x20; })) {
    return Status::InvalidArgument(std::string("bad ") + what + " '" + name + "'");
  }
  return Status::Ok();
}

std::vector<std::string> Lines(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

Result<int64_t> ParseInt(const std::string& text, const std::string& what) {
  try {
    size_t used = 0;
    const int64_t value = std::stoll(text, &used);
    if (used == text.size()) return value;
  } catch (const std::exception&) {
  }
  return Status::Corruption(what + ": '" + text + "' is not a number");
}

// COMMIT record data: decided_at_ms, then one branch per line.
std::string EncodeCommit(const CommitRecord& record, int64_t now_ms) {
  std::string out = std::to_string(record.decided_at_ms != 0 ? record.decided_at_ms : now_ms);
  for (const std::string& branch : record.branches) out += "\n" + branch;
  return out;
}

Result<CommitRecord> DecodeCommit(const std::string& txn_id, const std::string& data) {
  std::vector<std::string> lines = Lines(data);
  if (lines.empty()) return Status::Corruption("COMMIT record " + txn_id + " is empty");
  CommitRecord record;
  record.txn_id = txn_id;
  ASSIGN_OR_RETURN(record.decided_at_ms, ParseInt(lines[0], "COMMIT record " + txn_id));
  record.branches.assign(lines.begin() + 1, lines.end());
  return record;
}

std::string EncodeParticipant(const ParticipantRecord& p) {
  return p.host + "\n" + std::to_string(p.port) + "\n" + p.backend;
}

Result<ParticipantRecord> DecodeParticipant(const std::string& name, const std::string& data) {
  std::vector<std::string> lines = Lines(data);
  if (lines.size() < 2) return Status::Corruption("participant " + name + ": bad record");
  ParticipantRecord p;
  p.name = name;
  p.host = lines[0];
  ASSIGN_OR_RETURN(int64_t port, ParseInt(lines[1], "participant " + name));
  p.port = static_cast<int>(port);
  p.backend = lines.size() > 2 ? lines[2] : "";
  return p;
}

std::string EncodeHeuristic(const HeuristicRecord& h) {
  return std::string(h.committed ? "1" : "0") + "\n" + h.decision + "\n" + std::to_string(h.at_ms);
}

Result<HeuristicRecord> DecodeHeuristic(const std::string& txn_id, const std::string& participant,
                                        const std::string& data) {
  std::vector<std::string> lines = Lines(data);
  const std::string what = "heuristic " + txn_id + "/" + participant;
  if (lines.size() != 3 || (lines[0] != "0" && lines[0] != "1")) {
    return Status::Corruption(what + ": bad record");
  }
  HeuristicRecord h;
  h.txn_id = txn_id;
  h.participant = participant;
  h.committed = lines[0] == "1";
  h.decision = lines[1];
  ASSIGN_OR_RETURN(h.at_ms, ParseInt(lines[2], what));
  return h;
}

}  // namespace

struct ZooKeeperJournal::PendingCommit {
  const CommitRecord* record;
  std::string data;
  Status status;
  bool done = false;
};

ZooKeeperJournal::ZooKeeperJournal(ZkSession* session, ZooKeeperJournalOptions options)
    : session_(session), options_(std::move(options)), epoch_path_(options_.root + "/epoch") {}

Result<std::unique_ptr<ZooKeeperJournal>> ZooKeeperJournal::Open(ZkSession* session,
                                                                 ZooKeeperJournalOptions options) {
  if (options.root.size() < 2 || options.root[0] != '/' || options.root.back() == '/') {
    return Status::InvalidArgument("a shard's root znode looks like /pact/shards/c1, not '" +
                                   options.root + "'");
  }
  std::unique_ptr<ZooKeeperJournal> journal(new ZooKeeperJournal(session, std::move(options)));
  const std::string& root = journal->options_.root;
  for (const char* dir : {"/commits", "/participants", "/heuristics"}) {
    RETURN_NOT_OK(session->CreateAll(root + dir).WithContext("open journal " + root));
  }
  Result<std::string> created = session->Create(journal->epoch_path_, "0");
  // kFailedPrecondition: the shard has an epoch already.
  if (!created.ok() && created.status().code() != StatusCode::kFailedPrecondition) {
    return created.status().WithContext("open journal " + root);
  }
  journal->writer_ = std::thread([j = journal.get()] { j->WriterLoop(); });
  return journal;
}

ZooKeeperJournal::~ZooKeeperJournal() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  writer_cv_.notify_all();
  writer_.join();
}

std::string ZooKeeperJournal::CommitPath(const std::string& txn_id) const {
  return options_.root + "/commits/" + txn_id;
}

Result<int64_t> ZooKeeperJournal::RaiseEpoch() {
  for (int attempt = 0; attempt < kRaiseAttempts; ++attempt) {
    ASSIGN_OR_RETURN(ZkNode node, session_->Get(epoch_path_));
    ASSIGN_OR_RETURN(int64_t epoch, ParseInt(node.data, epoch_path_));
    Result<ZkStat> raised = session_->Set(epoch_path_, std::to_string(epoch + 1),
                                          node.stat.version);
    if (raised.ok()) {
      std::lock_guard<std::mutex> lock(mu_);
      epoch_version_ = raised->version;
      return epoch + 1;
    }
    // Another coordinator raised it between our read and our write: read again.
    if (raised.status().code() != StatusCode::kFailedPrecondition) return raised.status();
  }
  return Status::Busy("the epoch of " + options_.root + " kept changing under " +
                      std::to_string(kRaiseAttempts) + " attempts to raise it");
}

Result<ZkOp> ZooKeeperJournal::EpochCheck() {
  std::lock_guard<std::mutex> lock(mu_);
  if (!epoch_version_) {
    return Status::FailedPrecondition("journal " + options_.root +
                                      ": no write before RaiseEpoch");
  }
  return ZkOp::Check(epoch_path_, *epoch_version_);
}

Status ZooKeeperJournal::ExplainRefusal(const Status& refused) {
  if (refused.code() != StatusCode::kFailedPrecondition) return refused;
  int32_t ours;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!epoch_version_) return refused;
    ours = *epoch_version_;
  }
  Result<std::optional<ZkStat>> epoch = session_->Exists(epoch_path_);
  if (!epoch.ok()) {
    // Nothing was applied, but whether a record exists (a decision made
    // durable before) or this coordinator was replaced is unknown: a caller
    // must hear neither "durable" nor "not written".
    return Status::Unavailable("a write was refused and the epoch cannot be read to tell why: " +
                               epoch.status().message());
  }
  if (!epoch->has_value() || (*epoch)->version != ours) {
    return Status::Fenced("another coordinator raised the epoch of " + options_.root +
                          "; this one is replaced and wrote nothing");
  }
  return refused;
}

Status ZooKeeperJournal::FencedMulti(std::vector<ZkOp> ops) {
  ASSIGN_OR_RETURN(ZkOp check, EpochCheck());
  ops.insert(ops.begin(), std::move(check));
  Result<std::vector<ZkOpResult>> done = session_->Multi(ops);
  return done.ok() ? Status::Ok() : ExplainRefusal(done.status());
}

Status ZooKeeperJournal::LogCommit(const CommitRecord& record) {
  RETURN_NOT_OK(CheckNodeName(record.txn_id, "transaction id"));
  for (const std::string& branch : record.branches) {
    if (!IsValidName(branch)) {
      return Status::InvalidArgument("bad branch participant name '" + branch + "' in " +
                                     record.txn_id);
    }
  }
  RETURN_NOT_OK(EpochCheck().status());
  PendingCommit pending{&record, EncodeCommit(record, WallMillis()), Status::Ok(), false};
  if (pending.data.size() + CommitPath(record.txn_id).size() + kOpOverheadBytes >
      options_.max_batch_bytes) {
    return Status::InvalidArgument("COMMIT record " + record.txn_id + " is larger than a batch");
  }
  std::unique_lock<std::mutex> lock(mu_);
  commits_.push_back(&pending);
  writer_cv_.notify_one();
  done_cv_.wait(lock, [&] { return pending.done; });
  return pending.status;
}

void ZooKeeperJournal::LogEnd(const std::string& txn_id) {
  if (!CheckNodeName(txn_id, "transaction id").ok()) return;  // no such record can exist
  std::lock_guard<std::mutex> lock(mu_);
  if (ends_.empty()) {
    ends_deadline_ =
        std::chrono::steady_clock::now() + std::chrono::milliseconds(options_.end_flush_delay_ms);
    writer_cv_.notify_one();
  }
  ends_.push_back(txn_id);
}

void ZooKeeperJournal::WriterLoop() {
  std::unique_lock<std::mutex> lock(mu_);
  for (;;) {
    writer_cv_.wait(lock, [this] { return stop_ || !commits_.empty() || !ends_.empty(); });
    if (commits_.empty() && !ends_.empty() && !stop_) {
      writer_cv_.wait_until(lock, ends_deadline_, [this] { return stop_ || !commits_.empty(); });
    }
    if (commits_.empty() && ends_.empty()) {
      if (stop_) return;
      continue;
    }
    // Everything queued now, up to max_batch_bytes, forms the batch.
    std::vector<PendingCommit*> batch;
    size_t bytes = 0;
    while (!commits_.empty()) {
      PendingCommit* next = commits_.front();
      const size_t size =
          next->data.size() + CommitPath(next->record->txn_id).size() + kOpOverheadBytes;
      if (!batch.empty() && bytes + size > options_.max_batch_bytes) break;
      bytes += size;
      batch.push_back(next);
      commits_.pop_front();
    }
    // ENDs go when no decision waits, or when the oldest has waited long enough.
    std::vector<std::string> ends;
    if (batch.empty() || stop_ || std::chrono::steady_clock::now() >= ends_deadline_) {
      ends.swap(ends_);
    }
    const bool stopping = stop_;
    lock.unlock();
    if (!batch.empty()) WriteCommits(batch);
    const bool ends_done = ends.empty() || WriteEnds(ends);
    lock.lock();
    if (!ends_done && !stopping) {
      // A record that stays is only re-driven; try its END again later.
      if (ends_.empty()) {
        ends_deadline_ = std::chrono::steady_clock::now() +
                         std::chrono::milliseconds(options_.end_flush_delay_ms);
      }
      ends_.insert(ends_.end(), ends.begin(), ends.end());
    } else if (!ends_done) {
      LOG(WARNING) << "journal " << options_.root << ": " << ends.size()
                   << " END records not written; their commits are re-driven after a take-over";
    }
    if (!batch.empty()) {
      for (PendingCommit* pending : batch) pending->done = true;
      done_cv_.notify_all();
    }
  }
}

void ZooKeeperJournal::WriteCommits(const std::vector<PendingCommit*>& batch) {
  if (options_.before_batch_write) options_.before_batch_write(batch.size());
  auto finish = [&](const Status& status) {
    for (PendingCommit* pending : batch) pending->status = status;
  };
  Result<ZkOp> check = EpochCheck();
  if (!check.ok()) return finish(check.status());
  std::vector<ZkOp> ops = {*check};
  for (const PendingCommit* pending : batch) {
    ops.push_back(ZkOp::Create(CommitPath(pending->record->txn_id), pending->data));
  }
  Result<std::vector<ZkOpResult>> written = session_->Multi(ops);
  if (!written.ok() && written.status().code() == StatusCode::kUnavailable) {
    written = SettleUnknownBatch(ops, written.status());
  }
  if (written.ok()) {
    finish(Status::Ok());
    std::lock_guard<std::mutex> lock(mu_);
    stats_.commit_records += static_cast<int64_t>(batch.size());
    stats_.fsync_batches += 1;
    return;
  }
  Status refused = ExplainRefusal(written.status());
  if (refused.code() != StatusCode::kFailedPrecondition) {
    // kUnavailable (may be applied), kFenced (nothing applied), or another
    // refusal: the same for every record of the batch.
    LOG(WARNING) << "journal " << options_.root << ": batch of " << batch.size()
                 << " COMMIT records: " << refused.ToString();
    return finish(refused.WithContext("COMMIT record batch"));
  }
  // Not fenced, so a record exists already (a caller retrying after an
  // unknown outcome): write each alone, so the others are not held back.
  for (PendingCommit* pending : batch) {
    Result<std::vector<ZkOpResult>> one =
        session_->Multi({*check, ZkOp::Create(CommitPath(pending->record->txn_id), pending->data)});
    if (one.ok()) {
      pending->status = Status::Ok();
      std::lock_guard<std::mutex> lock(mu_);
      stats_.commit_records += 1;
      stats_.fsync_batches += 1;
      continue;
    }
    Status why = ExplainRefusal(one.status());
    // Still refused and not fenced: the record exists, the decision is durable.
    pending->status = why.code() == StatusCode::kFailedPrecondition ? Status::Ok() : why;
  }
}

Result<std::vector<ZkOpResult>> ZooKeeperJournal::SettleUnknownBatch(
    const std::vector<ZkOp>& ops, Status unknown) {
  // ops: the epoch check, then one create per record; all applied or none.
  const std::string& first_record = ops.at(1).path;
  // Past twice the session timeout without ZooKeeper the session is surely
  // gone (or will be at the servers' next look): then it stays unknown.
  const int timeout_ms = session_->negotiated_timeout_ms();
  const auto give_up = std::chrono::steady_clock::now() +
                       std::chrono::milliseconds(2 * (timeout_ms > 0 ? timeout_ms : 4000));
  while (!session_->expired() && std::chrono::steady_clock::now() < give_up) {
    // A brief loss (a ZooKeeper server restarting, an election among them)
    // must not turn into "unknown": wait for the session to reconnect.
    if (!session_->WaitForState(ZkSessionState::kConnected, 100)) continue;
    // Once reconnected, the earlier multi of this session is settled
    // (ZooKeeper applies a session's requests in order): read which way.
    Result<std::optional<ZkStat>> record = session_->Exists(first_record);
    if (!record.ok()) continue;
    if (record->has_value()) return std::vector<ZkOpResult>{};  // written: durable
    // Not written: send it again (fenced by the same epoch check).
    Result<std::vector<ZkOpResult>> again = session_->Multi(ops);
    if (again.ok() || again.status().code() != StatusCode::kUnavailable) return again;
  }
  LOG(ERROR) << "journal " << options_.root << ": a batch of COMMIT records is unsettled and "
             << "ZooKeeper is out of reach: " << unknown.ToString();
  return unknown;
}

bool ZooKeeperJournal::WriteEnds(const std::vector<std::string>& ends) {
  std::vector<ZkOp> deletes;
  size_t bytes = 0;
  Status status = Status::Ok();
  auto flush = [&] {
    if (deletes.empty()) return;
    Status st = FencedMulti(deletes);
    if (st.code() == StatusCode::kNotFound) {
      // One record is gone already (LogAbort, or an END sent twice): delete
      // them one by one, so that one missing node does not keep the rest.
      st = Status::Ok();
      for (const ZkOp& op : deletes) {
        Status one = FencedMulti({op});
        if (!one.ok() && one.code() != StatusCode::kNotFound) st = one;
      }
    }
    if (!st.ok() && status.ok()) status = st;
    deletes.clear();
    bytes = 0;
  };
  for (const std::string& txn_id : ends) {
    const std::string path = CommitPath(txn_id);
    if (bytes + path.size() + kOpOverheadBytes > options_.max_batch_bytes) flush();
    bytes += path.size() + kOpOverheadBytes;
    deletes.push_back(ZkOp::Delete(path, kZkAnyVersion));
  }
  flush();
  if (status.ok()) return true;
  LOG(WARNING) << "journal " << options_.root << ": END records: " << status.ToString();
  // A replaced coordinator's records belong to its successor now.
  return status.code() == StatusCode::kFenced;
}

Status ZooKeeperJournal::LogAbort(const std::string& txn_id) {
  RETURN_NOT_OK(CheckNodeName(txn_id, "transaction id"));
  Status deleted = FencedMulti({ZkOp::Delete(CommitPath(txn_id), kZkAnyVersion)});
  if (deleted.code() == StatusCode::kNotFound) {
    // No record: nothing to overrule, if we are still the active one.
    return FencedMulti({});
  }
  return deleted;
}

Result<std::vector<CommitRecord>> ZooKeeperJournal::LoadUnfinished() {
  ASSIGN_OR_RETURN(std::vector<std::string> names, session_->Children(options_.root + "/commits"));
  std::vector<std::pair<int64_t, CommitRecord>> records;
  for (const std::string& name : names) {
    Result<ZkNode> node = session_->Get(CommitPath(name));
    if (node.status().code() == StatusCode::kNotFound) continue;  // ended meanwhile
    if (!node.ok()) return node.status();
    ASSIGN_OR_RETURN(CommitRecord record, DecodeCommit(name, node->data));
    records.emplace_back(node->stat.modified_zxid, std::move(record));
  }
  // zxids order writes: a record is written once, so this is creation order.
  std::sort(records.begin(), records.end(),
            [](const auto& a, const auto& b) { return a.first < b.first; });
  std::vector<CommitRecord> out;
  for (auto& [zxid, record] : records) out.push_back(std::move(record));
  return out;
}

Status ZooKeeperJournal::PutParticipant(const ParticipantRecord& participant) {
  if (!IsValidName(participant.name)) {
    return Status::InvalidArgument("participant name must match [A-Za-z0-9_-]{1,64}, got '" +
                                   participant.name + "'");
  }
  const std::string path = options_.root + "/participants/" + participant.name;
  const std::string data = EncodeParticipant(participant);
  Status st = FencedMulti({ZkOp::Set(path, data, kZkAnyVersion)});
  if (st.code() != StatusCode::kNotFound) return st;
  return FencedMulti({ZkOp::Create(path, data)});
}

Result<std::vector<ParticipantRecord>> ZooKeeperJournal::LoadParticipants() {
  const std::string dir = options_.root + "/participants";
  ASSIGN_OR_RETURN(std::vector<std::string> names, session_->Children(dir));
  std::vector<ParticipantRecord> out;
  for (const std::string& name : names) {
    Result<ZkNode> node = session_->Get(dir + "/" + name);
    if (node.status().code() == StatusCode::kNotFound) continue;
    if (!node.ok()) return node.status();
    ASSIGN_OR_RETURN(ParticipantRecord p, DecodeParticipant(name, node->data));
    out.push_back(std::move(p));
  }
  return out;
}

Status ZooKeeperJournal::DeleteParticipant(const std::string& name) {
  RETURN_NOT_OK(CheckNodeName(name, "participant name"));
  Status st = FencedMulti({ZkOp::Delete(options_.root + "/participants/" + name, kZkAnyVersion)});
  // Like a DELETE of no row; still fenced-checked.
  return st.code() == StatusCode::kNotFound ? FencedMulti({}) : st;
}

Status ZooKeeperJournal::PutHeuristic(const HeuristicRecord& h) {
  RETURN_NOT_OK(CheckNodeName(h.txn_id, "transaction id"));
  RETURN_NOT_OK(CheckNodeName(h.participant, "participant name"));
  const std::string parent = options_.root + "/heuristics/" + h.txn_id;
  const std::string path = parent + "/" + h.participant;
  const std::string data = EncodeHeuristic(h);
  Status st = FencedMulti({ZkOp::Set(path, data, kZkAnyVersion)});
  if (st.code() != StatusCode::kNotFound) return st;
  st = FencedMulti({ZkOp::Create(parent, ""), ZkOp::Create(path, data)});
  // Not fenced, so the transaction has heuristics of other participants.
  if (st.code() != StatusCode::kFailedPrecondition) return st;
  return FencedMulti({ZkOp::Create(path, data)});
}

Result<std::vector<HeuristicRecord>> ZooKeeperJournal::LoadHeuristics() {
  const std::string dir = options_.root + "/heuristics";
  ASSIGN_OR_RETURN(std::vector<std::string> txns, session_->Children(dir));
  std::vector<HeuristicRecord> out;
  for (const std::string& txn_id : txns) {
    Result<std::vector<std::string>> names = session_->Children(dir + "/" + txn_id);
    if (names.status().code() == StatusCode::kNotFound) continue;
    if (!names.ok()) return names.status();
    for (const std::string& participant : *names) {
      Result<ZkNode> node = session_->Get(dir + "/" + txn_id + "/" + participant);
      if (node.status().code() == StatusCode::kNotFound) continue;
      if (!node.ok()) return node.status();
      ASSIGN_OR_RETURN(HeuristicRecord h, DecodeHeuristic(txn_id, participant, node->data));
      out.push_back(std::move(h));
    }
  }
  return out;
}

Status ZooKeeperJournal::ForgetHeuristics(const std::string& txn_id) {
  RETURN_NOT_OK(CheckNodeName(txn_id, "transaction id"));
  const std::string parent = options_.root + "/heuristics/" + txn_id;
  Result<std::vector<std::string>> names = session_->Children(parent);
  if (names.status().code() == StatusCode::kNotFound || (names.ok() && names->empty())) {
    return Status::NotFound("no heuristic record for transaction " + txn_id);
  }
  if (!names.ok()) return names.status();
  std::vector<ZkOp> deletes;
  for (const std::string& participant : *names) {
    deletes.push_back(ZkOp::Delete(parent + "/" + participant, kZkAnyVersion));
  }
  deletes.push_back(ZkOp::Delete(parent, kZkAnyVersion));
  return FencedMulti(std::move(deletes));
}

JournalStats ZooKeeperJournal::Stats() {
  std::lock_guard<std::mutex> lock(mu_);
  return stats_;
}

size_t ZooKeeperJournal::QueuedCommitsForTesting() {
  std::lock_guard<std::mutex> lock(mu_);
  return commits_.size();
}

}  // namespace pact
