#include "cluster/zookeeper_ensemble.h"

#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <fstream>

#include "cluster/ports.h"
#include "cluster/wait_until.h"

namespace pact {
namespace {

constexpr const char* kJava = "/usr/bin/java";
// Debian's zookeeper.jar names its dependencies in its manifest's Class-Path;
// slf4j-simple (from libslf4j-java, which it depends on) makes it log to
// stderr, i.e. to the server's log file, instead of nowhere.
constexpr const char* kZooKeeperJar = "/usr/share/java/zookeeper.jar";
constexpr const char* kSlf4jSimpleJar = "/usr/share/java/slf4j-simple.jar";
constexpr int kStartTimeoutMs = 60000;
constexpr int kStartAttempts = 3;  // with fresh ports, if one was taken meanwhile
constexpr size_t kLogTailLines = 25;

Status MakeDir(const std::string& path) {
  if (mkdir(path.c_str(), 0755) != 0 && errno != EEXIST) {
    return Status::IoError("mkdir " + path + ": " + std::strerror(errno));
  }
  return Status::Ok();
}

Status WriteFile(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::trunc);
  out << text;
  out.close();
  if (!out) return Status::IoError("cannot write " + path);
  return Status::Ok();
}

// Sends a four-letter word to 127.0.0.1:port and returns the whole reply
// (the server closes the connection after it); empty if it does not answer
// within timeout_ms, as a frozen server does (the kernel still accepts).
std::string FourLetterWord(int port, const std::string& word, int timeout_ms) {
  const int fd = ConnectToLoopback(port);
  if (fd < 0) return "";
  std::string reply;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  if (send(fd, word.data(), word.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(word.size())) {
    char buf[4096];
    while (true) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                            deadline - std::chrono::steady_clock::now())
                            .count();
      pollfd p{fd, POLLIN, 0};
      if (left <= 0 || poll(&p, 1, static_cast<int>(left)) <= 0) {
        reply.clear();  // cut short: not an answer
        break;
      }
      const ssize_t n = recv(fd, buf, sizeof(buf), 0);
      if (n <= 0) break;  // EOF: the whole reply is in
      reply.append(buf, static_cast<size_t>(n));
    }
  }
  close(fd);
  return reply;
}

ZooKeeperMode ParseMode(const std::string& srvr_reply) {
  if (srvr_reply.find("Mode: leader") != std::string::npos) return ZooKeeperMode::kLeader;
  if (srvr_reply.find("Mode: follower") != std::string::npos) return ZooKeeperMode::kFollower;
  if (srvr_reply.find("Mode: standalone") != std::string::npos) {
    return ZooKeeperMode::kStandalone;
  }
  return ZooKeeperMode::kNotServing;  // "not currently serving requests", or nothing
}

}  // namespace

const char* ZooKeeperModeName(ZooKeeperMode mode) {
  switch (mode) {
    case ZooKeeperMode::kNotServing: return "not serving";
    case ZooKeeperMode::kFollower: return "follower";
    case ZooKeeperMode::kLeader: return "leader";
    case ZooKeeperMode::kStandalone: return "standalone";
  }
  return "?";
}

ZooKeeperEnsemble::ZooKeeperEnsemble(std::string dir, ZooKeeperEnsembleOptions options)
    : dir_(std::move(dir)), options_(options), servers_(options.servers) {
  for (int i = 0; i < size(); ++i) {
    Server& s = servers_[i];
    s.data_dir = dir_ + "/zk" + std::to_string(i);
    s.config_path = dir_ + "/zk" + std::to_string(i) + ".cfg";
    s.log_path = dir_ + "/zk" + std::to_string(i) + ".log";
  }
}

ZooKeeperEnsemble::~ZooKeeperEnsemble() {
  for (int i = 0; i < size(); ++i) Kill(i).ok();
}

Result<std::unique_ptr<ZooKeeperEnsemble>> ZooKeeperEnsemble::Start(
    const std::string& dir, ZooKeeperEnsembleOptions options) {
  if (options.servers < 1) return Status::InvalidArgument("an ensemble needs a server");
  RETURN_NOT_OK(MakeDir(dir));
  Status why = Status::Ok();
  for (int attempt = 0; attempt < kStartAttempts; ++attempt) {
    std::unique_ptr<ZooKeeperEnsemble> zk(new ZooKeeperEnsemble(dir, options));
    RETURN_NOT_OK(zk->WriteConfigs());
    for (int i = 0; i < zk->size(); ++i) RETURN_NOT_OK(zk->Launch(i));
    // Every server, not only a quorum: a test that kills "a follower" must
    // not pick one that is still syncing.
    why = WaitUntil([&] { return zk->WaitForServing(zk->size(), 0).ok(); },
                    [&] {
                      for (int i = 0; i < zk->size(); ++i) RETURN_NOT_OK(zk->ExitedWhy(i));
                      return Status::Ok();
                    },
                    kStartTimeoutMs, 50, "not every ZooKeeper server serves");
    if (why.ok()) return zk;
    // A server that exited most likely lost a port to another process
    // between FreePort and its bind: try again on new ports. (The failed
    // ensemble is killed here; its data dirs are rewritten.)
  }
  return why;
}

