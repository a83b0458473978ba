// The command-line flags that say who this process is and how its servers
// learn who calls them (rpc_auth.h), shared by every binary.
#pragma once

#include <boost/program_options.hpp>
#include <string>

#include "rpc/rpc_auth.h"
#include "rpc/tls.h"

namespace pact {

struct SecurityFlags {
  TlsFiles tls;
  std::string tokens_path;
};

// Adds --tls_cert_path, --tls_key_path, --tls_ca_path and --auth_tokens_path.
void AddSecurityFlags(boost::program_options::options_description* desc, SecurityFlags* flags);

// How this process's servers authenticate callers: TLS when the TLS files are
// given, else tokens when a tokens file is, else open.
Result<ServerSecurity> MakeServerSecurity(const SecurityFlags& flags);
// What this process presents when it calls out as `role`: its certificate,
// or that role's token from the tokens file.
Result<RpcCredentials> MakeClientCredentials(const SecurityFlags& flags, Role role);

// What a serving process (coordinator, participant) needs: how its server
// authenticates callers, and what it presents when it calls out as `role`.
// With TLS its certificate must name it `name` and hold `role`, or its peers
// would refuse every call it makes: that is refused here, at start.
struct ProcessSecurity {
  ServerSecurity server;
  RpcCredentials client;
};
Result<ProcessSecurity> MakeProcessSecurity(const SecurityFlags& flags, Role role,
                                            const std::string& name);

}  // namespace pact
