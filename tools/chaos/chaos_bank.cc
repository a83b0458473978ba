// pact-chaos-bank: bank transfers between accounts spread over SQLite and
// PostgreSQL participants (and MariaDB with --mariadb), from many concurrent
// clients, while a chaos loop kill -9s (or SIGTERMs) a random process (the
// coordinator or a participant adapter, mid-transaction) or crash-restarts a
// database server, at random moments, and restarts it. At the end, after
// recovery, the money must add up, every transfer a client saw COMMITTED must
// be in the data, none it saw ABORTED may be, an in-doubt one is all or
// nothing, and nothing may be left prepared.
//
// With --ha the coordinator is a highly available shard: two coordinators
// over a three-node ZooKeeper ensemble the tool starts and removes, and the
// chaos also kill -9s the active, the standby and ZooKeeper servers (rarely
// two at once: the quorum lost for a moment), SIGTERMs the active (a
// hand-over), and restarts every coordinator that exited, as a supervisor
// would.
//
//   pact-chaos-bank                       # one minute, 8 clients
//   pact-chaos-bank --duration 3600       # an hour (or as long as asked)
//   pact-chaos-bank --mariadb --clients 16 --kill_interval_ms 200-1000 --seed 7
//   pact-chaos-bank --ha --duration 300   # the shard of two coordinators
//
// Not a gtest: it runs for as long as asked. ctest runs it for 45 seconds.
// Exit status: 0 all checks held, 1 a check failed (the files are kept and
// their directory printed), 2 bad usage.
#include <signal.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <iostream>
#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <boost/program_options.hpp>

#include "client/pact_client.h"
#include "cluster/bank_schema.h"
#include "cluster/cluster.h"
#include "cluster/mariadb_server.h"
#include "cluster/postgres_server.h"
#include "cluster/sqlite_file.h"
#include "cluster/temp_dir.h"
#include "cluster/wait_until.h"
#include "tools/chaos/ha_shard.h"
#include "tools/chaos/takeover_watch.h"

namespace po = boost::program_options;

namespace pact {
namespace {

using Clock = std::chrono::steady_clock;

constexpr int kExitOk = 0;
constexpr int kExitViolation = 1;
constexpr int kExitUsage = 2;

constexpr int kAccounts = 10;  // per participant, ids 1..kAccounts
constexpr int64_t kInitialBalance = 1000;
// Short enough that a branch orphaned by a kill releases its locks soon.
constexpr int64_t kTxnTimeoutMs = 10000;
// How long the end of a run may take to settle, after every process runs again.
constexpr int kSettleTimeoutMs = 60000;

struct Options {
  double duration_s = 60;
  int clients = 8;
  int kill_min_ms = 500;
  int kill_max_ms = 2500;
  bool mariadb = false;
  bool ha = false;  // two coordinators of one shard over ZooKeeper
  uint64_t seed = 0;
};

enum class Backend { kSqlite, kPostgres, kMariaDb };

// A participant and how its SQL is spelled.
struct Bank {
  std::string name;
  Backend backend;
  std::string database;  // PostgreSQL / MariaDB database

  // Parameters bind as $1.. on PostgreSQL, ?1.. on SQLite, ? on MariaDB.
  std::string Placeholder(int n) const {
    switch (backend) {
      case Backend::kPostgres:
        return "$" + std::to_string(n);
      case Backend::kSqlite:
        return "?" + std::to_string(n);
      case Backend::kMariaDb:
        return "?";
    }
    return "?";
  }
  std::string AddToBalance() const {
    return "UPDATE accounts SET balance = balance + " + Placeholder(1) +
           " WHERE id = " + Placeholder(2);
  }
  std::string InsertLedger() const {
    return "INSERT INTO ledger(txn_id, account, delta) VALUES (" + Placeholder(1) + ", " +
           Placeholder(2) + ", " + Placeholder(3) + ")";
  }
};

enum class Seen { kCommitted, kAborted, kRolledBack, kInDoubt };

// One transfer as its client saw it.
struct Transfer {
  std::string txn_id;
  std::string from, to;  // participants
  int64_t from_account = 0, to_account = 0, amount = 0;
  Seen seen = Seen::kRolledBack;
  std::string status;  // what Commit said, for in-doubt and failure reports
};

struct LedgerRow {
  std::string participant;
  int64_t account = 0, delta = 0;
};

int64_t ToInt(const SqlValue& v) {
  if (std::holds_alternative<int64_t>(v)) return std::get<int64_t>(v);
  if (std::holds_alternative<std::string>(v)) return std::stoll(std::get<std::string>(v));
  return -1;
}

std::string ToText(const SqlValue& v) {
  if (std::holds_alternative<std::string>(v)) return std::get<std::string>(v);
  if (std::holds_alternative<int64_t>(v)) return std::to_string(std::get<int64_t>(v));
  return "";
}

class ChaosBank {
 public:
  explicit ChaosBank(Options options) : options_(options), rng_(options.seed) {}

