// Hostile frames against the real binaries: malformed, truncated, oversized
// and deeply nested frames to every method of both services, from a seeded
// RNG. Every process must keep running with bounded memory and a normal
// transfer must commit afterwards. A long run:
//   scripts/fuzz-frames --frames 200000 --seed 7
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <random>

#include <httplib.h>

#include "gen-cpp/Coordinator.h"
#include "rpc/rpc_client.h"
#include "tests/bank_fixture.h"

namespace pact {
namespace {

const std::vector<std::string> kCoordinatorMethods = {
    "authenticate", "info",         "beginTxn",         "reserveTxnIds",    "commitTxn",
    "rollbackTxn",  "status",           "outcome",          "registerParticipant",
    "listParticipants", "listTransactions", "stats",        "retryCommit",
    "removeParticipant", "reportHeuristic", "listHeuristics", "forgetHeuristic"};
const std::vector<std::string> kParticipantMethods = {
    "authenticate",   "info",         "execute",      "abandon",      "prepare",
    "commit",         "rollback",     "prepareBatch", "commitBatch",  "rollbackBatch",
    "recover",        "listBranches", "resolve",      "listHeuristics", "forgetHeuristic"};

// Thrift binary protocol type codes.
constexpr uint8_t kStop = 0, kBool = 2, kDouble = 4, kI16 = 6, kI32 = 8, kI64 = 10, kString = 11,
                  kStruct = 12, kMap = 13, kSet = 14, kList = 15, kNoType = 99;
constexpr uint32_t kHuge = 0x7fffffff;

// Bytes in the binary protocol's encoding.
struct Bytes {
  std::string s;
  Bytes& I8(uint8_t v) { s.push_back(static_cast<char>(v)); return *this; }
  Bytes& I16(uint16_t v) { return I8(v >> 8).I8(v & 0xff); }
  Bytes& I32(uint32_t v) { return I16(v >> 16).I16(v & 0xffff); }
  Bytes& I64(uint64_t v) { return I32(v >> 32).I32(v & 0xffffffff); }
  Bytes& Str(const std::string& v) { I32(v.size()); s += v; return *this; }
  Bytes& Field(uint8_t type, int16_t id) { return I8(type).I16(id); }
  // Strict (versioned) message header: CALL.
  Bytes& Call(const std::string& method, uint8_t type = 1) {
    return I32(0x80010000u | type).Str(method).I32(1);
  }
  // Old unversioned header, refused by strict reads.
  Bytes& OldCall(const std::string& method) { return Str(method).I8(1).I32(1); }
};

std::string Framed(const std::string& payload) {
  return Bytes().I32(payload.size()).s + payload;
}

class FrameGenerator {
 public:
  explicit FrameGenerator(uint64_t seed) : rng_(seed) {}

  // One hostile frame (length prefix included) for `method`.
  std::string Next(const std::string& method) {
    switch (Pick(12)) {
      case 0:  // a huge declared size in a field of any type
        return Framed(HugeField(Bytes().Call(method)).s + Junk(Pick(40)));
      case 1:  // a huge declared method name, strict or old header
        return Framed(Bytes().I32(Pick(2) ? 0x80010001u : HugeSize()).I32(HugeSize()).s +
                      Junk(Pick(12)));
      case 2:  // nesting far past any recursion limit
        return Framed(Nested(method, 100 + Pick(5000)));
      case 3:  // a real call cut short inside its frame
      {
        std::string valid = Valid(method);
        return Framed(valid.substr(0, Pick(valid.size())));
      }
      case 4:  // a frame longer than what is sent (the sender then leaves)
        return Bytes().I32(Pick(2) ? HugeSize() : 1000 + Pick(100000)).s + Valid(method);
      case 5:  // old unversioned header
        return Framed(Bytes().OldCall(method).I8(kStop).s);
      case 6:  // a known field id with the wrong type
        return Framed(Bytes().Call(method).Field(Pick({kBool, kDouble, kI16, kI32, kI64, kString,
                                                       kStruct, kList, kMap, kSet, kNoType}),
                                                 Pick(4))
                          .s + Junk(Pick(64)) + std::string(1, kStop));
      case 7:  // garbage
        return Framed(Junk(1 + Pick(200)));
      case 8:  // a valid call with bytes flipped
      {
        std::string frame = Framed(Valid(method));
        for (int i = 0, n = 1 + Pick(4); i < n; ++i) frame[Pick(frame.size())] = Pick(256);
        return frame;
      }
      case 9:  // a bad version, or a reply / exception / unknown type instead of a call
        return Framed(Bytes().Call(method, Pick({2, 3, 5, 0x7f})).I8(kStop).s);
      case 10:  // negative and oversized frame lengths
        return Bytes().I32(Pick({0x80000000u, 0xffffffffu, 0u, (64u << 20) + 1})).s + Junk(16);
      default:  // a valid call: the server answers it and the connection stays usable
        return Framed(Valid(method));
    }
  }

