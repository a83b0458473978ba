#include "rpc/rpc_auth.h"

#include <openssl/crypto.h>

#include <fstream>
#include <sstream>

namespace pact {

namespace {

constexpr Role kAllRoles[] = {Role::kApplication, Role::kCoordinator, Role::kParticipant,
                              Role::kOperator};
constexpr size_t kMinTokenLength = 16;

thread_local CallerConnection* current_caller = nullptr;

// The caller's roles and certificate name.
struct Caller {
  Roles roles;
  std::string name;         // certificate CN; "" without TLS
  bool identified = false;  // presented a certificate or a token
};

Caller CurrentCaller() {
  const CallerConnection* c = current_caller;
  if (c->tls) {
    Caller caller{{}, c->tls->peer().common_name, true};
    for (const std::string& o : c->tls->peer().organizations) {
      auto role = ParseRole(o);
      if (role.ok()) caller.roles = caller.roles | *role;
    }
    return caller;
  }
  if (c->security->open()) return Caller{Roles::All(), "", true};
  return Caller{c->token_roles, "", c->token_presented};
}

std::string Describe(const Caller& caller) {
  std::string who = caller.name.empty() ? "caller" : "'" + caller.name + "'";
  return who + " (roles: " + (caller.roles.empty() ? "none" : caller.roles.ToString()) + ")";
}

}  // namespace

std::string Roles::ToString() const {
  std::string out;
  for (Role role : kAllRoles) {
    if (!Has(role)) continue;
    if (!out.empty()) out += ", ";
    out += RoleName(role);
  }
  return out;
}

const char* RoleName(Role role) {
  switch (role) {
    case Role::kApplication:
      return "application";
    case Role::kCoordinator:
      return "coordinator";
    case Role::kParticipant:
      return "participant";
    case Role::kOperator:
      return "operator";
  }
  return "?";
}

Result<Role> ParseRole(const std::string& name) {
  for (Role role : kAllRoles) {
    if (name == RoleName(role)) return role;
  }
  return Status::InvalidArgument("unknown role '" + name +
                                 "' (application, coordinator, participant, operator)");
}

Result<TokenTable> TokenTable::Load(const std::string& path) {
  std::ifstream in(path);
  if (!in) return Status::InvalidArgument("cannot read tokens file " + path);
  TokenTable table;
  std::string line;
  for (int number = 1; std::getline(in, line); ++number) {
    line = line.substr(0, line.find('#'));
    std::istringstream words(line);
    std::string role_name, token, extra;
    if (!(words >> role_name)) continue;  // blank or comment
    std::string where = path + ":" + std::to_string(number) + ": ";
    if (!(words >> token) || (words >> extra)) {
      return Status::InvalidArgument(where + "expected '<role> <token>'");
    }
    auto role = ParseRole(role_name);
    if (!role.ok()) return role.status().WithContext(where);
    if (token.size() < kMinTokenLength) {
      return Status::InvalidArgument(where + "a token needs at least " +
                                     std::to_string(kMinTokenLength) + " characters");
    }
    table.tokens_[*role] = token;
  }
  if (table.tokens_.empty()) return Status::InvalidArgument(path + " holds no tokens");
  return table;
}

Roles TokenTable::RolesOf(const std::string& token) const {
  Roles roles;
  for (const auto& [role, expected] : tokens_) {
    if (token.size() == expected.size() &&
        CRYPTO_memcmp(token.data(), expected.data(), token.size()) == 0) {
      roles = roles | role;
    }
  }
  return roles;
}

std::string TokenTable::TokenOf(Role role) const {
  auto it = tokens_.find(role);
  return it == tokens_.end() ? "" : it->second;
}

CallerScope::CallerScope(CallerConnection* connection) : previous_(current_caller) {
  current_caller = connection;
}

CallerScope::~CallerScope() { current_caller = previous_; }

Status Authorize(Roles allowed, const char* what) {
  if (current_caller == nullptr) return Status::Ok();
  Caller caller = CurrentCaller();
  if (caller.roles.Intersects(allowed)) return Status::Ok();
  if (!caller.identified) {
    return Status::Unauthenticated(std::string(what) +
                                   ": this server requires a token (authenticate first)");
  }
  return Status::PermissionDenied(std::string(what) + " needs the role " + allowed.ToString() +
                                  "; " + Describe(caller) + " has not");
}

Status AuthorizeAs(Role role, const std::string& name, const char* what) {
  RETURN_NOT_OK(Authorize(role, what));
  if (current_caller == nullptr || !current_caller->tls) return Status::Ok();
  Caller caller = CurrentCaller();
  if (caller.name == name) return Status::Ok();
  return Status::PermissionDenied(std::string(what) + " as " + RoleName(role) + " '" + name +
                                  "': the caller's certificate names '" + caller.name + "'");
}

Status AuthenticateConnection(const std::string& token) {
  CallerConnection* c = current_caller;
  if (c == nullptr || c->tls || c->security->open()) return Status::Ok();  // nothing to prove
  c->token_roles = c->security->tokens.RolesOf(token);
  c->token_presented = !c->token_roles.empty();
  if (!c->token_presented) return Status::Unauthenticated("authenticate: unknown token");
  return Status::Ok();
}

}  // namespace pact