  ~ChaosBank() {
    watch_.reset();
    cluster_.reset();
    ha_.reset();  // the second coordinator, then ZooKeeper
    pg_.reset();
    maria_.reset();
    if (keep_files_) {
      std::cout << "files (logs, databases, journal) kept in " << dir_->path() << "\n";
      (void)dir_.release();  // deliberately leaked: TempDir would delete them
    }
  }

  int Run() {
    if (!SetUp()) return Fail();
    const auto start = Clock::now();
    std::vector<std::thread> clients;
    for (int c = 0; c < options_.clients; ++c) {
      clients.emplace_back([this, c] { ClientLoop(options_.seed * 1000 + c); });
    }
    // Processes are started from this thread only: a child started by a
    // thread gets SIGKILL when that thread ends (PR_SET_PDEATHSIG).
    ChaosLoop(start);
    stop_ = true;
    for (auto& t : clients) t.join();
    const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
    std::cout << "chaos stopped after " << Fixed(seconds) << " s; settling\n";

    // Even after a violation: what the data says is worth knowing.
    if (Settle()) Verify();
    PrintSummary(seconds);
    return violations_.empty() ? kExitOk : Fail();
  }

 private:
  static std::string Fixed(double v) {
    char buf[32];
    std::snprintf(buf, sizeof(buf), "%.1f", v);
    return buf;
  }

  int Fail() {
    keep_files_ = true;
    std::cout << "FAILED: " << violations_.size() << " violation(s)\n";
    size_t shown = 0;
    for (const auto& v : violations_) {
      if (++shown > 50) {
        std::cout << "  ... and " << violations_.size() - 50 << " more\n";
        break;
      }
      std::cout << "  " << v << "\n";
    }
    return kExitViolation;
  }

  void Violation(const std::string& what) {
    std::lock_guard<std::mutex> lock(mu_);
    violations_.push_back(what);
  }

  bool SetUp() {
    dir_ = std::make_unique<TempDir>();
    auto pg = PostgresServer::Start(dir_->ServerDir("pg"), {{"max_connections", "200"}});
    if (!pg.ok()) {
      Violation("cannot start PostgreSQL: " + pg.status().ToString());
      return false;
    }
    pg_ = std::move(*pg);
    if (options_.mariadb) {
      auto maria = MariaDbServer::Start(dir_->ServerDir("maria"));
      if (!maria.ok()) {
        Violation("cannot start MariaDB: " + maria.status().ToString());
        return false;
      }
      maria_ = std::move(*maria);
    }
    auto bin_dir = ExecutableDir();
    if (!bin_dir.ok()) {
      Violation(bin_dir.status().ToString());
      return false;
    }
    ClusterOptions cluster_options;
    cluster_options.dir = dir_->path();
    cluster_options.UseBinariesIn(*bin_dir);  // build/bin, beside pact-chaos-bank
    cluster_ = std::make_unique<Cluster>(cluster_options);
    cluster_->participant_flags = {"--inquiry_interval_ms=300", "--rpc_timeout_ms=2000"};
    cluster_->coordinator_flags.push_back("--rpc_timeout_ms=2000");
    // Every link passes a fault proxy, so the chaos also loses messages.
    cluster_->ProxyEveryLink();
    if (options_.ha) {
      auto ha = HaShard::Create(dir_->path(), cluster_options.coordinator_bin, cluster_.get(),
                                options_.seed, [this](const std::string& v) { Violation(v); });
      if (!ha.ok()) {
        Violation(ha.status().ToString());
        return false;
      }
      ha_ = std::move(*ha);
    }

    banks_ = {{"lite", Backend::kSqlite, ""},
              {"lite2", Backend::kSqlite, ""},
              {"pg", Backend::kPostgres, "chaos_a"},
              {"pg2", Backend::kPostgres, "chaos_b"}};
    if (maria_) banks_.push_back({"maria", Backend::kMariaDb, "chaos"});
    for (const Bank& bank : banks_) {
      Status st = CreateBank(bank);
      if (!st.ok()) {
        Violation("cannot create the accounts of " + bank.name + ": " + st.ToString());
        return false;
      }
    }
    // With --ha the cluster's coordinator is the first of the shard, so it
    // becomes the active, and the participants register with it.
    Status st = cluster_->StartCoordinator();
    for (size_t i = 0; st.ok() && i < banks_.size(); ++i) {
      st = cluster_->StartParticipant(banks_[i].name);
    }
    if (st.ok() && ha_) st = ha_->StartStandby();
    if (!st.ok()) {
      Violation("cannot start the cluster: " + st.ToString());
      return false;
    }
    if (ha_) {
      watch_ = std::make_unique<TakeOverWatch>(std::vector<int>{ha_->port(0), ha_->port(1)});
      std::cout << "ZooKeeper ensemble up (" << ha_->ConnectString()
                << "); an active and a standby coordinator of shard "
                << cluster_->coordinator_name() << "\n";
    }
    std::cout << "cluster up: coordinator" << (ha_ ? "s" : "") << " and " << banks_.size()
              << " participants (";
    for (size_t i = 0; i < banks_.size(); ++i) std::cout << (i ? ", " : "") << banks_[i].name;
    std::cout << "), " << kAccounts << " accounts of " << kInitialBalance << " each; "
              << options_.clients << " clients for " << options_.duration_s << " s, a kill every "
              << options_.kill_min_ms << "-" << options_.kill_max_ms << " ms, seed "
              << options_.seed << "\n";
    return true;
  }

