// One Thrift connection to a Pact service, with timeouts, lazy (re)connect and
// exception-to-Status mapping, so callers never see a Thrift exception.
#pragma once

#include <chrono>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include <thrift/protocol/TBinaryProtocol.h>
#include <thrift/transport/TBufferTransports.h>
#include <thrift/transport/TSocket.h>

#include "common/status.h"
#include "rpc/rpc_auth.h"
#include "rpc/rpc_convert.h"
#include "rpc/rpc_limits.h"

namespace pact {

struct Endpoint {
  std::string host;
  int port = 0;

  std::string ToString() const { return host + ":" + std::to_string(port); }
  // "host:port"
  static Result<Endpoint> Parse(const std::string& text);
};

struct RpcTimeouts {
  int connect_ms = 2000;  // TCP connect, and the TLS handshake
  int call_ms = 10000;  // send and receive; a call that exceeds it is UNAVAILABLE
  // A connection unused for this long is closed and opened anew before the
  // next call, so that a call never races the server's idle timeout
  // (--idle_timeout_ms, 300 s by default) closing it.
  int max_idle_ms = 60000;
};

// Opens the socket (TLS when the credentials have a context), framed
// transport and binary protocol for `endpoint`, with the default RpcLimits on
// every reply. Shared by every RpcConnection instantiation.
struct RpcChannel {
  std::shared_ptr<apache::thrift::transport::TSocket> socket;
  std::shared_ptr<BoundedFramedTransport> transport;
  std::shared_ptr<apache::thrift::protocol::TProtocol> protocol;

  // A TLS handshake the server refuses, or whose certificate this side
  // refuses, is kUnauthenticated: nothing was sent.
  Status Open(const Endpoint& endpoint, const RpcTimeouts& timeouts,
              const RpcCredentials& credentials);
  void Close();
  bool IsOpen() const { return transport && transport->isOpen(); }
  // False when the peer closed an idle connection (e.g. it restarted), so a
  // pooled connection is not used to send a call into the void.
  bool LooksAlive() const;
  // With TLS, the CN of the server's verified certificate; "" without.
  std::string PeerName() const;
  void SetCallTimeout(int ms);
};

// Not thread-safe: one caller at a time (pool them for concurrency).
template <typename ClientT>
class RpcConnection {
 public:
  RpcConnection(Endpoint endpoint, RpcTimeouts timeouts, RpcCredentials credentials = {})
      : endpoint_(std::move(endpoint)),
        timeouts_(timeouts),
        credentials_(std::move(credentials)) {}
  ~RpcConnection() { channel_.Close(); }

  const Endpoint& endpoint() const { return endpoint_; }

  // Changes the send/receive timeout for the following calls.
  void SetCallTimeout(int ms) {
    // A pool sets it before every call: two setsockopt(2) saved when, as
    // mostly, it is the one in force (a connection opens with call_ms).
    if (ms == timeouts_.call_ms) return;
    timeouts_.call_ms = ms;
    channel_.SetCallTimeout(ms);
  }

  // Runs fn(client), connecting first if needed. Any exception becomes a
  // Status; after a transport failure the connection is dropped, because the
  // stream may hold half a reply, and the next call reconnects.
  // server_name: with TLS, the server's certificate must be CN=server_name
  // for this call (checked before anything is sent); "" takes the
  // credentials' own expectation only.
  template <typename Fn>
  Status Call(Fn&& fn, const std::string& server_name = "") {
    // One poll(2) per call: a server that restarted even a moment ago must
    // not receive a call into the void (execute is not idempotent).
    auto now = std::chrono::steady_clock::now();
    bool idle_too_long = now - last_used_ > std::chrono::milliseconds(timeouts_.max_idle_ms);
    if (channel_.IsOpen() && (idle_too_long || !channel_.LooksAlive())) channel_.Close();
    last_used_ = now;
    if (!channel_.IsOpen()) {
      Status st = channel_.Open(endpoint_, timeouts_, credentials_);
      if (!st.ok()) return st.WithContext(endpoint_.ToString());
      client_ = std::make_unique<ClientT>(channel_.protocol);
      fresh_ = true;
      if (!credentials_.token.empty()) {
        // Once per connection, before anything else is sent on it.
        st = Run([this](ClientT& c) { c.authenticate(credentials_.token); });
        if (!st.ok()) {
          channel_.Close();
          client_.reset();
          return st;
        }
      }
    }
    if (!server_name.empty() && credentials_.tls && channel_.PeerName() != server_name) {
      return Status::Unauthenticated(endpoint_.ToString() + " is '" + channel_.PeerName() +
                                     "', not '" + server_name + "'");
    }
    return Run(std::forward<Fn>(fn));
  }

