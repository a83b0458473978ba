#include "zookeeper/shard_election.h"

#include <algorithm>
#include <cstdint>
#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <vector>

#include <glog/logging.h>

namespace pact {
namespace {

// ZooKeeper appends a 10-digit sequence number to a sequential node's name;
// candidates are ordered by it alone (their prefixes differ by session).
std::string SequenceOf(const std::string& name) {
  return name.size() >= 10 ? name.substr(name.size() - 10) : name;
}

void SortBySequence(std::vector<std::string>* names) {
  std::sort(names->begin(), names->end(), [](const std::string& a, const std::string& b) {
    return SequenceOf(a) < SequenceOf(b);
  });
}

constexpr auto kRetryAfter = std::chrono::milliseconds(100);

int64_t NowNanos() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

}  // namespace

ShardElection::ShardElection(ZkSession* session, ShardElectionOptions options)
    : session_(session), options_(std::move(options)) {}

Result<std::unique_ptr<ShardElection>> ShardElection::Join(ZkSession* session,
                                                           ShardElectionOptions options) {
  std::unique_ptr<ShardElection> election(new ShardElection(session, std::move(options)));
  RETURN_NOT_OK(session->CreateAll(election->options_.path));
  RETURN_NOT_OK(election->CreateNode());
  LOG(INFO) << "election " << election->options_.path << ": candidate " << election->node_
            << " (" << election->options_.address << ")";
  election->thread_ = std::thread([e = election.get()] { e->Loop(); });
  return Result<std::unique_ptr<ShardElection>>(std::move(election));
}

int ShardElection::LeaseMs() const {
  const int timeout_ms = session_->negotiated_timeout_ms();
  return (timeout_ms > 0 ? timeout_ms : 4000) / 2;
}

bool ShardElection::leading() const {
  if (!leading_.load()) return false;
  return NowNanos() - lease_renewed_ns_.load() < int64_t{LeaseMs()} * 1000000;
}

ShardElection::~ShardElection() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
}

std::string ShardElection::Prefix() const {
  char id[17];
  std::snprintf(id, sizeof(id), "%016" PRIx64, static_cast<uint64_t>(session_->session_id()));
  return std::string("c-") + id + "-";
}

Status ShardElection::CreateNode() {
  const std::string prefix = Prefix();
  for (int attempt = 0; attempt < 3; ++attempt) {
    // A create whose reply was lost may have made the node: look first.
    ASSIGN_OR_RETURN(std::vector<std::string> children, session_->Children(options_.path));
    for (const auto& child : children) {
      if (child.rfind(prefix, 0) == 0) {
        node_ = child;
        return Status::Ok();
      }
    }
    Result<std::string> created = session_->Create(options_.path + "/" + prefix,
                                                   options_.address,
                                                   ZkCreateMode::kEphemeralSequential);
    if (created.ok()) {
      node_ = created->substr(created->rfind('/') + 1);
      return Status::Ok();
    }
    if (created.status().code() != StatusCode::kUnavailable || session_->expired()) {
      return created.status();
    }
    session_->WaitForState(ZkSessionState::kConnected, 5000);
  }
  return Status::Unavailable("could not enter the election at " + options_.path +
                             ": ZooKeeper did not answer");
}

void ShardElection::OnSessionState(ZkSessionState state) {
  if (state != ZkSessionState::kConnected) leading_ = false;  // at once, before anyone asks
  {
    std::lock_guard<std::mutex> lock(mu_);
    look_ = true;
  }
  wake_.notify_all();
}

void ShardElection::OnWatch(const ZkWatchEvent& event) {
  if (event.path.rfind(options_.path + "/", 0) != 0) return;  // not this election's
  {
    std::lock_guard<std::mutex> lock(mu_);
    look_ = true;
  }
  wake_.notify_all();
}

Status ShardElection::Evaluate(bool* again) {
  *again = false;
  if (session_->state() != ZkSessionState::kConnected) {
    SetLeading(false);
    return Status::Ok();  // the reconnect (or expiry) wakes the loop
  }
  ASSIGN_OR_RETURN(std::vector<std::string> children, session_->Children(options_.path));
  SortBySequence(&children);
  auto mine = std::find(children.begin(), children.end(), node_);
  if (mine == children.end()) {
    // Resigned, or the session expired and the servers removed the node.
    SetLeading(false);
    return Status::FailedPrecondition("candidate " + node_ + " is no longer in the election");
  }
  if (mine == children.begin()) {
    // Watched: if the node goes (an operator, an expiry), leadership goes with it.
    const int64_t asked = NowNanos();
    ASSIGN_OR_RETURN(std::optional<ZkStat> stat,
                     session_->Exists(options_.path + "/" + node_, /*watch=*/!leading_));
    // The lease counts from the question, not the answer.
    if (stat.has_value()) lease_renewed_ns_ = asked;
    SetLeading(stat.has_value() && stat->ephemeral_owner == session_->session_id() &&
               session_->state() == ZkSessionState::kConnected);
    return Status::Ok();
  }
  SetLeading(false);
  // Watch the one just before: only its exit can make this one the lowest.
  const std::string predecessor = options_.path + "/" + *(mine - 1);
  ASSIGN_OR_RETURN(std::optional<ZkStat> stat, session_->Exists(predecessor, /*watch=*/true));
  if (!stat) *again = true;  // gone between the two looks
  return Status::Ok();
}