  Status CreateBank(const Bank& bank) {
    BankSpec spec;
    spec.accounts = kAccounts;
    spec.initial_balance = kInitialBalance;
    spec.ledger = BankSpec::Ledger::kPerTransaction;
    switch (bank.backend) {
      case Backend::kSqlite:
        return CreateSqliteBank(cluster_->db_path(bank.name), spec);
      case Backend::kPostgres:
        RETURN_NOT_OK(pg_->CreateDatabase(bank.database));
        RETURN_NOT_OK(pg_->Exec(bank.database, BankSchemaSql(SqlDialect::kPostgres, spec)));
        cluster_->SetBackend(
            bank.name, {"--backend=postgresql", "--pg_conninfo=" + pg_->ConnInfo(bank.database)});
        return Status::Ok();
      case Backend::kMariaDb:
        RETURN_NOT_OK(maria_->CreateDatabase(bank.database));
        RETURN_NOT_OK(maria_->Exec(bank.database, BankSchemaSql(SqlDialect::kMariaDb, spec)));
        cluster_->SetBackend(
            bank.name, {"--backend=mariadb", "--mariadb_host=127.0.0.1",
                        "--mariadb_port=" + std::to_string(maria_->port()), "--mariadb_user=root",
                        "--mariadb_database=" + bank.database});
        return Status::Ok();
    }
    return Status::Internal("unknown backend");
  }

  void CountFailure(const std::string& kind) {
    std::lock_guard<std::mutex> lock(mu_);
    statement_failures_[kind]++;
  }

  void Record(Transfer t) {
    std::lock_guard<std::mutex> lock(mu_);
    transfers_.push_back(std::move(t));
  }

  // One client: transfers until told to stop, tolerating any process being down.
  void ClientLoop(uint64_t seed) {
    std::mt19937_64 rng(seed);
    ClientOptions options;
    // Coordinators are killed all the time; a take-over lasts about a
    // session timeout, which an HA client's commit may wait out.
    options.commit_budget_ms = ha_ ? 2 * HaShard::kSessionTimeoutMs + 1000 : 2000;
    // Through the coordinator's fault proxy, whose rules lose its messages.
    auto client =
        Client::Connect(ha_ ? ha_->ClientAddresses() : cluster_->client_address(), options);
    if (!client.ok()) {
      Violation("client cannot connect: " + client.status().ToString());
      return;
    }
    int backoff_ms = 20;
    while (!stop_) {
      auto txn = (*client)->Begin(kTxnTimeoutMs);
      if (!txn.ok()) {
        // The coordinator is down or recovering: try again a little later.
        begin_failures_++;
        std::this_thread::sleep_for(std::chrono::milliseconds(backoff_ms));
        backoff_ms = std::min(backoff_ms * 2, 500);
        continue;
      }
      backoff_ms = 20;
      Transfer t;
      t.txn_id = (*txn)->id();
      size_t from = rng() % banks_.size();
      size_t to = (from + 1 + rng() % (banks_.size() - 1)) % banks_.size();
      t.from = banks_[from].name;
      t.to = banks_[to].name;
      t.from_account = 1 + static_cast<int64_t>(rng() % kAccounts);
      t.to_account = 1 + static_cast<int64_t>(rng() % kAccounts);
      t.amount = 1 + static_cast<int64_t>(rng() % 20);
      // Always in the order of the participants' names, so two transfers
      // never wait for each other in opposite orders across databases.
      std::vector<size_t> order = {from, to};
      if (banks_[to].name < banks_[from].name) std::swap(order[0], order[1]);
      bool ok = true;
      for (size_t i : order) {
        const Bank& bank = banks_[i];
        bool debit = i == from;
        int64_t account = debit ? t.from_account : t.to_account;
        int64_t delta = debit ? -t.amount : t.amount;
        if (!ok) break;
        auto moved = (*txn)->Execute(bank.name, bank.AddToBalance(), {delta, account});
        auto logged =
            moved.ok() ? (*txn)->Execute(bank.name, bank.InsertLedger(), {t.txn_id, account, delta})
                       : moved;
        if (!logged.ok()) {
          ok = false;
          t.status = logged.status().ToString();
          CountFailure(StatusCodeName(logged.status().code()));
        }
      }
      if (!ok) {
        // Never asked to commit, so it cannot have committed.
        (void)(*txn)->Rollback();
        t.seen = Seen::kRolledBack;
        Record(std::move(t));
        continue;
      }
      Status st = (*txn)->Commit();
      t.status = st.ToString();
      if (st.ok()) {
        t.seen = Seen::kCommitted;
      } else if (st.code() == StatusCode::kAborted || st.code() == StatusCode::kTimedOut) {
        t.seen = Seen::kAborted;
      } else {
        t.seen = Seen::kInDoubt;
      }
      Record(std::move(t));
    }
  }

