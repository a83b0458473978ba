// Status and Result<T>: how every Pact module reports errors. Exceptions are
// used only at the Thrift boundary (see rpc/rpc_convert.h).
#pragma once

#include <optional>
#include <string>
#include <utility>
#include <variant>

namespace pact {

// One code per way a caller must react differently. Kept in step with
// rpc::ErrorCode in rpc/pact.thrift.
enum class StatusCode {
  kOk = 0,
  kNotFound = 1,            // unknown transaction, branch or participant
  kInvalidArgument = 2,     // malformed request or SQL
  kFailedPrecondition = 3,  // the object is in the wrong state for the call
  kAborted = 4,             // the transaction was rolled back
  kTimedOut = 5,            // a deadline passed
  kUnavailable = 6,         // a peer did not answer: the outcome is UNKNOWN, not "no"
  kIoError = 7,             // local storage failed (disk full, I/O error)
  kFenced = 8,              // the caller's coordinator epoch was superseded
  kCorruption = 9,          // persisted data is not what Pact wrote
  kBusy = 10,               // a resource is held by another transaction
  kInternal = 11,
  kHeuristicMixed = 12,     // an operator decided a branch the other way
  kUnauthenticated = 13,    // the caller did not prove who it is
  kPermissionDenied = 14,   // the caller may not make this call; nothing changed
  kNotLeader = 15,          // a standby coordinator; nothing done: ask the active
};

const char* StatusCodeName(StatusCode code);

class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(StatusCode code, std::string message) : code_(code), message_(std::move(message)) {}

  static Status Ok() { return Status(); }
  static Status NotFound(std::string m) { return {StatusCode::kNotFound, std::move(m)}; }
  static Status InvalidArgument(std::string m) { return {StatusCode::kInvalidArgument, std::move(m)}; }
  static Status FailedPrecondition(std::string m) {
    return {StatusCode::kFailedPrecondition, std::move(m)};
  }
  static Status Aborted(std::string m) { return {StatusCode::kAborted, std::move(m)}; }
  static Status TimedOut(std::string m) { return {StatusCode::kTimedOut, std::move(m)}; }
  static Status Unavailable(std::string m) { return {StatusCode::kUnavailable, std::move(m)}; }
  static Status IoError(std::string m) { return {StatusCode::kIoError, std::move(m)}; }
  static Status Fenced(std::string m) { return {StatusCode::kFenced, std::move(m)}; }
  static Status Corruption(std::string m) { return {StatusCode::kCorruption, std::move(m)}; }
  static Status Busy(std::string m) { return {StatusCode::kBusy, std::move(m)}; }
  static Status Internal(std::string m) { return {StatusCode::kInternal, std::move(m)}; }
  static Status Unauthenticated(std::string m) {
    return {StatusCode::kUnauthenticated, std::move(m)};
  }
  static Status PermissionDenied(std::string m) {
    return {StatusCode::kPermissionDenied, std::move(m)};
  }
  static Status NotLeader(std::string m) { return {StatusCode::kNotLeader, std::move(m)}; }
  static Status HeuristicMixed(std::string m) {
    return {StatusCode::kHeuristicMixed, std::move(m)};
  }

  bool ok() const { return code_ == StatusCode::kOk; }
  StatusCode code() const { return code_; }
  const std::string& message() const { return message_; }
  std::string ToString() const;

  // Returns a copy whose message is "context: message".
  Status WithContext(const std::string& context) const;

 private:
  StatusCode code_ = StatusCode::kOk;
  std::string message_;
};

// A value or the Status that says why there is none.
template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : value_(std::move(value)) {}  // NOLINT: implicit by design
  Result(Status status) : status_(std::move(status)) {}  // NOLINT: implicit by design

  bool ok() const { return value_.has_value(); }
  const Status& status() const { return status_; }
  // REQUIRES: ok()
  T& value() & { return *value_; }
  const T& value() const& { return *value_; }
  T&& value() && { return std::move(*value_); }
  T* operator->() { return &*value_; }
  const T* operator->() const { return &*value_; }
  T& operator*() & { return *value_; }
  const T& operator*() const& { return *value_; }

 private:
  std::optional<T> value_;
  Status status_;  // ok when value_ is set
};

}  // namespace pact

#define PACT_CONCAT_INNER(a, b) a##b
#define PACT_CONCAT(a, b) PACT_CONCAT_INNER(a, b)

#define RETURN_NOT_OK(expr)              \
  do {                                   \
    ::pact::Status _pact_st = (expr);    \
    if (!_pact_st.ok()) return _pact_st; \
  } while (0)

#define ASSIGN_OR_RETURN_IMPL(tmp, lhs, expr) \
  auto tmp = (expr);                          \
  if (!tmp.ok()) return tmp.status();         \
  lhs = std::move(tmp).value()

#define ASSIGN_OR_RETURN(lhs, expr) \
  ASSIGN_OR_RETURN_IMPL(PACT_CONCAT(_pact_result_, __LINE__), lhs, expr)
