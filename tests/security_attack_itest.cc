// Attacks on the security of the real processes, each one a weakness found
// in review: a stranger without a certificate pinning connection threads
// with a TLS handshake that never ends, or a peer with one pinning them with
// a TLS record sent a byte at a time; a holder of any certificate of the
// cluster's CA (an application's) posing as the coordinator to a
// participant, or as a participant to the coordinator, where it can listen
// at their address.
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <thread>

#include <gtest/gtest.h>
#include <openssl/ssl.h>

#include "common/crash_point.h"
#include "gen-cpp/Coordinator.h"
#include "gen-cpp/Participant.h"
#include "rpc/rpc_auth.h"
#include "rpc/rpc_client.h"
#include "rpc/rpc_server.h"
#include "tests/bank_fixture.h"

namespace pact {
namespace {

using Clock = std::chrono::steady_clock;

constexpr int kIdleTimeoutMs = 2000;
constexpr int kFrameTimeoutMs = 1000;

// True once the server closed `fd` (EOF or reset), without waiting.
bool ClosedByServer(int fd) {
  char byte;
  ssize_t n = recv(fd, &byte, 1, MSG_DONTWAIT);
  return n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK);
}

// Answers a participant's inquiry with a lie: ABORTED, to bank_a only (its
// certificate names it), and "not decided yet" to anyone else.
class LyingCoordinator : public rpc::CoordinatorNull {
 public:
  void info(rpc::CoordinatorInfo& out) override {
    out.name = "c1";
    out.epoch = 1000000000000;
    out.ready = true;
  }
  rpc::Outcome::type outcome(const std::string&) override {
    if (!AuthorizeAs(Role::kParticipant, "bank_a", "outcome").ok()) return rpc::Outcome::ACTIVE;
    ++lies;
    return rpc::Outcome::ABORTED;
  }
  std::atomic<int> lies{0};
};

// Votes yes and commits, holding nothing.
class LyingParticipant : public rpc::ParticipantNull {
 public:
  void info(rpc::ParticipantInfo& out) override {
    out.name = "bank_a";
    out.backend = "sqlite";
  }
  rpc::Vote::type prepare(const rpc::Fence&, const std::string&, const std::string&) override {
    ++lies;
    return rpc::Vote::COMMIT;
  }
  void commit(const rpc::Fence&, const std::string&, bool) override { ++lies; }
  std::atomic<int> lies{0};
};

class TlsAttackTest : public BankTest {
 protected:
  void SetUp() override {
    Status st = cluster_.UseTls();
    ASSERT_TRUE(st.ok()) << st.ToString();
    for (auto* flags : {&cluster_.coordinator_flags, &cluster_.participant_flags}) {
      flags->push_back("--rpc_idle_timeout_ms=" + std::to_string(kIdleTimeoutMs));
      flags->push_back("--rpc_frame_timeout_ms=" + std::to_string(kFrameTimeoutMs));
    }
    BankTest::SetUp();
  }

  int CoordinatorPort() { return Endpoint::Parse(cluster_.coordinator_address())->port; }

  // A server at 127.0.0.1:port with `processor`, presenting a certificate of
  // the cluster's CA made for `name` with `roles`: by default mallory's, an
  // application's (what any application server of the cluster holds).
  std::unique_ptr<RpcServer> ServeAs(std::shared_ptr<apache::thrift::TProcessor> processor,
                                     int port, const std::string& name = "mallory",
                                     const std::string& roles = "application") {
    Status made = MakeTlsCertificates(cluster_.tls_dir(), {name + ":" + roles});
    EXPECT_TRUE(made.ok()) << made.ToString();
    auto tls = TlsContext::ForServer(CertificateFiles(cluster_.tls_dir(), name, cluster_.tls_dir()));
    EXPECT_TRUE(tls.ok()) << tls.status().ToString();
    RpcServerOptions options;
    options.security.tls = tls.ok() ? *tls : nullptr;
    auto server = std::make_unique<RpcServer>(std::move(processor), "127.0.0.1", port, options);
    Status st = server->Start();
    EXPECT_TRUE(st.ok()) << st.ToString();
    return server;
  }

