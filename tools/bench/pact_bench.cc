// pact-bench: a load generator for Pact. Starts its own cluster (a
// coordinator and participant adapters on loopback), drives transfers through
// the client library from N concurrent clients, checks that every transaction
// and every unit of money is accounted for, and reports throughput, latency,
// journal fsyncs per commit and the CPU each Pact process spent. --raw runs
// the same transfer on PostgreSQL with no Pact in the path, for comparison;
// --recovery measures how fast a restarted coordinator finishes its decisions;
// --ha runs the coordinators as highly available shards on a ZooKeeper
// ensemble, and --failovers kills the active again and again under the load.
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <thread>
#include <filesystem>
#include <iostream>
#include <string>
#include <vector>

#include <boost/program_options.hpp>
#include <glog/logging.h>

#include "cluster/wait_until.h"
#include "cluster/zookeeper_ensemble.h"
#include "tools/bench/bench_accounts.h"
#include "tools/bench/bench_cluster.h"
#include "tools/bench/bench_failover.h"
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
// The failover load runs until the kills are done; this only bounds it.
constexpr double kFailoverLoadMaxSeconds = 24 * 3600;

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
    "  pact-bench --ha --backend null --clients 64 --duration 10\n"
    "  pact-bench --ha --shards 4 --backend null --clients 64 --duration 10\n"
    "  pact-bench --ha --failovers 20 --zk_session_timeout_ms=2000 --clients 8\n"
    "\n"
    "Backends: sqlite (a file per participant), postgresql (a database per\n"
    "participant, one --pg_conninfo each; the accounts table is created there), and\n"
    "null: stores nothing but runs the whole adapter, Thrift and coordinator path,\n"
    "so it measures Pact's own cost, not a database's.\n"
    "\n"
    "Highly available (--ha): a three-node ZooKeeper ensemble on loopback, and each\n"
    "of --shards shards is two coordinators of one name (an active and a standby,\n"
    "elected in ZooKeeper, decisions kept there instead of the SQLite journal). By\n"
    "default (--shard_routing zk) one set of --participants adapters serves every\n"
    "shard and clients connect to zk://<ensemble>/pact, spreading their Begins over\n"
    "the shard map; --shard_routing independent gives each shard its own adapters\n"
    "and sends client i to shard i mod --shards. The same\n"
    "workload and report, so that runs with and without --ha compare the journal\n"
    "with ZooKeeper. --failovers N: the same load on one shard while pact-bench\n"
    "kills -9 the active N times; per kill, the time until the standby serves and\n"
    "until a transaction begun after the kill commits, then the killed one is\n"
    "started again as the standby.\n"
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
  bool ha = false;
  int shards = 1;
  int failovers = 0;
  int failover_interval_ms = 1000;
  int zk_session_timeout_ms = 0;
  std::string shard_routing;
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
       "participants, and the time from coordinator start until all are finished")
      ("ha", po::bool_switch(&o->ha),
       "highly available shards: a three-node ZooKeeper ensemble on loopback, and per shard an "
       "active and a standby coordinator whose decisions live in ZooKeeper")
      ("shards", po::value(&o->shards)->default_value(1),
       "--ha: shards, each its own coordinator name and pair of coordinators; --shard_routing "
       "says whose participants they use and how clients reach them")
      ("failovers", po::value(&o->failovers)->default_value(0),
       "--ha: instead of --duration, kill -9 the active this many times under the load, "
       "restarting each killed one as the standby, and report the take-over times")
      ("failover_interval_ms", po::value(&o->failover_interval_ms)->default_value(1000),
       "--failovers: load between the killed one standing by again and the next kill")
      ("shard_routing", po::value(&o->shard_routing),
       "--ha: zk: one set of participants serves every shard and each client connects to "
       "zk://<ensemble>/pact, spreading its Begins over the shard map; independent: each shard "
       "has participants of its own, and client i uses shard i mod --shards (given its "
       "coordinators as host:port,host:port). Default: zk for several shards, independent "
       "for one")
      ("zk_session_timeout_ms", po::value(&o->zk_session_timeout_ms)->default_value(0),
       "--ha: the coordinators' ZooKeeper session timeout (0: the coordinator's default)");
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
  if (!o->ha && (!vm["shards"].defaulted() || o->failovers != 0 ||
                 o->zk_session_timeout_ms != 0 || vm.count("shard_routing"))) {
    return UsageError(
        "--shards, --shard_routing, --failovers and --zk_session_timeout_ms are for --ha");
  }
  if (o->ha && (o->raw || o->recovery > 0)) {
    return UsageError("--ha measures the load: no --raw or --recovery");
  }
  if (o->shards < 1 || o->failovers < 0 || o->failover_interval_ms < 0 ||
      o->zk_session_timeout_ms < 0) {
    return UsageError("--shards must be >= 1; --failovers, --failover_interval_ms and "
                      "--zk_session_timeout_ms >= 0");
  }
  if (o->failovers > 0 && o->shards != 1) return UsageError("--failovers runs one shard");
  if (o->shard_routing.empty()) o->shard_routing = o->shards > 1 ? "zk" : "independent";
  if (o->shard_routing != "zk" && o->shard_routing != "independent") {
    return UsageError("--shard_routing must be zk or independent");
  }
  if (o->shards > 1 && o->backend == "postgresql") {
    return UsageError("--shards > 1 runs null or sqlite participants");
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
  if (mode != "raw" && o.ha) {
    r.backend_label += "; highly available: " + std::to_string(o.shards) +
                       (o.shards == 1 ? " shard" : " shards") +
                       " of two coordinators (active + standby), decisions in a three-node "
                       "ZooKeeper ensemble on loopback";
    r.decisions_in = "zookeeper";
    if (o.shards > 1 || o.shard_routing == "zk") {
      r.backend_label += o.shard_routing == "zk"
                             ? "; one set of participants serves every shard, clients connect "
                               "to zk://.../pact and spread their Begins over the shard map"
                             : "; each shard has its own participants, client i uses shard i "
                               "mod shards";
    }
  }
  r.shards = o.shards;
  r.zk_session_timeout_ms = o.zk_session_timeout_ms;
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

// Each participant of `cluster` (a shard may have none of its own), or of
// the options when there is no cluster (raw mode).
int ParticipantsOf(const BenchOptions& o, const BenchCluster* cluster) {
  return cluster ? static_cast<int>(cluster->participant_names().size()) : o.participants;
}

Status CreateAccounts(const BenchOptions& o, const BenchCluster* cluster) {
  for (int i = 0; i < ParticipantsOf(o, cluster); ++i) {
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
  for (int i = 0; i < ParticipantsOf(o, cluster); ++i) {
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

// What a run measures: one shard (a coordinator, or with --ha an active and a
// standby) per BenchCluster, each with its own participants, and with --ha
// the ZooKeeper ensemble they share.
struct Deployment {
  std::unique_ptr<ZooKeeperEnsemble> zookeeper;
  std::vector<std::unique_ptr<BenchCluster>> shards;
  // Non-empty (zk://.../pact): the shards share shards[0]'s participants
  // and clients find every shard there.
  std::string shard_map;
};

// --ha over a shard map: one set of participants (shards[0]'s) serves every shard.
bool SharesParticipants(const BenchOptions& o) { return o.ha && o.shard_routing == "zk"; }

// A shard's files in their own directory when there are several; the
// single-coordinator layout otherwise.
std::string ShardDir(const BenchOptions& o, const RunDir& dir, int shard) {
  return o.shards == 1 ? dir.path() : dir.path() + "/shard" + std::to_string(shard + 1);
}

std::string ShardName(const BenchOptions& o, int shard) {
  return o.shards == 1 ? "bench" : "bench" + std::to_string(shard + 1);
}

// Starts the ensemble (with --ha), then each shard after creating its
// accounts; *balance_before is their sum over every shard.
Status StartDeployment(const BenchOptions& o, BenchClusterOptions cluster_options,
                       const RunDir& dir, Deployment* d, int64_t* balance_before) {
  if (o.ha) {
    ASSIGN_OR_RETURN(d->zookeeper, ZooKeeperEnsemble::Start(dir.path() + "/zookeeper"));
  }
  cluster_options.backend = o.backend;
  cluster_options.participants = o.participants;
  cluster_options.pg_conninfo = o.pg_conninfo;
  cluster_options.coordinator_flags = o.coordinator_flags;
  cluster_options.participant_flags = o.participant_flags;
  cluster_options.tls = o.tls;
  if (o.ha) {
    cluster_options.zookeeper = d->zookeeper->ConnectString();
    cluster_options.zk_session_timeout_ms = o.zk_session_timeout_ms;
  }
  if (SharesParticipants(o)) {
    d->shard_map = "zk://" + d->zookeeper->ConnectString() + "/pact";
    cluster_options.participants_find_coordinators = d->shard_map;
  }
  *balance_before = 0;
  for (int k = 0; k < o.shards; ++k) {
    cluster_options.dir = ShardDir(o, dir, k);
    cluster_options.coordinator_name = ShardName(o, k);
    cluster_options.participants = SharesParticipants(o) && k > 0 ? 0 : o.participants;
    std::error_code ignored;
    std::filesystem::create_directories(cluster_options.dir, ignored);
    ASSIGN_OR_RETURN(auto shard, BenchCluster::Create(cluster_options));
    RETURN_NOT_OK(CreateAccounts(o, shard.get()));
    if (o.backend != "null") {
      ASSIGN_OR_RETURN(int64_t sum, SumBalances(o, shard.get()));
      *balance_before += sum;
    }
    d->shards.push_back(std::move(shard));
  }
  // Shared participants register with every shard in the map when they
  // start: the shards without participants of their own serve first.
  for (int k = o.shards - 1; k >= 0; --k) RETURN_NOT_OK(d->shards[k]->Start());
  if (!SharesParticipants(o)) return Status::Ok();
  for (int k = 1; k < o.shards; ++k) {
    BenchCluster& shard = *d->shards[k];
    RETURN_NOT_OK(WaitUntil(
        [&] {
          auto registered = shard.CountRegisteredParticipants();
          return registered.ok() && *registered == o.participants;
        },
        [] { return Status::Ok(); }, kQuiesceTimeoutMs, 20,
        "the participants did not register with " + shard.coordinator_name()));
  }
  return Status::Ok();
}

Result<int64_t> SumAllBalances(const BenchOptions& o, const Deployment& d) {
  int64_t sum = 0;
  for (const auto& shard : d.shards) {
    ASSIGN_OR_RETURN(int64_t one, SumBalances(o, shard.get()));
    sum += one;
  }
  return sum;
}

// What the window's edges are compared by.
struct WindowSample {
  std::map<std::string, int64_t> stats;  // summed over the shards that answered
  bool every_shard_answered = true;
  std::map<std::string, ProcessSample> processes;  // by report name
  ProcessSample self;
  int64_t journal_bytes = 0;
};

WindowSample SampleWindow(const BenchOptions& o, Deployment& d) {
  WindowSample s;
  for (size_t k = 0; k < d.shards.size(); ++k) {
    BenchCluster& shard = *d.shards[k];
    if (auto stats = shard.CoordinatorStats(); stats.ok()) {
      for (const auto& [key, value] : *stats) s.stats[key] += value;
    } else {
      s.every_shard_answered = false;
    }
    const std::string prefix = o.shards == 1 ? "" : shard.coordinator_name() + ":";
    for (const Process* p : shard.processes()) {
      auto sample = SampleProcess(p->pid());
      s.processes[prefix + p->name()] = sample.ok() ? *sample : ProcessSample{};
    }
    if (!o.ha) s.journal_bytes += shard.JournalBytes();
  }
  if (d.zookeeper) {
    for (int i = 0; i < d.zookeeper->size(); ++i) {
      auto sample = SampleProcess(d.zookeeper->pid(i));
      s.processes["zookeeper" + std::to_string(i + 1)] = sample.ok() ? *sample : ProcessSample{};
    }
  }
  s.self = SampleSelf();
  return s;
}

void AddWindowFigures(const BenchOptions& o, Deployment& d, const WindowSample& start,
                      const WindowSample& end, LoadReport* r) {
  auto delta = [&](const char* key) -> std::optional<int64_t> {
    if (!start.every_shard_answered || !end.every_shard_answered || !start.stats.count(key) ||
        !end.stats.count(key)) {
      return std::nullopt;
    }
    return end.stats.at(key) - start.stats.at(key);
  };
  r->fsync_batches = delta("journal_fsync_batches");
  r->coordinator_commits = delta("txns_committed");
  if (r->fsync_batches && r->coordinator_commits && *r->coordinator_commits > 0) {
    r->fsyncs_per_commit = static_cast<double>(*r->fsync_batches) / *r->coordinator_commits;
  }
  // In the order the shards list them (coordinator first), then ZooKeeper.
  std::vector<std::string> names;
  for (const auto& shard : d.shards) {
    const std::string prefix = o.shards == 1 ? "" : shard->coordinator_name() + ":";
    for (const Process* p : shard->processes()) names.push_back(prefix + p->name());
  }
  for (const auto& [name, ignored] : start.processes) {
    if (name.rfind("zookeeper", 0) == 0) names.push_back(name);
  }
  for (const std::string& name : names) {
    if (!start.processes.count(name) || !end.processes.count(name)) continue;
    r->cpu.push_back(
        {name, end.processes.at(name).cpu_seconds - start.processes.at(name).cpu_seconds});
  }
  r->cpu.push_back({"pact-bench", end.self.cpu_seconds - start.self.cpu_seconds});
  if (!names.empty() && start.processes.count(names[0]) && end.processes.count(names[0])) {
    r->coordinator_rss_bytes =
        StartEnd{start.processes.at(names[0]).rss_bytes, end.processes.at(names[0]).rss_bytes};
  }
  if (!o.ha) r->journal_bytes = StartEnd{start.journal_bytes, end.journal_bytes};
}

// After the run: everything settled everywhere. Unless counting is off
// (after failovers, the killed actives took their counters with them), the
// coordinators' commits agree with ours; an error from Commit may still have
// committed, hence a range.
void CheckCoordinatorsAgree(Deployment& d, const Tally& total, bool count, LoadReport* r) {
  int64_t committed = 0;
  for (const auto& shard : d.shards) {
    if (shard->highly_available()) {
      if (auto active = shard->FindActive(kQuiesceTimeoutMs); !active.ok()) {
        r->problems.push_back(active.status().ToString());
        return;
      }
    }
    Status settled = shard->WaitQuiescent(kQuiesceTimeoutMs);
    if (!settled.ok()) r->problems.push_back(shard->coordinator_name() + ": " + settled.ToString());
    auto stats = shard->CoordinatorStats();
    if (!stats.ok() || !stats->count("txns_committed")) {
      r->problems.push_back(shard->coordinator_name() + " did not report txns_committed");
      return;
    }
    committed += stats->at("txns_committed");
  }
  if (!count) return;
  if (committed < total.committed || committed > total.committed + total.errors) {
    r->problems.push_back("the coordinators committed " + std::to_string(committed) +
                          " transactions; the clients saw " + std::to_string(total.committed) +
                          " commits and " + std::to_string(total.errors) + " errors");
  }
}

// Client i runs on shard i mod shards, through that shard's participants;
// or, over a shard map, on every shard in turn through the shared ones.
DriverFactory MakeDriverFactory(const BenchOptions& o, Deployment& d, CommitWatch* watch) {
  return [&o, &d, watch](int client) -> Result<std::unique_ptr<TransferDriver>> {
    BenchCluster& shard = *d.shards[d.shard_map.empty() ? client % d.shards.size() : 0];
    ClientOptions options;
    options.credentials = shard.credentials();
    options.return_at_decision = o.return_at_decision;
    ASSIGN_OR_RETURN(auto driver,
                     PactTransferDriver::Create(
                         d.shard_map.empty() ? shard.coordinator_address() : d.shard_map,
                         shard.participant_names(), o.backend != "null", options));
    if (watch == nullptr) return driver;
    return std::unique_ptr<TransferDriver>(new WatchedDriver(std::move(driver), watch));
  };
}

// The load for --duration/--count, figures sampled at the window's edges.
Result<LoadResult> MeasureLoad(const BenchOptions& o, Deployment& d, LoadReport* report) {
  WindowSample start, end;
  ASSIGN_OR_RETURN(LoadResult result,
                   RunLoad(MakeLoadOptions(o), MakeDriverFactory(o, d, nullptr),
                           [&] { start = SampleWindow(o, d); }, [&] { end = SampleWindow(o, d); }));
  AddWindowFigures(o, d, start, end, report);
  return result;
}

// The load on another thread while this one (which started the cluster, so
// that relaunched coordinators outlive their thread) kills the active.
Result<LoadResult> MeasureFailovers(const BenchOptions& o, Deployment& d, LoadReport* report) {
  CommitWatch watch;
  LoadOptions load = MakeLoadOptions(o);
  load.count = 0;
  load.duration_s = kFailoverLoadMaxSeconds;
  std::atomic<bool> window_open{false}, load_over{false}, kills_done{false};
  load.end_window = &kills_done;
  Result<LoadResult> result = Status::Internal("the load did not run");
  std::thread load_thread([&] {
    result = RunLoad(load, MakeDriverFactory(o, d, &watch), [&] { window_open = true; }, [] {});
    load_over = true;
  });
  PollUntil([&] { return window_open.load() || load_over.load(); }, 24 * 3600 * 1000, 10);
  if (window_open) {
    FailoverOptions failover;
    failover.failovers = o.failovers;
    failover.interval_ms = o.failover_interval_ms;
    failover.interrupt = &g_interrupted;
    std::string problem;
    report->failovers = RunFailovers(*d.shards[0], watch, failover, &problem);
    if (!problem.empty()) report->problems.push_back(problem);
    if (static_cast<int>(report->failovers.size()) < o.failovers && problem.empty()) {
      report->notes.push_back("interrupted after " + std::to_string(report->failovers.size()) +
                              " kills");
    }
  }
  kills_done = true;
  load_thread.join();
  report->notes.push_back(
      "throughput and latency span the kills and take-overs; no CPU figures (the killed "
      "processes took theirs with them), no comparison with the coordinators' commit counts");
  return result;
}

int RunPact(const BenchOptions& o, BenchClusterOptions cluster_options, RunDir& dir) {
  LoadReport report = MakeReport(o, "pact");
  Deployment d;
  int64_t balance_before = 0;
  Status st = StartDeployment(o, cluster_options, dir, &d, &balance_before);
  if (!st.ok()) {
    std::cerr << "pact-bench: cannot start the cluster: " << st.ToString() << "\n";
    dir.Keep();
    return kExitFailed;
  }
  auto result = o.failovers > 0 ? MeasureFailovers(o, d, &report) : MeasureLoad(o, d, &report);
  if (!result.ok()) {
    std::cerr << "pact-bench: " << result.status().ToString() << "\n";
    dir.Keep();
    return kExitFailed;
  }
  AddLoadResult(*result, &report);
  CheckCoordinatorsAgree(d, result->total, o.failovers == 0, &report);

  for (const auto& shard : d.shards) {
    shard->Stop();
    for (const Process* p : shard->processes()) {
      if (p->exit_code() != 0) {
        report.problems.push_back(p->name() + " exited with code " +
                                  std::to_string(p->exit_code()) + " (log: " + p->log_path() +
                                  ")");
      }
    }
  }
  if (o.backend == "null") {
    report.notes.push_back("the null backend stores nothing: no balance check");
  } else {
    CheckBalances(balance_before, SumAllBalances(o, d), &report);
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
