#include "rpc/tls.h"

#include <poll.h>
#include <sys/socket.h>

#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstring>
#include <mutex>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

namespace pact {

using apache::thrift::transport::DefaultClientAccessManager;
using apache::thrift::transport::SSLContext;
using apache::thrift::transport::TSSLException;
using apache::thrift::transport::TSSLSocket;
using apache::thrift::transport::TSSLSocketFactory;
using apache::thrift::transport::TTransportException;

namespace {

std::string Utf8(X509_NAME_ENTRY* entry) {
  unsigned char* utf8 = nullptr;
  int size = ASN1_STRING_to_UTF8(&utf8, X509_NAME_ENTRY_get_data(entry));
  if (size < 0) return "";
  std::string out(reinterpret_cast<char*>(utf8), static_cast<size_t>(size));
  OPENSSL_free(utf8);
  return out;
}

std::vector<std::string> SubjectEntries(const X509* cert, int nid) {
  std::vector<std::string> out;
  const X509_NAME* subject = X509_get_subject_name(cert);
  for (int i = X509_NAME_get_index_by_NID(subject, nid, -1); i >= 0;
       i = X509_NAME_get_index_by_NID(subject, nid, i)) {
    out.push_back(Utf8(X509_NAME_get_entry(subject, i)));
  }
  return out;
}

std::string OpenSslErrors() {
  std::string out;
  for (unsigned long e = ERR_get_error(); e != 0; e = ERR_get_error()) {
    char buf[256];
    ERR_error_string_n(e, buf, sizeof(buf));
    if (!out.empty()) out += "; ";
    out += buf;
  }
  return out.empty() ? "unknown error" : out;
}

// True if an SSL call that failed with `error` (errno `errno_copy`) only
// waits for the socket to be ready.
bool WaitsForSocket(int error, int errno_copy) {
  return error == SSL_ERROR_WANT_READ || error == SSL_ERROR_WANT_WRITE ||
         (error == SSL_ERROR_SYSCALL && (errno_copy == EINTR || errno_copy == EAGAIN));
}

// Why an SSL call failed: OpenSSL's errors, else (a failed system call
// only: errno means nothing otherwise) the system's.
std::string SslFailure(int error, int errno_copy) {
  std::string why = OpenSslErrors();
  if (why != "unknown error" || error != SSL_ERROR_SYSCALL) return why;
  return errno_copy == 0 ? "connection closed" : std::strerror(errno_copy);
}

PeerCertificate Subject(const X509* cert) {
  PeerCertificate subject;
  std::vector<std::string> names = SubjectEntries(cert, NID_commonName);
  if (!names.empty()) subject.common_name = names.front();
  subject.organizations = SubjectEntries(cert, NID_organizationName);
  return subject;
}

}  // namespace

bool PeerCertificate::HasOrganization(const std::string& organization) const {
  for (const std::string& o : organizations) {
    if (o == organization) return true;
  }
  return false;
}

std::string PeerCertificate::ToString() const {
  std::string out = "CN=" + common_name;
  for (const std::string& o : organizations) out += ", O=" + o;
  return out;
}

void TlsSocket::Handshake(int timeout_ms) {
  if (checkHandshake()) return;
  if (timeout_ms > 0) {
    if (!TSocket::isOpen()) throw TTransportException(TTransportException::NOT_OPEN);
    if (ssl_ == nullptr) initializeHandshakeParams();  // non-blocking socket, its SSL
    if (ssl_ == nullptr || !TSocket::isOpen()) {
      throw TSSLException("cannot set up TLS on the connection");
    }
    if (!server()) SSL_set_tlsext_host_name(ssl_, getHost().c_str());
    auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
    const char* what = server() ? "SSL_accept" : "SSL_connect";
    while (true) {
      ERR_clear_error();
      int rc = server() ? SSL_accept(ssl_) : SSL_connect(ssl_);
      if (rc == 1) break;
      int error = SSL_get_error(ssl_, rc);
      int errno_copy = errno;
      if (!WaitsForSocket(error, errno_copy)) {
        throw TSSLException(std::string(what) + ": " + SslFailure(error, errno_copy));
      }
      if (!WaitUntil(deadline, error)) {
        // Closing would otherwise resume the handshake (Thrift's flush and
        // close do), without our deadline. Slow, not refused: the peer may
        // try again (a timeout, as for a frame).
        CutOff(std::string(what) + ": handshake not complete within " +
               std::to_string(timeout_ms) + " ms");
      }
    }
  }
  // Done (SSL_accept/SSL_connect answer 1 at once now), or without a limit:
  // Thrift's handshake checks the peer (authorize) and marks it complete.
  initializeHandshake();
}

void TlsSocket::CutOff(const std::string& why) {
  ::shutdown(static_cast<int>(socket_), SHUT_RDWR);
  throw TTransportException(TTransportException::TIMED_OUT, why);
}

bool TlsSocket::WaitUntil(std::chrono::steady_clock::time_point deadline, int ssl_error) {
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
      deadline - std::chrono::steady_clock::now());
  if (left.count() <= 0) return false;
  pollfd fds[2] = {{static_cast<int>(socket_),
                    static_cast<short>(ssl_error == SSL_ERROR_WANT_WRITE ? POLLOUT : POLLIN), 0},
                   {interruptListener_ ? *interruptListener_ : -1, POLLIN, 0}};
  int ready = poll(fds, interruptListener_ ? 2 : 1, static_cast<int>(left.count()));
  if (ready < 0 && errno != EINTR) {
    throw TTransportException(TTransportException::UNKNOWN, "poll failed", errno);
  }
  if (ready > 0 && interruptListener_ && (fds[1].revents & POLLIN)) {
    throw TTransportException(TTransportException::INTERRUPTED, "Interrupted");
  }
  return true;
}