  // The coordinator crashes after logging COMMIT of a transfer both banks
  // prepared; while it is down, a server with the certificate of `name`
  // (`roles`) listens at its address and answers bank_a's inquiries with
  // ABORTED. bank_a must not believe it: once the coordinator is back, the
  // transfer is committed everywhere.
  void ExpectNoImpostorCoordinator(const std::string& name, const std::string& roles) {
    ASSERT_TRUE(cluster_.StartCoordinator({{"PACT_CRASH_POINT", "after_decision_logged"}}).ok());
    auto client = Connect();
    auto txn = PrepareTransfer(*client, 10);
    ASSERT_NE(txn, nullptr);
    EXPECT_FALSE(txn->Commit().ok());
    ASSERT_EQ(cluster_.coordinator().WaitForExit(5000), kCrashExitCode);

    auto liar = std::make_shared<LyingCoordinator>();
    auto server =
        ServeAs(std::make_shared<rpc::CoordinatorProcessor>(liar), CoordinatorPort(), name, roles);
    // bank_a inquires every 200 ms.
    PollUntil([&] { return liar->lies > 0; }, 3000);
    server->Stop();
    EXPECT_EQ(liar->lies, 0) << "bank_a took the outcome from a server with " << name
                             << "'s certificate (" << roles << ")";

    ASSERT_TRUE(cluster_.StartCoordinator().ok());
    EXPECT_TRUE(cluster_.EventuallyNoOpenBranches(10000));
    EXPECT_EQ(Balance("bank_a", 1), kInitialBalance - 10);
    EXPECT_EQ(Balance("bank_b", 1), kInitialBalance + 10);
    EXPECT_EQ(Total("bank_a") + Total("bank_b"), 6 * kInitialBalance);
  }
};


// A stranger (no certificate at all) opens a connection to a TLS port and
// sends the start of a ClientHello one byte at a time, each byte within the
// idle timeout. The server must give up on the handshake within the frame
// timeout (plus the idle timeout for the bytes in flight), as it does for a
// plaintext frame: otherwise max_connections such strangers hold every
// connection thread for ever, at a few bytes per second in all.
TEST_F(TlsAttackTest, AStrangerCannotHoldAThreadWithAHandshakeThatNeverEnds) {
  for (int port : {CoordinatorPort(), cluster_.participant_port("bank_a")}) {
    int fd = ConnectToLoopback(port);
    ASSERT_GE(fd, 0);
    // A TLS 1.0 record header of a 512-byte handshake message, then its body.
    std::string hello = std::string("\x16\x03\x01\x02\x00", 5) + std::string(512, '\x01');
    auto start = Clock::now();
    auto limit = std::chrono::milliseconds(kFrameTimeoutMs + kIdleTimeoutMs + 2000);
    bool closed = false;
    for (size_t i = 0; i < hello.size() && Clock::now() - start < 3 * limit; ++i) {
      if (ClosedByServer(fd)) {
        closed = true;
        break;
      }
      send(fd, hello.data() + i, 1, MSG_NOSIGNAL);
      std::this_thread::sleep_for(std::chrono::milliseconds(kIdleTimeoutMs / 2));
    }
    auto held = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start);
    close(fd);
    EXPECT_TRUE(closed) << "port " << port << ": the handshake still held its thread after "
                        << held.count() << " ms";
    EXPECT_LT(held.count(), limit.count()) << "port " << port;
  }
  // Nothing else suffered.
  auto client = Connect();
  auto txn = PrepareTransfer(*client, 10);
  ASSERT_NE(txn, nullptr);
  Status st = txn->Commit();
  EXPECT_TRUE(st.ok()) << st.ToString();
  EXPECT_EQ(Total("bank_a") + Total("bank_b"), 6 * kInitialBalance);
}

