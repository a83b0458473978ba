#include "cluster/process.h"

#include <fcntl.h>
#include <grp.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <deque>
#include <fstream>
#include <thread>

extern char** environ;

namespace pact {
namespace {

// This process's environment with `overrides` set, as "NAME=value" strings.
std::vector<std::string> Environment(const std::map<std::string, std::string>& overrides) {
  std::vector<std::string> out;
  for (char** e = environ; *e != nullptr; ++e) {
    std::string entry = *e;
    if (overrides.count(entry.substr(0, entry.find('='))) == 0) out.push_back(entry);
  }
  for (const auto& [name, value] : overrides) out.push_back(name + "=" + value);
  return out;
}

std::vector<char*> Pointers(const std::vector<std::string>& strings) {
  std::vector<char*> out;
  for (const std::string& s : strings) out.push_back(const_cast<char*>(s.c_str()));
  out.push_back(nullptr);
  return out;
}

}  // namespace

Process::Process(ProcessOptions options) : options_(std::move(options)) {}

namespace {

ProcessOptions Plain(std::vector<std::string> argv, std::map<std::string, std::string> env,
                     std::string log_path) {
  ProcessOptions options;
  options.argv = std::move(argv);
  options.env = std::move(env);
  options.log_path = std::move(log_path);
  return options;
}

}  // namespace

Process::Process(std::vector<std::string> argv, std::map<std::string, std::string> env,
                 std::string log_path)
    : Process(Plain(std::move(argv), std::move(env), std::move(log_path))) {}

Process::~Process() {
  if (running()) {
    Signal(SIGKILL);
    WaitForExit(5000);
  }
}

Status Process::Start() {
  if (options_.argv.empty()) return Status::InvalidArgument("no program to start");
  // Everything the child needs is built before fork: between fork and exec
  // a threaded program may only make async-signal-safe calls (no malloc, no
  // setenv: another thread may have held their lock at the fork).
  const std::vector<std::string> env = Environment(options_.env);
  std::vector<char*> argv = Pointers(options_.argv);
  std::vector<char*> envp = Pointers(env);
  const char* cwd = options_.cwd.empty() ? nullptr : options_.cwd.c_str();
  int log = open(options_.log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (log < 0) {
    return Status::IoError("cannot open " + options_.log_path + ": " + std::strerror(errno));
  }
  if (options_.user && fchown(log, options_.user->uid, options_.user->gid) != 0) {
    close(log);
    return Status::IoError("cannot chown " + options_.log_path + ": " + std::strerror(errno));
  }
  const pid_t parent = getpid();
  const pid_t pid = fork();
  if (pid < 0) {
    close(log);
    return Status::Internal(std::string("fork: ") + std::strerror(errno));
  }
  if (pid == 0) {
    if (options_.user && (setgroups(0, nullptr) != 0 || setgid(options_.user->gid) != 0 ||
                          setuid(options_.user->uid) != 0)) {
      _exit(126);
    }
    // After setuid, which clears the parent-death signal.
    prctl(PR_SET_PDEATHSIG, options_.death_signal);
    if (getppid() != parent) _exit(127);  // the parent died before prctl
    if (options_.own_process_group) setpgid(0, 0);
    dup2(log, STDOUT_FILENO);
    dup2(log, STDERR_FILENO);
    // No descriptor of ours (connections, listening sockets) lives on in it.
#ifdef SYS_close_range
    syscall(SYS_close_range, 3, ~0U, 0);
#else
    for (int fd = 3; fd < 1024; ++fd) close(fd);
#endif
    if (cwd != nullptr && chdir(cwd) != 0) _exit(126);
    execve(argv[0], argv.data(), envp.data());
    _exit(127);
  }
  close(log);
  pid_ = pid;
  exit_code_ = -1;
  return Status::Ok();
}

bool Process::Reap(bool block) {
  if (pid_ <= 0) return true;
  int status = 0;
  const pid_t r = waitpid(pid_, &status, block ? 0 : WNOHANG);
  if (r == pid_) {
    exit_code_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  } else if (!(r < 0 && errno == ECHILD)) {
    return false;
  } else {
    exit_code_ = 0;  // reaped elsewhere: its status is lost
  }
  pid_ = -1;
  return true;
}

void Process::Signal(int sig) {
  if (pid_ > 0) kill(pid_, sig);
}

void Process::Terminate() {
  if (running()) kill(pid_, SIGTERM);
}

int Process::Stop(int grace_ms) {
  if (!running()) return exit_code_;
  kill(pid_, SIGTERM);
  if (WaitForExit(grace_ms) >= 0) return exit_code_;
  kill(pid_, SIGKILL);
  Reap(/*block=*/true);
  return exit_code_;
}

int Process::WaitForExit(int timeout_ms) {
  if (timeout_ms < 0) {
    Reap(/*block=*/true);
    return exit_code_;
  }
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  while (!Reap(/*block=*/false)) {
    if (std::chrono::steady_clock::now() > deadline) return -1;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return exit_code_;
}

bool Process::running() { return !Reap(/*block=*/false); }

Ran RunToEnd(const std::vector<std::string>& argv) {
  std::string cmd;
  for (const auto& a : argv) cmd += (cmd.empty() ? "'" : " '") + a + "'";
  cmd += " 2>&1";
  Ran ran;
  FILE* pipe = popen(cmd.c_str(), "r");
  if (pipe == nullptr) return ran;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof(buf), pipe)) > 0) ran.out.append(buf, n);
  int status = pclose(pipe);
  ran.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return ran;
}

std::string LogTail(const std::string& path, size_t lines, const std::string& indent) {
  std::ifstream in(path);
  std::deque<std::string> last;
  std::string line;
  while (std::getline(in, line)) {
    last.push_back(line);
    if (last.size() > lines) last.pop_front();
  }
  std::string out;
  for (const auto& l : last) out += indent + l + "\n";
  return out;
}

}  // namespace pact
