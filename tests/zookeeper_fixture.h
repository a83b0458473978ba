// A GoogleTest fixture with a real three-node ZooKeeper ensemble of its own
// on loopback (started for each test, removed after it), and sessions to it.
#pragma once

#include <gtest/gtest.h>

#include <chrono>
#include <iostream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "cluster/fault_proxy.h"
#include "cluster/temp_dir.h"
#include "cluster/zookeeper_ensemble.h"
#include "zookeeper/zk_session.h"

namespace pact {

inline const Status& AnswerStatus(const Status& status) { return status; }
template <typename T>
const Status& AnswerStatus(const Result<T>& result) {
  return result.status();
}

// Calls `call` again while it answers kUnavailable, for up to timeout_ms, and
// returns its last answer. After a fault an ensemble may settle in more than
// one step (a second election, a server still syncing), each dropping the
// client's connection for a moment; what a test checks is the answer after.
template <typename Call>
auto UntilAvailable(Call call, int timeout_ms = 10000) -> decltype(call()) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  while (true) {
    auto answer = call();
    if (AnswerStatus(answer).code() != StatusCode::kUnavailable ||
        std::chrono::steady_clock::now() > deadline) {
      return answer;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
}

class ZooKeeperFixture : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto start = std::chrono::steady_clock::now();
    auto started = ZooKeeperEnsemble::Start(dir_.File("zk"));
    ASSERT_TRUE(started.ok()) << started.status().ToString();
    zk_ = std::move(*started);
    std::cout << "three-node ensemble serving after "
              << std::chrono::duration_cast<std::chrono::milliseconds>(
                     std::chrono::steady_clock::now() - start)
                     .count()
              << " ms\n";
  }

  // A connected session (nullptr after a failed expectation); to the whole
  // ensemble unless connect_string names other addresses (proxies).
  std::unique_ptr<ZkSession> Connect(int session_timeout_ms = 4000,
                                     ZkSessionListener on_state = {},
                                     ZkWatchListener on_watch = {},
                                     const std::string& connect_string = "") {
    ZkSessionOptions options;
    options.connect_string = connect_string.empty() ? zk_->ConnectString() : connect_string;
    options.session_timeout_ms = session_timeout_ms;
    options.on_state = std::move(on_state);
    options.on_watch = std::move(on_watch);
    auto session = ZkSession::Connect(std::move(options));
    EXPECT_TRUE(session.ok()) << session.status().ToString();
    return session.ok() ? std::move(*session) : nullptr;
  }

  // A connect string through an opaque FaultProxy in front of every server
  // (kept in proxies_), so that a test can partition one client from the
  // whole ensemble while the servers run on; "" after a failed expectation.
  std::string ThroughProxies() {
    std::string connect;
    for (int i = 0; i < zk_->size(); ++i) {
      auto proxy = FaultProxy::Start(zk_->client_port(i), FaultProxy::Framing::kOpaque);
      EXPECT_TRUE(proxy.ok()) << proxy.status().ToString();
      if (!proxy.ok()) return "";
      connect += (i > 0 ? "," : "") + (*proxy)->address();
      proxies_.push_back(std::move(*proxy));
    }
    return connect;
  }
  void FreezeProxies() {
    for (auto& proxy : proxies_) proxy->Freeze();
  }
  // The servers still hear the client; their answers are held.
  void FreezeProxiedReplies() {
    for (auto& proxy : proxies_) proxy->FreezeReplies();
  }
  void ThawProxies() {
    for (auto& proxy : proxies_) proxy->Thaw();
  }

  TempDir dir_;  // outlives the servers, which write into it
  std::vector<std::unique_ptr<FaultProxy>> proxies_;
  std::unique_ptr<ZooKeeperEnsemble> zk_;
};

}  // namespace pact
