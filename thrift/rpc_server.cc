#include "thrift/rpc_server.h"

#include <future>

#include <glog/logging.h>
#include <thrift/protocol/TBinaryProtocol.h>
#include <thrift/server/TThreadedServer.h>
#include <thrift/transport/TBufferTransports.h>
#include <thrift/transport/TServerSocket.h>

namespace pact {

using apache::thrift::protocol::TBinaryProtocolFactory;
using apache::thrift::server::TServerEventHandler;
using apache::thrift::server::TThreadedServer;
using apache::thrift::transport::TFramedTransportFactory;
using apache::thrift::transport::TServerSocket;

namespace {

// Tells Start() when the server socket is listening.
class ReadySignal : public TServerEventHandler {
 public:
  explicit ReadySignal(std::promise<void>* ready) : ready_(ready) {}
  void preServe() override { ready_->set_value(); }

 private:
  std::promise<void>* ready_;
};

}  // namespace

RpcServer::RpcServer(std::shared_ptr<apache::thrift::TProcessor> processor, std::string host,
                     int port)
    : processor_(std::move(processor)), host_(std::move(host)), port_(port) {}

RpcServer::~RpcServer() { Stop(); }

Status RpcServer::Start() {
  auto socket = std::make_shared<TServerSocket>(host_, port_);
  server_ = std::make_shared<TThreadedServer>(processor_, socket,
                                              std::make_shared<TFramedTransportFactory>(),
                                              std::make_shared<TBinaryProtocolFactory>());
  std::promise<void> ready;
  std::future<void> listening = ready.get_future();
  std::promise<std::string> failed;
  std::future<std::string> failure = failed.get_future();
  server_->setServerEventHandler(std::make_shared<ReadySignal>(&ready));
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
  server_->stop();
  if (thread_.joinable()) thread_.join();
  server_.reset();
}

}  // namespace pact
