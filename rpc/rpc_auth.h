// Who may call what. Every call a Pact server serves is made by a caller
// holding roles:
//   application  begin, reserve ids, commit, rollback, status; execute at participants
//   coordinator  prepare, commit, rollback, recover at participants, and only
//                under its own name (a fence names the coordinator)
//   participant  register, outcome, report heuristic, under its name
//   operator     resolve, forget, remove participant, retry, listings
// A caller's roles and name come from one of three places, per server:
//   - mutual TLS: its certificate (CN = name, one O entry per role);
//   - tokens (loopback development without TLS): a connection presents a
//     role's token with authenticate() and holds that role, with no name;
//   - neither (the quick start): every caller holds every role. The server
//     warns when it listens beyond loopback like this.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>

#include "common/status.h"
#include "rpc/tls.h"

namespace pact {

enum class Role : uint8_t {
  kApplication = 1,
  kCoordinator = 2,
  kParticipant = 4,
  kOperator = 8,
};

// A set of roles, e.g. Roles(Role::kOperator) | Role::kCoordinator.
class Roles {
 public:
  constexpr Roles() = default;
  constexpr Roles(Role role) : bits_(static_cast<uint8_t>(role)) {}  // NOLINT: implicit
  static constexpr Roles All() { return Roles(0x0f); }

  constexpr Roles operator|(Roles other) const { return Roles(bits_ | other.bits_); }
  constexpr bool Has(Role role) const { return (bits_ & static_cast<uint8_t>(role)) != 0; }
  constexpr bool Intersects(Roles other) const { return (bits_ & other.bits_) != 0; }
  constexpr bool empty() const { return bits_ == 0; }
  // "application, operator"
  std::string ToString() const;

 private:
  constexpr explicit Roles(int bits) : bits_(static_cast<uint8_t>(bits)) {}
  uint8_t bits_ = 0;
};

const char* RoleName(Role role);
// "application" -> kApplication; kInvalidArgument for anything else.
Result<Role> ParseRole(const std::string& name);

// Role -> token, as read from a tokens file: one "<role> <token>" per line,
// '#' starts a comment. Tokens are at least 16 characters.
class TokenTable {
 public:
  static Result<TokenTable> Load(const std::string& path);

  bool empty() const { return tokens_.empty(); }
  // The roles `token` grants (empty if none); compared in constant time.
  Roles RolesOf(const std::string& token) const;
  // The token of `role`, "" if the file has none.
  std::string TokenOf(Role role) const;

 private:
  std::map<Role, std::string> tokens_;
};

// How a server learns its callers' identities (see the top of this file).
struct ServerSecurity {
  std::shared_ptr<TlsContext> tls;  // set: mutual TLS on this port
  TokenTable tokens;                // used when !tls and not empty

  bool open() const { return !tls && tokens.empty(); }
};

// What a client presents: a TLS context, or (plaintext) its role's token.
// With TLS, also whom it calls: the server's certificate must hold
// server_role (when set) and be CN=server_name (when not empty).
struct RpcCredentials {
  std::shared_ptr<TlsContext> tls;
  std::string token;
  std::optional<Role> server_role = std::nullopt;
  std::string server_name = {};

  // These credentials, for calling a server that is `role` (named `name`).
  RpcCredentials ToServer(Role role, std::string name = "") const {
    RpcCredentials out = *this;
    out.server_role = role;
    out.server_name = std::move(name);
    return out;
  }
};

// What a server knows of one connection's caller. RpcServer makes one per
// connection and puts it in scope for each call it serves on it.
struct CallerConnection {
  const ServerSecurity* security = nullptr;
  std::shared_ptr<TlsSocket> tls;  // its identity, once the handshake is done
  Roles token_roles;               // granted by authenticate()
  bool token_presented = false;
};

// Makes `connection` the current caller of this thread while it lives.
class CallerScope {
 public:
  explicit CallerScope(CallerConnection* connection);
  ~CallerScope();
  CallerScope(const CallerScope&) = delete;
  CallerScope& operator=(const CallerScope&) = delete;

 private:
  CallerConnection* const previous_;
};

// OK if the current caller holds one of `allowed`. Outside any RpcServer
// call (a handler called in-process) everything is allowed.
// kUnauthenticated: no identity at all (no token presented);
// kPermissionDenied: an identity without the role.
Status Authorize(Roles allowed, const char* what);
// As Authorize(role), and with TLS the caller's certificate must also name
// `name` (a coordinator's fence name, a participant's name): nobody can act
// under another's name.
Status AuthorizeAs(Role role, const std::string& name, const char* what);
// Handles authenticate(token): grants the current connection the token's
// roles, or kUnauthenticated.
Status AuthenticateConnection(const std::string& token);

}  // namespace pact
