// pact-coordinator: runs two-phase commit for applications, keeps every
// commit decision in a durable SQLite journal (or, as one coordinator of a
// highly available shard, in ZooKeeper), and finishes in-doubt transactions
// after a crash.
#include <dirent.h>
#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <cstdlib>
#include <thread>
#include <iostream>
#include <memory>

#include <glog/logging.h>

#include "common/cli.h"
#include "common/metrics_http.h"
#include "coordinator/coordinator.h"
#include "coordinator/coordinator_handler.h"
#include "coordinator/standby.h"
#include "coordinator/thrift_participants.h"
#include "gen-cpp/pact_constants.h"
#include "journal/fsync_fault_vfs.h"
#include "journal/sqlite_journal.h"
#include "journal/zookeeper_journal.h"
#include "rpc/rpc_convert.h"
#include "rpc/rpc_server.h"
#include "rpc/rpc_server_flags.h"
#include "rpc/security_flags.h"
#include "zookeeper/shard_directory.h"
#include "zookeeper/shard_election.h"

namespace po = boost::program_options;

namespace {

// The --participant flags (name=host:port[,backend]); false after logging a bad one.
bool RegisterStaticParticipants(pact::Coordinator* coordinator,
                                const std::vector<std::string>& specs) {
  for (const std::string& spec : specs) {
    size_t eq = spec.find('=');
    std::string backend;
    std::string address = eq == std::string::npos ? "" : spec.substr(eq + 1);
    if (size_t comma = address.find(','); comma != std::string::npos) {
      backend = address.substr(comma + 1);
      address = address.substr(0, comma);
    }
    auto endpoint = pact::Endpoint::Parse(address);
    pact::Status st = endpoint.ok() ? coordinator->RegisterParticipant(
                                          {spec.substr(0, eq), endpoint->host, endpoint->port,
                                           backend})
                                    : endpoint.status();
    if (!st.ok()) {
      LOG(ERROR) << "bad --participant '" << spec << "': " << st.ToString();
      return false;
    }
  }
  return true;
}

// What a coordinator of a highly available shard needs besides the
// single coordinator's settings.
struct ShardMember {
  std::string zookeeper;  // connect string
  std::string zk_root;    // the deployment's: its shard map and shards
  std::string advertise;  // host:port that standbys name to callers
  int session_timeout_ms = 2000;
};

// Starts this program again in this process, with the arguments it was
// given: what a supervisor would do after an exit, without needing one.
// Nothing of this run survives (its threads, its connections, the
// transactions it had not decided), as after a crash; what it decided is in
// ZooKeeper, for whichever coordinator leads the shard next.
[[noreturn]] void RestartAsStandby(char** argv, const std::string& why) {
  LOG(ERROR) << why << "; restarting as a standby with a new ZooKeeper session";
  google::FlushLogFiles(google::GLOG_INFO);
  // Every descriptor closes on exec: the new run binds the same port, and
  // no connection of this run may outlive it.
  if (DIR* fds = opendir("/proc/self/fd")) {
    while (dirent* entry = readdir(fds)) {
      const int fd = std::atoi(entry->d_name);
      if (fd > 2) fcntl(fd, F_SETFD, FD_CLOEXEC);
    }
    closedir(fds);
  }
  execv("/proc/self/exe", argv);
  PLOG(ERROR) << "cannot restart";
  google::FlushLogFiles(google::GLOG_INFO);
  _exit(4);
}

// What the shard member's main thread waits for; shared with the signal
// thread, which may outlive any return.
struct MemberEvents {
  std::mutex mu;
  std::condition_variable changed;
  bool leading = false;  // guarded by mu
  bool stop = false;     // guarded by mu
};

// Serves as one coordinator of a shard whose decisions live in ZooKeeper:
// a standby (every call answered NOT_LEADER, naming the active) until it
// wins the election, then the active: it raises the shard's epoch (which
// fences the previous active's writes), loads the shard's decisions, re-drives
// their commits, rolls back prepared branches without a record, and serves.
// While its session has lost ZooKeeper it answers UNAVAILABLE; when the
// session expires (or a decision's write ends unknown) it starts again as a
// standby with a fresh session (RestartAsStandby). On SIGTERM it finishes
// what is in flight and resigns, so that a standby takes over at once.
int ServeShardMember(const ShardMember& shard, pact::CoordinatorOptions options,
                     pact::ThriftParticipants* participants, pact::CoordinatorMetrics* metrics,
                     pact::RpcServerOptions rpc_server, const std::string& host, int port,
                     const std::vector<std::string>& static_participants,
                     int shutdown_grace_ms, char** argv) {
  pact::ElectionRelay relay;
  pact::ZkSessionOptions zk;
  zk.connect_string = shard.zookeeper;
  zk.session_timeout_ms = shard.session_timeout_ms;
  zk.on_state = relay.StateListener();
  zk.on_watch = relay.WatchListener();
  zk.connect_timeout_ms = 2000;
  // Waits for ZooKeeper: a member restarted as a standby may be back first.
  auto session = pact::ZkSession::Connect(zk);
  while (!session.ok()) {
    LOG(ERROR) << "cannot reach ZooKeeper at " << shard.zookeeper << " (trying again): "
               << session.status().ToString();
    if (pact::TakeStopSignal()) return 0;
    session = pact::ZkSession::Connect(zk);
  }
  const int granted = (*session)->negotiated_timeout_ms();
  if (granted > shard.session_timeout_ms) {
    LOG(WARNING) << "ZooKeeper granted a session timeout of " << granted << " ms instead of "
                 << shard.session_timeout_ms << ": a take-over waits that long (the servers' "
                 << "minSessionTimeout, 2 x tickTime by default)";
  }
  auto events = std::make_shared<MemberEvents>();
  pact::ShardElectionOptions election_options;
  election_options.path = pact::ElectionPath(shard.zk_root, options.name);
  election_options.address = shard.advertise;
  election_options.on_change = [events](bool now_leading) {
    std::lock_guard<std::mutex> lock(events->mu);
    events->leading = now_leading;
    events->changed.notify_all();
  };
  // The election exists before the server, so that a standby can name the
  // active. A join cut off by ZooKeeper is asked again (it finds its node if
  // the lost create made one).
  auto election = pact::ShardElection::Join(session->get(), election_options);
  while (!election.ok() && election.status().code() == pact::StatusCode::kUnavailable) {
    if ((*session)->expired()) RestartAsStandby(argv, "ZooKeeper session expired while joining");
    LOG(WARNING) << "cannot enter the election at " << election_options.path
                 << " yet (trying again): " << election.status().ToString();
    if (pact::TakeStopSignal()) return 0;
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    election = pact::ShardElection::Join(session->get(), election_options);
  }
  if (!election.ok()) {
    LOG(ERROR) << "cannot enter the election at " << election_options.path << ": "
               << election.status().ToString();
    return 1;
  }
  relay.Attach(election->get());
  std::atomic<bool> was_active{false};
  auto why_not_serving = [&]() -> pact::Status {
    if (was_active) {
      return pact::Status::Unavailable("the active coordinator of shard " + options.name +
                                       " lost contact with ZooKeeper; ask again");
    }
    auto leader = (*election)->LeaderAddress();
    return pact::NotLeaderStatus(options.name, leader.ok() ? *leader : "");
  };
  auto switching = std::make_shared<pact::SwitchingProcessor>(
      std::make_shared<pact::rpc::CoordinatorProcessor>(
          std::make_shared<pact::NotServingHandler>(options.name, why_not_serving)),
      [&] { return (*election)->leading(); });
  rpc_server.metrics = &metrics->registry;
  pact::RpcServer server(switching, host, port, rpc_server);
  pact::Status st = server.Start();
  if (!st.ok()) {
    LOG(ERROR) << st.ToString();
    return 1;
  }
  std::thread([events] {
    int sig = pact::WaitForStopSignal();
    LOG(INFO) << "signal " << sig << ": stopping";
    std::lock_guard<std::mutex> lock(events->mu);
    events->stop = true;
    events->changed.notify_all();
  }).detach();  // it ends with the process
  LOG(INFO) << "pact-coordinator " << options.name << " standing by on " << host << ":" << port
            << " (advertised as " << shard.advertise << ")";
  {
    std::unique_lock<std::mutex> lock(events->mu);
    while (!events->stop && !events->leading && !(*session)->expired()) {
      events->changed.wait_for(lock, std::chrono::milliseconds(100));
    }
    if (events->stop) {
      lock.unlock();
      (void)(*election)->Resign();
      server.Stop();
      return 0;
    }
  }
  // Its node went with the session: a new session is a new candidate.
  if ((*session)->expired()) RestartAsStandby(argv, "ZooKeeper session expired while standing by");

  const auto won = std::chrono::steady_clock::now();
  pact::ZooKeeperJournalOptions journal_options;
  journal_options.root = pact::ShardPath(shard.zk_root, options.name);
  auto journal = pact::ZooKeeperJournal::Open(session->get(), journal_options);
  if (!journal.ok()) {
    LOG(ERROR) << "cannot open the shard's journal at " << journal_options.root << ": "
               << journal.status().ToString();
    return 1;
  }
  // A decision whose write ended unknown: this run decides nothing more. The
  // next active settles it from what ZooKeeper holds; resigning now (if
  // ZooKeeper answers) lets a standby take over without waiting out this
  // session.
  pact::ShardElection* shard_election = election->get();
  options.protocol.on_journal_lost = [argv, shard_election](const pact::Status& st) {
    (void)shard_election->Resign();
    std::thread([argv, st] {
      // The callers in flight hear UNAVAILABLE (unknown) first.
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
      RestartAsStandby(argv, "a decision's write to ZooKeeper ended unknown (" +
                                 st.ToString() + ")");
    }).detach();
  };
  pact::Coordinator coordinator(options, journal->get(), participants, metrics);
  // Served from before Start, as a single coordinator is: calls hear
  // UNAVAILABLE (recovering) until it has finished, but participants asked to
  // confirm the raised epoch during recovery hear it.
  was_active = true;
  switching->Serve(std::make_shared<pact::rpc::CoordinatorProcessor>(
      std::make_shared<pact::CoordinatorHandler>(&coordinator)));
  st = coordinator.Start();
  if (!st.ok()) {
    LOG(ERROR) << "coordinator cannot take over: " << st.ToString();
    return 1;
  }
  if (!RegisterStaticParticipants(&coordinator, static_participants)) return 2;
  // Serving: zk:// clients may begin transactions here from now on.
  st = pact::ShardMapJoin(session->get(), shard.zk_root, options.name);
  LOG_IF(WARNING, !st.ok()) << "cannot enter the shard map (zk:// clients will not begin "
                               "transactions here until the next take-over): "
                            << st.ToString();
  LOG(INFO) << "pact-coordinator " << options.name << " ACTIVE, epoch " << coordinator.epoch()
            << ", serving on " << host << ":" << port << " "
            << std::chrono::duration_cast<std::chrono::milliseconds>(
                   std::chrono::steady_clock::now() - won)
                   .count()
            << " ms after winning the election";

  {
    // Expiry comes after the connection loss that already ended leading: look.
    std::unique_lock<std::mutex> lock(events->mu);
    while (!events->stop && !(*session)->expired()) {
      events->changed.wait_for(lock, std::chrono::milliseconds(100));
    }
  }
  if ((*session)->expired()) {
    // Another active may already serve: decide nothing more.
    RestartAsStandby(argv, "ZooKeeper session expired: no longer the active of " + options.name);
  }
  size_t open = coordinator.Drain(shutdown_grace_ms);
  (void)(*election)->Resign();  // the next standby takes over now
  server.Stop();
  coordinator.Stop();
  LOG(INFO) << "stopped" << (open > 0 ? " with transactions left to the next active" : " cleanly");
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  pact::CoordinatorOptions options;
  pact::ProtocolOptions& protocol = options.protocol;
  pact::RpcTimeouts rpc_timeouts;
  pact::RpcServerOptions rpc_server;
  pact::SecurityFlags security;
  pact::SqliteJournalOptions journal_options;
  std::string host, journal_path, metrics_host;
  int port = 0, metrics_port = -1, shutdown_grace_ms = 0;
  std::vector<std::string> static_participants;
  ShardMember shard;
  int max_batch = 128;
  int max_in_flight = 1;

  po::options_description desc("Options");
  desc.add_options()
      ("name", po::value(&options.name)->default_value("pact"),
       "coordinator name; prefixes every transaction id. Keep it stable: the journal "
       "belongs to it")
      ("host", po::value(&host)->default_value("127.0.0.1"), "address to listen on")
      ("port", po::value(&port)->default_value(7700), "port to listen on")
      ("journal", po::value(&journal_path)->default_value("pact-journal.db"),
       "journal file (SQLite, WAL, synchronous=FULL)")
      ("participant", po::value(&static_participants)->composing(),
       "register a participant at start: name=host:port[,backend] (repeatable); "
       "participants also register themselves")
      ("txn_timeout_ms", po::value(&options.default_txn_timeout_ms)->default_value(30000),
       "deadline of a transaction that asks for none; rolled back when passed")
      ("max_txn_timeout_ms", po::value(&options.max_txn_timeout_ms)->default_value(3600000),
       "largest deadline a client may ask for")
      ("prepare_timeout_ms", po::value(&protocol.prepare_timeout_ms)->default_value(5000),
       "how long a participant may take to vote; no vote counts as ABORT")
      ("commit_retry_initial_ms",
       po::value(&protocol.commit_retry_initial_ms)->default_value(100),
       "first backoff before re-sending an unacknowledged commit")
      ("commit_retry_max_ms", po::value(&protocol.commit_retry_max_ms)->default_value(10000),
       "backoff cap for commit retries")
      ("rpc_connect_timeout_ms", po::value(&rpc_timeouts.connect_ms)->default_value(2000),
       "TCP connect timeout to participants")
      ("rpc_timeout_ms", po::value(&rpc_timeouts.call_ms)->default_value(10000),
       "timeout of commit, rollback and recover calls to participants")
      ("max_batch", po::value(&max_batch)->default_value(128),
       "most prepares (commits, rollbacks) of concurrent transactions sent to one "
       "participant in one call; 1 sends each on its own")
      ("max_batches_in_flight", po::value(&max_in_flight)->default_value(1),
       "batches of one kind sent to one participant at once; a call waits for the next "
       "batch only while that many are in flight")
      ("finished_txns_kept", po::value(&options.finished_txns_kept)->default_value(10000),
       "finished transactions remembered for status queries")
      ("group_commit", po::value(&journal_options.group_commit)->default_value(true),
       "share one journal fsync among concurrent decisions")
      ("group_commit_wait_us",
       po::value(&journal_options.group_commit_wait_us)->default_value(2000),
       "how long a journal batch may wait for decisions of transactions still collecting "
       "votes (0: never; a lone decision never waits)")
      ("metrics_port", po::value(&metrics_port)->default_value(-1),
       "serve Prometheus metrics on http://<metrics_host>:<port>/metrics (-1: off, 0: any "
       "free port)")
      ("metrics_host", po::value(&metrics_host)->default_value("127.0.0.1"),
       "address the metrics page listens on (plain HTTP, no authentication: keep it "
       "private)")
      ("shutdown_grace_ms", po::value(&shutdown_grace_ms)->default_value(10000),
       "on SIGTERM, how long to wait for transactions being decided and commits being "
       "delivered before exiting")
      ("zookeeper", po::value(&shard.zookeeper)->default_value(""),
       "highly available: ZooKeeper connect string (host:port,...). The coordinators "
       "started with one --name form a shard: one active, the others standbys; its "
       "decisions live in ZooKeeper instead of --journal")
      ("zk_root", po::value(&shard.zk_root)->default_value("/pact"),
       "with --zookeeper: the znode under which shards keep their election and decisions, "
       "and the shard map; a shard enters the map (zk:// clients begin transactions there) "
       "when it first serves")
      ("zk_session_timeout_ms", po::value(&shard.session_timeout_ms)->default_value(2000),
       "with --zookeeper: after this long without ZooKeeper an active is replaced (a take-over "
       "takes about this plus 0.1-0.3 s). The servers grant at least 2 x their tickTime: "
       "give them tickTime=500 or less")
      ("advertise", po::value(&shard.advertise)->default_value(""),
       "with --zookeeper: host:port that standbys name to callers as the active (default: "
       "--host:--port)");
  pact::AddRpcServerFlags(&desc, &rpc_server);
  pact::AddSecurityFlags(&desc, &security);
  pact::ParseCommandLine(argc, argv, desc, "Usage: pact-coordinator [options]");
  pact::InitLogging(argv[0]);
  pact::BlockStopSignals();


  // Testing seam: while the file named by PACT_INJECT_JOURNAL_ERROR exists,
  // every journal write fails like a full disk.
  if (const char* flag = std::getenv("PACT_INJECT_JOURNAL_ERROR")) {
    std::string path = flag;
    journal_options.inject_batch_error = [path] {
      if (access(path.c_str(), F_OK) != 0) return pact::Status::Ok();
      return pact::Status::IoError("injected: database or disk is full (" + path + " exists)");
    };
  }
  // Testing seam: while the file named by PACT_INJECT_JOURNAL_FSYNC_ERROR
  // exists, journal fsyncs fail after writing (see fsync_fault_vfs.h).
  if (const char* flag = std::getenv("PACT_INJECT_JOURNAL_FSYNC_ERROR")) {
    auto vfs = pact::RegisterFsyncFaultVfs(flag);
    if (!vfs.ok()) {
      LOG(ERROR) << vfs.status().ToString();
      return 1;
    }
    journal_options.vfs = *vfs;
  }
  // A decision whose outcome the journal left unknown: stop, like a power
  // cut, and let recovery decide from what is on disk. The callers in flight
  // get UNAVAILABLE (unknown) first.
  protocol.on_journal_lost = [](const pact::Status& st) {
    std::thread([st] {
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
      LOG(ERROR) << "exiting so that recovery decides: " << st.ToString();
      google::FlushLogFiles(google::GLOG_INFO);
      _exit(3);
    }).detach();
  };
  pact::CoordinatorMetrics metrics;
  journal_options.coordinator_name = options.name;
  journal_options.on_batch_durable = [&metrics](size_t records) {
    metrics.journal_fsyncs->Add();
    metrics.journal_commit_records->Add(static_cast<int64_t>(records));
    metrics.journal_batch_size->Observe(static_cast<double>(records));
  };
  // Set once the coordinator exists; the journal's writer asks it how many
  // decisions are on their way (before that, none are).
  std::atomic<pact::Coordinator*> deciding_source{nullptr};
  journal_options.decisions_coming = [&deciding_source]() -> int64_t {
    pact::Coordinator* coordinator = deciding_source.load(std::memory_order_acquire);
    return coordinator == nullptr ? 0 : coordinator->Deciding();
  };
  auto process_security =
      pact::MakeProcessSecurity(security, pact::Role::kCoordinator, options.name);
  if (!process_security.ok()) {
    LOG(ERROR) << process_security.status().ToString();
    return 2;
  }
  rpc_server.security = process_security->server;
  if (max_batch < 1 || max_batch > pact::rpc::g_pact_constants.MAX_BATCH_ITEMS) {
    LOG(ERROR) << "--max_batch must be 1.." << pact::rpc::g_pact_constants.MAX_BATCH_ITEMS;
    return 2;
  }
  if (max_in_flight < 1) {
    LOG(ERROR) << "--max_batches_in_flight must be at least 1";
    return 2;
  }
  pact::ThriftParticipants participants(rpc_timeouts, process_security->client,
                                        static_cast<size_t>(max_batch),
                                        static_cast<size_t>(max_in_flight));
  if (!shard.zookeeper.empty()) {
    if (shard.advertise.empty()) shard.advertise = host + ":" + std::to_string(port);
    return ServeShardMember(shard, options, &participants, &metrics, rpc_server, host, port,
                            static_participants, shutdown_grace_ms, argv);
  }
  auto journal = pact::SqliteJournal::Open(journal_path, journal_options);
  if (!journal.ok()) {
    LOG(ERROR) << "cannot open journal " << journal_path << ": " << journal.status().ToString();
    return 1;
  }
  pact::Coordinator coordinator(options, journal->get(), &participants, &metrics);
  deciding_source.store(&coordinator, std::memory_order_release);
  struct Unset {  // the journal outlives the coordinator: stop asking it first
    std::atomic<pact::Coordinator*>& source;
    ~Unset() { source.store(nullptr, std::memory_order_release); }
  } unset_deciding_source{deciding_source};
  // Bound before recovery touches any participant: a start that cannot
  // serve must fail before it raises epochs or rolls anything back. Until
  // Start() has finished, calls are answered UNAVAILABLE (recovering).
  auto handler = std::make_shared<pact::CoordinatorHandler>(&coordinator);
  rpc_server.metrics = &metrics.registry;
  pact::RpcServer server(std::make_shared<pact::rpc::CoordinatorProcessor>(handler), host, port,
                         rpc_server);
  pact::Status st = server.Start();
  if (!st.ok()) {
    LOG(ERROR) << st.ToString();
    return 1;
  }
  st = coordinator.Start();
  if (!st.ok()) {
    LOG(ERROR) << "coordinator cannot start: " << st.ToString();
    return 1;
  }
  if (!RegisterStaticParticipants(&coordinator, static_participants)) return 2;

  auto metrics_server = pact::ServeMetrics(&metrics.registry, metrics_host, metrics_port);
  if (!metrics_server.ok()) {
    LOG(ERROR) << metrics_server.status().ToString();
    return 1;
  }
  LOG(INFO) << "pact-coordinator " << options.name << " epoch " << coordinator.epoch()
            << " serving on " << host << ":" << port << " journal " << journal_path;

  int sig = pact::WaitForStopSignal();
  // A clean stop: no new transactions, decide the ones in flight and deliver
  // their commits while still answering participants, then close.
  LOG(INFO) << "signal " << sig << ": stopping";
  size_t open = coordinator.Drain(shutdown_grace_ms);
  server.Stop();
  coordinator.Stop();
  if (const pact::ParticipantBatcher* batcher = participants.batcher()) {
    LOG(INFO) << "batched calls: " << batcher->items_sent() << " in " << batcher->batches_sent()
              << " batches";
  }
  LOG(INFO) << "stopped" << (open > 0 ? " with transactions left to recovery" : " cleanly");
  return 0;
}
