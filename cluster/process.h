// A child process with its output in a log file: started fork-safely from a
// threaded program, signalled, waited for, and killed by the kernel when this
// process dies (so no server outlives a crashed test or bench).
#pragma once

#include <signal.h>
#include <sys/types.h>

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "common/status.h"

namespace pact {

// The user a process runs as (PostgreSQL refuses to run as root).
struct RunAs {
  uid_t uid = 0;
  gid_t gid = 0;
};

struct ProcessOptions {
  std::string name;               // for messages, e.g. "coordinator"
  std::vector<std::string> argv;  // argv[0] is a path: PATH is not searched
  // Set on top of this process's environment.
  std::map<std::string, std::string> env;
  std::string log_path;  // stdout and stderr are appended here
  // What the child gets when the thread that started it ends.
  int death_signal = SIGKILL;
  // Out of the terminal's process group: Ctrl-C reaches only this process,
  // which then stops its children in order.
  bool own_process_group = false;
  std::string cwd;             // empty: this process's
  std::optional<RunAs> user;   // switch to this user (needs root)
};

class Process {
 public:
  explicit Process(ProcessOptions options);
  Process(std::vector<std::string> argv, std::map<std::string, std::string> env,
          std::string log_path);
  ~Process();  // SIGKILL if still running

  Process(const Process&) = delete;
  Process& operator=(const Process&) = delete;

  static constexpr int kDefaultGraceMs = 5000;

  // REQUIRES: called from a thread that outlives the child: the kernel's
  // parent-death signal follows the thread that forked, not the process.
  Status Start();
  void Signal(int sig);
  // SIGTERM, returning at once, so several processes stop together.
  void Terminate();
  // SIGTERM, then SIGKILL after grace_ms. Returns the exit code, 128+signal
  // when killed, or -1 if it never ran.
  int Stop(int grace_ms = kDefaultGraceMs);
  // Waits for the process to end (timeout_ms < 0: however long it takes);
  // returns its exit code, or 128+signal. -1 if it still runs after
  // timeout_ms.
  int WaitForExit(int timeout_ms);
  bool running();
  int exit_code() const { return exit_code_; }  // -1 while it runs
  pid_t pid() const { return pid_; }            // -1 once it ended
  const std::string& name() const { return options_.name; }
  const std::string& log_path() const { return options_.log_path; }

 private:
  // Reaps the child if it ended; true if it is gone.
  bool Reap(bool block);

  const ProcessOptions options_;
  pid_t pid_ = -1;
  int exit_code_ = -1;
};

// What a program printed (stdout and stderr) and its exit status (-1 if it
// did not exit normally).
struct Ran {
  int code = -1;
  std::string out;
};
// Runs argv to its end, e.g. pactctl.
Ran RunToEnd(const std::vector<std::string>& argv);

// The last `lines` lines of a log file, each after `indent`, for failure
// messages.
std::string LogTail(const std::string& path, size_t lines = 15, const std::string& indent = "");

}  // namespace pact
