// pact-participant: fronts one database as a two-phase-commit participant.
#include <iostream>
#include <memory>

#include <glog/logging.h>

#include "common/cli.h"
#include "participant/coordinator_link.h"
#include "participant/fence_store.h"
#include "participant/null_backend.h"
#include "participant/participant_handler.h"
#include "participant/participant_service.h"
#include "participant/sqlite_backend.h"
#include "thrift/rpc_server.h"

namespace po = boost::program_options;

namespace {

pact::Result<std::unique_ptr<pact::Backend>> OpenBackend(const std::string& kind,
                                                         const po::variables_map& vm) {
  if (kind == "sqlite") {
    pact::SqliteBackendOptions options;
    options.db_path = vm["sqlite_path"].as<std::string>();
    options.busy_timeout_ms = vm["sqlite_busy_timeout_ms"].as<int>();
    if (options.db_path.empty()) return pact::Status::InvalidArgument("--sqlite_path is required");
    ASSIGN_OR_RETURN(auto backend, pact::SqliteBackend::Open(options));
    return std::unique_ptr<pact::Backend>(std::move(backend));
  }
  if (kind == "null") return std::unique_ptr<pact::Backend>(new pact::NullBackend());
  return pact::Status::InvalidArgument("unknown --backend '" + kind + "' (known: sqlite, null)");
}

}  // namespace

int main(int argc, char** argv) {
  pact::ParticipantOptions options;
  std::string listen_host, coordinator_address, backend_kind, state_dir;
  pact::RpcTimeouts rpc_timeouts;

  po::options_description desc("Options");
  desc.add_options()
      ("name", po::value(&options.self.name)->required(),
       "participant name, unique per coordinator ([A-Za-z0-9_-])")
      ("host", po::value(&listen_host)->default_value("127.0.0.1"), "address to listen on")
      ("port", po::value(&options.self.port)->required(), "port to listen on")
      ("advertise_host", po::value(&options.self.host)->default_value(""),
       "address the coordinator uses to reach us (default: --host)")
      ("coordinator", po::value(&coordinator_address)->default_value("127.0.0.1:7700"),
       "coordinator host:port")
      ("backend", po::value(&backend_kind)->default_value("sqlite"),
       "database kind: sqlite, or null (stores nothing; for benchmarks only)")
      ("sqlite_path", po::value<std::string>()->default_value(""),
       "sqlite backend: the database file this adapter owns")
      ("sqlite_busy_timeout_ms", po::value<int>()->default_value(5000),
       "sqlite backend: how long a branch waits for the write lock")
      ("state_dir", po::value(&state_dir)->default_value("."),
       "directory for the adapter's own durable state (<name>-fences.db: the highest "
       "coordinator epoch seen)")
      ("inquiry_interval_ms", po::value(&options.inquiry_interval_ms)->default_value(1000),
       "how long a prepared branch waits for the decision before asking the coordinator")
      ("rpc_timeout_ms", po::value(&rpc_timeouts.call_ms)->default_value(10000),
       "timeout of calls to the coordinator");
  po::variables_map vm =
      pact::ParseCommandLine(argc, argv, desc, "Usage: pact-participant --name N --port P [options]");
  pact::InitLogging(argv[0]);
  pact::BlockStopSignals();

  if (options.self.host.empty()) options.self.host = listen_host;
  auto coordinator_endpoint = pact::Endpoint::Parse(coordinator_address);
  if (!coordinator_endpoint.ok()) {
    std::cerr << "pact-participant: --coordinator: " << coordinator_endpoint.status().ToString()
              << "\n";
    return 2;
  }
  auto backend = OpenBackend(backend_kind, vm);
  if (!backend.ok()) {
    LOG(ERROR) << "cannot open the " << backend_kind
               << " backend: " << backend.status().ToString();
    return 1;
  }
  options.self.backend = (*backend)->Name();
  auto fences = pact::FenceStore::Open(state_dir + "/" + options.self.name + "-fences.db");
  if (!fences.ok()) {
    LOG(ERROR) << fences.status().ToString();
    return 1;
  }
  pact::ThriftCoordinatorLink coordinator(*coordinator_endpoint, rpc_timeouts);
  pact::ParticipantService service(options, backend->get(), fences->get(), &coordinator);
  pact::Status st = service.Start();
  if (!st.ok()) {
    LOG(ERROR) << "participant cannot start: " << st.ToString();
    return 1;
  }
  auto handler = std::make_shared<pact::ParticipantHandler>(&service);
  pact::RpcServer server(std::make_shared<pact::rpc::ParticipantProcessor>(handler), listen_host,
                         options.self.port);
  st = server.Start();
  if (!st.ok()) {
    LOG(ERROR) << st.ToString();
    return 1;
  }
  LOG(INFO) << "pact-participant " << options.self.name << " (" << options.self.backend
            << ") serving on " << listen_host << ":" << options.self.port << ", coordinator "
            << coordinator_address;

  int sig = pact::WaitForStopSignal();
  LOG(INFO) << "signal " << sig << ": stopping";
  server.Stop();
  service.Stop();
  return 0;
}
