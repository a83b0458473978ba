// Serves one Thrift processor on host:port with a thread per connection
// (TThreadedServer: the cheapest per call on loopback, see docs), reading
// only bounded frames (rpc_limits.h) from a bounded number of connections,
// over mutual TLS when configured, with each call's caller in scope for the
// handler's authorization (rpc_auth.h).
#pragma once

#include <memory>
#include <string>
#include <thread>

#include <thrift/TProcessor.h>
#include <thrift/server/TThreadedServer.h>

#include "common/metrics.h"
#include "common/status.h"
#include "rpc/rpc_auth.h"
#include "rpc/rpc_limits.h"

namespace pact {

struct RpcServerOptions {
  RpcLimits limits;
  // Mutual TLS, tokens, or open (rpc_auth.h). Open beyond loopback warns.
  ServerSecurity security;
  // One thread each. Beyond this, new connections are closed at once (and
  // counted): enough for pooled clients (a pool keeps up to 64 per client).
  int max_connections = 1024;
  // A connection that sends nothing for this long is closed (its client
  // reconnects); a silent connection cannot hold its thread for ever.
  int idle_timeout_ms = 300000;
  // From a frame's first byte to its last, and for writing a reply: a slow
  // peer cannot pin a thread for longer.
  int frame_timeout_ms = 30000;
  // Where pact_rpc_frames_refused_total and pact_rpc_connections_refused_total
  // go; nullptr: counters of the server's own. REQUIRES: one server per registry.
  MetricsRegistry* metrics = nullptr;
};

class RpcServer {
 public:
  RpcServer(std::shared_ptr<apache::thrift::TProcessor> processor, std::string host, int port,
            RpcServerOptions options = {});
  ~RpcServer();

  // Binds and starts serving on a background thread. Returns once the socket
  // listens, or the reason it cannot (port in use, ...).
  Status Start();
  // Stops accepting and ends every connection at once: their reads end, a
  // call being handled still sends its reply. Idempotent.
  void Stop();

  int64_t frames_refused() const { return frames_refused_->value(); }
  int64_t connections_refused() const { return connections_refused_->value(); }
  int64_t handshakes_refused() const { return handshakes_refused_->value(); }

 private:
  class GuardedProcessor;
  class OpenSockets;
  class ConnectionEvents;
  class CappedServerSocket;
  class Transports;
  class Protocols;
  // Counts a frame refused by the limits; logs once per 10 s at most.
  void NoteRefusedFrame(const std::string& why);
  // Counts a TLS connection refused in its handshake; logs as rarely.
  void NoteRefusedHandshake(const std::string& why);
  // False (and counted) if the server holds max_connections already.
  bool AdmitConnection();

  std::shared_ptr<apache::thrift::TProcessor> processor_;
  std::string host_;
  int port_;
  const RpcServerOptions options_;
  Counter own_frames_refused_, own_connections_refused_, own_handshakes_refused_;
  Counter* frames_refused_;
  Counter* connections_refused_;
  Counter* handshakes_refused_;
  LogLimiter frame_log_, connection_log_, handshake_log_;
  std::shared_ptr<apache::thrift::server::TThreadedServer> server_;
  std::unique_ptr<OpenSockets> open_sockets_;
  std::thread thread_;
};

}  // namespace pact
