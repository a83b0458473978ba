#include "coordinator/standby.h"

#include "rpc/rpc_auth.h"
#include "rpc/rpc_convert.h"

namespace pact {

void NotServingHandler::authenticate(const std::string& token) {
  ThrowIfError(AuthenticateConnection(token));
}

void NotServingHandler::info(rpc::CoordinatorInfo&) {
  // Refused too: a participant learns the shard's epoch from info, which only
  // the active can tell.
  Refuse();
}

rpc::Outcome::type NotServingHandler::outcome(const std::string&) { Refuse(); }

void NotServingHandler::Refuse() {
  // Only to a caller with a role: where the active is, is not for strangers.
  ThrowIfError(Authorize(Roles::All(), "a call to a standby coordinator"));
  Status why = why_();
  if (why.ok()) why = Status::Unavailable("coordinator of shard " + shard_ + " is not serving");
  throw ToPactError(why);
}

}  // namespace pact
