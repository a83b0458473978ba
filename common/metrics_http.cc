#include "common/metrics_http.h"

#include <glog/logging.h>
#include <httplib.h>
#include <sys/socket.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>

namespace pact {
namespace {

constexpr char kContentType[] = "text/plain; version=0.0.4; charset=utf-8";
// Scrapes are rare and small; httplib's default pool is one thread per core.
constexpr size_t kWorkerThreads = 2;

}  // namespace

MetricsHttpServer::MetricsHttpServer(const MetricsRegistry* registry, std::string host, int port)
    : registry_(registry), host_(std::move(host)), requested_port_(port) {}

MetricsHttpServer::~MetricsHttpServer() { Stop(); }

Status MetricsHttpServer::Start() {
  if (server_) return Status::FailedPrecondition("metrics server already started");
  auto server = std::make_unique<httplib::Server>();
  server->new_task_queue = [] { return new httplib::ThreadPool(kWorkerThreads); };
  // httplib's default sets SO_REUSEPORT, which would let a second process
  // silently share a port in use; plain SO_REUSEADDR makes that bind fail.
  server->set_socket_options([](socket_t sock) {
    int yes = 1;
    setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof(yes));
  });
  const MetricsRegistry* registry = registry_;
  server->Get("/metrics", [registry](const httplib::Request&, httplib::Response& res) {
    res.set_content(registry->RenderPrometheus(), kContentType);
  });

  errno = 0;
  int port = requested_port_ == 0                           ? server->bind_to_any_port(host_)
             : server->bind_to_port(host_, requested_port_) ? requested_port_
                                                            : -1;
  if (port <= 0) {
    int err = errno;
    return Status::IoError("metrics server cannot listen on " + host_ + ":" +
                           std::to_string(requested_port_) +
                           (err != 0 ? std::string(": ") + std::strerror(err) : ""));
  }
  httplib::Server* raw = server.get();
  auto loop_ended = std::make_shared<std::atomic<bool>>(false);
  thread_ = std::thread([raw, loop_ended] {
    raw->listen_after_bind();
    *loop_ended = true;
  });
  // httplib's stop() is a no-op until the accept loop has started, so wait for
  // it here; a later Stop() then always ends the loop.
  while (!raw->is_running() && !*loop_ended) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  if (*loop_ended) {
    thread_.join();
    return Status::IoError("metrics server on " + host_ + ":" + std::to_string(port) +
                           " stopped accepting at start");
  }
  server_ = std::move(server);
  bound_port_ = port;
  return Status::Ok();
}

void MetricsHttpServer::Stop() {
  if (!server_) return;
  server_->stop();
  thread_.join();
  server_.reset();
  bound_port_ = 0;
}

Result<std::unique_ptr<MetricsHttpServer>> ServeMetrics(const MetricsRegistry* registry,
                                                        const std::string& host, int port) {
  if (port < 0) return std::unique_ptr<MetricsHttpServer>();
  auto server = std::make_unique<MetricsHttpServer>(registry, host, port);
  RETURN_NOT_OK(server->Start());
  LOG(INFO) << "metrics on http://" << host << ":" << server->port() << "/metrics";
  return server;
}

}  // namespace pact
