// RpcServer and RpcConnection on loopback, in one process: a server stops at
// once though its connections' threads block in reads with no poll(2) to
// interrupt them, and lets the call it is handling reply; a frame is read
// whole however it arrives (pipelined, split, late), with the frame timeout
// only inside a frame; a pooled connection never sends a call into a
// connection its server closed, nor takes bytes it did not ask for as a reply.
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <future>
#include <mutex>
#include <string>
#include <thread>

#include <gtest/gtest.h>
#include <thrift/protocol/TBinaryProtocol.h>
#include <thrift/transport/TBufferTransports.h>

#include "cluster/ports.h"
#include "cluster/wait_until.h"
#include "gen-cpp/Participant.h"
#include "rpc/rpc_client.h"
#include "rpc/rpc_server.h"
#include "tests/call_gate.h"

namespace pact {
namespace {

using apache::thrift::protocol::TBinaryProtocol;
using apache::thrift::transport::TFramedTransport;
using apache::thrift::transport::TMemoryBuffer;
using Clock = std::chrono::steady_clock;

// Votes COMMIT and counts; while `hold` is set, a prepare waits for release.
class CountingParticipant : public rpc::ParticipantNull {
 public:
  rpc::Vote::type prepare(const rpc::Fence&, const std::string&, const std::string&) override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      ++prepares_;
    }
    entered_.notify_all();
    hold_.Pass();
    return rpc::Vote::COMMIT;
  }
  void Hold() { hold_.Close(); }
  void Release() { hold_.Open(); }
  bool WaitEntered(int n, int timeout_ms) {
    std::unique_lock<std::mutex> lock(mu_);
    return entered_.wait_for(lock, std::chrono::milliseconds(timeout_ms),
                             [&] { return prepares_ >= n; });
  }
  int prepares() {
    std::lock_guard<std::mutex> lock(mu_);
    return prepares_;
  }

 private:
  std::mutex mu_;
  std::condition_variable entered_;
  int prepares_ = 0;  // guarded by mu_
  CallGate hold_;
};

// The bytes of one framed prepare call, as a client sends them.
std::string PrepareFrame() {
  auto buffer = std::make_shared<TMemoryBuffer>();
  auto framed = std::make_shared<TFramedTransport>(buffer);
  rpc::ParticipantClient client(std::make_shared<TBinaryProtocol>(framed));
  client.send_prepare(rpc::Fence(), "t1", "o.1");
  return buffer->getBufferAsString();
}

// The vote of the framed prepare reply that `bytes` start with.
rpc::Vote::type DecodePrepareReply(const std::string& bytes) {
  auto buffer = std::make_shared<TMemoryBuffer>();
  buffer->write(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
  auto framed = std::make_shared<TFramedTransport>(buffer);
  rpc::ParticipantClient client(std::make_shared<TBinaryProtocol>(framed));
  return client.recv_prepare();
}

void SendAll(int fd, const std::string& bytes) {
  ASSERT_EQ(send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL),
            static_cast<ssize_t>(bytes.size()));
}

// Reads exactly n bytes, or fewer if the peer closes or 5 s pass.
std::string ReceiveBytes(int fd, size_t n) {
  std::string out;
  auto deadline = Clock::now() + std::chrono::seconds(5);
  while (out.size() < n && Clock::now() < deadline) {
    char buf[4096];
    ssize_t got = recv(fd, buf, std::min(sizeof(buf), n - out.size()), MSG_DONTWAIT);
    if (got == 0) break;
    if (got < 0) {
      if (errno != EAGAIN && errno != EWOULDBLOCK) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
      continue;
    }
    out.append(buf, static_cast<size_t>(got));
  }
  return out;
}

// One framed prepare reply: its 4-byte size, then that many bytes.
std::string ReceiveReply(int fd) {
  std::string size = ReceiveBytes(fd, 4);
  if (size.size() != 4) return size;
  uint32_t n = (uint32_t(uint8_t(size[0])) << 24) | (uint32_t(uint8_t(size[1])) << 16) |
               (uint32_t(uint8_t(size[2])) << 8) | uint32_t(uint8_t(size[3]));
  return size + ReceiveBytes(fd, n);
}

// True once the server closed `fd` (EOF or reset), without waiting.
bool ClosedByServer(int fd) {
  char byte;
  ssize_t n = recv(fd, &byte, 1, MSG_DONTWAIT | MSG_PEEK);
  return n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK);
}

