#include "cluster/tls_certificates.h"

#include <cstdlib>

namespace pact {

Status MakeTlsCertificates(const std::string& dir, const std::vector<std::string>& args) {
  std::string cmd = std::string(PACT_MAKE_TLS_CERTS) + " '" + dir + "'";
  for (const std::string& a : args) cmd += " '" + a + "'";
  if (std::system((cmd + " >/dev/null").c_str()) != 0) return Status::Internal("failed: " + cmd);
  return Status::Ok();
}

TlsFiles CertificateFiles(const std::string& dir, const std::string& name,
                          const std::string& ca_dir) {
  return {dir + "/" + name + ".pem", dir + "/" + name + "-key.pem", ca_dir + "/ca.pem"};
}

}  // namespace pact