  // The processes the chaos kills and restarts by name: with --ha the
  // coordinators are the HaShard's.
  std::vector<std::string> ProcessNames() {
    std::vector<std::string> names;
    if (!ha_) names.push_back("coordinator");
    for (const Bank& b : banks_) names.push_back(b.name);
    return names;
  }

  Process& ProcessOf(const std::string& name) {
    return name == "coordinator" ? cluster_->coordinator() : cluster_->participant(name);
  }

  // Starts `name` again (unarmed); a few attempts, since a start can race
  // with the previous process's port or locks being released.
  bool Restart(const std::string& name) {
    Status st;
    for (int attempt = 1; attempt <= 5; ++attempt) {
      st = name == "coordinator" ? cluster_->StartCoordinator() : StartParticipant(name);
      if (st.ok()) return true;
      ProcessOf(name).Signal(SIGKILL);
      ProcessOf(name).WaitForExit(5000);
      std::this_thread::sleep_for(std::chrono::milliseconds(200 * attempt));
    }
    Violation("cannot restart " + name + " after a kill: " + st.ToString());
    return false;
  }

  // A restarted participant is up once it serves. It registered at its first
  // start; StartParticipant's check that the coordinator lists it asks the
  // cluster's coordinator, which with --ha may be a standby or down now.
  Status StartParticipant(const std::string& name) {
    if (!ha_) return cluster_->StartParticipant(name);
    RETURN_NOT_OK(cluster_->LaunchParticipant(name));
    return cluster_->WaitParticipantServing(name, 15000);
  }

  void ChaosLoop(Clock::time_point start) {
    const auto end =
        start + std::chrono::milliseconds(static_cast<int64_t>(options_.duration_s * 1000));
    auto next_progress = start + std::chrono::seconds(10);
    const std::vector<std::string> names = ProcessNames();
    while (Clock::now() < end) {
      int wait_ms = options_.kill_min_ms +
                    static_cast<int>(rng_() % (options_.kill_max_ms - options_.kill_min_ms + 1));
      auto kill_at = std::min(end, Clock::now() + std::chrono::milliseconds(wait_ms));
      while (Clock::now() < kill_at) {
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
        if (ha_) ha_->Supervise();
        if (Clock::now() >= next_progress) {
          PrintProgress(start);
          next_progress += std::chrono::seconds(10);
        }
      }
      if (Clock::now() >= end) break;
      if (!RestartTheDead()) return;
      if (!InjectFault(names)) return;
    }
    RestartTheDead();
  }

  // One fault, mid-whatever the clients are doing: mostly a kill -9 of a
  // Pact process, sometimes a clean SIGTERM restart of one (its unprepared
  // branches roll back, its prepared ones stay), sometimes a crash-restart
  // of a database server under its adapter.
  bool InjectFault(const std::vector<std::string>& names) {
    if (ha_ && rng_() % 100 < 48) return InjectShardFault();
    unsigned dice = rng_() % 10;
    if (dice >= 7) {
      LoseAMessage();
      return true;
    }
    if (dice == 0) {
      Status st = pg_->Restart();
      kills_["postgres (server restart)"]++;
      if (!st.ok()) Violation("cannot restart PostgreSQL: " + st.ToString());
      return st.ok();
    }
    if (dice == 1 && maria_) {
      Status st = maria_->Restart();
      kills_["mariadb (server restart)"]++;
      if (!st.ok()) Violation("cannot restart MariaDB: " + st.ToString());
      return st.ok();
    }
    const std::string& victim = names[rng_() % names.size()];
    Process& process = ProcessOf(victim);
    bool clean = dice <= 3;
    process.Signal(clean ? SIGTERM : SIGKILL);
    if (process.WaitForExit(30000) < 0) {
      Violation(victim + " did not stop within 30 s of SIGTERM");
      process.Signal(SIGKILL);
      process.WaitForExit(5000);
    }
    kills_[victim + (clean ? " (SIGTERM)" : "")]++;
    // Down for a moment, sometimes not at all.
    std::this_thread::sleep_for(std::chrono::milliseconds(rng_() % 300));
    return Restart(victim);
  }