 private:
  template <typename Fn>
  Status Run(Fn&& fn) {
    try {
      fn(*client_);
      fresh_ = false;
      return Status::Ok();
    } catch (const std::exception& e) {
      NoteClientFailure(e);
      Status st = StatusFromException(e);
      if (fresh_ && !credentials_.tls && st.code() == StatusCode::kUnavailable) {
        // A TLS server closes a plaintext connection at its first bytes.
        st = Status::Unavailable(st.message() +
                                 " (if the server speaks TLS, give this side --tls_cert_path, "
                                 "--tls_key_path and --tls_ca_path)");
      }
      if (st.code() == StatusCode::kUnavailable || st.code() == StatusCode::kInternal) {
        channel_.Close();
        client_.reset();
      }
      return st.WithContext(endpoint_.ToString());
    }
  }

  Endpoint endpoint_;
  RpcTimeouts timeouts_;
  const RpcCredentials credentials_;
  RpcChannel channel_;
  std::unique_ptr<ClientT> client_;
  std::chrono::steady_clock::time_point last_used_;
  bool fresh_ = false;  // no call answered on this connection yet
};

// A thread-safe pool of connections to one endpoint: concurrent callers each
// get their own connection, and connections are reused across calls.
template <typename ClientT>
class RpcPool {
 public:
  RpcPool(Endpoint endpoint, RpcTimeouts timeouts, RpcCredentials credentials = {},
          size_t max_idle = 64)
      : endpoint_(std::move(endpoint)),
        timeouts_(timeouts),
        credentials_(std::move(credentials)),
        max_idle_(max_idle) {}

  const Endpoint& endpoint() const { return endpoint_; }

  // Runs fn(client) on a pooled connection with the given call timeout
  // (<= 0: the pool's default).
  // server_name: as RpcConnection::Call.
  template <typename Fn>
  Status Call(Fn&& fn, int call_timeout_ms = 0, const std::string& server_name = "") {
    std::unique_ptr<RpcConnection<ClientT>> conn = Take();
    conn->SetCallTimeout(call_timeout_ms > 0 ? call_timeout_ms : timeouts_.call_ms);
    Status st = conn->Call(std::forward<Fn>(fn), server_name);
    Give(std::move(conn));
    return st;
  }

 private:
  std::unique_ptr<RpcConnection<ClientT>> Take() {
    std::lock_guard<std::mutex> lock(mu_);
    if (idle_.empty()) {
      return std::make_unique<RpcConnection<ClientT>>(endpoint_, timeouts_, credentials_);
    }
    auto conn = std::move(idle_.back());
    idle_.pop_back();
    return conn;
  }
  void Give(std::unique_ptr<RpcConnection<ClientT>> conn) {
    std::lock_guard<std::mutex> lock(mu_);
    if (idle_.size() < max_idle_) idle_.push_back(std::move(conn));
  }

  const Endpoint endpoint_;
  const RpcTimeouts timeouts_;
  const RpcCredentials credentials_;
  const size_t max_idle_;
  std::mutex mu_;
  std::vector<std::unique_ptr<RpcConnection<ClientT>>> idle_;  // guarded by mu_
};

}  // namespace pact
