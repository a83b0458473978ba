#include "cluster/fault_proxy.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "cluster/ports.h"

namespace pact {
namespace {

// Larger than any frame Pact sends; a bigger length means the stream is not
// Thrift framing after all, and it is forwarded as opaque bytes.
constexpr uint32_t kMaxFrameBytes = 64 << 20;

bool IsReplyFault(Fault fault) { return fault == Fault::kDropReply || fault == Fault::kDelayReply; }

uint32_t BigEndian32(const char* p) {
  const auto* u = reinterpret_cast<const unsigned char*>(p);
  return (uint32_t{u[0]} << 24) | (uint32_t{u[1]} << 16) | (uint32_t{u[2]} << 8) | u[3];
}

bool ReadFull(int fd, char* buf, size_t n) {
  while (n > 0) {
    ssize_t r = recv(fd, buf, n, 0);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return false;
    buf += r;
    n -= static_cast<size_t>(r);
  }
  return true;
}

bool WriteAll(int fd, const char* buf, size_t n) {
  while (n > 0) {
    ssize_t w = send(fd, buf, n, MSG_NOSIGNAL);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return false;
    buf += w;
    n -= static_cast<size_t>(w);
  }
  return true;
}

void SetNoDelay(int fd) {
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

// Makes the next close() send RST instead of FIN.
void SetAbortiveClose(int fd) {
  linger lg{1, 0};
  setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
}

}  // namespace

const char* FaultName(Fault fault) {
  switch (fault) {
    case Fault::kDropRequest:
      return "dropped the request";
    case Fault::kDropReply:
      return "dropped the reply";
    case Fault::kResetBeforeRequest:
      return "reset instead of forwarding the request";
    case Fault::kResetAfterRequest:
      return "reset after forwarding the request";
    case Fault::kDelayRequest:
      return "delayed the request";
    case Fault::kDelayReply:
      return "delayed the reply";
  }
  return "?";
}

std::optional<ThriftMessage> ParseThriftMessage(const std::string& payload) {
  size_t pos = 0;
  auto i32 = [&](int32_t* out) {
    if (payload.size() < pos + 4) return false;
    *out = static_cast<int32_t>(BigEndian32(payload.data() + pos));
    pos += 4;
    return true;
  };
  auto name = [&](int32_t length, std::string* out) {
    if (length < 0 || payload.size() < pos + static_cast<size_t>(length)) return false;
    out->assign(payload, pos, static_cast<size_t>(length));
    pos += static_cast<size_t>(length);
    return true;
  };
  ThriftMessage msg;
  int32_t first = 0, length = 0, type = 0;
  if (!i32(&first)) return std::nullopt;
  if (first < 0) {
    // Strict: version | type, then the name and the seqid.
    if ((static_cast<uint32_t>(first) & 0xffff0000u) != 0x80010000u) return std::nullopt;
    type = first & 0xff;
    if (!i32(&length) || !name(length, &msg.method)) return std::nullopt;
  } else {
    // Old format: the name first, then a one-byte type.
    if (!name(first, &msg.method) || payload.size() < pos + 1) return std::nullopt;
    type = static_cast<unsigned char>(payload[pos++]);
  }
  if (!i32(&msg.seqid)) return std::nullopt;
  // T_CALL = 1, T_REPLY = 2, T_EXCEPTION = 3, T_ONEWAY = 4.
  if (type < 1 || type > 4) return std::nullopt;
  msg.is_request = type == 1 || type == 4;
  return msg;
}

// ---------------------------------------------------------------- FaultRules

RuleId FaultRules::Add(Rule rule) {
  std::lock_guard<std::mutex> lock(mu_);
  rules_.push_back({std::move(rule)});
  return static_cast<RuleId>(rules_.size() - 1);
}

std::optional<Rule> FaultRules::Match(bool is_request, const std::string& method) {
  std::lock_guard<std::mutex> lock(mu_);
  for (Entry& e : rules_) {
    if (e.cleared || e.hits >= e.rule.count) continue;
    if (IsReplyFault(e.rule.fault) == is_request) continue;
    if (!e.rule.method.empty() && e.rule.method != method) continue;
    e.hits++;
    hit_.notify_all();
    return e.rule;
  }
  return std::nullopt;
}

int FaultRules::Hits(RuleId id) {
  std::lock_guard<std::mutex> lock(mu_);
  return rules_.at(static_cast<size_t>(id)).hits;
}

bool FaultRules::WaitForHits(RuleId id, int hits, int timeout_ms) {
  std::unique_lock<std::mutex> lock(mu_);
  return hit_.wait_for(lock, std::chrono::milliseconds(timeout_ms),
                       [&] { return rules_.at(static_cast<size_t>(id)).hits >= hits; });
}

void FaultRules::Clear() {
  std::lock_guard<std::mutex> lock(mu_);
  for (Entry& e : rules_) e.cleared = true;
}

// ---------------------------------------------------------------- FlowGate

void FlowGate::Freeze(bool replies_only) {
  std::lock_guard<std::mutex> lock(mu_);
  replies_frozen_ = true;
  if (!replies_only) requests_frozen_ = true;
}

void FlowGate::Thaw() {
  std::lock_guard<std::mutex> lock(mu_);
  requests_frozen_ = replies_frozen_ = false;
  changed_.notify_all();
}

void FlowGate::Stop() {
  std::lock_guard<std::mutex> lock(mu_);
  stopped_ = true;
  changed_.notify_all();
}

bool FlowGate::Pass(bool request) {
  std::unique_lock<std::mutex> lock(mu_);
  changed_.wait(lock, [&] { return !(request ? requests_frozen_ : replies_frozen_) || stopped_; });
  return !stopped_;
}

bool FlowGate::Sleep(int ms) {
  std::unique_lock<std::mutex> lock(mu_);
  return !changed_.wait_for(lock, std::chrono::milliseconds(ms), [&] { return stopped_; });
}

// ---------------------------------------------------------------- ProxiedConnection

ProxiedConnection::ProxiedConnection(int client_fd, int target_fd, FaultRules* rules,
                                     FlowGate* gate, std::string label)
    : client_fd_(client_fd),
      target_fd_(target_fd),
      rules_(rules),
      gate_(gate),
      label_(std::move(label)),
      upstream_([this] { Pump(client_fd_, target_fd_); }),
      downstream_([this] { Pump(target_fd_, client_fd_); }) {}

ProxiedConnection::~ProxiedConnection() {
  Reset();
  upstream_.join();
  downstream_.join();
}

void ProxiedConnection::Reset() {
  std::lock_guard<std::mutex> lock(mu_);
  ShutdownLocked(/*abortive_client=*/true, /*abortive_target=*/true);
}

void ProxiedConnection::ResetCaller() {
  std::lock_guard<std::mutex> lock(mu_);
  ShutdownLocked(/*abortive_client=*/true, /*abortive_target=*/false);
}

bool ProxiedConnection::finished() {
  std::lock_guard<std::mutex> lock(mu_);
  return closed_;
}

void ProxiedConnection::ShutdownLocked(bool abortive_client, bool abortive_target) {
  if (closed_) return;  // the descriptors may belong to someone else by now
  if (abortive_client) SetAbortiveClose(client_fd_);
  if (abortive_target) SetAbortiveClose(target_fd_);
  shutdown(client_fd_, SHUT_RDWR);
  shutdown(target_fd_, SHUT_RDWR);
}

void ProxiedConnection::Pump(int from, int to) {
  if (rules_ != nullptr) {
    PumpFrames(from, to);
  } else {
    PumpBytes(from, to);
  }
  std::lock_guard<std::mutex> lock(mu_);
  ShutdownLocked(/*abortive_client=*/false, /*abortive_target=*/false);
  if (++pumps_done_ == 2) {
    // Nobody reads or writes them any more: closing cannot hit a reused number.
    close(client_fd_);
    close(target_fd_);
    closed_ = true;
  }
}

void ProxiedConnection::PumpFrames(int from, int to) {
  std::string frame;
  while (true) {
    frame.resize(4);
    if (!ReadFull(from, frame.data(), 4)) return;
    const uint32_t length = BigEndian32(frame.data());
    if (length > kMaxFrameBytes) {
      if (!gate_->Pass(from == client_fd_) || !WriteAll(to, frame.data(), frame.size())) return;
      return PumpBytes(from, to);
    }
    frame.resize(4 + length);
    if (!ReadFull(from, frame.data() + 4, length)) return;
    std::optional<ThriftMessage> msg = ParseThriftMessage(frame.substr(4));
    std::optional<Rule> hit = msg ? rules_->Match(msg->is_request, msg->method) : std::nullopt;
    if (!gate_->Pass(from == client_fd_)) return;
    if (hit) {
      std::fprintf(stderr, "[ fault    ] %s: %s of %s (seqid %d)\n", label_.c_str(),
                   FaultName(hit->fault), msg->method.c_str(), msg->seqid);
      switch (hit->fault) {
        case Fault::kDropRequest:
        case Fault::kDropReply:
          continue;
        case Fault::kResetBeforeRequest:
          Reset();
          return;
        case Fault::kDelayRequest:
        case Fault::kDelayReply:
          if (!gate_->Sleep(hit->delay_ms)) return;
          break;
        case Fault::kResetAfterRequest:
          cut_ = true;
          WriteAll(to, frame.data(), frame.size());
          ResetCaller();
          return;
      }
    }
    if (cut_ || !WriteAll(to, frame.data(), frame.size())) return;
  }
}

void ProxiedConnection::PumpBytes(int from, int to) {
  char buf[16384];
  while (true) {
    ssize_t n = recv(from, buf, sizeof(buf), 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;
    if (!gate_->Pass(from == client_fd_) || cut_ || !WriteAll(to, buf, static_cast<size_t>(n))) {
      return;
    }
  }
}

// ---------------------------------------------------------------- FaultProxy

Result<std::unique_ptr<FaultProxy>> FaultProxy::Start(int target_port, Framing framing) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return Status::IoError(std::string("socket: ") + std::strerror(errno));
  // Port 0: the kernel picks a free one, so parallel tests never collide.
  sockaddr_in addr = LoopbackAddress(0);
  socklen_t len = sizeof(addr);
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 || listen(fd, 128) != 0 ||
      getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    std::string error = std::strerror(errno);
    close(fd);
    return Status::IoError("fault proxy cannot listen: " + error);
  }
  return std::unique_ptr<FaultProxy>(
      new FaultProxy(fd, ntohs(addr.sin_port), target_port, framing));
}

FaultProxy::FaultProxy(int listen_fd, int port, int target_port, Framing framing)
    : listen_fd_(listen_fd),
      port_(port),
      target_port_(target_port),
      framing_(framing),
      acceptor_([this] { AcceptLoop(); }) {}

FaultProxy::~FaultProxy() {
  stopping_ = true;
  gate_.Stop();
  acceptor_.join();
  close(listen_fd_);
  std::lock_guard<std::mutex> lock(mu_);
  connections_.clear();  // each resets and joins its pumps
}

void FaultProxy::RefuseConnections(int duration_ms) {
  std::lock_guard<std::mutex> lock(mu_);
  refuse_until_ = std::chrono::steady_clock::now() + std::chrono::milliseconds(duration_ms);
}

void FaultProxy::ResetConnections() {
  std::lock_guard<std::mutex> lock(mu_);
  for (auto& c : connections_) c->Reset();
}

void FaultProxy::AcceptLoop() {
  while (!stopping_) {
    pollfd pfd{listen_fd_, POLLIN, 0};
    if (poll(&pfd, 1, 50) <= 0) continue;
    int client = accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (client >= 0) Serve(client);
  }
}

void FaultProxy::Serve(int client_fd) {
  std::lock_guard<std::mutex> lock(mu_);
  connections_.remove_if([](const std::unique_ptr<ProxiedConnection>& c) { return c->finished(); });
  int target = -1;
  if (std::chrono::steady_clock::now() >= refuse_until_) {
    target = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr = LoopbackAddress(target_port_);
    if (target >= 0 && connect(target, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
      close(target);
      target = -1;
    }
  }
  if (target < 0) {
    // Refusing, or the target is down: the caller sees its connection reset.
    SetAbortiveClose(client_fd);
    close(client_fd);
    return;
  }
  SetNoDelay(client_fd);
  SetNoDelay(target);
  std::string label = address() + "->" + std::to_string(target_port_);
  connections_.push_back(std::make_unique<ProxiedConnection>(
      client_fd, target, framing_ == Framing::kThrift ? &rules_ : nullptr, &gate_, label));
}

}  // namespace pact
