// Serves a MetricsRegistry at GET /metrics for Prometheus to scrape.
#pragma once

#include <memory>
#include <string>
#include <thread>

#include "common/metrics.h"
#include "common/status.h"

namespace httplib {
class Server;
}

namespace pact {

class MetricsHttpServer {
 public:
  // REQUIRES: `registry` outlives this server.
  MetricsHttpServer(const MetricsRegistry* registry, std::string host, int port);
  ~MetricsHttpServer();  // Stop()
  MetricsHttpServer(const MetricsHttpServer&) = delete;
  MetricsHttpServer& operator=(const MetricsHttpServer&) = delete;

  // Binds host:port (port 0 picks a free one) and serves on a background
  // thread; returns once accepting, or IoError when the address cannot be
  // bound (e.g. the port is in use). FailedPrecondition if already started.
  Status Start();
  // The bound port; 0 before a successful Start.
  int port() const { return bound_port_; }
  // Stops serving and joins the thread. Idempotent; Start may be called again.
  void Stop();

 private:
  const MetricsRegistry* const registry_;
  const std::string host_;
  const int requested_port_;
  int bound_port_ = 0;
  std::unique_ptr<httplib::Server> server_;
  std::thread thread_;
};

// What both binaries do with their --metrics_port: -1 serves nothing (null),
// anything else serves the registry there and logs where.
Result<std::unique_ptr<MetricsHttpServer>> ServeMetrics(const MetricsRegistry* registry,
                                                        const std::string& host, int port);

}  // namespace pact