  // With --ha, 48% of the faults are of the shard's own processes (the rest
  // are those of a single coordinator's run, over the participants): of all
  // faults, kill -9 of the active 15%, SIGTERM of the active 5%, kill -9 of
  // the standby 10%, kill -9 of a ZooKeeper server while all three serve
  // 15%, of two at once 3%.
  bool InjectShardFault() {
    watch_->OtherFault();
    const unsigned dice = rng_() % 48;
    if (dice < 15) return StopCoordinator(true, false);
    if (dice < 20) return StopCoordinator(true, true);
    if (dice < 30) return StopCoordinator(false, false);
    // Never a second server while one is down or catching up.
    const bool killed = dice < 45 ? ha_->KillZooKeeperServer() : ha_->LoseZooKeeperQuorum();
    if (!killed) LoseAMessage();
    return true;
  }

  // Stops the active (kill -9 or SIGTERM) or kill -9s the standby; the
  // supervisor starts it again. Mid take-over there may be nobody in that
  // role: then a message is lost instead.
  bool StopCoordinator(bool active, bool clean) {
    const std::optional<int> member = active ? ha_->FindActive() : ha_->FindStandby();
    if (!member) {
      LoseAMessage();
      return true;
    }
    if (!active) {
      ha_->Kill(*member);
      kills_["kill -9 of the standby coordinator"]++;
      return true;
    }
    const CoordinatorView view = ProbeCoordinator(ha_->port(*member));
    // The take-over as designed: a standby waits, ZooKeeper is whole, the
    // victim served (not recovering, not cut off).
    const bool plain = view.role == CoordinatorRole::kActive && ha_->FindStandby() &&
                       !ha_->ZooKeeperDegraded();
    const int64_t epoch = std::max(view.epoch, watch_->stats().last_epoch);
    const std::string how =
        std::string(clean ? "SIGTERM" : "kill -9") + " of the active coordinator" +
        (view.role == CoordinatorRole::kActive
             ? ""
             : std::string(" (") + CoordinatorRoleName(view.role) + ")");
    watch_->ActiveStopped(clean ? "SIGTERM" : "kill -9", epoch, plain);
    if (clean) {
      ha_->Terminate(*member);
    } else {
      ha_->Kill(*member);
    }
    kills_[how]++;
    return true;
  }

  // One protocol message on one link is lost, its reply is lost, its
  // connection is reset or it is held back: whichever call passes next.
  void LoseAMessage() {
    struct Link {
      FaultProxy* proxy;
      std::vector<const char*> methods;
    };
    const Bank& bank = banks_[rng_() % banks_.size()];
    const std::vector<Link> links = {
        {&cluster_->client_proxy(), {"reserveTxnIds", "commitTxn", "rollbackTxn"}},
        {&cluster_->to_participant(bank.name),
         {"execute", "abandon", "prepare", "commit", "rollback", "prepareBatch", "commitBatch",
          "rollbackBatch"}},
        {&cluster_->from_participant(bank.name), {"outcome", "registerParticipant"}},
    };
    const Link& link = links[rng_() % links.size()];
    Rule rule;
    rule.method = link.methods[rng_() % link.methods.size()];
    const Fault faults[] = {Fault::kDropRequest, Fault::kDropReply, Fault::kResetAfterRequest,
                            Fault::kDelayReply};
    rule.fault = faults[rng_() % 4];
    rule.delay_ms = 500 + static_cast<int>(rng_() % 2000);
    link.proxy->AddRule(rule);
    kills_[std::string("message: ") + FaultName(rule.fault) + " " + rule.method]++;
  }

  // A process nobody killed must not have ended: report it, start it again
  // and go on, so the rest of the run still checks the data.
  bool RestartTheDead() {
    for (const std::string& name : ProcessNames()) {
      Process& process = ProcessOf(name);
      if (process.running()) continue;
      int code = process.WaitForExit(0);
      Violation(
          name + " died on its own (" +
          (code > 128 ? "signal " + std::to_string(code - 128) : "exit " + std::to_string(code)) +
          "); see " + dir_->File(name + ".log"));
      if (!Restart(name)) return false;
    }
    return true;
  }

  void PrintProgress(Clock::time_point start) {
    std::map<Seen, int> counts;
    {
      std::lock_guard<std::mutex> lock(mu_);
      for (const auto& t : transfers_) counts[t.seen]++;
    }
    int kills = 0;
    for (const auto& [name, n] : Faults()) kills += n;
    std::cout << "  " << Fixed(std::chrono::duration<double>(Clock::now() - start).count())
              << " s: committed " << counts[Seen::kCommitted] << ", aborted "
              << counts[Seen::kAborted] + counts[Seen::kRolledBack] << ", in doubt "
              << counts[Seen::kInDoubt] << ", kills " << kills;
    if (watch_) {
      const TakeOverWatch::Stats stats = watch_->stats();
      std::cout << ", epoch " << stats.last_epoch << " (" << stats.take_overs << " take-overs)";
    }
    std::cout << std::endl;
  }

  // Every fault injected, by kind: the chaos loop's and the shard's own.
  std::map<std::string, int> Faults() const {
    std::map<std::string, int> faults = kills_;
    if (ha_) {
      for (const auto& [kind, n] : ha_->faults()) faults[kind] += n;
    }
    return faults;
  }

