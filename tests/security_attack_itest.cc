// Attacks on the security of the real processes, each one a weakness found
// in review: a stranger without a certificate pinning connection threads
// with a TLS handshake that never ends.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <thread>

#include <gtest/gtest.h>

#include "gen-cpp/Coordinator.h"
#include "tests/bank_fixture.h"
#include "thrift/rpc_client.h"

namespace pact {
namespace {

using Clock = std::chrono::steady_clock;

constexpr int kIdleTimeoutMs = 2000;
constexpr int kFrameTimeoutMs = 1000;

// A plain TCP connection to 127.0.0.1:port, or -1.
int ConnectTo(int port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

// True once the server closed `fd` (EOF or reset), without waiting.
bool ClosedByServer(int fd) {
  char byte;
  ssize_t n = recv(fd, &byte, 1, MSG_DONTWAIT);
  return n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK);
}

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
};

// A stranger (no certificate at all) opens a connection to a TLS port and
// sends the start of a ClientHello one byte at a time, each byte within the
// idle timeout. The server must give up on the handshake within the frame
// timeout (plus the idle timeout for the bytes in flight), as it does for a
// plaintext frame: otherwise max_connections such strangers hold every
// connection thread for ever, at a few bytes per second in all.
TEST_F(TlsAttackTest, AStrangerCannotHoldAThreadWithAHandshakeThatNeverEnds) {
  for (int port : {CoordinatorPort(), cluster_.participant_port("bank_a")}) {
    int fd = ConnectTo(port);
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

}  // namespace
}  // namespace pact
