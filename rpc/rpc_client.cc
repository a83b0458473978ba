#include "rpc/rpc_client.h"

#include <poll.h>

#include <cstdlib>
#include <mutex>

#include <glog/logging.h>
#include <thrift/TOutput.h>

namespace pact {

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

Status RpcChannel::Open(const Endpoint& endpoint, const RpcTimeouts& timeouts,
                        const RpcCredentials& credentials) {
  // Thrift prints every failed connect to stderr; the failure reaches the
  // caller as a Status already, so keep the library's copy for verbose logs.
  static std::once_flag quiet_thrift;
  std::call_once(quiet_thrift, [] {
    apache::thrift::GlobalOutput.setOutputFunction([](const char* msg) { VLOG(1) << msg; });
  });
  Close();
  std::shared_ptr<TlsSocket> tls;
  if (credentials.tls) {
    tls = credentials.tls->Connect(
        endpoint.host, endpoint.port,
        {credentials.server_role ? RoleName(*credentials.server_role) : "",
         credentials.server_name});
    socket = tls;
  } else {
    socket = std::make_shared<TSocket>(endpoint.host, endpoint.port);
  }
  socket->setConnTimeout(timeouts.connect_ms);
  socket->setRecvTimeout(tls ? timeouts.connect_ms : timeouts.call_ms);
  socket->setSendTimeout(tls ? timeouts.connect_ms : timeouts.call_ms);
  socket->setNoDelay(true);
  transport = std::make_shared<BoundedFramedTransport>(socket, RpcLimits{});
  protocol = std::make_shared<BoundedBinaryProtocol>(transport, RpcLimits{});
  try {
    transport->open();
  } catch (const std::exception& e) {
    Close();
    return Status::Unavailable(std::string("cannot connect: ") + e.what());
  }
  if (tls) {
    try {
      tls->Handshake(timeouts.connect_ms);
    } catch (const std::exception& e) {
      Close();
      if (!IsTlsFailure(e)) return Status::Unavailable(std::string("TLS handshake: ") + e.what());
      return Status::Unauthenticated(std::string("TLS handshake refused: ") + e.what());
    }
    SetCallTimeout(timeouts.call_ms);
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

bool RpcChannel::LooksAlive() const {
  // An idle connection has nothing to read; readable means EOF or a reset,
  // and bytes read ahead a reply nobody asked for.
  if (transport->HasReadAhead()) return false;
  pollfd pfd{static_cast<int>(socket->getSocketFD()), POLLIN | POLLRDHUP, 0};
  return poll(&pfd, 1, 0) == 0;
}

std::string RpcChannel::PeerName() const {
  auto tls = std::dynamic_pointer_cast<TlsSocket>(socket);
  return tls ? tls->peer().common_name : "";
}

void RpcChannel::SetCallTimeout(int ms) {
  if (!socket) return;
  socket->setRecvTimeout(ms);
  socket->setSendTimeout(ms);
}

}  // namespace pact