  // The shard's part of the summary: how its coordinators ended, the
  // take-overs, and how long each kind of stop of the active left the shard
  // without one serving.
  std::string ShardSummary() const {
    std::string exits;
    for (const auto& [kind, n] : ha_->exits()) {
      exits += (exits.empty() ? "" : ", ") + kind + " " + std::to_string(n);
    }
    std::ostringstream out;
    out << "  take-overs seen     " << takeovers_.take_overs << " (epochs "
        << takeovers_.first_epoch << " to " << takeovers_.last_epoch << "); both answered as "
        << "active at once " << takeovers_.both_active << " time(s)\n"
        << "  coordinator ends    " << (exits.empty() ? "none but the faults" : exits) << "\n";
    for (const char* how : {"kill -9", "SIGTERM"}) {
      std::vector<int64_t> plain, all;
      int never = 0;
      for (const auto& outage : takeovers_.outages) {
        if (outage.how != how) continue;
        if (outage.ms < 0) {
          ++never;
          continue;
        }
        all.push_back(outage.ms);
        if (outage.clean) plain.push_back(outage.ms);
      }
      if (all.empty() && never == 0) continue;
      std::sort(plain.begin(), plain.end());
      std::sort(all.begin(), all.end());
      out << "  " << how << " of the active to a coordinator serving: ";
      if (!plain.empty()) {
        out << "longest " << plain.back() << " ms, median " << plain[plain.size() / 2]
            << " ms over " << plain.size()
            << " undisturbed (a standby standing by, ZooKeeper whole, no other shard fault); ";
      }
      out << "longest " << (all.empty() ? 0 : all.back()) << " ms over all " << all.size();
      if (never > 0) out << "; " << never << " never served again before the end";
      out << "\n";
    }
    return out.str();
  }

  int64_t PgPrepared() {
    auto rows = pg_->Query("postgres", "SELECT count(*) FROM pg_prepared_xacts");
    return rows.ok() && !rows->empty() ? std::stoll((*rows)[0][0]) : -1;
  }
  int64_t MariaPrepared() {
    if (!maria_) return 0;
    auto rows = maria_->Query("chaos", "XA RECOVER");
    return rows.ok() ? static_cast<int64_t>(rows->size()) : -1;
  }

  // Every process runs; then no branch is open anywhere, nothing is prepared
  // in the databases, and the coordinator's journal has nothing unfinished.
  // Returns whether everything settled.
  bool Settle() {
    cluster_->ClearProxyRules();  // no message is lost any more
    const auto start = Clock::now();
    if (ha_) {
      Status st = ha_->BringEverythingBack(kSettleTimeoutMs);
      if (!st.ok()) Violation("the shard did not come back after the chaos: " + st.ToString());
    }
    if (!RestartTheDead()) return false;
    const bool settled = PollUntil(
        [&] {
          if (ha_) ha_->Supervise();  // a coordinator may still exit, and comes back
          return cluster_->EventuallyNoOpenBranches(1000) && PgPrepared() == 0 &&
                 MariaPrepared() == 0;
        },
        kSettleTimeoutMs);
    if (!settled) {
      std::string open;
      for (const Bank& b : banks_) {
        auto branches = cluster_->OpenBranches(b.name);
        open += " " + b.name + ":";
        if (!branches.ok()) {
          open += branches.status().ToString();
          continue;
        }
        for (const auto& branch : *branches) open += " [" + branch + "]";
      }
      Violation("not settled " + std::to_string(kSettleTimeoutMs / 1000) +
                " s after the chaos stopped; open branches:" + open + "; prepared in PostgreSQL " +
                std::to_string(PgPrepared()) + ", in MariaDB " + std::to_string(MariaPrepared()));
    }
    settle_seconds_ = std::chrono::duration<double>(Clock::now() - start).count();
    if (ha_) {
      takeovers_ = watch_->stats();
      watch_.reset();
      // A clean stop leaves no unfinished commit decision in ZooKeeper.
      Status st = ha_->StopCleanlyAndCheckDecisions();
      if (!st.ok()) Violation(st.ToString());
      return settled;
    }
    // A clean stop leaves no unfinished commit decision behind.
    cluster_->coordinator().Signal(SIGTERM);
    int code = cluster_->coordinator().WaitForExit(30000);
    if (code != 0) Violation("the coordinator's clean stop ended with " + std::to_string(code));
    const std::string out = cluster_->RunPactctl({"--json", "journal", cluster_->journal_path()}).out;
    if (out.find("\"unfinished\":[]") == std::string::npos) {
      Violation("the journal holds unfinished decisions after a clean stop: " + out);
    }
    return settled;
  }

  // All rows of a query, whatever the backend.
  Result<std::vector<std::vector<SqlValue>>> Query(const Bank& bank, const std::string& sql) {
    if (bank.backend == Backend::kSqlite) return QueryFile(cluster_->db_path(bank.name), sql);
    auto rows = bank.backend == Backend::kPostgres ? pg_->Query(bank.database, sql)
                                                   : maria_->Query(bank.database, sql);
    if (!rows.ok()) return rows.status();
    std::vector<std::vector<SqlValue>> out;
    for (const auto& row : *rows) {
      std::vector<SqlValue> values;
      for (const auto& v : row) values.emplace_back(v);
      out.push_back(std::move(values));
    }
    return out;
  }

