// Throwaway TLS certificates made by scripts/make-tls-certs, for clusters
// that speak mutual TLS.
#pragma once

#include <string>
#include <vector>

#include "common/status.h"
#include "rpc/tls.h"

namespace pact {

// Runs scripts/make-tls-certs DIR ARGS...: a throwaway CA in DIR (made once)
// and certificates, e.g. {"--days", "-1", "expired:application"}.
Status MakeTlsCertificates(const std::string& dir, const std::vector<std::string>& args);
// The files of certificate `name` made in `dir`, trusting the CA of `ca_dir`.
TlsFiles CertificateFiles(const std::string& dir, const std::string& name,
                          const std::string& ca_dir);

}  // namespace pact
