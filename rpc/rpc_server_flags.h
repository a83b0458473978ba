// The command-line flags of an RpcServer's limits, shared by every binary
// that serves (their defaults are RpcServerOptions' own).
#pragma once

#include <boost/program_options.hpp>

#include "rpc/rpc_server.h"

namespace pact {

// Adds --rpc_max_connections, --rpc_idle_timeout_ms and --rpc_frame_timeout_ms,
// each writing into `options`.
void AddRpcServerFlags(boost::program_options::options_description* desc,
                       RpcServerOptions* options);

}  // namespace pact