  void Verify() {
    verified_ = true;
    int64_t total = 0;
    std::map<std::string, std::vector<LedgerRow>> ledger;  // by txn id
    for (const Bank& bank : banks_) {
      auto balances = Query(bank, "SELECT count(*), sum(balance) FROM accounts");
      auto rows = Query(bank, "SELECT txn_id, account, delta FROM ledger");
      if (!balances.ok() || !rows.ok() || balances->size() != 1) {
        Violation("cannot read " + bank.name + ": " +
                  (balances.ok() ? rows.status() : balances.status()).ToString());
        continue;
      }
      int64_t count = ToInt((*balances)[0][0]), sum = ToInt((*balances)[0][1]);
      int64_t ledger_sum = 0;
      for (const auto& row : *rows) {
        ledger[ToText(row[0])].push_back({bank.name, ToInt(row[1]), ToInt(row[2])});
        ledger_sum += ToInt(row[2]);
      }
      if (count != kAccounts) {
        Violation(bank.name + " has " + std::to_string(count) + " accounts, not " +
                  std::to_string(kAccounts));
      }
      // Within one database, the balances moved exactly as its ledger says.
      if (sum != kAccounts * kInitialBalance + ledger_sum) {
        Violation(bank.name + ": balances sum to " + std::to_string(sum) + " but its ledger says " +
                  std::to_string(kAccounts * kInitialBalance + ledger_sum));
      }
      total += sum;
    }
    const int64_t expected_total =
        static_cast<int64_t>(banks_.size()) * kAccounts * kInitialBalance;
    if (total != expected_total) {
      Violation("money was " + std::string(total > expected_total ? "created" : "lost") +
                ": the balances sum to " + std::to_string(total) + ", not " +
                std::to_string(expected_total));
    }

    std::set<std::string> known;
    for (const Transfer& t : transfers_) {
      known.insert(t.txn_id);
      auto it = ledger.find(t.txn_id);
      const std::vector<LedgerRow> rows =
          it == ledger.end() ? std::vector<LedgerRow>{} : it->second;
      bool none = rows.empty();
      bool both = rows.size() == 2;
      if (both) {
        const LedgerRow* debit = rows[0].delta < 0 ? &rows[0] : &rows[1];
        const LedgerRow* credit = rows[0].delta < 0 ? &rows[1] : &rows[0];
        both = debit->participant == t.from && debit->account == t.from_account &&
               debit->delta == -t.amount && credit->participant == t.to &&
               credit->account == t.to_account && credit->delta == t.amount;
      }
      std::string where =
          t.txn_id + " (" + t.from + " -> " + t.to + ", " + std::to_string(t.amount) + ")";
      if (!none && !both) {
        Violation("half a transfer in the data: " + where + " has " + std::to_string(rows.size()) +
                  " ledger row(s)" + (rows.empty() ? "" : ", e.g. at " + rows[0].participant) +
                  "; client saw " + t.status);
        continue;
      }
      switch (t.seen) {
        case Seen::kCommitted:
          if (!both) Violation("seen COMMITTED but not in the data: " + where);
          break;
        case Seen::kAborted:
          if (!none) Violation("seen ABORTED but in the data: " + where + ": " + t.status);
          break;
        case Seen::kRolledBack:
          if (!none) Violation("rolled back before commit but in the data: " + where);
          break;
        case Seen::kInDoubt:
          if (both) in_doubt_committed_++;
          break;
      }
    }
    for (const auto& [txn_id, rows] : ledger) {
      if (known.count(txn_id) == 0) {
        Violation("the data holds a transfer no client made: " + txn_id + " at " +
                  rows[0].participant);
      }
    }
  }

