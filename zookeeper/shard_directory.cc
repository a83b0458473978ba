#include "zookeeper/shard_directory.h"

#include <chrono>

#include "common/txn_id.h"
#include "zookeeper/shard_election.h"

namespace pact {

namespace {

constexpr char kScheme[] = "zk://";

int64_t SteadyMillis() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

}  // namespace

bool IsZooKeeperUrl(const std::string& text) { return text.rfind(kScheme, 0) == 0; }

Result<ZooKeeperUrl> ParseZooKeeperUrl(const std::string& text) {
  if (!IsZooKeeperUrl(text)) {
    return Status::InvalidArgument("'" + text + "' is not zk://host:port,.../root");
  }
  ZooKeeperUrl url;
  std::string rest = text.substr(sizeof(kScheme) - 1);
  if (size_t slash = rest.find('/'); slash != std::string::npos) {
    url.root = rest.substr(slash);
    rest = rest.substr(0, slash);
  }
  while (url.root.size() > 1 && url.root.back() == '/') url.root.pop_back();
  if (rest.empty() || url.root == "/") {
    return Status::InvalidArgument("'" + text + "' needs servers and a root other than /");
  }
  url.connect_string = rest;
  return url;
}

std::string ShardPath(const std::string& root, const std::string& shard) {
  return root + "/shards/" + shard;
}

std::string ElectionPath(const std::string& root, const std::string& shard) {
  return ShardPath(root, shard) + "/election";
}

std::string ShardMapPath(const std::string& root) { return root + "/map"; }

Status ShardMapJoin(ZkSession* session, const std::string& root, const std::string& shard) {
  // Marked once joined: a shard an operator took out of the map stays out.
  const std::string joined = ShardPath(root, shard) + "/joined_map";
  ASSIGN_OR_RETURN(std::optional<ZkStat> seen, session->Exists(joined));
  if (seen) return Status::Ok();
  RETURN_NOT_OK(session->CreateAll(ShardMapPath(root)));
  auto made = session->Multi(
      {ZkOp::Create(ShardMapPath(root) + "/" + shard, ""), ZkOp::Create(joined, "")});
  if (made.ok() || made.status().code() != StatusCode::kFailedPrecondition) {
    return made.status();
  }
  // The entry was there (put by an operator) or another member of the shard
  // joined meanwhile: either way it is in the map.
  return session->CreateAll(joined);
}

ShardDirectory::ShardDirectory(ZooKeeperUrl url, int session_timeout_ms)
    : url_(std::move(url)), session_timeout_ms_(session_timeout_ms) {}

Result<std::shared_ptr<ZkSession>> ShardDirectory::Session() {
  std::lock_guard<std::mutex> lock(mu_);
  if (session_ && !session_->expired()) return session_;
  // Under mu_: one session at a time; callers wait for it rather than each
  // opening their own.
  ZkSessionOptions options;
  options.connect_string = url_.connect_string;
  options.session_timeout_ms = session_timeout_ms_;
  options.connect_timeout_ms = 2000;
  ASSIGN_OR_RETURN(std::unique_ptr<ZkSession> session, ZkSession::Connect(options));
  session_ = std::move(session);
  return session_;
}

Result<std::shared_ptr<const ShardRing>> ShardDirectory::Map() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (map_ && SteadyMillis() - map_read_at_ms_ < kMapRefreshMs) return map_;
  }
  ASSIGN_OR_RETURN(std::shared_ptr<ZkSession> session, Session());
  auto names = session->Children(ShardMapPath(url_.root));
  if (!names.ok() && names.status().code() != StatusCode::kNotFound) return names.status();
  if (!names.ok() || names->empty()) {
    return Status::NotFound("no shard serves yet: the shard map " + ShardMapPath(url_.root) +
                            " at " + url_.connect_string + " is empty");
  }
  std::lock_guard<std::mutex> lock(mu_);
  map_read_at_ms_ = SteadyMillis();
  if (!map_ || map_->shards() != *names) {
    ASSIGN_OR_RETURN(ShardRing ring, ShardRing::Build(*names));
    map_ = std::make_shared<const ShardRing>(std::move(ring));
  }
  return map_;
}

Result<std::vector<std::string>> ShardDirectory::Coordinators(const std::string& shard) {
  ASSIGN_OR_RETURN(std::shared_ptr<ZkSession> session, Session());
  auto candidates = ElectionCandidates(session.get(), ElectionPath(url_.root, shard));
  if (candidates.status().code() == StatusCode::kNotFound) return std::vector<std::string>{};
  return candidates;
}

DirectoryRoutes::DirectoryRoutes(ZooKeeperUrl url, RpcTimeouts timeouts,
                                 RpcCredentials credentials)
    : directory_(std::move(url)), timeouts_(timeouts), credentials_(std::move(credentials)) {}

Result<CoordinatorRoute*> DirectoryRoutes::To(const std::string& shard) {
  if (!IsValidName(shard)) return Status::InvalidArgument("no shard is named '" + shard + "'");
  std::lock_guard<std::mutex> lock(mu_);
  std::unique_ptr<CoordinatorRoute>& route = routes_[shard];
  if (!route) {
    route = CoordinatorRoute::Learning(
        [this, shard] { return directory_.Coordinators(shard); }, timeouts_, credentials_);
  }
  return route.get();
}

Result<std::vector<std::string>> DirectoryRoutes::ShardsFor(const std::string& key) {
  ASSIGN_OR_RETURN(std::shared_ptr<const ShardRing> ring, directory_.Map());
  if (!key.empty()) return std::vector<std::string>{ring->ShardFor(key)};
  const std::vector<std::string>& shards = ring->shards();
  uint64_t first;
  {
    std::lock_guard<std::mutex> lock(mu_);
    first = turn_++;
  }
  std::vector<std::string> in_turn;
  for (size_t i = 0; i < shards.size(); ++i) in_turn.push_back(shards[(first + i) % shards.size()]);
  return in_turn;
}

Result<std::vector<std::string>> DirectoryRoutes::Shards() {
  ASSIGN_OR_RETURN(std::shared_ptr<const ShardRing> ring, directory_.Map());
  return ring->shards();
}

Result<std::unique_ptr<CoordinatorRoutes>> MakeCoordinatorRoutes(const std::string& spec,
                                                                 RpcTimeouts timeouts,
                                                                 RpcCredentials credentials) {
  if (IsZooKeeperUrl(spec)) {
    ASSIGN_OR_RETURN(ZooKeeperUrl url, ParseZooKeeperUrl(spec));
    return std::unique_ptr<CoordinatorRoutes>(
        new DirectoryRoutes(std::move(url), timeouts, std::move(credentials)));
  }
  ASSIGN_OR_RETURN(std::unique_ptr<CoordinatorRoute> route,
                   CoordinatorRoute::Make(spec, timeouts, std::move(credentials)));
  return std::unique_ptr<CoordinatorRoutes>(new FixedCoordinatorRoutes(std::move(route)));
}

}  // namespace pact