void ShardElection::SetLeading(bool leading) {
  leading_ = leading;
  if (leading == reported_) return;
  reported_ = leading;
  LOG(INFO) << "election " << options_.path << ": " << node_
            << (leading ? " leads" : " does not lead");
  if (options_.on_change) options_.on_change(leading);
}

void ShardElection::Loop() {
  std::unique_lock<std::mutex> lock(mu_);
  while (!stop_) {
    if (!look_) {
      if (leading_) {
        // Leading: look again every third of the lease, which renews it.
        wake_.wait_for(lock, std::chrono::milliseconds(LeaseMs() / 3),
                       [this] { return stop_ || look_; });
        look_ = true;
      } else {
        wake_.wait(lock, [this] { return stop_ || look_; });
      }
      continue;
    }
    look_ = false;
    if (resigned_) {
      lock.unlock();
      SetLeading(false);
      lock.lock();
      continue;
    }
    lock.unlock();
    bool again = false;
    Status looked = Evaluate(&again);
    lock.lock();
    if (looked.code() == StatusCode::kFailedPrecondition) {
      resigned_ = true;  // out of the election for good
    } else if (!looked.ok() || again) {
      // ZooKeeper did not answer (or the field moved): look again shortly.
      if (!looked.ok()) {
        lock.unlock();
        SetLeading(false);
        lock.lock();
      }
      look_ = true;
      if (!looked.ok()) wake_.wait_for(lock, kRetryAfter, [this] { return stop_; });
    }
  }
}

namespace {

// The addresses of the election's candidates in election order, reading
// only the first `most` of them that are still there (a node gone between
// the two looks is skipped).
Result<std::vector<std::string>> CandidatesInOrder(ZkSession* session, const std::string& path,
                                                   size_t most) {
  Result<std::vector<std::string>> names = session->Children(path);
  if (names.status().code() == StatusCode::kNotFound) return std::vector<std::string>{};
  RETURN_NOT_OK(names.status());
  SortBySequence(&*names);
  std::vector<std::string> addresses;
  for (const auto& name : *names) {
    if (addresses.size() == most) break;
    Result<ZkNode> node = session->Get(path + "/" + name);
    if (node.ok()) {
      addresses.push_back(node->data);
    } else if (node.status().code() != StatusCode::kNotFound) {
      return node.status();
    }
  }
  return addresses;
}

}  // namespace

Result<std::vector<std::string>> ElectionCandidates(ZkSession* session, const std::string& path) {
  return CandidatesInOrder(session, path, SIZE_MAX);
}

Result<std::string> ShardElection::LeaderAddress() {
  // A standby asks this for every call it refuses: one node read, not all.
  ASSIGN_OR_RETURN(std::vector<std::string> leader, CandidatesInOrder(session_, options_.path, 1));
  if (leader.empty()) return Status::NotFound("no candidate in " + options_.path);
  return leader.front();
}

Status ShardElection::Resign() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    resigned_ = true;
    look_ = true;
  }
  leading_ = false;
  wake_.notify_all();
  Status deleted = session_->Delete(options_.path + "/" + node_, kZkAnyVersion);
  if (deleted.code() == StatusCode::kNotFound) return Status::Ok();
  return deleted;
}

}  // namespace pact

namespace pact {

struct ElectionRelay::Target {
  std::mutex mu;
  ShardElection* election = nullptr;  // guarded by mu
};

ElectionRelay::ElectionRelay() : target_(std::make_shared<Target>()) {}

ElectionRelay::~ElectionRelay() { Attach(nullptr); }

void ElectionRelay::Attach(ShardElection* election) {
  std::lock_guard<std::mutex> lock(target_->mu);
  target_->election = election;
}

ZkSessionListener ElectionRelay::StateListener() const {
  return [target = target_](ZkSessionState state) {
    std::lock_guard<std::mutex> lock(target->mu);
    if (target->election) target->election->OnSessionState(state);
  };
}

ZkWatchListener ElectionRelay::WatchListener() const {
  return [target = target_](const ZkWatchEvent& event) {
    std::lock_guard<std::mutex> lock(target->mu);
    if (target->election) target->election->OnWatch(event);
  };
}

}  // namespace pact
