// The one place where Pact's types meet the IDL's: Status <-> PactError,
// Thrift exceptions -> Status, the protocol's enums, and SQL values between
// their plain and wire forms. Every enum is converted by a switch, so a new
// value on either side is a compile warning, not a silent off-by-one.
#pragma once

#include <exception>
#include <vector>

#include "common/protocol.h"
#include "common/sql_value.h"
#include "common/status.h"
#include "gen-cpp/pact_types.h"

namespace pact {

// REQUIRES: !status.ok()
rpc::PactError ToPactError(const Status& status);

// Throws the PactError for `status` unless it is OK. Handlers end with this.
void ThrowIfError(const Status& status);

// A standby coordinator's answer: kNotLeader, naming the shard's active
// (`leader` host:port; empty while none is known). On the wire the address
// is also PactError.leader.
Status NotLeaderStatus(const std::string& shard, const std::string& leader);
// The active's address a kNotLeader answer named; empty if none.
std::string LeaderNamedBy(const Status& status);

// Maps what a Thrift call threw to a Status. A transport or protocol failure
// becomes kUnavailable: the peer may or may not have acted on the call.
Status StatusFromException(const std::exception& e);

rpc::ErrorCode::type ErrorCodeToRpc(StatusCode code);
// kInternal (with the number) for a code this side does not know.
Status StatusFromRpc(rpc::ErrorCode::type code, const std::string& message);

rpc::TxnState::type TxnStateToRpc(TxnState state);
// kInvalidArgument for a state this side does not know.
Result<TxnState> TxnStateFromRpc(rpc::TxnState::type state);

rpc::Vote::type VoteToRpc(Vote vote);
// A vote this side does not know counts as ABORT: nothing commits on it.
Vote VoteFromRpc(rpc::Vote::type vote);

// One item of a batch answer (pact.thrift, "batches"): what its single call
// would return, or the Status the single call would have thrown.
rpc::PrepareAnswer PrepareAnswerToRpc(const Result<Vote>& vote);
// An answer holding neither a vote nor an error is no vote (kUnavailable).
Result<Vote> PrepareAnswerFromRpc(const rpc::PrepareAnswer& answer);
rpc::BatchAnswer BatchAnswerToRpc(const Status& status);
Status BatchAnswerFromRpc(const rpc::BatchAnswer& answer);

rpc::Outcome::type OutcomeToRpc(Outcome outcome);
// An outcome this side does not know is "not decided yet": ask again later.
Outcome OutcomeFromRpc(rpc::Outcome::type outcome);

rpc::Value ToRpcValue(const SqlValue& value);
// kInvalidArgument for a value whose type is unknown or lacks its field.
Result<SqlValue> FromRpcValue(const rpc::Value& value);
std::vector<rpc::Value> ToRpcValues(const std::vector<SqlValue>& values);
Result<std::vector<SqlValue>> FromRpcValues(const std::vector<rpc::Value>& values);
rpc::ExecuteResult ToRpcResult(const QueryResult& result);
Result<QueryResult> FromRpcResult(const rpc::ExecuteResult& result);

}  // namespace pact
