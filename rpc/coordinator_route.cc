#include "rpc/coordinator_route.h"


namespace pact {

Result<std::unique_ptr<CoordinatorRoute>> CoordinatorRoute::Make(const std::string& addresses,
                                                               RpcTimeouts timeouts,
                                                               RpcCredentials credentials) {
  std::vector<Endpoint> endpoints;
  size_t start = 0;
  while (start <= addresses.size()) {
    size_t comma = addresses.find(',', start);
    if (comma == std::string::npos) comma = addresses.size();
    ASSIGN_OR_RETURN(Endpoint endpoint, Endpoint::Parse(addresses.substr(start, comma - start)));
    endpoints.push_back(std::move(endpoint));
    start = comma + 1;
  }
  return std::unique_ptr<CoordinatorRoute>(
      new CoordinatorRoute(std::move(endpoints), nullptr, timeouts, std::move(credentials)));
}

std::unique_ptr<CoordinatorRoute> CoordinatorRoute::Learning(Resolver resolve,
                                                             RpcTimeouts timeouts,
                                                             RpcCredentials credentials) {
  return std::unique_ptr<CoordinatorRoute>(
      new CoordinatorRoute({}, std::move(resolve), timeouts, std::move(credentials)));
}

CoordinatorRoute::CoordinatorRoute(std::vector<Endpoint> endpoints, Resolver resolve,
                                   RpcTimeouts timeouts, RpcCredentials credentials)
    : resolve_(std::move(resolve)), timeouts_(timeouts), credentials_(std::move(credentials)) {
  std::lock_guard<std::mutex> lock(mu_);
  for (const auto& endpoint : endpoints) IndexOf(endpoint);
  stale_ = pools_.empty();
}

std::string CoordinatorRoute::current_address() {
  std::lock_guard<std::mutex> lock(mu_);
  return pools_.empty() ? "" : pools_[current_]->endpoint().ToString();
}

Result<std::shared_ptr<CoordinatorRoute::Pool>> CoordinatorRoute::Current() {
  bool learn;
  {
    std::lock_guard<std::mutex> lock(mu_);
    learn = stale_ && resolve_;
  }
  if (learn) {
    Status learned = Learn();
    // Still usable: the addresses known so far may answer.
    std::lock_guard<std::mutex> lock(mu_);
    if (!learned.ok() && pools_.empty()) return learned;
  }
  std::lock_guard<std::mutex> lock(mu_);
  return pools_[current_];
}

Status CoordinatorRoute::Learn() {
  // Outside mu_: the resolver asks ZooKeeper. Two callers may both ask.
  Result<std::vector<std::string>> addresses = resolve_();
  if (!addresses.ok()) {
    return Status::Unavailable("cannot learn the coordinators: " + addresses.status().message());
  }
  if (addresses->empty()) return Status::Unavailable("the shard has no coordinator yet");
  std::vector<Endpoint> endpoints;
  for (const std::string& address : *addresses) {
    ASSIGN_OR_RETURN(Endpoint endpoint, Endpoint::Parse(address));
    endpoints.push_back(std::move(endpoint));
  }
  std::lock_guard<std::mutex> lock(mu_);
  for (const Endpoint& endpoint : endpoints) IndexOf(endpoint);
  current_ = IndexOf(endpoints.front());
  stale_ = false;
  return Status::Ok();
}

void CoordinatorRoute::MoveOn(const Pool* failed) {
  std::lock_guard<std::mutex> lock(mu_);
  if (pools_[current_].get() == failed) TryTheNext();
}

void CoordinatorRoute::TryTheNext() {
  current_ = (current_ + 1) % pools_.size();
  stale_ = true;
}

bool CoordinatorRoute::Follow(const Pool* standby, const std::string& leader) {
  std::lock_guard<std::mutex> lock(mu_);
  if (pools_[current_].get() != standby) return true;  // someone moved on already
  Result<Endpoint> endpoint = Endpoint::Parse(leader);
  if (!endpoint.ok()) {
    // No active known yet (a take-over in progress): try the next one.
    TryTheNext();
    return false;
  }
  const size_t active = IndexOf(*endpoint);
  if (pools_[active].get() == standby) return false;  // it names itself: nothing to follow
  current_ = active;
  return true;
}

size_t CoordinatorRoute::IndexOf(const Endpoint& endpoint) {
  for (size_t i = 0; i < pools_.size(); ++i) {
    const Endpoint& known = pools_[i]->endpoint();
    if (known.host == endpoint.host && known.port == endpoint.port) return i;
  }
  pools_.push_back(std::make_shared<Pool>(endpoint, timeouts_,
                                          credentials_.ToServer(Role::kCoordinator)));
  return pools_.size() - 1;
}

}  // namespace pact
