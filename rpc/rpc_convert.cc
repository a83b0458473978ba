#include "rpc/rpc_convert.h"

#include <thrift/TApplicationException.h>
#include <thrift/transport/TTransportException.h>

namespace pact {

namespace {
constexpr char kActiveIsAt[] = "; the active is at ";
}  // namespace

rpc::PactError ToPactError(const Status& status) {
  rpc::PactError error;
  error.code = ErrorCodeToRpc(status.code());
  error.message = status.message();
  if (std::string leader = LeaderNamedBy(status); !leader.empty()) error.__set_leader(leader);
  return error;
}

Status NotLeaderStatus(const std::string& shard, const std::string& leader) {
  return Status::NotLeader("this coordinator is a standby of shard " + shard +
                           (leader.empty() ? "; no active is known yet, ask again soon"
                                           : kActiveIsAt + leader));
}

std::string LeaderNamedBy(const Status& status) {
  if (status.code() != StatusCode::kNotLeader) return "";
  size_t at = status.message().rfind(kActiveIsAt);
  return at == std::string::npos ? "" : status.message().substr(at + sizeof(kActiveIsAt) - 1);
}

void ThrowIfError(const Status& status) {
  if (!status.ok()) throw ToPactError(status);
}

rpc::ErrorCode::type ErrorCodeToRpc(StatusCode code) {
  switch (code) {
    case StatusCode::kNotFound: return rpc::ErrorCode::NOT_FOUND;
    case StatusCode::kInvalidArgument: return rpc::ErrorCode::INVALID_ARGUMENT;
    case StatusCode::kFailedPrecondition: return rpc::ErrorCode::FAILED_PRECONDITION;
    case StatusCode::kAborted: return rpc::ErrorCode::ABORTED;
    case StatusCode::kTimedOut: return rpc::ErrorCode::TIMED_OUT;
    case StatusCode::kUnavailable: return rpc::ErrorCode::UNAVAILABLE;
    case StatusCode::kIoError: return rpc::ErrorCode::IO_ERROR;
    case StatusCode::kFenced: return rpc::ErrorCode::FENCED;
    case StatusCode::kCorruption: return rpc::ErrorCode::CORRUPTION;
    case StatusCode::kBusy: return rpc::ErrorCode::BUSY;
    case StatusCode::kHeuristicMixed: return rpc::ErrorCode::HEURISTIC_MIXED;
    case StatusCode::kUnauthenticated: return rpc::ErrorCode::UNAUTHENTICATED;
    case StatusCode::kPermissionDenied: return rpc::ErrorCode::PERMISSION_DENIED;
    case StatusCode::kNotLeader: return rpc::ErrorCode::NOT_LEADER;
    case StatusCode::kOk:  // never sent: an error is thrown only for a failure
    case StatusCode::kInternal: break;
  }
  return rpc::ErrorCode::INTERNAL;
}

Status StatusFromRpc(rpc::ErrorCode::type code, const std::string& message) {
  switch (code) {
    case rpc::ErrorCode::NOT_FOUND: return Status::NotFound(message);
    case rpc::ErrorCode::INVALID_ARGUMENT: return Status::InvalidArgument(message);
    case rpc::ErrorCode::FAILED_PRECONDITION: return Status::FailedPrecondition(message);
    case rpc::ErrorCode::ABORTED: return Status::Aborted(message);
    case rpc::ErrorCode::TIMED_OUT: return Status::TimedOut(message);
    case rpc::ErrorCode::UNAVAILABLE: return Status::Unavailable(message);
    case rpc::ErrorCode::IO_ERROR: return Status::IoError(message);
    case rpc::ErrorCode::FENCED: return Status::Fenced(message);
    case rpc::ErrorCode::CORRUPTION: return Status::Corruption(message);
    case rpc::ErrorCode::BUSY: return Status::Busy(message);
    case rpc::ErrorCode::INTERNAL: return Status::Internal(message);
    case rpc::ErrorCode::HEURISTIC_MIXED: return Status::HeuristicMixed(message);
    case rpc::ErrorCode::UNAUTHENTICATED: return Status::Unauthenticated(message);
    case rpc::ErrorCode::PERMISSION_DENIED: return Status::PermissionDenied(message);
    case rpc::ErrorCode::NOT_LEADER: return Status::NotLeader(message);
  }
  return Status::Internal("peer sent unknown error code " + std::to_string(code) + ": " +
                          message);
}

rpc::TxnState::type TxnStateToRpc(TxnState state) {
  switch (state) {
    case TxnState::kActive: return rpc::TxnState::ACTIVE;
    case TxnState::kPreparing: return rpc::TxnState::PREPARING;
    case TxnState::kCommitting: return rpc::TxnState::COMMITTING;
    case TxnState::kCommitted: return rpc::TxnState::COMMITTED;
    case TxnState::kAborting: return rpc::TxnState::ABORTING;
    case TxnState::kAborted: break;
  }
  return rpc::TxnState::ABORTED;
}

Result<TxnState> TxnStateFromRpc(rpc::TxnState::type state) {
  switch (state) {
    case rpc::TxnState::ACTIVE: return TxnState::kActive;
    case rpc::TxnState::PREPARING: return TxnState::kPreparing;
    case rpc::TxnState::COMMITTING: return TxnState::kCommitting;
    case rpc::TxnState::COMMITTED: return TxnState::kCommitted;
    case rpc::TxnState::ABORTING: return TxnState::kAborting;
    case rpc::TxnState::ABORTED: return TxnState::kAborted;
  }
  return Status::InvalidArgument("unknown transaction state " + std::to_string(state));
}

rpc::Vote::type VoteToRpc(Vote vote) {
  switch (vote) {
    case Vote::kCommit: return rpc::Vote::COMMIT;
    case Vote::kReadOnly: return rpc::Vote::READ_ONLY;
    case Vote::kAbort: break;
  }
  return rpc::Vote::ABORT;
}

Vote VoteFromRpc(rpc::Vote::type vote) {
  switch (vote) {
    case rpc::Vote::COMMIT: return Vote::kCommit;
    case rpc::Vote::READ_ONLY: return Vote::kReadOnly;
    case rpc::Vote::ABORT: break;
  }
  return Vote::kAbort;
}

rpc::PrepareAnswer PrepareAnswerToRpc(const Result<Vote>& vote) {
  rpc::PrepareAnswer out;
  if (vote.ok()) {
    out.__set_vote(VoteToRpc(*vote));
  } else {
    out.__set_error(ToPactError(vote.status()));
  }
  return out;
}

Result<Vote> PrepareAnswerFromRpc(const rpc::PrepareAnswer& answer) {
  if (answer.__isset.error) return StatusFromRpc(answer.error.code, answer.error.message);
  if (answer.__isset.vote) return VoteFromRpc(answer.vote);
  return Status::Unavailable("a prepare answer with neither a vote nor an error");
}

rpc::BatchAnswer BatchAnswerToRpc(const Status& status) {
  rpc::BatchAnswer out;
  if (!status.ok()) out.__set_error(ToPactError(status));
  return out;
}

Status BatchAnswerFromRpc(const rpc::BatchAnswer& answer) {
  if (answer.__isset.error) return StatusFromRpc(answer.error.code, answer.error.message);
  return Status::Ok();
}

rpc::Outcome::type OutcomeToRpc(Outcome outcome) {
  switch (outcome) {
    case Outcome::kCommitted: return rpc::Outcome::COMMITTED;
    case Outcome::kAborted: return rpc::Outcome::ABORTED;
    case Outcome::kActive: break;
  }
  return rpc::Outcome::ACTIVE;
}

Outcome OutcomeFromRpc(rpc::Outcome::type outcome) {
  switch (outcome) {
    case rpc::Outcome::COMMITTED: return Outcome::kCommitted;
    case rpc::Outcome::ABORTED: return Outcome::kAborted;
    case rpc::Outcome::ACTIVE: break;
  }
  return Outcome::kActive;
}

Status StatusFromException(const std::exception& e) {
  if (const auto* pact_error = dynamic_cast<const rpc::PactError*>(&e)) {
    return StatusFromRpc(pact_error->code, pact_error->message);
  }
  if (dynamic_cast<const apache::thrift::transport::TTransportException*>(&e) != nullptr) {
    return Status::Unavailable(std::string("transport: ") + e.what());
  }
  if (dynamic_cast<const apache::thrift::TApplicationException*>(&e) != nullptr) {
    // The peer received the call but failed it outside the IDL's errors.
    return Status::Internal(std::string("peer failed: ") + e.what());
  }
  return Status::Unavailable(std::string("rpc: ") + e.what());
}

rpc::Value ToRpcValue(const SqlValue& value) {
  rpc::Value out;
  if (std::holds_alternative<std::monostate>(value)) {
    out.type = rpc::ValueType::NULL_VALUE;
  } else if (const auto* i = std::get_if<int64_t>(&value)) {
    out.type = rpc::ValueType::INTEGER;
    out.__set_integer_value(*i);
  } else if (const auto* d = std::get_if<double>(&value)) {
    out.type = rpc::ValueType::REAL;
    out.__set_real_value(*d);
  } else if (const auto* s = std::get_if<std::string>(&value)) {
    out.type = rpc::ValueType::TEXT;
    out.__set_text_value(*s);
  } else {
    out.type = rpc::ValueType::BLOB;
    out.__set_blob_value(std::get<Blob>(value).bytes);
  }
  return out;
}

Result<SqlValue> FromRpcValue(const rpc::Value& value) {
  // A value whose type and field disagree is refused, never bound as 0 or
  // NULL: in a money UPDATE that would be a silent wrong result.
  auto missing = [&](const char* field) {
    return Status::InvalidArgument(std::string("a Value of type ") +
                                   rpc::to_string(value.type) + " without " + field);
  };
  switch (value.type) {
    case rpc::ValueType::INTEGER:
      if (!value.__isset.integer_value) return missing("integer_value");
      return SqlValue(value.integer_value);
    case rpc::ValueType::REAL:
      if (!value.__isset.real_value) return missing("real_value");
      return SqlValue(value.real_value);
    case rpc::ValueType::TEXT:
      if (!value.__isset.text_value) return missing("text_value");
      return SqlValue(value.text_value);
    case rpc::ValueType::BLOB:
      if (!value.__isset.blob_value) return missing("blob_value");
      return SqlValue(Blob{value.blob_value});
    case rpc::ValueType::NULL_VALUE:
      return SqlValue(std::monostate{});
  }
  return Status::InvalidArgument("unknown ValueType " + std::to_string(value.type));
}

std::vector<rpc::Value> ToRpcValues(const std::vector<SqlValue>& values) {
  std::vector<rpc::Value> out;
  out.reserve(values.size());
  for (const auto& v : values) out.push_back(ToRpcValue(v));
  return out;
}

Result<std::vector<SqlValue>> FromRpcValues(const std::vector<rpc::Value>& values) {
  std::vector<SqlValue> out;
  out.reserve(values.size());
  for (size_t i = 0; i < values.size(); ++i) {
    auto value = FromRpcValue(values[i]);
    if (!value.ok()) return value.status().WithContext("value " + std::to_string(i + 1));
    out.push_back(std::move(value).value());
  }
  return out;
}

rpc::ExecuteResult ToRpcResult(const QueryResult& result) {
  rpc::ExecuteResult out;
  out.columns = result.columns;
  out.affected_rows = result.affected_rows;
  out.rows.reserve(result.rows.size());
  for (const auto& row : result.rows) out.rows.push_back(ToRpcValues(row));
  return out;
}

Result<QueryResult> FromRpcResult(const rpc::ExecuteResult& result) {
  QueryResult out;
  out.columns = result.columns;
  out.affected_rows = result.affected_rows;
  out.rows.reserve(result.rows.size());
  for (const auto& row : result.rows) {
    ASSIGN_OR_RETURN(auto values, FromRpcValues(row));
    out.rows.push_back(std::move(values));
  }
  return out;
}

}  // namespace pact