uint32_t TlsSocket::read(uint8_t* buf, uint32_t len) {
  // Thrift's read waits up to the receive timeout for each piece of a TLS
  // record, so a peer that sends a record a byte at a time would hold the
  // thread far beyond it (and beyond the frame timeout that sets it). Here
  // the receive timeout bounds the whole read, as it does for a plain socket.
  if (!checkHandshake() || recvTimeout_ <= 0) return TSSLSocket::read(buf, len);
  checkReadBytesAvailable(len);
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(recvTimeout_);
  while (true) {
    ERR_clear_error();
    int n = SSL_read(ssl_, buf, static_cast<int>(len));
    if (n > 0) return static_cast<uint32_t>(n);
    int error = SSL_get_error(ssl_, n);
    int errno_copy = errno;
    if (error == SSL_ERROR_ZERO_RETURN) {
      throw TTransportException(TTransportException::END_OF_FILE, "client disconnected");
    }
    if (error == SSL_ERROR_SYSCALL && errno_copy == 0 && ERR_peek_error() == 0) {
      return 0;  // the peer closed without a close_notify: end of file
    }
    if (!WaitsForSocket(error, errno_copy)) {
      throw TSSLException("SSL_read: " + SslFailure(error, errno_copy));
    }
    if (!WaitUntil(deadline, error)) {
      // A stream cut mid-record is of no further use, and closing it would
      // wait on the peer again (SSL_shutdown reads, with Thrift's waits).
      CutOff("SSL_read: nothing complete within " + std::to_string(recvTimeout_) + " ms");
    }
  }
}

void TlsSocket::authorize() {
  // Chain verified against the CA, a certificate present, and (clients) the
  // dialed host named in it: Thrift's checks. Then remember who it is.
  TSSLSocket::authorize();
  X509* cert = SSL_get1_peer_certificate(ssl_);
  if (cert == nullptr) return;
  peer_ = Subject(cert);
  X509_free(cert);
  if (server()) return;
  // Any certificate of the CA names the host (they all may): the server must
  // also be who this client means to call, or a holder of any certificate
  // who can listen at the address could answer for it.
  bool has_role =
      expected_.organization.empty() || peer_.HasOrganization(expected_.organization);
  bool has_name = expected_.common_name.empty() || peer_.common_name == expected_.common_name;
  if (!has_role || !has_name) {
    throw TSSLException("the server at " + getHost() + ":" + std::to_string(getPort()) +
                        " is not " +
                        (expected_.common_name.empty() ? "a" : "'" + expected_.common_name + "', a") +
                        " " + expected_.organization + ": its certificate has " +
                        peer_.ToString());
  }
}

// Thrift's factory, with access to its SSL_CTX and making TlsSockets.
class TlsContext::Factory : public TSSLSocketFactory {
 public:
  Factory() : TSSLSocketFactory(apache::thrift::transport::SSLTLS) {}
  SSL_CTX* ctx() { return ctx_->get(); }
  std::shared_ptr<SSLContext> shared_ctx() { return ctx_; }
};