  uint32_t Pick(uint32_t n) { return std::uniform_int_distribution<uint32_t>(0, n - 1)(rng_); }
  template <typename T>
  T Pick(std::initializer_list<T> options) {
    return *(options.begin() + Pick(options.size()));
  }

 private:
  Bytes& HugeField(Bytes& b) {
    switch (Pick(3)) {
      case 0: return b.Field(kString, Id()).I32(HugeSize());
      case 1: return b.Field(Pick({kList, kSet}), Id()).I8(Pick({kStruct, kString, kI64, kList}))
                  .I32(HugeSize());
      default: return b.Field(kMap, Id()).I8(kString).I8(Pick({kStruct, kI64})).I32(HugeSize());
    }
  }
  int16_t Id() { return Pick({1, 2, 3, 4, 5, -1, 32767}); }
  uint32_t HugeSize() { return Pick({kHuge, kHuge - 7, 1u << 30, (16u << 20) + 1, 1u << 20}); }
  std::string Junk(size_t n) {
    std::string s(n, '\0');
    for (char& c : s) c = static_cast<char>(Pick(256));
    return s;
  }
  // A well-formed call about a transaction no run of c1 handed out (epoch 7):
  // a participant may open a branch for it, and must let it go once the
  // coordinator says nobody can commit it. (An id a client did reserve is
  // that client's: an application's role is trusted with the ids it knows.)
  std::string Valid(const std::string& method) {
    Bytes b;
    b.Call(method).Field(kString, 1).Str("c1.7.1");
    if (method == "execute") {
      b.Field(kString, 2).Str("SELECT ?1").Field(kList, 3).I8(kStruct).I32(1);
      b.Field(kI32, 1).I32(1).Field(kI64, 2).I64(5).I8(kStop);
    }
    return b.I8(kStop).I8(kStop).s;
  }
  std::string Nested(const std::string& method, int depth) {
    Bytes b;
    b.Call(method);
    bool lists = Pick(2);
    for (int i = 0; i < depth; ++i) {
      if (lists) b.Field(kList, 9).I8(kList).I32(1); else b.Field(kStruct, 9);
    }
    return b.s;
  }

