// Mutual TLS for Pact's links, on Thrift's OpenSSL transports: both ends
// present a certificate signed by the cluster's CA, TLS 1.2 or later only,
// and a client checks that the server's certificate names the host it dialed.
// The peer's identity is its certificate's subject: CN is its name (a
// coordinator's or participant's name, or any name for applications and
// operators) and each O entry one role it holds (see rpc_auth.h).
#pragma once

#include <thrift/transport/TSSLSocket.h>

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "common/status.h"

namespace pact {

struct TlsFiles {
  std::string cert_path;  // PEM: this process's certificate (and chain)
  std::string key_path;   // PEM: its private key
  std::string ca_path;    // PEM: the CA that signs every peer of the cluster

  bool enabled() const { return !cert_path.empty() || !key_path.empty() || !ca_path.empty(); }
};

// Who the peer's certificate says it is.
struct PeerCertificate {
  std::string common_name;
  std::vector<std::string> organizations;  // one role per O entry

  bool HasOrganization(const std::string& organization) const;
  // "CN=bank_a, O=participant", for messages.
  std::string ToString() const;
};

// What a client requires of the server's certificate beyond the CA and the
// host: an O entry (a role) and, when set, the CN (a name). Empty: anything.
struct ServerExpectation {
  std::string organization;
  std::string common_name;
};

// A TLS socket whose handshake can be driven on purpose (a client finishes it
// inside the connect timeout, so a refusal is known before a request is
// sent) and which keeps the verified peer's certificate subject.
class TlsSocket : public apache::thrift::transport::TSSLSocket {
 public:
  using TSSLSocket::TSSLSocket;

  // Runs the handshake now if it has not run yet, and gives up when it is
  // not done within timeout_ms in all (Thrift's own handshake waits up to
  // the receive timeout for each byte, so a peer that dribbles its hello
  // would hold the socket for ever). timeout_ms <= 0: no limit of our own.
  // Throws TSSLException (refused) or TTransportException (TIMED_OUT: too
  // slow; interrupted, closed).
  void Handshake(int timeout_ms);
  // Empty until the handshake has verified the peer.
  const PeerCertificate& peer() const { return peer_; }

  // After the handshake: the receive timeout bounds the whole read.
  uint32_t read(uint8_t* buf, uint32_t len) override;

 protected:
  void authorize() override;

 private:
  friend class TlsContext;
  // Waits for the socket as `ssl_error` (WANT_READ or WANT_WRITE) asks, or
  // for Stop()'s interrupt; false once `deadline` passed.
  bool WaitUntil(std::chrono::steady_clock::time_point deadline, int ssl_error);
  // Ends the connection at once and throws TIMED_OUT with `why`.
  [[noreturn]] void CutOff(const std::string& why);

  PeerCertificate peer_;
  ServerExpectation expected_;  // clients only
};

// One side's TLS configuration, loaded once and shared by all its sockets.
class TlsContext {
 public:
  // Loads and checks the files: all three are required, the key must match
  // the certificate, the certificate must be valid now.
  static Result<std::shared_ptr<TlsContext>> ForServer(const TlsFiles& files);
  static Result<std::shared_ptr<TlsContext>> ForClient(const TlsFiles& files);

  // Who this side's own certificate says it is.
  const PeerCertificate& own() const { return own_; }

  // A client socket to host:port (not connected yet), whose handshake
  // refuses a server certificate that does not meet `expected`.
  std::shared_ptr<TlsSocket> Connect(const std::string& host, int port,
                                     ServerExpectation expected = {});
  // A server socket over an accepted connection; `interrupt` (may be null)
  // wakes its blocked reads when the server stops.
  std::shared_ptr<TlsSocket> Accept(THRIFT_SOCKET fd, std::shared_ptr<THRIFT_SOCKET> interrupt);

 private:
  class Factory;
  TlsContext(std::shared_ptr<Factory> factory, PeerCertificate own)
      : factory_(std::move(factory)), own_(std::move(own)) {}
  static Result<std::shared_ptr<TlsContext>> Load(const TlsFiles& files, bool server);

  std::shared_ptr<Factory> factory_;
  PeerCertificate own_;
};

// True if `e` came from TLS itself (a handshake refused, a bad record), as
// opposed to the network.
bool IsTlsFailure(const std::exception& e);

}  // namespace pact
