// pact-bench: a load generator for Pact. Starts its own cluster (a
// coordinator and participant adapters on loopback), drives transfers through
// the client library from N concurrent clients, checks that every transaction
// and every unit of money is accounted for, and reports throughput, latency,
// journal fsyncs per commit and the CPU each Pact process spent. --raw runs
// the same transfer on PostgreSQL with no Pact in the path, for comparison;
// --recovery measures how fast a restarted coordinator finishes its decisions.
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <string>
#include <vector>

#include <boost/program_options.hpp>
#include <glog/logging.h>

#include "tools/bench/bench_accounts.h"
#include "tools/bench/bench_cluster.h"
#include "tools/bench/bench_raw_postgres.h"
#include "tools/bench/bench_recovery.h"
#include "tools/bench/bench_report.h"
#include "tools/bench/bench_runner.h"
#include "tools/bench/bench_sampling.h"

namespace po = boost::program_options;

namespace pact {
namespace {

constexpr int kExitOk = 0;
constexpr int kExitFailed = 1;  // accounting or balance check failed, or no cluster
constexpr int kExitUsage = 2;

// How long the end of a run may take to settle (commits still being
// delivered, rollbacks reaching the adapters). Well under the smoke tests'
// ctest timeout, so a stuck run still reports what is stuck.
constexpr int kQuiesceTimeoutMs = 20000;

const char kUsage[] =
    "Usage: pact-bench [options]\n"
    "\n"
    "Load (default): starts a pact-coordinator and --participants pact-participant\n"
    "adapters on free loopback ports, files in a fresh temp directory, then runs\n"
    "--clients concurrent clients, each with its own pact::Client, doing transfers:\n"
    "--statements UPDATEs debiting random accounts on the first participant and as\n"
    "many crediting on every other one, then commit. After --warmup seconds (not\n"
    "counted) it measures for --duration seconds or --count transactions, then\n"
    "reports tx/s, committed/aborted/errors, latency p50/p95/p99/max, journal fsyncs\n"
    "per committed transaction, CPU seconds of each Pact process, and the\n"
    "coordinator's memory and the journal's size at the start and end of the window.\n"
    "\n"
    "  pact-bench --backend null --clients 16 --duration 5\n"
    "  pact-bench --backend null --clients 16 --duration 5 --tls\n"
    "  pact-bench --backend sqlite --coordinator_flag=--group_commit=false\n"
    "  pact-bench --backend postgresql --pg_conninfo 'dbname=a' --pg_conninfo 'dbname=b'\n"
    "  pact-bench --raw --pg_conninfo 'dbname=a' --pg_conninfo 'dbname=b'\n"
    "  pact-bench --recovery 10000\n"
    "\n"
    "Backends: sqlite (a file per participant), postgresql (a database per\n"
    "participant, one --pg_conninfo each; the accounts table is created there), and\n"
    "null: stores nothing but runs the whole adapter, Thrift and coordinator path,\n"
    "so it measures Pact's own cost, not a database's.\n"
    "\n"
    "Checks (exit 1 when one fails; speed is never asserted): every transaction has\n"
    "one outcome, the coordinator's commit count agrees, nothing is left in flight,\n"
    "and for sqlite/postgresql the sum of all balances is unchanged.\n"
    "Exit status: 0 ok, 1 a check failed or the cluster could not start, 2 bad usage.";

struct BenchOptions {
  std::string backend;
  int participants = 2;
  int statements = 1;
  int64_t accounts = 1000;
  int clients = 8;
  double duration_s = 10;
  int64_t count = 0;
  double warmup_s = 1;
  uint64_t seed = 1;
  bool json = false;
  bool progress = true;
  bool keep = false;
  bool raw = false;
  bool tls = false;
  bool return_at_decision = false;
  int64_t recovery = 0;
  std::string bin_dir;
  std::vector<std::string> coordinator_flags;
  std::vector<std::string> participant_flags;
  std::vector<std::string> pg_conninfo;
};

std::atomic<bool> g_interrupted{false};

// First Ctrl-C (or SIGTERM) ends the measured window early and still reports;
// a second one kills pact-bench, and the kernel then kills the cluster.
void InstallInterruptHandler() {
  struct sigaction action {};
  action.sa_handler = [](int) { g_interrupted = true; };
  action.sa_flags = SA_RESETHAND;
  sigemptyset(&action.sa_mask);
  sigaction(SIGINT, &action, nullptr);
  sigaction(SIGTERM, &action, nullptr);
  // A peer that vanishes mid-write must be an error, not the end of us.
  signal(SIGPIPE, SIG_IGN);
}

int UsageError(const std::string& message) {
  std::cerr << "pact-bench: " << message << "\n(see pact-bench --help)\n";
  return kExitUsage;
}

// Fills `options` from argv; returns an exit code to stop with, or -1 to go on.
int ParseOptions(int argc, char** argv, BenchOptions* o) {
  po::options_description desc("Options");
  // clang-format off
  desc.add_options()
      ("help", "print this help and exit")
      ("backend", po::value(&o->backend),
       "participants' database: sqlite (default), postgresql, or null (no storage: measures "
       "Pact's own cost)")
      ("participants", po::value(&o->participants)->default_value(2),
       "participant adapters (p1..pN); for postgresql, defaults to the number of --pg_conninfo")
      ("statements", po::value(&o->statements)->default_value(1), "UPDATEs per branch")
      ("accounts", po::value(&o->accounts)->default_value(1000),
       "rows in each participant's accounts table, all starting at 1000")
      ("clients", po::value(&o->clients)->default_value(8),
       "concurrent clients, each a thread with its own pact::Client (or libpq connections)")
      ("duration", po::value(&o->duration_s)->default_value(10),
       "seconds measured after the warm-up")
      ("count", po::value(&o->count)->default_value(0),
       "transactions measured after the warm-up, instead of --duration")
      ("warmup", po::value(&o->warmup_s)->default_value(1),
       "seconds run first and left out of every figure")
      ("seed", po::value(&o->seed)->default_value(1), "random seed of the workload")
      ("json", po::bool_switch(&o->json), "print the report as one JSON object")
      ("progress", po::value(&o->progress)->default_value(true),
       "a live line on stderr once a second (tx/s, p50/p99 so far)")
      ("keep", po::bool_switch(&o->keep),
       "keep the temp directory (journal, databases, logs); it is always kept after a failure")
      ("bin_dir", po::value(&o->bin_dir),
       "the directory holding pact-coordinator and pact-participant. Default: pact-bench's "
       "own (build/bin)")
      ("coordinator_flag", po::value(&o->coordinator_flags)->composing(),
       "an extra coordinator option, e.g. --coordinator_flag=--group_commit=false (repeatable)")
      ("participant_flag", po::value(&o->participant_flags)->composing(),
       "an extra participant option (repeatable)")
      ("pg_conninfo", po::value(&o->pg_conninfo)->composing(),
       "postgresql: libpq connection string of one participant's database, once per "
       "participant, each a different database; its accounts table is replaced")
      ("return_at_decision", po::bool_switch(&o->return_at_decision),
       "clients take COMMITTED as soon as the decision is durable (phase two in the "
       "background; ClientOptions::return_at_decision)")
      ("tls", po::bool_switch(&o->tls),
       "every link on mutual TLS (a throwaway CA and certificates in the run directory)")
      ("raw", po::bool_switch(&o->raw),
       "postgresql only: no Pact; each client runs the same transfer itself with PREPARE "
       "TRANSACTION on every database, then COMMIT PREPARED: the work Pact coordinates")
      ("recovery", po::value(&o->recovery)->default_value(0),
       "measure recovery instead of load: a journal with N unfinished COMMIT decisions, null "
       "participants, and the time from coordinator start until all are finished");
  // clang-format on
  po::variables_map vm;
  try {
    po::store(po::parse_command_line(argc, argv, desc), vm);
    po::notify(vm);
  } catch (const std::exception& e) {
    return UsageError(e.what());
  }
  if (vm.count("help")) {
    std::cout << kUsage << "\n\n" << desc << "\n";
    return kExitOk;
  }

  bool backend_given = !o->backend.empty();
  if (!backend_given) o->backend = o->recovery > 0 ? "null" : o->raw ? "postgresql" : "sqlite";
  if (o->backend != "null" && o->backend != "sqlite" && o->backend != "postgresql") {
    return UsageError("--backend must be null, sqlite or postgresql");
  }
  if (o->backend == "postgresql" && !vm["participants"].defaulted() &&
      o->participants != static_cast<int>(o->pg_conninfo.size())) {
    return UsageError("postgresql needs one --pg_conninfo per participant");
  }
  if (o->backend == "postgresql") o->participants = static_cast<int>(o->pg_conninfo.size());
  if (o->backend == "postgresql" && o->pg_conninfo.empty()) {
    return UsageError("postgresql needs --pg_conninfo, once per participant");
  }
  if (o->backend != "postgresql" && !o->pg_conninfo.empty()) {
    return UsageError("--pg_conninfo is for --backend postgresql");
  }
  if (o->raw && o->backend != "postgresql") return UsageError("--raw is for postgresql only");
  if (o->raw && (!o->coordinator_flags.empty() || !o->participant_flags.empty())) {
    return UsageError("--raw starts no Pact process: no --coordinator_flag/--participant_flag");
  }
  if (o->recovery < 0) return UsageError("--recovery must be positive");
  if (o->recovery > 0 && (o->backend != "null" || o->raw)) {
    return UsageError("--recovery runs null participants only");
  }
  if (o->participants < 1 || o->statements < 1 || o->accounts < 1 || o->clients < 1) {
    return UsageError("--participants, --statements, --accounts and --clients must be >= 1");
  }
  if (o->count < 0 || o->warmup_s < 0 || (o->count == 0 && o->duration_s <= 0)) {
    return UsageError("--duration must be > 0 (or --count > 0), --warmup >= 0");
  }
  return -1;
}

// pact-coordinator and pact-participant: beside pact-bench (build/bin, or an
// installed bin directory) unless --bin_dir says otherwise.
Status FindBinaries(const BenchOptions& o, BenchClusterOptions* cluster) {
  std::string dir = o.bin_dir;
  if (dir.empty()) {
    auto self = ExecutableDir();
    if (!self.ok()) return Status::NotFound("cannot tell where pact-bench is; pass --bin_dir");
    dir = *self;
  }
  cluster->coordinator_bin = dir + "/pact-coordinator";
  cluster->participant_bin = dir + "/pact-participant";
  for (const auto& bin : {cluster->coordinator_bin, cluster->participant_bin}) {
    if (access(bin.c_str(), X_OK) != 0) {
      return Status::NotFound(bin +
                              " not found: build the pact-coordinator and pact-participant "
                              "targets, or pass --bin_dir");
    }
  }
  return Status::Ok();
}

// A fresh directory for one run's files; removed at the end unless kept.
class RunDir {
 public:
  static Result<std::unique_ptr<RunDir>> Create() {
    const char* tmp = std::getenv("TMPDIR");
    std::string pattern = std::string(tmp && *tmp ? tmp : "/tmp") + "/pact-bench-XXXXXX";
    if (mkdtemp(pattern.data()) == nullptr) return Status::IoError("cannot create " + pattern);
    return std::unique_ptr<RunDir>(new RunDir(pattern));
  }
  ~RunDir() {
    if (keep_) {
      std::cerr << "pact-bench: files kept in " << path_ << "\n";
      return;
    }
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
  }
  const std::string& path() const { return path_; }
  void Keep() { keep_ = true; }

