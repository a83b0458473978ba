#include "rpc/rpc_server.h"

#include <sys/socket.h>

#include <atomic>
#include <future>
#include <mutex>
#include <unordered_map>

#include <glog/logging.h>
#include <thrift/protocol/TBinaryProtocol.h>
#include <thrift/server/TThreadedServer.h>
#include <thrift/transport/TBufferTransports.h>
#include <thrift/transport/TServerSocket.h>

namespace pact {

using apache::thrift::TProcessor;
using apache::thrift::protocol::TProtocol;
using apache::thrift::protocol::TProtocolFactory;
using apache::thrift::server::TServerEventHandler;
using apache::thrift::server::TThreadedServer;
using apache::thrift::transport::TServerSocket;
using apache::thrift::transport::TSocket;
using apache::thrift::transport::TTransport;
using apache::thrift::transport::TTransportFactory;

namespace {

bool IsLoopback(const std::string& host) {
  return host == "localhost" || host == "::1" || host.rfind("127.", 0) == 0;
}

}  // namespace

// The sockets of the connections being served, so that Stop() can end their
// threads' blocking reads with shutdown(2). Thrift's own way, an interrupt
// pipe polled before every read, costs a poll(2) per read of every message.
class RpcServer::OpenSockets {
 public:
  void Add(void* connection, std::shared_ptr<TSocket> socket) {
    std::lock_guard<std::mutex> lock(mu_);
    // Accepted as the server stopped: nothing must wait on it.
    if (stopping_) EndReads(*socket);
    sockets_.emplace(connection, std::move(socket));
  }
  // Before the connection's socket is closed (its descriptor may be reused
  // right after), so ShutdownAll never touches a descriptor not its own.
  void Remove(void* connection) {
    std::lock_guard<std::mutex> lock(mu_);
    sockets_.erase(connection);
  }
  // Every read on them, and on any connection added later, ends (end of
  // file). Writes still work: a call being handled still gets its reply, as
  // with Thrift's interrupt, and its connection ends at the next call.
  void ShutdownAll() {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
    for (const auto& [connection, socket] : sockets_) EndReads(*socket);
  }
  bool stopping() const { return stopping_; }

 private:
  static void EndReads(TSocket& socket) { ::shutdown(socket.getSocketFD(), SHUT_RD); }

  std::mutex mu_;
  std::unordered_map<void*, std::shared_ptr<TSocket>> sockets_;  // guarded by mu_
  std::atomic<bool> stopping_{false};                              // written under mu_
};

// Tells Start() when the server socket is listening, and gives each
// connection the record of who its caller is.
class RpcServer::ConnectionEvents : public TServerEventHandler {
 public:
  ConnectionEvents(std::promise<void>* ready, const ServerSecurity* security,
                   OpenSockets* open_sockets)
      : ready_(ready), security_(security), open_sockets_(open_sockets) {}
  void preServe() override { ready_->set_value(); }

  void* createContext(std::shared_ptr<TProtocol> input, std::shared_ptr<TProtocol>) override {
    auto* caller = new CallerConnection;
    caller->security = security_;
    auto framed = std::static_pointer_cast<BoundedFramedTransport>(input->getTransport());
    auto socket = std::dynamic_pointer_cast<TSocket>(framed->getUnderlyingTransport());
    caller->tls = std::dynamic_pointer_cast<TlsSocket>(socket);
    open_sockets_->Add(caller, std::move(socket));
    return caller;
  }
  void deleteContext(void* context, std::shared_ptr<TProtocol>,
                     std::shared_ptr<TProtocol>) override {
    open_sockets_->Remove(context);
    delete static_cast<CallerConnection*>(context);
  }

 private:
  std::promise<void>* ready_;
  const ServerSecurity* security_;
  OpenSockets* open_sockets_;
};

// Turns a refused frame into a closed connection: counted and logged here,
// not once per frame by Thrift.
class RpcServer::GuardedProcessor : public TProcessor {
 public:
  GuardedProcessor(std::shared_ptr<TProcessor> inner, RpcServer* server)
      : inner_(std::move(inner)), server_(server) {}

