#include "tools/bench/bench_process.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <deque>
#include <fstream>
#include <sstream>
#include <thread>

namespace pact {

Result<int> FreeLoopbackPort() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return Status::Internal("socket() failed");
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(addr);
  bool ok = bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0 &&
            getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0;
  close(fd);
  if (!ok) return Status::Internal("no free loopback port");
  return static_cast<int>(ntohs(addr.sin_port));
}

ChildProcess::ChildProcess(std::string name, std::vector<std::string> argv, std::string log_path)
    : name_(std::move(name)), argv_(std::move(argv)), log_path_(std::move(log_path)) {}

ChildProcess::~ChildProcess() { Stop(); }

Status ChildProcess::Start() {
  // Everything the child needs is built before fork: only async-signal-safe
  // calls may run between fork and exec in a threaded program.
  std::vector<char*> args;
  for (const auto& a : argv_) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  int log = open(log_path_.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (log < 0) return Status::IoError("cannot open " + log_path_);
  pid_t parent = getpid();
  pid_t pid = fork();
  if (pid < 0) {
    close(log);
    return Status::Internal("fork failed");
  }
  if (pid == 0) {
    // Never outlive pact-bench, even when it is killed.
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(127);
    // Out of the terminal's process group: Ctrl-C ends the run through
    // pact-bench, which then stops the cluster in order and still reports.
    setpgid(0, 0);
    dup2(log, STDOUT_FILENO);
    dup2(log, STDERR_FILENO);
    execv(args[0], args.data());
    _exit(127);
  }
  close(log);
  pid_ = pid;
  exit_code_ = -1;
  return Status::Ok();
}

bool ChildProcess::Reap(bool block) {
  if (pid_ <= 0) return true;
  int status = 0;
  pid_t r = waitpid(pid_, &status, block ? 0 : WNOHANG);
  if (r != pid_) return false;
  exit_code_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  pid_ = -1;
  return true;
}

bool ChildProcess::Running() { return !Reap(/*block=*/false); }

void ChildProcess::Terminate() {
  if (Running()) kill(pid_, SIGTERM);
}

int ChildProcess::Stop(int grace_ms) {
  if (!Running()) return exit_code_;
  kill(pid_, SIGTERM);
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(grace_ms);
  while (std::chrono::steady_clock::now() < deadline) {
    if (Reap(/*block=*/false)) return exit_code_;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  kill(pid_, SIGKILL);
  Reap(/*block=*/true);
  return exit_code_;
}

Result<ProcessSample> SampleProcess(pid_t pid) {
  ProcessSample sample;
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  if (!std::getline(stat, line)) return Status::NotFound("no process " + std::to_string(pid));
  // The command name is in parentheses and may hold spaces: count fields
  // from the last ')'. utime and stime are fields 14 and 15.
  size_t close_paren = line.rfind(')');
  if (close_paren == std::string::npos) return Status::Internal("bad /proc stat line");
  std::istringstream fields(line.substr(close_paren + 2));
  std::string field;
  int64_t utime = 0, stime = 0;
  for (int i = 3; i <= 15 && fields >> field; ++i) {
    if (i == 14) utime = std::stoll(field);
    if (i == 15) stime = std::stoll(field);
  }
  sample.cpu_seconds = static_cast<double>(utime + stime) / sysconf(_SC_CLK_TCK);

  std::ifstream status("/proc/" + std::to_string(pid) + "/status");
  while (std::getline(status, line)) {
    if (line.rfind("VmRSS:", 0) == 0) {
      sample.rss_bytes = std::stoll(line.substr(6)) * 1024;  // reported in kB
      break;
    }
  }
  return sample;
}

std::string TailOfFile(const std::string& path, int lines) {
  std::ifstream in(path);
  std::deque<std::string> last;
  std::string line;
  while (std::getline(in, line)) {
    last.push_back(line);
    if (static_cast<int>(last.size()) > lines) last.pop_front();
  }
  std::string out;
  for (const auto& l : last) out += "    " + l + "\n";
  return out;
}

}  // namespace pact