class RpcServerTest : public ::testing::Test {
 protected:
  void StartServer(RpcServerOptions options = {}) {
    if (port_ == 0) port_ = FreePort();
    server_ = std::make_unique<RpcServer>(std::make_shared<rpc::ParticipantProcessor>(handler_),
                                          "127.0.0.1", port_, options);
    Status st = server_->Start();
    ASSERT_TRUE(st.ok()) << st.ToString();
  }
  void TearDown() override {
    handler_->Release();
    if (server_) server_->Stop();
  }

  Status Prepare(RpcConnection<rpc::ParticipantClient>& connection) {
    return connection.Call([](rpc::ParticipantClient& c) {
      EXPECT_EQ(c.prepare(rpc::Fence(), "t1", "o.1"), rpc::Vote::COMMIT);
    });
  }
  RpcConnection<rpc::ParticipantClient> Connection() {
    return RpcConnection<rpc::ParticipantClient>({"127.0.0.1", port_}, RpcTimeouts{});
  }

  std::shared_ptr<CountingParticipant> handler_ = std::make_shared<CountingParticipant>();
  int port_ = 0;
  std::unique_ptr<RpcServer> server_;
};

// Connection threads block in recv(2) (idle for up to 300 s by default, or
// mid-frame) with no interrupt pipe to poll: Stop() must end them itself.
TEST_F(RpcServerTest, StopEndsIdleAndHalfSentConnectionsAtOnce) {
  StartServer();
  auto idle = Connection();
  ASSERT_TRUE(Prepare(idle).ok());
  int half_sent = ConnectToLoopback(port_);
  ASSERT_GE(half_sent, 0);
  SendAll(half_sent, PrepareFrame().substr(0, 6));
  std::this_thread::sleep_for(std::chrono::milliseconds(100));  // both threads in recv

  auto start = Clock::now();
  server_->Stop();
  EXPECT_LT(Clock::now() - start, std::chrono::seconds(2));
  EXPECT_TRUE(ClosedByServer(half_sent));
  close(half_sent);
  EXPECT_EQ(Prepare(idle).code(), StatusCode::kUnavailable);  // nobody serves any more
}

// Stop() ends reads, not writes: the call being handled still gets its reply,
// then its connection ends.
TEST_F(RpcServerTest, StopLetsTheCallBeingHandledReply) {
  StartServer();
  handler_->Hold();
  auto connection = Connection();
  auto call = std::async(std::launch::async, [&] { return Prepare(connection); });
  ASSERT_TRUE(handler_->WaitEntered(1, 5000));
  auto stopped = std::async(std::launch::async, [&] { server_->Stop(); });
  std::this_thread::sleep_for(std::chrono::milliseconds(100));  // Stop() has ended the reads
  handler_->Release();
  Status st = call.get();
  EXPECT_TRUE(st.ok()) << st.ToString();
  EXPECT_EQ(stopped.wait_for(std::chrono::seconds(2)), std::future_status::ready);
}

// A pooled connection whose server restarted is not used for the next call
// (a prepare or an execute sent into it would be lost, or worse, taken for
// delivered): the call goes over a new connection to the new server.
TEST_F(RpcServerTest, CallAfterTheServerRestartedGoesToTheNewServer) {
  StartServer();
  auto connection = Connection();
  ASSERT_TRUE(Prepare(connection).ok());
  server_->Stop();
  handler_ = std::make_shared<CountingParticipant>();
  StartServer();
  Status st = Prepare(connection);
  EXPECT_TRUE(st.ok()) << st.ToString();
  EXPECT_EQ(handler_->prepares(), 1);
}

// Two calls in one write: the first read takes both frames, and the second
// is served from what was read ahead.
TEST_F(RpcServerTest, PipelinedCallsInOneWriteAreEachAnswered) {
  StartServer();
  int fd = ConnectToLoopback(port_);
  ASSERT_GE(fd, 0);
  SendAll(fd, PrepareFrame() + PrepareFrame());
  EXPECT_EQ(DecodePrepareReply(ReceiveReply(fd)), rpc::Vote::COMMIT);
  EXPECT_EQ(DecodePrepareReply(ReceiveReply(fd)), rpc::Vote::COMMIT);
  EXPECT_EQ(handler_->prepares(), 2);
  close(fd);
}

