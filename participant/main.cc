// pact-participant: fronts one database as a two-phase-commit participant.
#include <iostream>
#include <memory>

#include <glog/logging.h>

#include "common/cli.h"
#include "common/metrics_http.h"
#include "participant/coordinator_link.h"
#include "zookeeper/shard_directory.h"
#include "participant/backends/mariadb/mariadb_backend.h"
#include "participant/backends/null/null_backend.h"
#include "participant/participant_handler.h"
#include "participant/participant_service.h"
#include "participant/backends/postgres/postgres_backend.h"
#include "participant/backends/sqlite/sqlite_backend.h"
#include "participant/state_store.h"
#include "rpc/rpc_server.h"
#include "rpc/rpc_server_flags.h"
#include "rpc/security_flags.h"

namespace po = boost::program_options;

namespace {

// The one switch from --backend to a Backend.
pact::Result<std::unique_ptr<pact::Backend>> OpenBackend(const std::string& kind,
                                                         const std::string& participant,
                                                         const po::variables_map& vm) {
  if (kind == "sqlite") {
    pact::SqliteBackendOptions options;
    options.db_path = vm["sqlite_path"].as<std::string>();
    options.busy_timeout_ms = vm["sqlite_busy_timeout_ms"].as<int>();
    options.commit_marker_retention_ms = vm["commit_marker_retention_ms"].as<int64_t>();
    if (options.db_path.empty()) return pact::Status::InvalidArgument("--sqlite_path is required");
    ASSIGN_OR_RETURN(auto backend, pact::SqliteBackend::Open(options));
    return std::unique_ptr<pact::Backend>(std::move(backend));
  }
  if (kind == "postgresql") {
    pact::PostgresBackendOptions options;
    options.conninfo = vm["pg_conninfo"].as<std::string>();
    options.participant_name = participant;
    options.commit_marker_retention_ms = vm["commit_marker_retention_ms"].as<int64_t>();
    if (options.conninfo.empty()) return pact::Status::InvalidArgument("--pg_conninfo is required");
    ASSIGN_OR_RETURN(auto backend, pact::PostgresBackend::Open(options));
    return std::unique_ptr<pact::Backend>(std::move(backend));
  }
  if (kind == "mariadb") {
    pact::MariaDbBackendOptions options;
    options.host = vm["mariadb_host"].as<std::string>();
    options.port = vm["mariadb_port"].as<int>();
    options.user = vm["mariadb_user"].as<std::string>();
    options.password = vm["mariadb_password"].as<std::string>();
    options.database = vm["mariadb_database"].as<std::string>();
    options.read_timeout_s = vm["mariadb_read_timeout_s"].as<int>();
    options.write_timeout_s = vm["mariadb_write_timeout_s"].as<int>();
    options.commit_marker_retention_ms = vm["commit_marker_retention_ms"].as<int64_t>();
    options.participant_name = participant;
    if (options.database.empty()) {
      return pact::Status::InvalidArgument("--mariadb_database is required");
    }
    ASSIGN_OR_RETURN(auto backend, pact::MariaDbBackend::Open(options));
    return std::unique_ptr<pact::Backend>(std::move(backend));
  }
  if (kind == "null") return std::unique_ptr<pact::Backend>(new pact::NullBackend());
  return pact::Status::InvalidArgument("unknown --backend '" + kind +
                                       "' (known: sqlite, postgresql, mariadb, null)");
}

}  // namespace

