// What every Pact binary does at start: options from the command line and an
// INI config file, glog set up, and a clean wait for SIGINT/SIGTERM.
#pragma once

#include <string>

#include <boost/program_options.hpp>

namespace pact {

// Parses argv plus, when --config names one, an INI file (the command line
// wins). Adds --help, --config and --crash_point to `desc` and arms the crash
// point (or PACT_CRASH_POINT). Prints help and exits 0 on --help; prints the
// error and exits 2 on a bad option.
boost::program_options::variables_map ParseCommandLine(
    int argc, char** argv, boost::program_options::options_description& desc,
    const std::string& usage);

// Logs to stderr unless GLOG_log_dir is set.
void InitLogging(const char* argv0);

// Blocks SIGINT and SIGTERM in this and every thread started later, so that
// WaitForStopSignal receives them. Call before starting threads.
void BlockStopSignals();
// Returns the signal number once SIGINT or SIGTERM arrives.
int WaitForStopSignal();
// True (and the signal taken) if SIGINT or SIGTERM arrived and waits: for a
// loop that cannot sit in WaitForStopSignal.
bool TakeStopSignal();

}  // namespace pact
