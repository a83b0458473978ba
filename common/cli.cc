#include "common/cli.h"

#include <csignal>
#include <cstdlib>
#include <fstream>
#include <iostream>

#include <glog/logging.h>

#include "common/crash_point.h"

namespace po = boost::program_options;

namespace pact {

po::variables_map ParseCommandLine(int argc, char** argv, po::options_description& desc,
                                   const std::string& usage) {
  std::string crash_point;
  desc.add_options()("help,h", "print this help and exit")(
      "config", po::value<std::string>(), "INI file with any of these options (name = value)")(
      "crash_point", po::value(&crash_point)->default_value(""),
      "testing: name[:count] of a crash point to _exit at (also PACT_CRASH_POINT)");
  po::variables_map vm;
  try {
    po::store(po::parse_command_line(argc, argv, desc), vm);
    if (vm.count("config")) {
      const std::string path = vm["config"].as<std::string>();
      std::ifstream file(path);
      if (!file) {
        std::cerr << argv[0] << ": cannot read config file " << path << "\n";
        std::exit(2);
      }
      po::store(po::parse_config_file(file, desc), vm);
    }
    if (vm.count("help")) {
      std::cout << usage << "\n\n" << desc << "\n";
      std::exit(0);
    }
    po::notify(vm);
  } catch (const po::error& e) {
    std::cerr << argv[0] << ": " << e.what() << " (see --help)\n";
    std::exit(2);
  }
  Status armed = crash_point.empty() ? ArmCrashPointFromEnv() : ArmCrashPoint(crash_point);
  if (!armed.ok()) {
    std::cerr << argv[0] << ": " << armed.ToString() << "\n";
    std::exit(2);
  }
  return vm;
}

namespace {

sigset_t StopSignals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  return set;
}

}  // namespace

void InitLogging(const char* argv0) {
  if (std::getenv("GLOG_log_dir") == nullptr) FLAGS_logtostderr = true;
  google::InitGoogleLogging(argv0);
}

void BlockStopSignals() {
  sigset_t set = StopSignals();
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  // A peer that vanishes mid-write must be an error, not the end of us.
  std::signal(SIGPIPE, SIG_IGN);
}

int WaitForStopSignal() {
  sigset_t set = StopSignals();
  int sig = 0;
  sigwait(&set, &sig);
  return sig;
}

bool TakeStopSignal() {
  sigset_t set = StopSignals();
  timespec now{0, 0};
  return sigtimedwait(&set, nullptr, &now) > 0;
}

}  // namespace pact
