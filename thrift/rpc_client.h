// One Thrift connection to a Pact service, with timeouts, lazy (re)connect and
// exception-to-Status mapping, so callers never see a Thrift exception.
#pragma once

#include <memory>
#include <string>
#include <utility>

#include <thrift/protocol/TBinaryProtocol.h>
#include <thrift/transport/TBufferTransports.h>
#include <thrift/transport/TSocket.h>

#include "common/status.h"
#include "thrift/rpc_convert.h"

namespace pact {

struct Endpoint {
  std::string host;
  int port = 0;

  std::string ToString() const { return host + ":" + std::to_string(port); }
  // "host:port"
  static Result<Endpoint> Parse(const std::string& text);
};

struct RpcTimeouts {
  int connect_ms = 2000;
  int call_ms = 10000;  // send and receive; a call that exceeds it is UNAVAILABLE
};

// Opens the socket, framed transport and binary protocol for `endpoint`.
// Shared by every RpcConnection instantiation.
struct RpcChannel {
  std::shared_ptr<apache::thrift::transport::TSocket> socket;
  std::shared_ptr<apache::thrift::transport::TTransport> transport;
  std::shared_ptr<apache::thrift::protocol::TProtocol> protocol;

  Status Open(const Endpoint& endpoint, const RpcTimeouts& timeouts);
  void Close();
  bool IsOpen() const { return transport && transport->isOpen(); }
  void SetCallTimeout(int ms);
};

// Not thread-safe: one caller at a time (pool them for concurrency).
template <typename ClientT>
class RpcConnection {
 public:
  RpcConnection(Endpoint endpoint, RpcTimeouts timeouts)
      : endpoint_(std::move(endpoint)), timeouts_(timeouts) {}
  ~RpcConnection() { channel_.Close(); }

  const Endpoint& endpoint() const { return endpoint_; }

  // Changes the send/receive timeout for the following calls.
  void SetCallTimeout(int ms) {
    timeouts_.call_ms = ms;
    channel_.SetCallTimeout(ms);
  }

  // Runs fn(client), connecting first if needed. Any exception becomes a
  // Status; after a transport failure the connection is dropped, because the
  // stream may hold half a reply, and the next call reconnects.
  template <typename Fn>
  Status Call(Fn&& fn) {
    if (!channel_.IsOpen()) {
      Status st = channel_.Open(endpoint_, timeouts_);
      if (!st.ok()) return st.WithContext(endpoint_.ToString());
      client_ = std::make_unique<ClientT>(channel_.protocol);
    }
    try {
      fn(*client_);
      return Status::Ok();
    } catch (const std::exception& e) {
      Status st = StatusFromException(e);
      if (st.code() == StatusCode::kUnavailable || st.code() == StatusCode::kInternal) {
        channel_.Close();
        client_.reset();
      }
      return st.WithContext(endpoint_.ToString());
    }
  }

 private:
  Endpoint endpoint_;
  RpcTimeouts timeouts_;
  RpcChannel channel_;
  std::unique_ptr<ClientT> client_;
};

}  // namespace pact