  std::mt19937_64 rng_;
};

// Sends `frame` to 127.0.0.1:port on a new connection, waits a moment for an
// answer and closes. The outcome does not matter, only the server's.
void Send(int port, const std::string& frame) {
  int fd = ConnectToLoopback(port);
  if (fd >= 0) {
    size_t sent = 0;
    while (sent < frame.size()) {
      ssize_t n = send(fd, frame.data() + sent, frame.size() - sent, MSG_NOSIGNAL);
      if (n <= 0) break;
      sent += n;
    }
    pollfd pfd{fd, POLLIN, 0};
    poll(&pfd, 1, 20);
    close(fd);
  }
}

// VmHWM (peak resident set) or VmRSS of a process, in KiB; -1 if gone.
int64_t StatusKb(pid_t pid, const std::string& field) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  for (std::string line; std::getline(in, line);) {
    if (line.rfind(field + ":", 0) == 0) return std::atoll(line.c_str() + field.size() + 1);
  }
  return -1;
}

int64_t EnvInt(const char* name, int64_t fallback) {
  const char* v = std::getenv(name);
  return v ? std::atoll(v) : fallback;
}

constexpr int64_t kMaxRssKb = 200 * 1024;

int64_t Scrape(int port, const std::string& metric) {
  auto res = httplib::Client("127.0.0.1", port).Get("/metrics");
  if (!res || res->status != 200) return -1;
  size_t at = res->body.find("\n" + metric + " ");
  return at == std::string::npos ? -1 : std::stoll(res->body.substr(at + metric.size() + 2));
}

class FrameFuzzTest : public BankTest {
 protected:
  void SetUp() override {
    cluster_.coordinator_flags.push_back("--metrics_port=" + std::to_string(metrics_port_));
    BankTest::SetUp();
  }
  const int metrics_port_ = FreePort();  // the coordinator's
  std::vector<std::pair<std::string, Process*>> Processes() {
    return {{"coordinator", &cluster_.coordinator()},
            {"bank_a", &cluster_.participant("bank_a")},
            {"bank_b", &cluster_.participant("bank_b")}};
  }
  // Every process runs and stays under the RSS bound (its peak so far).
  void ExpectAllAliveAndSmall(int64_t frames) {
    for (auto& [name, process] : Processes()) {
      ASSERT_TRUE(process->running()) << name << " died after " << frames << " frames\n"
                                      << LogTail(process->log_path());
      int64_t peak = StatusKb(process->pid(), "VmHWM");
      ASSERT_LT(peak, kMaxRssKb) << name << " peaked at " << peak << " KiB after " << frames
                                 << " frames";
    }
  }
  void ExpectTransferCommits() {
    auto client = Connect();
    auto txn = PrepareTransfer(*client, 1);
    ASSERT_TRUE(txn);
    Status st = txn->Commit();
    EXPECT_TRUE(st.ok()) << st.ToString();
  }
};

TEST_F(FrameFuzzTest, HostileFramesToEveryMethodLeaveEveryProcessAliveAndSmall) {
  const int64_t frames = EnvInt("PACT_FUZZ_FRAMES", 3000);
  const uint64_t seed = EnvInt("PACT_FUZZ_SEED", 20240601);
  const auto budget = std::chrono::seconds(EnvInt("PACT_FUZZ_SECONDS", 60));
  std::vector<std::pair<int, const std::vector<std::string>*>> targets = {
      {Endpoint::Parse(cluster_.coordinator_address())->port, &kCoordinatorMethods},
      {cluster_.participant_port("bank_a"), &kParticipantMethods},
      {cluster_.participant_port("bank_b"), &kParticipantMethods}};

  // The two frames of the report first: a 20-byte frame declaring a method
  // name of 2^31-1 bytes, and a 60-byte execute declaring 2^31-1 params.
  std::string name_bomb = Framed(Bytes().I32(kHuge).s + std::string(12, 'x'));
  ASSERT_EQ(name_bomb.size(), 20u);
  Bytes execute;
  execute.Call("execute").Field(kString, 1).Str("c1.7.1").Field(kList, 3).I8(kStruct).I32(kHuge);
  std::string list_bomb = Framed(execute.s + std::string(60 - 4 - execute.s.size(), '\0'));
  ASSERT_EQ(list_bomb.size(), 60u);
  for (auto& [port, methods] : targets) {
    Send(port, name_bomb);
    Send(port, list_bomb);
  }
  ASSERT_NO_FATAL_FAILURE(ExpectAllAliveAndSmall(2));

  FrameGenerator gen(seed);
  auto start = std::chrono::steady_clock::now();
  int64_t sent = 0;
  for (; sent < frames && std::chrono::steady_clock::now() - start < budget; ++sent) {
    auto& [port, methods] = targets[gen.Pick(targets.size())];
    Send(port, gen.Next((*methods)[gen.Pick(methods->size())]));
    if (sent % 200 == 0) {
      ASSERT_NO_FATAL_FAILURE(ExpectAllAliveAndSmall(sent));
    }
  }
  ASSERT_NO_FATAL_FAILURE(ExpectAllAliveAndSmall(sent));
  ExpectTransferCommits();
  std::string peaks;
  for (auto& [name, process] : Processes()) {
    peaks += " " + name + "=" + std::to_string(StatusKb(process->pid(), "VmHWM") / 1024) + "MB";
  }
  int64_t refused = Scrape(metrics_port_, "pact_rpc_frames_refused_total");
  EXPECT_GT(refused, 0);
  std::cout << "frame fuzz: seed " << seed << ", " << sent << " frames, 3 of 3 processes alive, "
            << "peak RSS" << peaks << ", coordinator refused " << refused << " frames\n";
}

// Opens `count` connections to port that never send a byte.
std::vector<int> SilentConnections(int port, int count) {
  std::vector<int> fds;
  for (int i = 0; i < count; ++i) {
    int fd = ConnectToLoopback(port);
    if (fd >= 0) fds.push_back(fd);
  }
  return fds;
}

// How many of fds the server has closed (EOF or reset).
int ClosedByPeer(const std::vector<int>& fds) {
  int closed = 0;
  for (int fd : fds) {
    pollfd pfd{fd, POLLIN | POLLRDHUP, 0};
    if (poll(&pfd, 1, 0) == 1) ++closed;
  }
  return closed;
}

class SilentConnectionTest : public FrameFuzzTest {
 protected:
  void SetUp() override {
    cluster_.coordinator_flags.push_back("--rpc_idle_timeout_ms=1500");
    cluster_.participant_flags.push_back("--rpc_idle_timeout_ms=1500");
    FrameFuzzTest::SetUp();
  }
};

TEST_F(SilentConnectionTest, ThreeHundredSilentConnectionsDoNotStopATransferAndAreClosedWhenIdle) {
  int coordinator_port = Endpoint::Parse(cluster_.coordinator_address())->port;
  std::vector<int> to_coordinator = SilentConnections(coordinator_port, 300);
  std::vector<int> to_bank_a = SilentConnections(cluster_.participant_port("bank_a"), 300);
  ASSERT_EQ(to_coordinator.size(), 300u);
  ASSERT_EQ(to_bank_a.size(), 300u);
  ExpectTransferCommits();
  EXPECT_TRUE(PollUntil([&] { return ClosedByPeer(to_coordinator) == 300; }, 5000))
      << ClosedByPeer(to_coordinator) << " of 300 closed by the coordinator";
  EXPECT_TRUE(PollUntil([&] { return ClosedByPeer(to_bank_a) == 300; }, 5000))
      << ClosedByPeer(to_bank_a) << " of 300 closed by bank_a";
  for (int fd : to_coordinator) close(fd);
  for (int fd : to_bank_a) close(fd);
  // The clients' pooled connections were closed too: they reconnect.
  std::this_thread::sleep_for(std::chrono::milliseconds(1600));
  ExpectTransferCommits();
}

class ConnectionCapTest : public FrameFuzzTest {
 protected:
  void SetUp() override {
    cluster_.coordinator_flags.push_back("--rpc_max_connections=40");
    FrameFuzzTest::SetUp();
  }
};

TEST_F(ConnectionCapTest, ConnectionsBeyondTheCapAreClosedAtOnceAndCounted) {
  std::vector<int> silent =
      SilentConnections(Endpoint::Parse(cluster_.coordinator_address())->port, 60);
  // The cluster's own links hold a few of the 40 as well.
  EXPECT_TRUE(PollUntil([&] { return ClosedByPeer(silent) >= 20; }, 2000))
      << ClosedByPeer(silent) << " of 60 closed";
  EXPECT_GE(Scrape(metrics_port_, "pact_rpc_connections_refused_total"), 20);
  for (int fd : silent) close(fd);
  // Their threads read the end of the stream at once and free their places:
  // service is back within a second.
  RpcConnection<rpc::CoordinatorClient> probe(*Endpoint::Parse(cluster_.coordinator_address()),
                                              RpcTimeouts{500, 1000});
  EXPECT_TRUE(PollUntil(
      [&] {
        rpc::CoordinatorInfo info;
        return probe.Call([&](rpc::CoordinatorClient& c) { c.info(info); }).ok();
      },
      1000));
  ExpectTransferCommits();
  EXPECT_EQ(Scrape(metrics_port_, "pact_rpc_frames_refused_total"), 0);
}

}  // namespace
}  // namespace pact