namespace {

// A TlsSocket's constructors are protected in Thrift; these make them.
class ClientTlsSocket : public TlsSocket {
 public:
  ClientTlsSocket(std::shared_ptr<SSLContext> ctx, const std::string& host, int port)
      : TlsSocket(std::move(ctx), host, port) {}
};
class ServerTlsSocket : public TlsSocket {
 public:
  ServerTlsSocket(std::shared_ptr<SSLContext> ctx, THRIFT_SOCKET fd,
                  std::shared_ptr<THRIFT_SOCKET> interrupt)
      : TlsSocket(std::move(ctx), fd, std::move(interrupt)) {}
};

void InitOpenSslOnce() {
  static std::once_flag once;
  std::call_once(once, [] {
    // OpenSSL 1.1+ initializes itself; Thrift's global init/cleanup would
    // tear it down when the last factory goes, under other sockets' feet.
    TSSLSocketFactory::setManualOpenSSLInitialization(true);
    OPENSSL_init_ssl(0, nullptr);
    // OpenSSL writes to sockets without MSG_NOSIGNAL: a peer that hung up
    // must be an error, not a signal that ends the process.
    std::signal(SIGPIPE, SIG_IGN);
  });
}

}  // namespace

Result<std::shared_ptr<TlsContext>> TlsContext::ForServer(const TlsFiles& files) {
  return Load(files, /*server=*/true);
}

Result<std::shared_ptr<TlsContext>> TlsContext::ForClient(const TlsFiles& files) {
  return Load(files, /*server=*/false);
}

Result<std::shared_ptr<TlsContext>> TlsContext::Load(const TlsFiles& files, bool server) {
  if (files.cert_path.empty() || files.key_path.empty() || files.ca_path.empty()) {
    return Status::InvalidArgument(
        "TLS needs all of --tls_cert_path, --tls_key_path and --tls_ca_path");
  }
  InitOpenSslOnce();
  auto factory = std::make_shared<Factory>();
  try {
    factory->server(server);
    // Both ends verify the other against the CA, and require a certificate.
    factory->authenticate(true);
    factory->loadCertificate(files.cert_path.c_str());
    factory->loadPrivateKey(files.key_path.c_str());
    factory->loadTrustedCertificates(files.ca_path.c_str());
  } catch (const std::exception& e) {
    return Status::InvalidArgument(std::string("TLS: ") + e.what());
  }
  SSL_CTX* ctx = factory->ctx();
  if (SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1) {
    return Status::Internal("TLS: cannot require TLS 1.2: " + OpenSslErrors());
  }
  if (SSL_CTX_check_private_key(ctx) != 1) {
    return Status::InvalidArgument("TLS: " + files.key_path + " is not the key of " +
                                   files.cert_path + ": " + OpenSslErrors());
  }
  X509* own = SSL_CTX_get0_certificate(ctx);
  if (X509_cmp_current_time(X509_get0_notAfter(own)) <= 0) {
    return Status::InvalidArgument("TLS: certificate " + files.cert_path + " has expired");
  }
  if (X509_cmp_current_time(X509_get0_notBefore(own)) >= 0) {
    return Status::InvalidArgument("TLS: certificate " + files.cert_path + " is not valid yet");
  }
  if (server) {
    // No session tickets: a client would find an unread ticket on an idle
    // pooled connection and take the connection for closed.
    SSL_CTX_set_num_tickets(ctx, 0);
  }
  return std::shared_ptr<TlsContext>(new TlsContext(std::move(factory), Subject(own)));
}

std::shared_ptr<TlsSocket> TlsContext::Connect(const std::string& host, int port,
                                               ServerExpectation expected) {
  auto socket = std::make_shared<ClientTlsSocket>(factory_->shared_ctx(), host, port);
  socket->server(false);
  socket->expected_ = std::move(expected);
  // Checks the server certificate's subjectAltName (DNS or IP), then CN,
  // against `host`.
  socket->access(std::make_shared<DefaultClientAccessManager>());
  return socket;
}

std::shared_ptr<TlsSocket> TlsContext::Accept(THRIFT_SOCKET fd,
                                              std::shared_ptr<THRIFT_SOCKET> interrupt) {
  auto socket = std::make_shared<ServerTlsSocket>(factory_->shared_ctx(), fd, std::move(interrupt));
  socket->server(true);
  return socket;
}

bool IsTlsFailure(const std::exception& e) {
  return dynamic_cast<const TSSLException*>(&e) != nullptr;
}

}  // namespace pact
