// A TCP proxy on loopback that loses, delays and resets messages on purpose.
// Put it between any two Pact processes (or a participant and its database)
// and the caller sees exactly what a real network fault would show it.
//
//   auto proxy = FaultProxy::Start(participant_port);         // Thrift framing
//   RuleId lost = (*proxy)->AddRule({"prepare", Fault::kDropReply});
//   ... the coordinator talks to 127.0.0.1:(*proxy)->port() ...
//   EXPECT_TRUE((*proxy)->WaitUntilFired(lost, 5000));
//
// With Thrift framing (framed transport, binary protocol) every frame is
// parsed, so a rule can hit one method in one direction. Opaque framing (e.g.
// the PostgreSQL wire protocol) forwards bytes and supports only the
// connection-level faults. Thread-safe; it only ever connects to 127.0.0.1.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <list>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "common/status.h"

namespace pact {

// What a rule does to the frames it matches. The request is what the
// connecting side sends; the reply is what the target answers.
enum class Fault {
  kDropRequest,         // swallow the request: the target never sees it, the caller times out
  kDropReply,           // forward the request, swallow its reply
  kResetBeforeRequest,  // reset the connection instead of forwarding the request
  kResetAfterRequest,   // forward the request, then reset the connection at once
  kDelayRequest,        // hold the request for delay_ms, then forward it
  kDelayReply,          // hold the reply for delay_ms, then forward it
};

const char* FaultName(Fault fault);

struct Rule {
  std::string method;  // the Thrift method it hits; empty: every method
  Fault fault = Fault::kDropRequest;
  int count = 1;     // how many matching frames it hits; then it is spent
  int delay_ms = 0;  // kDelayRequest, kDelayReply
};

using RuleId = int;

// The start of a Thrift message (TBinaryProtocol, strict or old format).
struct ThriftMessage {
  std::string method;
  bool is_request = true;  // CALL or ONEWAY; else REPLY or EXCEPTION
  int32_t seqid = 0;
};
// Parses the message header at the start of a frame's payload; nullopt if
// it is not one.
std::optional<ThriftMessage> ParseThriftMessage(const std::string& payload);

// The rule table: which fault, if any, a frame meets. Thread-safe.
class FaultRules {
 public:
  RuleId Add(Rule rule);
  // The fault the first live rule matching (direction, method) applies, using
  // up one of its hits; nullopt if none matches.
  std::optional<Rule> Match(bool is_request, const std::string& method);
  int Hits(RuleId id);
  // True once rule `id` has hit at least `hits` frames; false on timeout.
  bool WaitForHits(RuleId id, int hits, int timeout_ms);
  // Spends every rule, so none hits any more (their hits stay readable).
  void Clear();

 private:
  struct Entry {
    Rule rule;
    int hits = 0;
    bool cleared = false;
  };
  std::mutex mu_;
  std::condition_variable hit_;
  std::vector<Entry> rules_;  // indexed by RuleId; guarded by mu_
};

// Frozen or flowing, shared by every pump of one proxy: a frozen proxy holds
// whatever it reads until thawed. Stop releases every waiter for good.
class FlowGate {
 public:
  // Freezes both directions, or only what the target answers (requests
  // still reach it: a write is applied and its reply never arrives).
  void Freeze(bool replies_only = false);
  void Thaw();
  void Stop();
  // Waits while the direction is frozen (request: caller to target); false
  // once stopped.
  bool Pass(bool request);
  // Sleeps up to ms; false if stopped meanwhile.
  bool Sleep(int ms);

 private:
  std::mutex mu_;
  std::condition_variable changed_;
  bool requests_frozen_ = false;  // guarded by mu_
  bool replies_frozen_ = false;   // guarded by mu_
  bool stopped_ = false;          // guarded by mu_
};

// One accepted connection and its connection to the target, with one thread
// pumping each direction. Either side ending ends both.
class ProxiedConnection {
 public:
  // Takes ownership of both sockets. rules == nullptr: opaque bytes.
  ProxiedConnection(int client_fd, int target_fd, FaultRules* rules, FlowGate* gate,
                    std::string label);
  ~ProxiedConnection();  // resets and joins

  // Abortive close of both sides (RST); the pumps end.
  void Reset();
  // After a request was forwarded: the caller's side is reset, the target's
  // is closed in order, so the target still reads (and acts on) the request.
  void ResetCaller();
  bool finished();

 private:
  void Pump(int from, int to);
  // Each returns when `from` or `to` ends, or when it reset the connection.
  void PumpFrames(int from, int to);
  void PumpBytes(int from, int to);
  // Shuts both sockets down, so the other pump wakes and ends too; an
  // abortive side is reset (RST), losing what it has not read yet.
  void ShutdownLocked(bool abortive_client, bool abortive_target);

  const int client_fd_, target_fd_;
  FaultRules* const rules_;
  FlowGate* const gate_;
  const std::string label_;
  // Set before a request that is to be followed by a reset is forwarded, so
  // that its reply, however quick, is never forwarded.
  std::atomic<bool> cut_{false};
  std::mutex mu_;
  int pumps_done_ = 0;   // guarded by mu_; the last one closes both sockets
  bool closed_ = false;  // guarded by mu_
  std::thread upstream_, downstream_;
};

class FaultProxy {
 public:
  enum class Framing { kThrift, kOpaque };

  // Listens on a free 127.0.0.1 port and forwards every connection to
  // 127.0.0.1:target_port.
  static Result<std::unique_ptr<FaultProxy>> Start(int target_port,
                                                   Framing framing = Framing::kThrift);
  ~FaultProxy();  // stops: resets every connection, joins every thread

  int port() const { return port_; }
  std::string address() const { return "127.0.0.1:" + std::to_string(port_); }
  // Connections accepted from now on go to this port (a server that moved).
  void set_target_port(int port) { target_port_ = port; }

  // Message-level faults (Thrift framing only).
  RuleId AddRule(Rule rule) { return rules_.Add(std::move(rule)); }
  int Hits(RuleId id) { return rules_.Hits(id); }
  bool WaitUntilFired(RuleId id, int timeout_ms, int hits = 1) {
    return rules_.WaitForHits(id, hits, timeout_ms);
  }
  void ClearRules() { rules_.Clear(); }

  // Connection-level faults.
  // New connections are reset as soon as they are accepted, for duration_ms.
  void RefuseConnections(int duration_ms);
  // Resets every open connection; new ones are accepted as usual.
  void ResetConnections();
  // Stops forwarding in both directions (connections stay open) until Thaw.
  void Freeze() { gate_.Freeze(); }
  // Stops forwarding only the target's answers until Thaw (or Freeze).
  void FreezeReplies() { gate_.Freeze(/*replies_only=*/true); }
  void Thaw() { gate_.Thaw(); }

 private:
  FaultProxy(int listen_fd, int port, int target_port, Framing framing);
  void AcceptLoop();
  void Serve(int client_fd);

  const int listen_fd_;
  const int port_;
  std::atomic<int> target_port_;
  const Framing framing_;
  FaultRules rules_;
  FlowGate gate_;
  std::atomic<bool> stopping_{false};
  std::mutex mu_;
  std::chrono::steady_clock::time_point refuse_until_;         // guarded by mu_
  std::list<std::unique_ptr<ProxiedConnection>> connections_;  // guarded by mu_
  std::thread acceptor_;
};

}  // namespace pact
