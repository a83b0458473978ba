#include "rpc/security_flags.h"

namespace pact {

namespace po = boost::program_options;

void AddSecurityFlags(po::options_description* desc, SecurityFlags* flags) {
  desc->add_options()
      ("tls_cert_path", po::value(&flags->tls.cert_path),
       "PEM certificate of this process (CN = its name, O = its roles); with the key and "
       "CA, every link of this process speaks mutual TLS 1.2+")
      ("tls_key_path", po::value(&flags->tls.key_path), "PEM private key of --tls_cert_path")
      ("tls_ca_path", po::value(&flags->tls.ca_path),
       "PEM CA certificate that signs every peer of the cluster")
      ("auth_tokens_path", po::value(&flags->tokens_path),
       "without TLS: file of '<role> <token>' lines; callers must present their role's "
       "token, and this process presents its own role's (loopback development only)");
}

Result<ServerSecurity> MakeServerSecurity(const SecurityFlags& flags) {
  ServerSecurity security;
  if (flags.tls.enabled()) {
    ASSIGN_OR_RETURN(security.tls, TlsContext::ForServer(flags.tls));
  } else if (!flags.tokens_path.empty()) {
    ASSIGN_OR_RETURN(security.tokens, TokenTable::Load(flags.tokens_path));
  }
  return security;
}

Result<RpcCredentials> MakeClientCredentials(const SecurityFlags& flags, Role role) {
  RpcCredentials credentials;
  if (flags.tls.enabled()) {
    ASSIGN_OR_RETURN(credentials.tls, TlsContext::ForClient(flags.tls));
  } else if (!flags.tokens_path.empty()) {
    ASSIGN_OR_RETURN(TokenTable tokens, TokenTable::Load(flags.tokens_path));
    credentials.token = tokens.TokenOf(role);
    if (credentials.token.empty()) {
      return Status::InvalidArgument(flags.tokens_path + " has no token for the role " +
                                     RoleName(role) + ", which this process calls as");
    }
  }
  return credentials;
}

Result<ProcessSecurity> MakeProcessSecurity(const SecurityFlags& flags, Role role,
                                            const std::string& name) {
  ProcessSecurity security;
  ASSIGN_OR_RETURN(security.server, MakeServerSecurity(flags));
  ASSIGN_OR_RETURN(security.client, MakeClientCredentials(flags, role));
  if (!security.client.tls) return security;
  const PeerCertificate& own = security.client.tls->own();
  if (own.common_name == name && own.HasOrganization(RoleName(role))) return security;
  return Status::InvalidArgument("--tls_cert_path must name this " + std::string(RoleName(role)) +
                                 ": CN=" + name + " and O=" + RoleName(role) + "; it has " +
                                 own.ToString());
}

}  // namespace pact