Status ZooKeeperEnsemble::WriteConfigs() {
  for (Server& s : servers_) {
    s.client_port = FreePort();
    s.quorum_port = FreePort();
    s.election_port = FreePort();
    if (s.client_port == 0 || s.quorum_port == 0 || s.election_port == 0) {
      return Status::Unavailable("no free loopback port");
    }
  }
  // initLimit is generous (a loaded machine starting three JVMs); syncLimit
  // decides how soon a frozen peer is dropped.
  for (int i = 0; i < size(); ++i) {
    Server& s = servers_[i];
    RETURN_NOT_OK(MakeDir(s.data_dir));
    RETURN_NOT_OK(WriteFile(s.data_dir + "/myid", std::to_string(i + 1) + "\n"));
    std::string cfg = "tickTime=" + std::to_string(options_.tick_ms) +
                      "\n"
                      "initLimit=100\n"
                      "syncLimit=10\n"
                      "dataDir=" +
                      s.data_dir +
                      "\n"
                      "clientPort=" +
                      std::to_string(s.client_port) +
                      "\n"
                      "clientPortAddress=127.0.0.1\n"
                      "maxSessionTimeout=" +
                      std::to_string(options_.max_session_timeout_ms) +
                      "\n"
                      "admin.enableServer=false\n"
                      "4lw.commands.whitelist=*\n";
    // No server lines for one server: it runs standalone.
    if (size() > 1) {
      for (int j = 0; j < size(); ++j) {
        cfg += "server." + std::to_string(j + 1) + "=127.0.0.1:" +
               std::to_string(servers_[j].quorum_port) + ":" +
               std::to_string(servers_[j].election_port) + "\n";
      }
    }
    RETURN_NOT_OK(WriteFile(s.config_path, cfg));
  }
  return Status::Ok();
}

Status ZooKeeperEnsemble::Launch(int i) {
  Server& s = servers_[i];
  std::string classpath = kZooKeeperJar;
  if (access(kSlf4jSimpleJar, R_OK) == 0) classpath += std::string(":") + kSlf4jSimpleJar;
  ProcessOptions options;
  options.name = "zookeeper" + std::to_string(i);
  // A small heap and the serial collector: three of these share two cores
  // with the test. No perf-data files in /tmp. preAllocSize (KiB) keeps the
  // transaction log files small; fsync stays on (forceSync default yes).
  options.argv = {kJava,
                  "-Xmx128m",
                  "-Xms32m",
                  "-XX:+UseSerialGC",
                  "-XX:-UsePerfData",
                  "-XX:+ExitOnOutOfMemoryError",
                  "-Djava.net.preferIPv4Stack=true",
                  "-Dzookeeper.preAllocSize=4096",
                  "-Dzookeeper.cnxTimeout=1000",
                  "-Dorg.slf4j.simpleLogger.showDateTime=true",
                  "-Dorg.slf4j.simpleLogger.dateTimeFormat=HH:mm:ss.SSS",
                  "-cp",
                  classpath,
                  "org.apache.zookeeper.server.quorum.QuorumPeerMain",
                  s.config_path};
  options.log_path = s.log_path;
  options.cwd = dir_;
  s.process = std::make_unique<Process>(std::move(options));
  s.frozen = false;
  if (Status st = s.process->Start(); !st.ok()) {
    s.process.reset();
    return st;
  }
  return Status::Ok();
}

Status ZooKeeperEnsemble::CheckIndex(int i) const {
  if (i < 0 || i >= size()) {
    return Status::InvalidArgument("no ZooKeeper server " + std::to_string(i));
  }
  return Status::Ok();
}

Status ZooKeeperEnsemble::ExitedWhy(int i) const {
  const Server& s = servers_[i];
  if (s.process == nullptr || s.process->running()) return Status::Ok();
  return Status::Unavailable("ZooKeeper server " + std::to_string(i) + " exited (code " +
                             std::to_string(s.process->exit_code()) +
                             "): " + LogTail(s.log_path, kLogTailLines));
}

std::string ZooKeeperEnsemble::ConnectString() const {
  std::string out;
  for (const Server& s : servers_) {
    if (!out.empty()) out += ",";
    out += "127.0.0.1:" + std::to_string(s.client_port);
  }
  return out;
}