  bool process(std::shared_ptr<TProtocol> in, std::shared_ptr<TProtocol> out,
               void* context) override {
    // A peer that keeps sending would otherwise be served on: Linux still
    // delivers data that arrives after shutdown(SHUT_RD).
    if (server_->open_sockets_->stopping()) return false;
    auto* connection = static_cast<CallerConnection*>(context);
    CallerScope caller(connection);
    try {
      // Bounded like a frame: a peer that never finishes its hello (it needs
      // no certificate to start one) cannot hold this thread past it.
      if (connection->tls) connection->tls->Handshake(server_->options_.frame_timeout_ms);
      if (inner_->process(in, out, context)) return true;
      server_->NoteRefusedFrame("not a call");  // a reply, or an unknown message type
      return false;
    } catch (const std::exception& e) {
      if (server_->open_sockets_->stopping()) return false;  // ended by Stop(), not the peer
      if (IsTlsFailure(e)) {
        server_->NoteRefusedHandshake(e.what());
        return false;
      }
      if (!IsRefusedFrame(e)) throw;  // the peer went away or fell idle
      server_->NoteRefusedFrame(e.what());
      return false;
    }
  }

 private:
  const std::shared_ptr<TProcessor> inner_;
  RpcServer* const server_;
};

// Closes a connection beyond the cap as soon as it is accepted; speaks TLS
// on the accepted connections when the server has a TLS context.
class RpcServer::CappedServerSocket : public TServerSocket {
 public:
  CappedServerSocket(const std::string& host, int port, RpcServer* server)
      : TServerSocket(host, port), server_(server) {}

  std::shared_ptr<TSocket> createSocket(THRIFT_SOCKET fd) override {
    const std::shared_ptr<TlsContext>& tls = server_->options_.security.tls;
    if (!tls) return TServerSocket::createSocket(fd);
    // Stop() wakes its reads with shutdown(2), as it does for plain sockets.
    return tls->Accept(fd, nullptr);
  }

 protected:
  std::shared_ptr<TTransport> acceptImpl() override {
    while (true) {
      std::shared_ptr<TTransport> client = TServerSocket::acceptImpl();
      if (server_->AdmitConnection()) return client;
      client->close();
    }
  }

 private:
  RpcServer* const server_;
};

class RpcServer::Transports : public TTransportFactory {
 public:
  explicit Transports(const RpcServerOptions& options) : options_(options) {}
  std::shared_ptr<TTransport> getTransport(std::shared_ptr<TTransport> socket) override {
    return std::make_shared<BoundedFramedTransport>(
        socket, options_.limits, std::dynamic_pointer_cast<TSocket>(socket),
        options_.idle_timeout_ms, options_.frame_timeout_ms);
  }

 private:
  const RpcServerOptions& options_;
};

class RpcServer::Protocols : public TProtocolFactory {
 public:
  explicit Protocols(const RpcLimits& limits) : limits_(limits) {}
  std::shared_ptr<TProtocol> getProtocol(std::shared_ptr<TTransport> transport) override {
    return std::make_shared<BoundedBinaryProtocol>(
        std::static_pointer_cast<BoundedFramedTransport>(transport), limits_);
  }

