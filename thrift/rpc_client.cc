#include "thrift/rpc_client.h"

#include <cstdlib>

namespace pact {

using apache::thrift::protocol::TBinaryProtocol;
using apache::thrift::transport::TFramedTransport;
using apache::thrift::transport::TSocket;

Result<Endpoint> Endpoint::Parse(const std::string& text) {
  size_t colon = text.rfind(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 == text.size()) {
    return Status::InvalidArgument("endpoint '" + text + "' is not host:port");
  }
  char* end = nullptr;
  long port = std::strtol(text.c_str() + colon + 1, &end, 10);
  if (*end != '\0' || port <= 0 || port > 65535) {
    return Status::InvalidArgument("endpoint '" + text + "' has a bad port");
  }
  return Endpoint{text.substr(0, colon), static_cast<int>(port)};
}

Status RpcChannel::Open(const Endpoint& endpoint, const RpcTimeouts& timeouts) {
  Close();
  socket = std::make_shared<TSocket>(endpoint.host, endpoint.port);
  socket->setConnTimeout(timeouts.connect_ms);
  socket->setRecvTimeout(timeouts.call_ms);
  socket->setSendTimeout(timeouts.call_ms);
  socket->setNoDelay(true);
  transport = std::make_shared<TFramedTransport>(socket);
  protocol = std::make_shared<TBinaryProtocol>(transport);
  try {
    transport->open();
  } catch (const std::exception& e) {
    Close();
    return Status::Unavailable(std::string("cannot connect: ") + e.what());
  }
  return Status::Ok();
}

void RpcChannel::Close() {
  if (transport) {
    try {
      transport->close();
    } catch (const std::exception&) {
      // Closing a broken socket may throw; it is closed either way.
    }
  }
  protocol.reset();
  transport.reset();
  socket.reset();
}

void RpcChannel::SetCallTimeout(int ms) {
  if (!socket) return;
  socket->setRecvTimeout(ms);
  socket->setSendTimeout(ms);
}

}  // namespace pact
