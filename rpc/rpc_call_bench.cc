// pact-rpc-bench: the cost of one RPC message, alone. An RpcServer and an
// RpcPool in one process on loopback, `--threads` callers each making
// prepare calls (a small request, a small reply, like most of a transfer's
// messages) to a handler that does nothing, for `--seconds`. Prints calls/s
// and the process's CPU (user + system) per call, which is less sensitive to
// a loaded machine than the rate is. With --server=nonblocking (built where
// libevent's headers are), Thrift's TNonblockingServer serves instead: one
// libevent loop reading requests and a pool of --workers running the
// handlers (as Pact's handlers block); --workers=0 runs them in the loop.
// --server=epoll is a bare prototype of an event-driven server of Pact's
// own (one epoll loop; no TLS, no limits, no auth: a best case), with the
// handlers in the loop (--workers=0) or handed to --workers threads.
// --pipeline K: each caller keeps K requests in flight on its connection.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <deque>
#include <iostream>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <thrift/protocol/TBinaryProtocol.h>
#include <thrift/transport/TBufferTransports.h>

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
  pact::rpc::Vote::type prepare(const pact::rpc::Fence&, const std::string&,
                                const std::string&) override {
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

// The prototype: level-triggered epoll on the listening socket and every
// connection; a complete frame is processed in the loop, or queued to a
// worker that processes it and writes the reply itself (a client sends one
// call at a time, so a connection has at most one frame in flight).
class EpollServer : public Server {
 public:
  EpollServer(std::shared_ptr<apache::thrift::TProcessor> processor, int port, int workers)
      : processor_(std::move(processor)) {
    listener_ = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    int one = 1;
    setsockopt(listener_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_port = htons(port);
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    PCHECK(bind(listener_, reinterpret_cast<sockaddr*>(&address), sizeof(address)) == 0);
    PCHECK(listen(listener_, 128) == 0);
    epoll_ = epoll_create1(0);
    wake_ = eventfd_like();
    Watch(listener_);
    Watch(wake_[0]);
    for (int i = 0; i < workers; ++i) workers_.emplace_back([this] { Work(); });
    loop_ = std::thread([this] { Loop(); });
  }
  ~EpollServer() override {
    stop_ = true;
    char byte = 0;
    (void)!write(wake_[1], &byte, 1);
    loop_.join();
    {
      std::lock_guard<std::mutex> lock(mu_);
      queue_cv_.notify_all();
    }
    for (auto& t : workers_) t.join();
    for (auto& [fd, buffer] : buffers_) close(fd);
    close(listener_);
    close(epoll_);
    close(wake_[0]);
    close(wake_[1]);
  }

 private:
  static std::array<int, 2> eventfd_like() {
    std::array<int, 2> fds{};
    PCHECK(pipe(fds.data()) == 0);
    return fds;
  }
  void Watch(int fd) {
    epoll_event event{};
    event.events = EPOLLIN;
    event.data.fd = fd;
    epoll_ctl(epoll_, EPOLL_CTL_ADD, fd, &event);
  }
  void Loop() {
    epoll_event events[64];
    while (!stop_) {
      int n = epoll_wait(epoll_, events, 64, -1);
      for (int i = 0; i < n; ++i) {
        int fd = events[i].data.fd;
        if (fd == wake_[0]) continue;
        if (fd == listener_) {
          int client = accept4(listener_, nullptr, nullptr, SOCK_NONBLOCK);
          if (client < 0) continue;
          int one = 1;
          setsockopt(client, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
          buffers_[client];
          Watch(client);
          continue;
        }
        std::string& buffer = buffers_[fd];
        char chunk[8192];
        ssize_t got = recv(fd, chunk, sizeof(chunk), 0);
        if (got <= 0) {
          epoll_ctl(epoll_, EPOLL_CTL_DEL, fd, nullptr);
          close(fd);
          buffers_.erase(fd);
          continue;
        }
        buffer.append(chunk, static_cast<size_t>(got));
        while (buffer.size() >= 4) {
          uint32_t size;
          std::memcpy(&size, buffer.data(), 4);
          size = ntohl(size);
          if (buffer.size() < 4 + size) break;
          std::string frame = buffer.substr(4, size);
          buffer.erase(0, 4 + size);
          if (workers_.empty()) {
            Serve(fd, frame);
          } else {
            std::lock_guard<std::mutex> lock(mu_);
            queue_.emplace_back(fd, std::move(frame));
            queue_cv_.notify_one();
          }
        }
      }
    }
  }
  void Work() {
    while (true) {
      std::pair<int, std::string> job;
      {
        std::unique_lock<std::mutex> lock(mu_);
        queue_cv_.wait(lock, [&] { return stop_ || !queue_.empty(); });
        if (queue_.empty()) return;
        job = std::move(queue_.front());
        queue_.pop_front();
      }
      Serve(job.first, job.second);
    }
  }
  void Serve(int fd, const std::string& frame) {
    using apache::thrift::protocol::TBinaryProtocol;
    using apache::thrift::transport::TMemoryBuffer;
    auto in = std::make_shared<TMemoryBuffer>(
        reinterpret_cast<uint8_t*>(const_cast<char*>(frame.data())),
        static_cast<uint32_t>(frame.size()));
    auto out = std::make_shared<TMemoryBuffer>();
    processor_->process(std::make_shared<TBinaryProtocol>(in),
                        std::make_shared<TBinaryProtocol>(out), nullptr);
    std::string reply = out->getBufferAsString();
    uint32_t size = htonl(static_cast<uint32_t>(reply.size()));
    reply.insert(0, reinterpret_cast<const char*>(&size), 4);
    (void)!send(fd, reply.data(), reply.size(), MSG_NOSIGNAL);  // small: fits the buffer
  }

  std::shared_ptr<apache::thrift::TProcessor> processor_;
  int listener_ = -1;
  int epoll_ = -1;
  std::array<int, 2> wake_{};
  std::map<int, std::string> buffers_;  // the loop's only
  std::atomic<bool> stop_{false};
  std::mutex mu_;
  std::condition_variable queue_cv_;
  std::deque<std::pair<int, std::string>> queue_;  // guarded by mu_
  std::vector<std::thread> workers_;
  std::thread loop_;
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
  int pipeline = 1;
  po::options_description desc("pact-rpc-bench");
  desc.add_options()("help", "this text")(
      "threads", po::value(&threads)->default_value(threads), "concurrent callers")(
      "seconds", po::value(&seconds)->default_value(seconds), "how long to call")(
      "port", po::value(&port)->default_value(port), "loopback port (0: 20000 + pid % 20000)")(
      "server", po::value(&kind)->default_value(kind), "threaded (RpcServer), nonblocking or epoll")(
      "workers", po::value(&workers)->default_value(workers),
      "nonblocking, epoll: handler threads (0: handlers run in the event loop)")(
      "pipeline", po::value(&pipeline)->default_value(pipeline),
      "requests each caller sends on its connection before it reads their replies (in order)");
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
  } else if (kind == "epoll") {
    server = std::make_unique<EpollServer>(processor, port, workers);
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
  // One round: `pipeline` requests written back to back, then their replies
  // read in order (a server serves a connection's requests in turn).
  auto call = [&] {
    pact::Status st = pool.Call([&](pact::rpc::ParticipantClient& c) {
      for (int i = 0; i < pipeline; ++i) c.send_prepare(fence, "t", "o.1");
      for (int i = 0; i < pipeline; ++i) c.recv_prepare();
    });
    (st.ok() ? calls : failures) += pipeline;
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
  std::printf("%s  pipeline %d  threads %d  calls/s %.0f  cpu us/call %.2f  failures %lld\n",
              kind.c_str(), pipeline, threads,
              calls / wall, cpu * 1e6 / std::max<int64_t>(1, calls.load()),
              static_cast<long long>(failures.load()));
  return failures == 0 ? 0 : 1;
}
