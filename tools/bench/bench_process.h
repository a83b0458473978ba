// The Pact processes pact-bench starts: spawned with their output in a log
// file, stopped politely (SIGTERM, then SIGKILL), killed by the kernel if
// pact-bench itself dies, and sampled from /proc for CPU time and memory.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <vector>

#include "common/status.h"

namespace pact {

// A loopback port that is free right now (the kernel picks it).
Result<int> FreeLoopbackPort();

class ChildProcess {
 public:
  ChildProcess(std::string name, std::vector<std::string> argv, std::string log_path);
  ~ChildProcess();  // Stop(kDefaultGraceMs) if still running

  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;

  static constexpr int kDefaultGraceMs = 5000;

  // REQUIRES: called from the thread that outlives the child (the kernel's
  // parent-death signal follows the thread that forked, not the process).
  Status Start();
  // Sends SIGTERM and returns at once, so several processes stop together.
  void Terminate();
  // SIGTERM, then SIGKILL after grace_ms. Returns the exit code, 128+signal
  // when killed, or -1 if it was not running.
  int Stop(int grace_ms = kDefaultGraceMs);
  // False once it has exited; records the exit code.
  bool Running();
  int exit_code() const { return exit_code_; }

  const std::string& name() const { return name_; }
  const std::string& log_path() const { return log_path_; }
  pid_t pid() const { return pid_; }

 private:
  bool Reap(bool block);

  const std::string name_;
  const std::vector<std::string> argv_;
  const std::string log_path_;
  pid_t pid_ = -1;
  int exit_code_ = -1;
};

// What the kernel says about a process at one moment.
struct ProcessSample {
  double cpu_seconds = 0;  // user + system, since it started
  int64_t rss_bytes = 0;   // resident set (VmRSS)
};

Result<ProcessSample> SampleProcess(pid_t pid);

// The last `lines` lines of a file, for error messages about a process that
// did not come up.
std::string TailOfFile(const std::string& path, int lines);

}  // namespace pact
