#include "tools/chaos/coordinator_probe.h"

#include "gen-cpp/Coordinator.h"
#include "rpc/rpc_client.h"

namespace pact {

const char* CoordinatorRoleName(CoordinatorRole role) {
  switch (role) {
    case CoordinatorRole::kDown: return "down";
    case CoordinatorRole::kStandby: return "standby";
    case CoordinatorRole::kCutOff: return "cut off";
    case CoordinatorRole::kRecovering: return "recovering";
    case CoordinatorRole::kActive: return "active";
  }
  return "?";
}

struct CoordinatorProbe::Connection {
  RpcConnection<rpc::CoordinatorClient> rpc;
};

CoordinatorProbe::CoordinatorProbe(int port, int timeout_ms)
    : conn_(new Connection{RpcConnection<rpc::CoordinatorClient>(
          Endpoint{"127.0.0.1", port}, RpcTimeouts{timeout_ms, timeout_ms})}) {}

CoordinatorProbe::~CoordinatorProbe() = default;

CoordinatorView CoordinatorProbe::Ask() {
  rpc::CoordinatorInfo info;
  const Status st = conn_->rpc.Call([&](rpc::CoordinatorClient& c) { c.info(info); });
  CoordinatorView view;
  if (st.ok()) {
    view.role = info.ready ? CoordinatorRole::kActive : CoordinatorRole::kRecovering;
    view.epoch = info.epoch;
  } else if (st.code() == StatusCode::kNotLeader) {
    view.role = CoordinatorRole::kStandby;
  } else if (st.message().find("lost contact with ZooKeeper") != std::string::npos) {
    // The coordinator's own answer (not a transport failure, which is also
    // UNAVAILABLE): it was the active and waits for its session.
    view.role = CoordinatorRole::kCutOff;
  }
  return view;
}

}  // namespace pact
