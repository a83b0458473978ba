// Serves one Thrift processor on host:port with a thread per connection
// (TThreadedServer: the cheapest per call on loopback, see docs).
#pragma once

#include <memory>
#include <string>
#include <thread>

#include <thrift/TProcessor.h>
#include <thrift/server/TServer.h>

#include "common/status.h"

namespace pact {

class RpcServer {
 public:
  RpcServer(std::shared_ptr<apache::thrift::TProcessor> processor, std::string host, int port);
  ~RpcServer();

  // Binds and starts serving on a background thread. Returns once the socket
  // listens, or the reason it cannot (port in use, ...).
  Status Start();
  // Stops accepting and closes every connection. Idempotent.
  void Stop();

 private:
  std::shared_ptr<apache::thrift::TProcessor> processor_;
  std::string host_;
  int port_;
  std::shared_ptr<apache::thrift::server::TServer> server_;
  std::thread thread_;
};

}  // namespace pact