 private:
  explicit RunDir(std::string path) : path_(std::move(path)) {}
  const std::string path_;
  bool keep_ = false;
};

LoadOptions MakeLoadOptions(const BenchOptions& o) {
  LoadOptions load;
  load.clients = o.clients;
  load.warmup_s = o.warmup_s;
  load.duration_s = o.duration_s;
  load.count = o.count;
  load.workload = {o.participants, o.statements, o.accounts};
  load.seed = o.seed;
  load.progress = o.progress;
  load.interrupt = &g_interrupted;
  return load;
}

LoadReport MakeReport(const BenchOptions& o, const std::string& mode) {
  LoadReport r;
  r.mode = mode;
  r.backend = o.backend;
  if (mode == "raw") {
    r.backend_label =
        "raw PostgreSQL 2PC, no Pact in the path (each client: BEGIN, UPDATE, "
        "PREPARE TRANSACTION on each database, then COMMIT PREPARED on each)";
  } else if (o.backend == "null") {
    r.backend_label = "Pact, backend null (no storage: measures Pact's own cost)";
  } else {
    r.backend_label = "Pact, backend " + o.backend;
  }
  if (mode != "raw" && o.tls) r.backend_label += ", mutual TLS on every link";
  if (mode != "raw" && o.return_at_decision) r.backend_label += ", commit returns at the decision";
  r.clients = o.clients;
  r.participants = o.participants;
  r.statements = o.statements;
  r.accounts = o.accounts;
  r.warmup_s = o.warmup_s;
  r.coordinator_flags = o.coordinator_flags;
  return r;
}

void AddLoadResult(const LoadResult& result, LoadReport* r) {
  r->measured = result.measured;
  r->latency = result.latency;
  r->measured_seconds = result.measured_seconds;
  r->failures_by_code = result.failures_by_code;
  r->failure_examples = result.failure_examples;
  r->interrupted = result.interrupted;
  if (!result.measured.AccountedFor() || !result.total.AccountedFor()) {
    r->problems.push_back("attempted != committed + aborted + errors");
  }
  // Transfers never abort on their own: a run in which none committed
  // measured nothing (e.g. a database left over from another run).
  if (result.measured.attempted > 0 && result.measured.committed == 0) {
    r->problems.push_back("no transaction committed");
  }
}

// --- the data -------------------------------------------------------------

Status CreateAccounts(const BenchOptions& o, const BenchCluster* cluster) {
  for (int i = 0; i < o.participants; ++i) {
    if (o.backend == "sqlite") {
      RETURN_NOT_OK(CreateSqliteAccounts(cluster->sqlite_path(i), o.accounts));
    } else if (o.backend == "postgresql") {
      RETURN_NOT_OK(CreatePostgresAccounts(o.pg_conninfo[i], o.accounts));
    }
  }
  return Status::Ok();
}

Result<int64_t> SumBalances(const BenchOptions& o, const BenchCluster* cluster) {
  int64_t sum = 0;
  for (int i = 0; i < o.participants; ++i) {
    int64_t one = 0;
    if (o.backend == "sqlite") {
      ASSIGN_OR_RETURN(one, SumSqliteBalances(cluster->sqlite_path(i)));
    } else {
      ASSIGN_OR_RETURN(one, SumPostgresBalances(o.pg_conninfo[i]));
    }
    sum += one;
  }
  return sum;
}

// Prepared transactions left in any of the databases: each holds locks and
// is money in limbo.
void CheckNoPreparedLeft(const BenchOptions& o, LoadReport* r) {
  for (int i = 0; i < o.participants; ++i) {
    auto prepared = CountPostgresPrepared(o.pg_conninfo[i]);
    if (!prepared.ok()) {
      r->problems.push_back("cannot list prepared transactions: " + prepared.status().ToString());
    } else if (*prepared != 0) {
      r->problems.push_back(std::to_string(*prepared) + " prepared transaction(s) left in " +
                            o.pg_conninfo[i]);
    }
  }
}

void CheckBalances(int64_t before, const Result<int64_t>& after, LoadReport* r) {
  if (!after.ok()) {
    r->problems.push_back("cannot sum the balances: " + after.status().ToString());
    return;
  }
  r->balance_sum = StartEnd{before, *after};
  if (*after != before) {
    r->problems.push_back("the sum of all balances changed from " + std::to_string(before) +
                          " to " + std::to_string(*after));
  }
}

ProcessSample SampleSelf() {
  auto self = SampleProcess(getpid());
  return self.ok() ? *self : ProcessSample{};
}

// --- Pact mode -------------------------------------------------------------

// What the window's edges are compared by.
struct WindowSample {
  std::map<std::string, int64_t> stats;  // empty if the coordinator did not answer
  std::vector<ProcessSample> processes;  // same order as cluster.processes()
  ProcessSample self;
  int64_t journal_bytes = 0;
};

WindowSample SampleWindow(BenchCluster& cluster) {
  WindowSample s;
  if (auto stats = cluster.CoordinatorStats(); stats.ok()) s.stats = *stats;
  for (const Process* p : cluster.processes()) {
    auto sample = SampleProcess(p->pid());
    s.processes.push_back(sample.ok() ? *sample : ProcessSample{});
  }
  s.self = SampleSelf();
  s.journal_bytes = cluster.JournalBytes();
  return s;
}

void AddWindowFigures(const BenchCluster& cluster, const WindowSample& start,
                      const WindowSample& end, LoadReport* r) {
  auto delta = [&](const char* key) -> std::optional<int64_t> {
    if (!start.stats.count(key) || !end.stats.count(key)) return std::nullopt;
    return end.stats.at(key) - start.stats.at(key);
  };
  r->fsync_batches = delta("journal_fsync_batches");
  r->coordinator_commits = delta("txns_committed");
  if (r->fsync_batches && r->coordinator_commits && *r->coordinator_commits > 0) {
    r->fsyncs_per_commit = static_cast<double>(*r->fsync_batches) / *r->coordinator_commits;
  }
  auto processes = cluster.processes();
  for (size_t i = 0; i < processes.size() && i < start.processes.size(); ++i) {
    r->cpu.push_back(
        {processes[i]->name(), end.processes[i].cpu_seconds - start.processes[i].cpu_seconds});
  }
  r->cpu.push_back({"pact-bench", end.self.cpu_seconds - start.self.cpu_seconds});
  if (!start.processes.empty()) {
    r->coordinator_rss_bytes = StartEnd{start.processes[0].rss_bytes, end.processes[0].rss_bytes};
  }
  r->journal_bytes = StartEnd{start.journal_bytes, end.journal_bytes};
}

// After the run: everything settled, the coordinator's count agrees with
// ours, nothing in doubt. An error from Commit may still have committed,
// hence a range.
void CheckCoordinatorAgrees(BenchCluster& cluster, const Tally& total, LoadReport* r) {
  Status settled = cluster.WaitQuiescent(kQuiesceTimeoutMs);
  if (!settled.ok()) r->problems.push_back(settled.ToString());
  auto stats = cluster.CoordinatorStats();
  if (!stats.ok() || !stats->count("txns_committed")) {
    r->problems.push_back("the coordinator did not report txns_committed");
    return;
  }
  int64_t committed = stats->at("txns_committed");
  if (committed < total.committed || committed > total.committed + total.errors) {
    r->problems.push_back("the coordinator committed " + std::to_string(committed) +
                          " transactions; the clients saw " + std::to_string(total.committed) +
                          " commits and " + std::to_string(total.errors) + " errors");
  }
}

int RunPact(const BenchOptions& o, BenchClusterOptions cluster_options, RunDir& dir) {
  LoadReport report = MakeReport(o, "pact");
  cluster_options.dir = dir.path();
  cluster_options.backend = o.backend;
  cluster_options.participants = o.participants;
  cluster_options.pg_conninfo = o.pg_conninfo;
  cluster_options.coordinator_flags = o.coordinator_flags;
  cluster_options.participant_flags = o.participant_flags;
  cluster_options.tls = o.tls;
  auto cluster = BenchCluster::Create(cluster_options);
  Status st = cluster.ok() ? CreateAccounts(o, cluster->get()) : cluster.status();
  int64_t balance_before = 0;
  if (st.ok() && o.backend != "null") {
    auto sum = SumBalances(o, cluster->get());
    st = sum.status();
    if (sum.ok()) balance_before = *sum;
  }
  if (st.ok()) st = (*cluster)->Start();
  if (!st.ok()) {
    std::cerr << "pact-bench: cannot start the cluster: " << st.ToString() << "\n";
    dir.Keep();
    return kExitFailed;
  }
  BenchCluster& c = **cluster;

  WindowSample start, end;
  std::vector<std::string> names = c.participant_names();
  bool expect_one_row = o.backend != "null";
  auto result = RunLoad(
      MakeLoadOptions(o),
      [&](int) {
        ClientOptions client;
        client.credentials = c.credentials();
        client.return_at_decision = o.return_at_decision;
        return PactTransferDriver::Create(c.coordinator_address(), names, expect_one_row, client);
      },
      [&] { start = SampleWindow(c); }, [&] { end = SampleWindow(c); });
  if (!result.ok()) {
    std::cerr << "pact-bench: " << result.status().ToString() << "\n";
    dir.Keep();
    return kExitFailed;
  }
  AddLoadResult(*result, &report);
  AddWindowFigures(c, start, end, &report);
  CheckCoordinatorAgrees(c, result->total, &report);

  c.Stop();
  for (const Process* p : c.processes()) {
    if (p->exit_code() != 0) {
      report.problems.push_back(p->name() + " exited with code " + std::to_string(p->exit_code()) +
                                " (log: " + p->log_path() + ")");
    }
  }
  if (o.backend == "null") {
    report.notes.push_back("the null backend stores nothing: no balance check");
  } else {
    CheckBalances(balance_before, SumBalances(o, &c), &report);
  }
  if (o.backend == "postgresql") CheckNoPreparedLeft(o, &report);
  PrintLoadReport(report, o.json, std::cout);
  if (!report.ok()) dir.Keep();
  return report.ok() ? kExitOk : kExitFailed;
}

// --- raw mode --------------------------------------------------------------

int RunRaw(const BenchOptions& o) {
  LoadReport report = MakeReport(o, "raw");
  report.notes.push_back(
      "gids are raw-<pid>-<client>-<n>-<database>: one gid per database, as "
      "PostgreSQL requires gids unique across its whole cluster");
  Status st;
  for (const auto& conninfo : o.pg_conninfo) {
    if (st.ok()) st = CreatePostgresAccounts(conninfo, o.accounts);
  }
  auto before = st.ok() ? SumBalances(o, nullptr) : Result<int64_t>(st);
  if (!before.ok()) {
    std::cerr << "pact-bench: " << before.status().ToString() << "\n";
    return kExitFailed;
  }
  ProcessSample start, end;
  const std::string run = std::to_string(getpid());
  auto result = RunLoad(
      MakeLoadOptions(o),
      [&](int client) { return RawPostgresDriver::Create(o.pg_conninfo, run, client); },
      [&] { start = SampleSelf(); }, [&] { end = SampleSelf(); });
  if (!result.ok()) {
    std::cerr << "pact-bench: " << result.status().ToString() << "\n";
    return kExitFailed;
  }
  AddLoadResult(*result, &report);
  report.cpu.push_back({"pact-bench", end.cpu_seconds - start.cpu_seconds});
  CheckNoPreparedLeft(o, &report);
  CheckBalances(*before, SumBalances(o, nullptr), &report);
  PrintLoadReport(report, o.json, std::cout);
  return report.ok() ? kExitOk : kExitFailed;
}

// --- recovery mode ---------------------------------------------------------

int RunRecovery(const BenchOptions& o, BenchClusterOptions cluster_options, RunDir& dir) {
  cluster_options.dir = dir.path();
  cluster_options.backend = "null";
  cluster_options.participants = o.participants;
  cluster_options.coordinator_flags = o.coordinator_flags;
  cluster_options.participant_flags = o.participant_flags;
  auto report = MeasureRecovery(cluster_options, o.recovery);
  if (!report.ok()) {
    std::cerr << "pact-bench: recovery: " << report.status().ToString() << "\n";
    dir.Keep();
    return kExitFailed;
  }
  PrintRecoveryReport(*report, o.json, std::cout);
  if (!report->ok()) dir.Keep();
  return report->ok() ? kExitOk : kExitFailed;
}

int Main(int argc, char** argv) {
  BenchOptions o;
  if (int code = ParseOptions(argc, argv, &o); code >= 0) return code;
  // The journal (used directly by --recovery) logs through glog; only its
  // warnings matter here.
  FLAGS_logtostderr = true;
  FLAGS_minloglevel = google::GLOG_WARNING;
  google::InitGoogleLogging(argv[0]);
  InstallInterruptHandler();
  if (o.raw) return RunRaw(o);

  BenchClusterOptions cluster_options;
  if (Status st = FindBinaries(o, &cluster_options); !st.ok()) {
    std::cerr << "pact-bench: " << st.ToString() << "\n";
    return kExitFailed;
  }
  auto dir = RunDir::Create();
  if (!dir.ok()) {
    std::cerr << "pact-bench: " << dir.status().ToString() << "\n";
    return kExitFailed;
  }
  if (o.keep) (*dir)->Keep();
  return o.recovery > 0 ? RunRecovery(o, cluster_options, **dir)
                        : RunPact(o, cluster_options, **dir);
}

}  // namespace
}  // namespace pact

int main(int argc, char** argv) { return pact::Main(argc, argv); }
