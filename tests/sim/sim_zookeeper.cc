#include "tests/sim/sim_zookeeper.h"

#include <algorithm>
#include <cstdio>
#include <limits>

namespace pact::sim {
namespace {

constexpr int64_t kForever = std::numeric_limits<int64_t>::max();

std::string SessionName(int64_t session) {
  char name[24];
  std::snprintf(name, sizeof(name), "0x%llx", static_cast<unsigned long long>(session));
  return name;
}

}  // namespace

SimZooKeeper::SimZooKeeper(SimClock* clock, SimRandom* random, const Faults* faults,
                           History* history, int session_timeout_ms)
    : clock_(clock),
      random_(random),
      faults_(faults),
      history_(history),
      session_timeout_ms_(session_timeout_ms) {
  tree_["/"] = Znode{};
}

void SimZooKeeper::Outage(int64_t ms) {
  const int64_t now = clock_->elapsed_ms();
  outages_.push_back({now, now + ms});
  history_->Add("zookeeper: quorum lost for " + std::to_string(ms) + " ms");
}

void SimZooKeeper::Partition(const std::string& member, int64_t ms) {
  const int64_t now = clock_->elapsed_ms();
  partitions_[member].push_back({now, now + ms});
  history_->Add("zookeeper: " + member + " partitioned from the ensemble for " +
                std::to_string(ms) + " ms");
}

void SimZooKeeper::Pause(const std::string& member) {
  pauses_[member].push_back({clock_->elapsed_ms(), kForever});
}

void SimZooKeeper::Resume(const std::string& member) {
  for (Span& span : pauses_[member]) span.until_ms = std::min(span.until_ms, clock_->elapsed_ms());
}

void SimZooKeeper::Died(int64_t session) {
  auto it = sessions_.find(session);
  if (it != sessions_.end() && !it->second.died_ms) it->second.died_ms = clock_->elapsed_ms();
}

void SimZooKeeper::HealAll() {
  const int64_t now = clock_->elapsed_ms();
  for (Span& span : outages_) span.until_ms = std::min(span.until_ms, now);
  for (auto& [member, spans] : partitions_) {
    for (Span& span : spans) span.until_ms = std::min(span.until_ms, now);
  }
}

bool SimZooKeeper::Covers(const std::vector<Span>& spans, int64_t at) {
  return std::any_of(spans.begin(), spans.end(),
                     [at](const Span& s) { return s.from_ms <= at && at < s.until_ms; });
}

bool SimZooKeeper::InOutage() const { return Covers(outages_, clock_->elapsed_ms()); }

bool SimZooKeeper::Reachable(const std::string& member) const {
  const int64_t now = clock_->elapsed_ms();
  if (Covers(outages_, now)) return false;
  auto partitioned = partitions_.find(member);
  if (partitioned != partitions_.end() && Covers(partitioned->second, now)) return false;
  auto paused = pauses_.find(member);
  return paused == pauses_.end() || !Covers(paused->second, now);
}

std::optional<int64_t> SimZooKeeper::ExpiryTime(const Session& session) const {
  std::vector<Span> spans = outages_;
  for (const auto* of : {&partitions_, &pauses_}) {
    auto it = of->find(session.member);
    if (it != of->end()) spans.insert(spans.end(), it->second.begin(), it->second.end());
  }
  if (session.died_ms) spans.push_back({*session.died_ms, kForever});
  std::sort(spans.begin(), spans.end(),
            [](const Span& a, const Span& b) { return a.from_ms < b.from_ms; });
  const int64_t now = clock_->elapsed_ms();
  // Merged spans of silence, each clipped to the session's life so far.
  for (size_t i = 0; i < spans.size();) {
    int64_t from = spans[i].from_ms, until = spans[i].until_ms;
    for (++i; i < spans.size() && spans[i].from_ms <= until; ++i) {
      until = std::max(until, spans[i].until_ms);
    }
    from = std::max(from, session.created_ms);
    until = std::min(until, now);
    if (until - from >= session_timeout_ms_) return from + session_timeout_ms_;
  }
  return std::nullopt;
}

void SimZooKeeper::ExpireDue() {
  for (auto& [id, session] : sessions_) {
    if (session.expired) continue;
    std::optional<int64_t> at = ExpiryTime(session);
    if (!at) continue;
    session.expired = true;
    std::vector<std::string> gone;
    for (auto it = tree_.begin(); it != tree_.end();) {
      if (it->second.stat.ephemeral_owner == id) {
        gone.push_back(it->first);
        it = tree_.erase(it);
      } else {
        ++it;
      }
    }
    ++zxid_;
    std::string nodes;
    for (const auto& path : gone) nodes += " " + path;
    history_->Add("zookeeper: session " + SessionName(id) + " of " + session.member +
                  " expired (unheard since " + std::to_string(*at - session_timeout_ms_) +
                  " ms)" + (nodes.empty() ? "" : "; its nodes go:" + nodes));
  }
}

bool SimZooKeeper::Expired(int64_t session) {
  ExpireDue();
  auto it = sessions_.find(session);
  return it == sessions_.end() || it->second.expired;
}

Result<int64_t> SimZooKeeper::Connect(const std::string& member) {
  if (!Reachable(member)) {
    return Status::Unavailable("sim: no ZooKeeper server accepts a session for " + member);
  }
  const int64_t id = next_session_++;
  sessions_[id] = Session{member, clock_->elapsed_ms(), std::nullopt, false};
  history_->Add("zookeeper: session " + SessionName(id) + " for " + member);
  return id;
}

Status SimZooKeeper::Usable(int64_t session, const std::string& what) {
  auto it = sessions_.find(session);
  if (it == sessions_.end() || it->second.died_ms) {
    return Status::Unavailable(what + ": no such live session");
  }
  if (!Reachable(it->second.member)) {
    return Status::Unavailable(what + ": not connected to ZooKeeper (connection lost)");
  }
  ExpireDue();
  if (it->second.expired) return Status::Unavailable(what + ": the ZooKeeper session expired");
  return Status::Ok();
}

Status SimZooKeeper::Read(int64_t session, const std::string& what) {
  RETURN_NOT_OK(Usable(session, what));
  if (!random_->Chance(faults_->zk_reply_lost / 2)) return Status::Ok();
  history_->Add("zookeeper: connection lost during " + what);
  return Status::Unavailable(what + ": lost the ZooKeeper connection");
}

Status SimZooKeeper::LoseReply(const std::string& what, bool* apply) {
  *apply = true;
  if (!random_->Chance(faults_->zk_reply_lost)) return Status::Ok();
  *apply = random_->Chance(0.5);
  history_->Add("zookeeper: connection lost during " + what + " (" +
                (*apply ? "applied" : "not applied") + ")");
  return Status::Unavailable(what + ": lost the ZooKeeper connection; the outcome is UNKNOWN");
}

std::string SimZooKeeper::Parent(const std::string& path) {
  size_t slash = path.rfind('/');
  return slash == 0 ? "/" : path.substr(0, slash);
}

std::vector<std::string> SimZooKeeper::ChildrenOf(const Tree& tree,
                                                  const std::string& path) const {
  const std::string prefix = path == "/" ? "/" : path + "/";
  std::vector<std::string> names;
  for (auto it = tree.lower_bound(prefix); it != tree.end(); ++it) {
    if (it->first.compare(0, prefix.size(), prefix) != 0) break;
    std::string rest = it->first.substr(prefix.size());
    if (!rest.empty() && rest.find('/') == std::string::npos) names.push_back(rest);
  }
  return names;
}

Status SimZooKeeper::Apply(Tree* tree, const ZkOp& op, int64_t session, int64_t zxid,
                           std::string* created_path) const {
  auto node = tree->find(op.path);
  auto version_ok = [&] {
    return op.version == kZkAnyVersion || op.version == node->second.stat.version;
  };
  switch (op.type) {
    case ZkOp::Type::kCreate: {
      auto parent = tree->find(Parent(op.path));
      if (parent == tree->end()) return Status::NotFound(op.path + ": no parent node");
      std::string path = op.path;
      const bool sequential = op.mode == ZkCreateMode::kEphemeralSequential ||
                              op.mode == ZkCreateMode::kPersistentSequential;
      if (sequential) {
        char number[16];
        std::snprintf(number, sizeof(number), "%010lld",
                      static_cast<long long>(parent->second.sequence++));
        path += number;
      }
      if (tree->count(path) > 0) return Status::FailedPrecondition(path + ": node already exists");
      Znode created;
      created.data = op.data;
      created.stat.modified_zxid = zxid;
      if (op.mode == ZkCreateMode::kEphemeral || op.mode == ZkCreateMode::kEphemeralSequential) {
        created.stat.ephemeral_owner = session;
      }
      (*tree)[path] = created;
      if (created_path) *created_path = path;
      return Status::Ok();
    }
    case ZkOp::Type::kSet:
      if (node == tree->end()) return Status::NotFound(op.path + ": no such node");
      if (!version_ok()) return Status::FailedPrecondition(op.path + ": version mismatch");
      node->second.data = op.data;
      node->second.stat.version++;
      node->second.stat.modified_zxid = zxid;
      return Status::Ok();
    case ZkOp::Type::kDelete:
      if (node == tree->end()) return Status::NotFound(op.path + ": no such node");
      if (!version_ok()) return Status::FailedPrecondition(op.path + ": version mismatch");
      if (!ChildrenOf(*tree, op.path).empty()) {
        return Status::FailedPrecondition(op.path + ": node has children");
      }
      tree->erase(node);
      return Status::Ok();
    case ZkOp::Type::kCheck:
      if (node == tree->end()) return Status::NotFound(op.path + ": no such node");
      if (!version_ok()) return Status::FailedPrecondition(op.path + ": version mismatch");
      return Status::Ok();
  }
  return Status::Internal("bad op");
}

Result<std::vector<ZkOpResult>> SimZooKeeper::Multi(int64_t session,
                                                    const std::vector<ZkOp>& ops) {
  const std::string what = "multi of " + std::to_string(ops.size()) + " ops";
  RETURN_NOT_OK(Usable(session, what));
  Tree tree = tree_;
  const int64_t zxid = zxid_ + 1;
  std::vector<ZkOpResult> results(ops.size());
  for (size_t i = 0; i < ops.size(); ++i) {
    Status st = Apply(&tree, ops[i], session, zxid, &results[i].created_path);
    if (!st.ok()) {
      return st.WithContext(what + ": op " + std::to_string(i) + " on " + ops[i].path);
    }
    auto node = tree.find(results[i].created_path.empty() ? ops[i].path : results[i].created_path);
    if (node != tree.end()) results[i].stat = node->second.stat;
  }
  bool apply;
  Status reply = LoseReply(what, &apply);
  if (apply) {
    tree_ = std::move(tree);
    zxid_ = zxid;
    if (on_applied) on_applied(session, ops);
  }
  if (!reply.ok()) return reply;
  return results;
}

Result<std::string> SimZooKeeper::Create(int64_t session, const std::string& path,
                                         const std::string& data, ZkCreateMode mode) {
  ASSIGN_OR_RETURN(auto results, Multi(session, {ZkOp::Create(path, data, mode)}));
  return results[0].created_path;
}

Status SimZooKeeper::CreateAll(int64_t session, const std::string& path) {
  for (size_t slash = path.find('/', 1);; slash = path.find('/', slash + 1)) {
    const std::string prefix = path.substr(0, slash);
    Result<std::string> created = Create(session, prefix, "");
    if (!created.ok() && created.status().code() != StatusCode::kFailedPrecondition) {
      return created.status();
    }
    if (slash == std::string::npos) return Status::Ok();
  }
}

Result<ZkStat> SimZooKeeper::Set(int64_t session, const std::string& path,
                                 const std::string& data, int32_t expected_version) {
  ASSIGN_OR_RETURN(auto results, Multi(session, {ZkOp::Set(path, data, expected_version)}));
  return results[0].stat;
}

Status SimZooKeeper::Delete(int64_t session, const std::string& path, int32_t expected_version) {
  return Multi(session, {ZkOp::Delete(path, expected_version)}).status();
}

Result<ZkNode> SimZooKeeper::Get(int64_t session, const std::string& path) {
  RETURN_NOT_OK(Read(session, "get " + path));
  std::optional<ZkNode> node = Peek(path);
  if (!node) return Status::NotFound("get " + path + ": no such node");
  return *node;
}

Result<std::optional<ZkStat>> SimZooKeeper::Exists(int64_t session, const std::string& path) {
  RETURN_NOT_OK(Read(session, "exists " + path));
  std::optional<ZkNode> node = Peek(path);
  if (!node) return std::optional<ZkStat>();
  return std::optional<ZkStat>(node->stat);
}

Result<std::vector<std::string>> SimZooKeeper::Children(int64_t session,
                                                        const std::string& path) {
  RETURN_NOT_OK(Read(session, "children of " + path));
  if (tree_.count(path) == 0) return Status::NotFound("children of " + path + ": no such node");
  return ChildrenOf(tree_, path);
}

std::optional<ZkNode> SimZooKeeper::Peek(const std::string& path) const {
  auto it = tree_.find(path);
  if (it == tree_.end()) return std::nullopt;
  ZkNode node{it->second.data, it->second.stat};
  node.stat.num_children = static_cast<int32_t>(ChildrenOf(tree_, path).size());
  return node;
}

std::vector<std::string> SimZooKeeper::PeekChildren(const std::string& path) const {
  return ChildrenOf(tree_, path);
}

}  // namespace pact::sim
