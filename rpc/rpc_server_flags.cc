#include "rpc/rpc_server_flags.h"

namespace pact {

namespace po = boost::program_options;

void AddRpcServerFlags(po::options_description* desc, RpcServerOptions* options) {
  desc->add_options()
      ("rpc_max_connections",
       po::value(&options->max_connections)->default_value(options->max_connections),
       "connections served at once (a thread each); more are closed on accept and counted "
       "in pact_rpc_connections_refused_total")
      ("rpc_idle_timeout_ms",
       po::value(&options->idle_timeout_ms)->default_value(options->idle_timeout_ms),
       "a connection that sends nothing for this long is closed (0: never)")
      ("rpc_frame_timeout_ms",
       po::value(&options->frame_timeout_ms)->default_value(options->frame_timeout_ms),
       "a request frame must arrive within this of its first byte, and a reply be written "
       "within it; frames refused for this or for exceeding the RPC limits (64 MiB frame, "
       "16 MiB string, 1M elements) close the connection and count in "
       "pact_rpc_frames_refused_total");
}

}  // namespace pact
