#include "tools/bench/bench_sampling.h"

#include <unistd.h>

#include <fstream>
#include <sstream>
#include <string>

namespace pact {

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

}  // namespace pact
