#include "thrift/rpc_convert.h"

#include <thrift/TApplicationException.h>
#include <thrift/transport/TTransportException.h>

namespace pact {

rpc::PactError ToPactError(const Status& status) {
  rpc::PactError error;
  error.code = static_cast<rpc::ErrorCode::type>(status.code());
  error.message = status.message();
  return error;
}

void ThrowIfError(const Status& status) {
  if (!status.ok()) throw ToPactError(status);
}

Status StatusFromException(const std::exception& e) {
  if (const auto* pact_error = dynamic_cast<const rpc::PactError*>(&e)) {
    int code = static_cast<int>(pact_error->code);
    if (code < static_cast<int>(StatusCode::kNotFound) ||
        code > static_cast<int>(StatusCode::kPermissionDenied)) {
      return Status::Internal("peer sent unknown error code " + std::to_string(code) + ": " +
                              pact_error->message);
    }
    return Status(static_cast<StatusCode>(code), pact_error->message);
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
