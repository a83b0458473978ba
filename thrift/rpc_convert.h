// The one place where Status meets the IDL: Status <-> PactError, Thrift
// exceptions -> Status, and SQL values between their plain and wire forms.
#pragma once

#include <exception>
#include <vector>

#include "common/sql_value.h"
#include "common/status.h"
#include "gen-cpp/pact_types.h"

namespace pact {

// REQUIRES: !status.ok()
rpc::PactError ToPactError(const Status& status);

// Throws the PactError for `status` unless it is OK. Handlers end with this.
void ThrowIfError(const Status& status);

// Maps what a Thrift call threw to a Status. A transport or protocol failure
// becomes kUnavailable: the peer may or may not have acted on the call.
Status StatusFromException(const std::exception& e);

rpc::Value ToRpcValue(const SqlValue& value);
// kInvalidArgument for a value whose type is unknown or lacks its field.
Result<SqlValue> FromRpcValue(const rpc::Value& value);
std::vector<rpc::Value> ToRpcValues(const std::vector<SqlValue>& values);
Result<std::vector<SqlValue>> FromRpcValues(const std::vector<rpc::Value>& values);
rpc::ExecuteResult ToRpcResult(const QueryResult& result);
Result<QueryResult> FromRpcResult(const rpc::ExecuteResult& result);

}  // namespace pact
