// pact-rpc-bench: the cost of one RPC message, alone. An RpcServer and an
// RpcPool in one process on loopback, `--threads` callers each making
// prepare calls (a small request, a small reply, like most of a transfer's
// messages) to a handler that does nothing, for `--seconds`. Prints calls/s
// and the process's CPU (user + system) per call, which is less sensitive to
// a loaded machine than the rate is. With --server=nonblocking (built where
// libevent's headers are), Thrift's TNonblockingServer serves instead: one
// libevent loop reading requests and a pool of --workers running the
// handlers (as Pact's handlers block); --workers=0 runs them in the loop.
#include <sys/resource.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <iostream>
#include <memory>
#include <thread>
#include <vector>

#include <boost/program_options.hpp>
#include <glog/logging.h>

#ifdef PACT_RPC_BENCH_NONBLOCKING
#include <thrift/concurrency/ThreadFactory.h>
#include <thrift/concurrency/ThreadManager.h>
#include <thrift/protocol/TBinaryProtocol.h>
#include <thrift/server/TNonblockingServer.h>
#include <thrift/transport/TNonblockingServerSocket.h>
#endif

#include "gen-cpp/Participant.h"
#include "rpc/rpc_client.h"
#include "rpc/rpc_server.h"

namespace {

namespace po = boost::program_options;

class NullParticipant : public pact::rpc::ParticipantNull {
 public:
  pact::rpc::Vote::type prepare(const pact::rpc::Fence&, const std::string&) override {
    return pact::rpc::Vote::COMMIT;
  }
};

double CpuSeconds() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  auto seconds = [](const timeval& tv) { return tv.tv_sec + tv.tv_usec / 1e6; };
  return seconds(usage.ru_utime) + seconds(usage.ru_stime);
}

// A running server of the kind asked for, stopped by its destructor.
class Server {
 public:
  virtual ~Server() = default;
};

class ThreadedServer : public Server {
 public:
  ThreadedServer(std::shared_ptr<apache::thrift::TProcessor> processor, int port)
      : server_(std::move(processor), "127.0.0.1", port) {}
  pact::Status Start() { return server_.Start(); }

 private:
  pact::RpcServer server_;
};

#ifdef PACT_RPC_BENCH_NONBLOCKING
struct Listening : apache::thrift::server::TServerEventHandler {
  void preServe() override { ready = true; }
  std::atomic<bool> ready{false};
};

class NonblockingServer : public Server {
 public:
  NonblockingServer(std::shared_ptr<apache::thrift::TProcessor> processor, int port,
                    int workers) {
    using namespace apache::thrift;
    auto socket = std::make_shared<transport::TNonblockingServerSocket>("127.0.0.1", port);
    auto protocols = std::make_shared<protocol::TBinaryProtocolFactory>();
    if (workers > 0) {
      auto threads = concurrency::ThreadManager::newSimpleThreadManager(workers);
      threads->threadFactory(std::make_shared<concurrency::ThreadFactory>());
      threads->start();
      server_ = std::make_unique<server::TNonblockingServer>(processor, protocols, socket, threads);
    } else {
      server_ = std::make_unique<server::TNonblockingServer>(processor, protocols, socket);
    }
    auto listening = std::make_shared<Listening>();
    server_->setServerEventHandler(listening);
    thread_ = std::thread([this] { server_->serve(); });
    while (!listening->ready) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  ~NonblockingServer() override {
    server_->stop();
    thread_.join();
  }

 private:
  std::unique_ptr<apache::thrift::server::TNonblockingServer> server_;
  std::thread thread_;
};
#endif

}  // namespace

int main(int argc, char** argv) {
  google::InitGoogleLogging(argv[0]);
  int threads = 1;
  double seconds = 5;
  int port = 0;
  std::string kind = "threaded";
  int workers = 16;
  po::options_description desc("pact-rpc-bench");
  desc.add_options()("help", "this text")(
      "threads", po::value(&threads)->default_value(threads), "concurrent callers")(
      "seconds", po::value(&seconds)->default_value(seconds), "how long to call")(
      "port", po::value(&port)->default_value(port), "loopback port (0: 20000 + pid % 20000)")(
      "server", po::value(&kind)->default_value(kind), "threaded (RpcServer) or nonblocking")(
      "workers", po::value(&workers)->default_value(workers),
      "nonblocking: handler threads (0: handlers run in the event loop)");
  po::variables_map vm;
  po::store(po::parse_command_line(argc, argv, desc), vm);
  po::notify(vm);
  if (vm.count("help")) {
    std::cout << desc << "\n";
    return 0;
  }
  if (port == 0) port = 20000 + getpid() % 20000;

  auto processor =
      std::make_shared<pact::rpc::ParticipantProcessor>(std::make_shared<NullParticipant>());
  std::unique_ptr<Server> server;
  if (kind == "threaded") {
    auto threaded = std::make_unique<ThreadedServer>(processor, port);
    pact::Status st = threaded->Start();
    if (!st.ok()) {
      std::fprintf(stderr, "%s\n", st.ToString().c_str());
      return 1;
    }
    server = std::move(threaded);
#ifdef PACT_RPC_BENCH_NONBLOCKING
  } else if (kind == "nonblocking") {
    server = std::make_unique<NonblockingServer>(processor, port, workers);
#endif
  } else {
    std::fprintf(stderr, "--server=%s: not built in\n", kind.c_str());
    return 1;
  }
  pact::RpcPool<pact::rpc::ParticipantClient> pool({"127.0.0.1", port}, pact::RpcTimeouts{});
  pact::rpc::Fence fence;
  std::atomic<bool> stop{false};
  std::atomic<int64_t> calls{0}, failures{0};
  auto call = [&] {
    pact::Status st = pool.Call([&](pact::rpc::ParticipantClient& c) { c.prepare(fence, "t"); });
    (st.ok() ? calls : failures)++;
  };
  for (int i = 0; i < threads; ++i) call();  // connections opened before the clock starts
  calls = 0;
  double cpu_start = CpuSeconds();
  auto start = std::chrono::steady_clock::now();
  std::vector<std::thread> callers;
  for (int i = 0; i < threads; ++i) {
    callers.emplace_back([&] {
      while (!stop) call();
    });
  }
  std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
  stop = true;
  for (auto& t : callers) t.join();
  double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  double cpu = CpuSeconds() - cpu_start;
  server.reset();
  std::printf("%s  threads %d  calls/s %.0f  cpu us/call %.2f  failures %lld\n", kind.c_str(), threads,
              calls / wall, cpu * 1e6 / std::max<int64_t>(1, calls.load()),
              static_cast<long long>(failures.load()));
  return failures == 0 ? 0 : 1;
}