 private:
  const RpcLimits& limits_;
};

RpcServer::RpcServer(std::shared_ptr<TProcessor> processor, std::string host, int port,
                     RpcServerOptions options)
    : processor_(std::move(processor)),
      host_(std::move(host)),
      port_(port),
      options_(options),
      frames_refused_(&own_frames_refused_),
      connections_refused_(&own_connections_refused_),
      handshakes_refused_(&own_handshakes_refused_) {
  if (options_.metrics != nullptr) {
    frames_refused_ = options_.metrics->AddCounter(
        "pact_rpc_frames_refused_total",
        "Frames refused (too big, malformed or too slow); each closed its connection");
    connections_refused_ = options_.metrics->AddCounter(
        "pact_rpc_connections_refused_total",
        "Connections closed on accept because max_connections were open");
    handshakes_refused_ = options_.metrics->AddCounter(
        "pact_rpc_tls_refused_total",
        "TLS connections ended by TLS: a refused handshake (unknown CA, expired or "
        "missing certificate, not TLS at all) or a broken record");
  }
}

RpcServer::~RpcServer() { Stop(); }

void RpcServer::NoteRefusedFrame(const std::string& why) {
  frames_refused_->Add();
  if (frame_log_.Allow()) {
    LOG(WARNING) << "refused a frame on port " << port_ << ": " << why << " ("
                 << frames_refused_->value() << " so far); connection closed";
  }
}

void RpcServer::NoteRefusedHandshake(const std::string& why) {
  handshakes_refused_->Add();
  if (handshake_log_.Allow()) {
    LOG(WARNING) << "refused a TLS connection on port " << port_ << ": " << why << " ("
                 << handshakes_refused_->value() << " so far)";
  }
}

bool RpcServer::AdmitConnection() {
  // Called from the accepting thread only, so the count cannot grow meanwhile.
  if (server_->getConcurrentClientCount() < options_.max_connections) return true;
  connections_refused_->Add();
  if (connection_log_.Allow()) {
    LOG(WARNING) << "refused a connection on port " << port_ << ": " << options_.max_connections
                 << " open (" << connections_refused_->value() << " refused so far)";
  }
  return false;
}

Status RpcServer::Start() {
  if (options_.security.open() && !IsLoopback(host_)) {
    LOG(WARNING) << "\n"
                 << "*****************************************************************\n"
                 << "* INSECURE: listening on " << host_ << ":" << port_
                 << " without TLS or tokens.\n"
                 << "* Any process that reaches this port can make every call,\n"
                 << "* including commit, resolve and removeParticipant. Set\n"
                 << "* --tls_cert_path, --tls_key_path and --tls_ca_path (README,\n"
                 << "* \"Security model\"), or listen on 127.0.0.1.\n"
                 << "*****************************************************************";
  }
  auto socket = std::make_shared<CappedServerSocket>(host_, port_, this);
  socket->setInterruptableChildren(false);  // OpenSockets ends them instead
  socket->setRecvTimeout(options_.idle_timeout_ms);
  socket->setSendTimeout(options_.frame_timeout_ms);
  server_ = std::make_shared<TThreadedServer>(
      std::make_shared<GuardedProcessor>(processor_, this), socket,
      std::make_shared<Transports>(options_), std::make_shared<Protocols>(options_.limits));
  std::promise<void> ready;
  std::future<void> listening = ready.get_future();
  std::promise<std::string> failed;
  std::future<std::string> failure = failed.get_future();
  open_sockets_ = std::make_unique<OpenSockets>();
  server_->setServerEventHandler(
      std::make_shared<ConnectionEvents>(&ready, &options_.security, open_sockets_.get()));
  thread_ = std::thread([this, failed = std::move(failed)]() mutable {
    try {
      server_->serve();
      failed.set_value("");
    } catch (const std::exception& e) {
      failed.set_value(e.what());
    }
  });
  // Whichever comes first: listening, or serve() giving up.
  while (true) {
    if (listening.wait_for(std::chrono::milliseconds(10)) == std::future_status::ready) {
      return Status::Ok();
    }
    if (failure.wait_for(std::chrono::milliseconds(0)) == std::future_status::ready) {
      std::string why = failure.get();
      thread_.join();
      server_.reset();
      return Status::Unavailable("cannot serve on " + host_ + ":" + std::to_string(port_) +
                                 ": " + why);
    }
  }
}

void RpcServer::Stop() {
  if (!server_) return;
  server_->stop();  // no more accepts
  open_sockets_->ShutdownAll();
  if (thread_.joinable()) thread_.join();  // serve() returns once every connection ended
  server_.reset();
}

}  // namespace pact