// A peer with a valid certificate completes the handshake, then sends one
// TLS record (a whole call) a byte at a time, each byte within the idle
// timeout. Thrift's TLS read waits the receive timeout for each byte, so
// without a deadline of the read's own the frame timeout never fires and the
// thread is held for as long as the record lasts.
TEST_F(TlsAttackTest, APeerCannotHoldAThreadWithARecordSentAByteAtATime) {
  SSL_CTX* ctx = SSL_CTX_new(TLS_client_method());
  TlsFiles harness = CertificateFiles(cluster_.tls_dir(), "harness", cluster_.tls_dir());
  ASSERT_EQ(SSL_CTX_use_certificate_chain_file(ctx, harness.cert_path.c_str()), 1);
  ASSERT_EQ(SSL_CTX_use_PrivateKey_file(ctx, harness.key_path.c_str(), SSL_FILETYPE_PEM), 1);
  int fd = ConnectToLoopback(CoordinatorPort());
  ASSERT_GE(fd, 0);
  SSL* ssl = SSL_new(ctx);
  SSL_set_fd(ssl, fd);
  ASSERT_EQ(SSL_connect(ssl), 1);
  // The record goes to memory instead of the socket, to be sent by hand.
  BIO* record = BIO_new(BIO_s_mem());
  SSL_set0_wbio(ssl, record);
  std::string call(400, 'x');  // any bytes: the server never gets to see them
  ASSERT_GT(SSL_write(ssl, call.data(), static_cast<int>(call.size())), 0);
  char* bytes = nullptr;
  long size = BIO_get_mem_data(record, &bytes);
  ASSERT_GT(size, 0);
  auto start = Clock::now();
  auto limit = std::chrono::milliseconds(kFrameTimeoutMs + kIdleTimeoutMs + 2000);
  bool closed = false;
  for (long i = 0; i < size && Clock::now() - start < 3 * limit; ++i) {
    if (ClosedByServer(fd)) {
      closed = true;
      break;
    }
    send(fd, bytes + i, 1, MSG_NOSIGNAL);
    std::this_thread::sleep_for(std::chrono::milliseconds(kFrameTimeoutMs / 2));
  }
  auto held = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start);
  SSL_free(ssl);
  SSL_CTX_free(ctx);
  close(fd);
  EXPECT_TRUE(closed) << "the record still held its thread after " << held.count() << " ms";
  EXPECT_LT(held.count(), limit.count());
  auto client = Connect();
  auto txn = PrepareTransfer(*client, 10);
  ASSERT_NE(txn, nullptr);
  Status st = txn->Commit();
  EXPECT_TRUE(st.ok()) << st.ToString();
}

// The coordinator crashes after logging COMMIT of a transfer both banks
// prepared. While it is down, mallory (an application's certificate) listens
// at its address. bank_a inquires there about its in-doubt branch: its TLS
// client checks that the server's certificate is from the CA and names the
// host, not that it is a coordinator's, so it believes mallory's ABORTED and
// rolls back; the coordinator comes back and commits bank_b. Money appears.
// (The same server would confirm any forged epoch of c1, too.)
TEST_F(TlsAttackTest, AnApplicationCertificateCannotPoseAsTheCoordinator) {
  ExpectNoImpostorCoordinator("mallory", "application");
}

// The same with the certificate of another coordinator (c2): a coordinator,
// but not the one the transaction belongs to.
TEST_F(TlsAttackTest, AnotherCoordinatorsCertificateCannotPoseAsTheCoordinator) {
  ExpectNoImpostorCoordinator("c2", "coordinator");
}

// bank_a dies holding an unprepared branch of a transfer (gone with it).
// mallory listens at bank_a's address; the coordinator's TLS client accepts
// its certificate (right CA, right host), mallory votes yes and "commits",
// and the application is told COMMITTED for a transfer that debited no one.
TEST_F(TlsAttackTest, AnApplicationCertificateCannotPoseAsAParticipant) {
  auto client = Connect();
  auto txn = PrepareTransfer(*client, 10);
  ASSERT_NE(txn, nullptr);
  cluster_.participant("bank_a").Signal(SIGKILL);
  ASSERT_NE(cluster_.participant("bank_a").WaitForExit(5000), -1);

  auto liar = std::make_shared<LyingParticipant>();
  auto server = ServeAs(std::make_shared<rpc::ParticipantProcessor>(liar),
                               cluster_.participant_port("bank_a"));
  Status committed = txn->Commit();
  server->Stop();
  EXPECT_EQ(liar->lies, 0) << "the coordinator took a vote from a server with an application's "
                              "certificate";
  EXPECT_FALSE(committed.ok()) << "reported COMMITTED, but bank_a never prepared";

  ASSERT_TRUE(cluster_.StartParticipant("bank_a").ok());
  EXPECT_TRUE(cluster_.EventuallyNoOpenBranches(10000));
  EXPECT_EQ(Total("bank_a") + Total("bank_b"), 6 * kInitialBalance);
}

}  // namespace
}  // namespace pact