int main(int argc, char** argv) {
  pact::ParticipantOptions options;
  std::string listen_host, coordinator_address, backend_kind, state_dir, metrics_host;
  pact::SecurityFlags security;
  int metrics_port = -1, listen_port = 0, advertise_port = 0;
  pact::RpcTimeouts rpc_timeouts;
  pact::RpcServerOptions rpc_server;

  po::options_description desc("Options");
  desc.add_options()
      ("name", po::value(&options.self.name)->required(),
       "participant name, unique per coordinator ([A-Za-z0-9_-])")
      ("host", po::value(&listen_host)->default_value("127.0.0.1"), "address to listen on")
      ("port", po::value(&listen_port)->required(), "port to listen on")
      ("advertise_host", po::value(&options.self.host)->default_value(""),
       "address the coordinator uses to reach us (default: --host)")
      ("advertise_port", po::value(&advertise_port)->default_value(0),
       "port the coordinator uses to reach us, e.g. a proxy's (default: --port)")
      ("coordinator", po::value(&coordinator_address)->default_value("127.0.0.1:7700"),
       "coordinator host:port; for a highly available shard, its coordinators as "
       "host:port,host:port,... (a standby's NOT_LEADER is followed to the active); for "
       "several shards, zk://host:port,.../root: every shard of the ZooKeeper shard map, "
       "each transaction's asked of the active of the shard its id names")
      ("backend", po::value(&backend_kind)->default_value("sqlite"),
       "database kind: sqlite, postgresql, mariadb, or null (stores nothing; for "
       "benchmarks only)")
      ("sqlite_path", po::value<std::string>()->default_value(""),
       "sqlite: the database file this adapter owns")
      ("sqlite_busy_timeout_ms", po::value<int>()->default_value(5000),
       "sqlite: how long a branch waits for the write lock")
      ("pg_conninfo", po::value<std::string>()->default_value(""),
       "postgresql: libpq connection string, e.g. 'host=db1 port=5432 dbname=bank "
       "user=pact'; the server needs max_prepared_transactions > 0")
      ("mariadb_host", po::value<std::string>()->default_value("127.0.0.1"), "mariadb: host")
      ("mariadb_port", po::value<int>()->default_value(3306), "mariadb: port")
      ("mariadb_user", po::value<std::string>()->default_value("root"), "mariadb: user")
      ("mariadb_password", po::value<std::string>()->default_value(""), "mariadb: password")
      ("mariadb_database", po::value<std::string>()->default_value(""),
       "mariadb: database (InnoDB tables)")
      ("state_dir", po::value(&state_dir)->default_value("."),
       "directory for the adapter's own durable state (<name>-state.db: the highest "
       "coordinator epoch seen, heuristic decisions)")
      ("mariadb_read_timeout_s", po::value<int>()->default_value(60),
       "mariadb: a call the server does not answer within this is an unknown outcome")
      ("mariadb_write_timeout_s", po::value<int>()->default_value(60),
       "mariadb: likewise for sending to the server")
      ("commit_marker_retention_ms", po::value<int64_t>()->default_value(86400000),
       "how long the database keeps the marker that tells a committed branch from a "
       "rolled-back one (a commit asked again later than this is shown as a heuristic "
       "hazard)")
      ("orphan_check_interval_ms", po::value(&options.orphan_check_interval_ms)->default_value(10000),
       "how often the database's prepared branches are compared with the ones held, so a "
       "branch whose prepare answer was lost is found and finished")
      ("inquiry_interval_ms", po::value(&options.inquiry_interval_ms)->default_value(1000),
       "how long a prepared branch waits for the decision before asking the coordinator, and "
       "an active one between asking whether anyone can still commit it")
      ("first_active_inquiry_ms", po::value(&options.first_active_inquiry_ms)->default_value(200),
       "when an active branch first asks the coordinator whether anyone can still commit it "
       "(a statement under an id nobody handed out holds its locks this long)")
      ("rpc_connect_timeout_ms", po::value(&rpc_timeouts.connect_ms)->default_value(2000),
       "TCP connect timeout to the coordinator")
      ("rpc_timeout_ms", po::value(&rpc_timeouts.call_ms)->default_value(10000),
       "timeout of calls to the coordinator")
      ("metrics_port", po::value(&metrics_port)->default_value(-1),
       "serve Prometheus metrics on http://<metrics_host>:<port>/metrics (-1: off, 0: any "
       "free port)")
      ("metrics_host", po::value(&metrics_host)->default_value("127.0.0.1"),
       "address the metrics page listens on (plain HTTP, no authentication: keep it "
       "private)");
  pact::AddRpcServerFlags(&desc, &rpc_server);
  pact::AddSecurityFlags(&desc, &security);
  po::variables_map vm =
      pact::ParseCommandLine(argc, argv, desc, "Usage: pact-participant --name N --port P [options]");
  pact::InitLogging(argv[0]);
  pact::BlockStopSignals();

  if (options.self.host.empty()) options.self.host = listen_host;
  options.self.port = advertise_port > 0 ? advertise_port : listen_port;
  auto process_security =
      pact::MakeProcessSecurity(security, pact::Role::kParticipant, options.self.name);
  if (!process_security.ok()) {
    LOG(ERROR) << process_security.status().ToString();
    return 2;
  }
  rpc_server.security = process_security->server;
  auto backend = OpenBackend(backend_kind, options.self.name, vm);
  if (!backend.ok()) {
    LOG(ERROR) << "cannot open the " << backend_kind
               << " backend: " << backend.status().ToString();
    return 1;
  }
  options.self.backend = (*backend)->Name();
  options.incarnation = pact::RandomIncarnation();
  auto state = pact::SqliteStateStore::Open(state_dir + "/" + options.self.name + "-state.db");
  if (!state.ok()) {
    LOG(ERROR) << state.status().ToString();
    return 1;
  }
  auto coordinators = pact::MakeCoordinatorRoutes(coordinator_address, rpc_timeouts,
                                                  process_security->client);
  if (!coordinators.ok()) {
    std::cerr << "pact-participant: --coordinator: " << coordinators.status().ToString() << "\n";
    return 2;
  }
  pact::ThriftCoordinatorLink coordinator(std::move(*coordinators));
  pact::ParticipantService service(options, backend->get(), state->get(), &coordinator);
  pact::Status st = service.Start();
  if (!st.ok()) {
    LOG(ERROR) << "participant cannot start: " << st.ToString();
    return 1;
  }
  auto handler = std::make_shared<pact::ParticipantHandler>(&service);
  rpc_server.metrics = &service.metrics();
  pact::RpcServer server(std::make_shared<pact::rpc::ParticipantProcessor>(handler), listen_host,
                         listen_port, rpc_server);
  st = server.Start();
  if (!st.ok()) {
    LOG(ERROR) << st.ToString();
    return 1;
  }
  auto metrics_server = pact::ServeMetrics(&service.metrics(), metrics_host, metrics_port);
  if (!metrics_server.ok()) {
    LOG(ERROR) << metrics_server.status().ToString();
    return 1;
  }
  LOG(INFO) << "pact-participant " << options.self.name << " (" << options.self.backend
            << ") serving on " << listen_host << ":" << listen_port << ", coordinator "
            << coordinator_address;

  int sig = pact::WaitForStopSignal();
  LOG(INFO) << "signal " << sig << ": stopping";
  server.Stop();
  service.Stop();
  return 0;
}