pid_t ZooKeeperEnsemble::pid(int i) const {
  return running(i) ? servers_[i].process->pid() : -1;
}

int ZooKeeperEnsemble::client_port(int i) const { return servers_.at(i).client_port; }

const std::string& ZooKeeperEnsemble::log_path(int i) const { return servers_.at(i).log_path; }

bool ZooKeeperEnsemble::running(int i) const {
  return CheckIndex(i).ok() && servers_[i].process != nullptr && servers_[i].process->running();
}

Status ZooKeeperEnsemble::Kill(int i) {
  RETURN_NOT_OK(CheckIndex(i));
  Server& s = servers_[i];
  if (s.process == nullptr) return Status::Ok();
  s.process->Signal(SIGKILL);  // also ends a stopped (frozen) process
  const int code = s.process->WaitForExit(10000);
  s.process.reset();
  s.frozen = false;
  if (code < 0) return Status::TimedOut("ZooKeeper server " + std::to_string(i) + " lingers");
  return Status::Ok();
}

Status ZooKeeperEnsemble::Stop(int i) {
  RETURN_NOT_OK(CheckIndex(i));
  Server& s = servers_[i];
  if (s.process == nullptr) return Status::Ok();
  if (s.frozen) RETURN_NOT_OK(Thaw(i));  // a stopped JVM would only see SIGTERM later
  s.process->Stop(Process::kDefaultGraceMs);
  s.process.reset();
  return Status::Ok();
}

Status ZooKeeperEnsemble::StartAgain(int i) {
  RETURN_NOT_OK(CheckIndex(i));
  if (servers_[i].process != nullptr && servers_[i].process->running()) {
    return Status::FailedPrecondition("ZooKeeper server " + std::to_string(i) + " is running");
  }
  RETURN_NOT_OK(Launch(i));
  return Status::Ok();
}

Status ZooKeeperEnsemble::Restart(int i) {
  RETURN_NOT_OK(Kill(i));
  RETURN_NOT_OK(StartAgain(i));
  return WaitUntil([&] { return Mode(i, 500) != ZooKeeperMode::kNotServing; },
                   [&] { return ExitedWhy(i); }, kStartTimeoutMs, 50,
                   "ZooKeeper server " + std::to_string(i) + " does not serve again");
}

Status ZooKeeperEnsemble::Freeze(int i) {
  RETURN_NOT_OK(CheckIndex(i));
  Server& s = servers_[i];
  if (s.process == nullptr) return Status::FailedPrecondition("server is not running");
  s.process->Signal(SIGSTOP);
  s.frozen = true;
  return Status::Ok();
}

Status ZooKeeperEnsemble::Thaw(int i) {
  RETURN_NOT_OK(CheckIndex(i));
  Server& s = servers_[i];
  if (s.process == nullptr) return Status::FailedPrecondition("server is not running");
  s.process->Signal(SIGCONT);
  s.frozen = false;
  return Status::Ok();
}

ZooKeeperMode ZooKeeperEnsemble::Mode(int i, int timeout_ms) const {
  if (!CheckIndex(i).ok() || servers_[i].process == nullptr) return ZooKeeperMode::kNotServing;
  return ParseMode(FourLetterWord(servers_[i].client_port, "srvr", timeout_ms));
}

Result<int> ZooKeeperEnsemble::LeaderIndex() const {
  for (int i = 0; i < size(); ++i) {
    if (servers_[i].frozen) continue;  // it cannot answer
    const ZooKeeperMode mode = Mode(i);
    if (mode == ZooKeeperMode::kLeader || mode == ZooKeeperMode::kStandalone) return i;
  }
  return Status::Unavailable("no ZooKeeper server says it leads");
}

Status ZooKeeperEnsemble::WaitForServing(int servers, int timeout_ms) const {
  bool ok = PollUntil(
      [&] {
        int serving = 0;
        bool led = false;
        for (int i = 0; i < size(); ++i) {
          if (servers_[i].frozen) continue;
          const ZooKeeperMode mode = Mode(i, 500);
          if (mode == ZooKeeperMode::kNotServing) continue;
          ++serving;
          led = led || mode == ZooKeeperMode::kLeader || mode == ZooKeeperMode::kStandalone;
        }
        return led && serving >= servers;
      },
      timeout_ms, 50);
  if (ok) return Status::Ok();
  return Status::TimedOut(std::to_string(servers) + " ZooKeeper servers not serving after " +
                          std::to_string(timeout_ms) + " ms");
}

Status ZooKeeperEnsemble::WaitForQuorum(int timeout_ms) const {
  return WaitForServing(size() / 2 + 1, timeout_ms);
}

}  // namespace pact