// A frame that arrives in pieces is served; once it is complete, the idle
// timeout, not the frame timeout, holds the silent connection open.
TEST_F(RpcServerTest, SplitFrameIsServedAndTheIdleTimeoutHoldsAfterIt) {
  RpcServerOptions options;
  options.frame_timeout_ms = 300;
  options.idle_timeout_ms = 5000;
  StartServer(options);
  int fd = ConnectToLoopback(port_);
  ASSERT_GE(fd, 0);
  std::string frame = PrepareFrame();
  // In the size, across the size and the body, and the rest of the body.
  for (std::string piece : {frame.substr(0, 2), frame.substr(2, 7), frame.substr(9)}) {
    SendAll(fd, piece);
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  EXPECT_EQ(DecodePrepareReply(ReceiveReply(fd)), rpc::Vote::COMMIT);
  std::this_thread::sleep_for(std::chrono::milliseconds(900));  // 3 frame timeouts
  EXPECT_FALSE(ClosedByServer(fd));
  SendAll(fd, frame);
  EXPECT_EQ(DecodePrepareReply(ReceiveReply(fd)), rpc::Vote::COMMIT);
  EXPECT_EQ(server_->frames_refused(), 0);
  close(fd);
}

// The frame timeout still runs from a frame's first byte, whether its rest is
// awaited in the size or in the body.
TEST_F(RpcServerTest, FrameNotCompleteWithinTheFrameTimeoutIsRefused) {
  RpcServerOptions options;
  options.frame_timeout_ms = 300;
  StartServer(options);
  std::string frame = PrepareFrame();
  int in_size = ConnectToLoopback(port_);
  int in_body = ConnectToLoopback(port_);
  ASSERT_GE(in_size, 0);
  ASSERT_GE(in_body, 0);
  SendAll(in_size, frame.substr(0, 2));
  SendAll(in_body, frame.substr(0, frame.size() - 1));
  EXPECT_TRUE(PollUntil([&] { return ClosedByServer(in_size) && ClosedByServer(in_body); }, 3000));
  EXPECT_EQ(server_->frames_refused(), 2);
  EXPECT_EQ(handler_->prepares(), 0);
  close(in_size);
  close(in_body);
}

// A server that answers one call twice: the second copy, read ahead with the
// first reply, must not be taken as the reply to the next call, which goes
// over a new connection instead (as it did when the copy waited in the socket
// and the liveness check saw it).
TEST(RpcConnectionTest, BytesBeyondTheReplyAreNotTakenForTheNextReply) {
  int listener = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address = LoopbackAddress(0);
  ASSERT_EQ(bind(listener, reinterpret_cast<sockaddr*>(&address), sizeof(address)), 0);
  ASSERT_EQ(listen(listener, 4), 0);
  socklen_t length = sizeof(address);
  getsockname(listener, reinterpret_cast<sockaddr*>(&address), &length);
  int port = ntohs(address.sin_port);
  std::string frame = PrepareFrame();

  // A reply of the real server, to send twice.
  auto handler = std::make_shared<CountingParticipant>();
  int real_port = FreePort();
  RpcServer real(std::make_shared<rpc::ParticipantProcessor>(handler), "127.0.0.1", real_port);
  ASSERT_TRUE(real.Start().ok());
  int to_real = ConnectToLoopback(real_port);
  SendAll(to_real, frame);
  std::string reply = ReceiveReply(to_real);
  close(to_real);
  real.Stop();
  ASSERT_EQ(DecodePrepareReply(reply), rpc::Vote::COMMIT);

  std::atomic<int> accepted{0};
  std::thread fake([&] {
    for (int i = 0; i < 2; ++i) {
      int fd = accept(listener, nullptr, nullptr);
      if (fd < 0) return;
      ++accepted;
      for (int calls = 0; ReceiveReply(fd).size() == frame.size(); ++calls) {
        SendAll(fd, i == 0 ? reply + reply : reply);  // the first connection answers twice
      }
      close(fd);
    }
  });
  auto connection =
      std::make_unique<RpcConnection<rpc::ParticipantClient>>(Endpoint{"127.0.0.1", port},
                                                              RpcTimeouts{});
  auto prepare = [&] {
    return connection->Call([](rpc::ParticipantClient& c) { c.prepare(rpc::Fence(), "t1", "o.1"); });
  };
  ASSERT_TRUE(prepare().ok());
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  Status st = prepare();
  EXPECT_TRUE(st.ok()) << st.ToString();
  EXPECT_EQ(accepted, 2);
  connection.reset();  // the fake server's last read ends
  fake.join();
  close(listener);
}

}  // namespace
}  // namespace pact