  void PrintSummary(double seconds) {
    int kills = 0;
    std::string by_process;
    for (const auto& [name, n] : Faults()) {
      kills += n;
      by_process += (by_process.empty() ? "" : ", ") + name + " " + std::to_string(n);
    }
    std::map<Seen, int> seen;
    for (const Transfer& t : transfers_) seen[t.seen]++;
    const int committed = seen[Seen::kCommitted], aborted = seen[Seen::kAborted],
              rolled_back = seen[Seen::kRolledBack], in_doubt = seen[Seen::kInDoubt];
    std::string failures;
    for (const auto& [code, n] : statement_failures_) {
      failures += (failures.empty() ? "" : ", ") + code + " " + std::to_string(n);
    }
    std::cout << "pact-chaos-bank summary (seed " << options_.seed << ")\n"
              << "  duration            " << Fixed(seconds) << " s with " << options_.clients
              << " clients, settled in " << Fixed(settle_seconds_) << " s\n"
              << "  transfers           " << transfers_.size() << "\n"
              << "  committed           " << committed << "\n"
              << "  aborted             " << aborted + rolled_back << " (" << aborted
              << " at commit, " << rolled_back << " rolled back before commit"
              << (failures.empty() ? "" : ": a statement failed with " + failures) << ")\n"
              << "  in doubt            " << in_doubt
              << (verified_
                      ? " (" + std::to_string(in_doubt_committed_) + " turned out committed, " +
                            std::to_string(in_doubt - in_doubt_committed_) + " rolled back)"
                      : " (not verified)")
              << "\n"
              << "  faults survived     " << kills
              << (by_process.empty() ? "" : " (" + by_process + ")") << "\n"
              << (ha_ ? ShardSummary() : "")
              << "  begin retries       " << begin_failures_ << "\n"
              << "  result              "
              << (violations_.empty() ? "OK: money conserved, every outcome as seen, nothing "
                                        "prepared"
                                      : "VIOLATIONS")
              << std::endl;
  }

  const Options options_;
  std::mt19937_64 rng_;  // the chaos loop's
  std::unique_ptr<TempDir> dir_;
  std::unique_ptr<PostgresServer> pg_;
  std::unique_ptr<MariaDbServer> maria_;
  std::unique_ptr<Cluster> cluster_;
  std::unique_ptr<HaShard> ha_;             // with --ha
  std::unique_ptr<TakeOverWatch> watch_;    // with --ha, until the end of the settling
  TakeOverWatch::Stats takeovers_;          // what watch_ saw, at its end
  std::vector<Bank> banks_;
  std::atomic<bool> stop_{false};
  std::atomic<int> begin_failures_{0};
  std::map<std::string, int> kills_;  // chaos thread only

  std::mutex mu_;
  std::vector<Transfer> transfers_;                // guarded by mu_ until the clients stopped
  std::vector<std::string> violations_;            // guarded by mu_
  std::map<std::string, int> statement_failures_;  // by status code, guarded by mu_
  bool keep_files_ = false;

  bool verified_ = false;
  int in_doubt_committed_ = 0;
  double settle_seconds_ = 0;
};

bool ParseRange(const std::string& text, int* min, int* max) {
  size_t sep = text.find_first_of("-:,");
  try {
    *min = std::stoi(text.substr(0, sep));
    *max = sep == std::string::npos ? *min : std::stoi(text.substr(sep + 1));
  } catch (const std::exception&) {
    return false;
  }
  return *min >= 10 && *max >= *min;
}

}  // namespace
}  // namespace pact

int main(int argc, char** argv) {
  pact::Options options;
  std::string kill_interval;
  po::options_description desc(
      "Usage: pact-chaos-bank [options]\n"
      "Bank transfers over SQLite and PostgreSQL participants (MariaDB with --mariadb)\n"
      "while processes are killed with SIGKILL and restarted; checks money, outcomes\n"
      "and that nothing stays prepared. Exit 0 ok, 1 a check failed, 2 bad usage.\n\n"
      "Options");
  // clang-format off
  desc.add_options()
      ("help", "this text")
      ("duration", po::value(&options.duration_s)->default_value(60),
       "seconds of transfers and kills (as long as you like)")
      ("clients", po::value(&options.clients)->default_value(8), "concurrent clients")
      ("kill_interval_ms", po::value(&kill_interval)->default_value("500-2500"),
       "pause before each kill, drawn from MIN-MAX milliseconds (or one value)")
      ("mariadb", po::bool_switch(&options.mariadb),
       "also a MariaDB participant (a throwaway server is started)")
      ("ha", po::bool_switch(&options.ha),
       "two coordinators of one shard over a three-node ZooKeeper ensemble (started and\n"
       "removed here); the chaos also kills the active, the standby and ZooKeeper servers")
      ("seed", po::value(&options.seed)->default_value(0),
       "random seed for the chaos and the clients (0: from the clock)");
  // clang-format on
  po::variables_map vm;
  try {
    po::store(po::parse_command_line(argc, argv, desc), vm);
    po::notify(vm);
  } catch (const std::exception& e) {
    std::cerr << "pact-chaos-bank: " << e.what() << "\n" << desc << "\n";
    return pact::kExitUsage;
  }
  if (vm.count("help")) {
    std::cout << desc << "\n";
    return pact::kExitOk;
  }
  if (!pact::ParseRange(kill_interval, &options.kill_min_ms, &options.kill_max_ms) ||
      options.clients < 1 || options.duration_s <= 0) {
    std::cerr << "pact-chaos-bank: bad --kill_interval_ms, --clients or --duration\n";
    return pact::kExitUsage;
  }
  if (options.seed == 0) {
    options.seed = static_cast<uint64_t>(
        std::chrono::system_clock::now().time_since_epoch().count() % 1000000007);
  }
  signal(SIGPIPE, SIG_IGN);
  pact::ChaosBank chaos(options);
  return chaos.Run();
}
