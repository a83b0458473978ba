#include "tools/bench/bench_pg.h"

#include <libpq-fe.h>

namespace pact {
namespace {

// Keeps the connection's error and the SQLSTATE: the caller tells a
// serialization failure or deadlock (40xxx: retryable, an abort) from a bug.
Status ResultStatus(PGresult* result, const std::string& what) {
  ExecStatusType code = PQresultStatus(result);
  if (code == PGRES_COMMAND_OK || code == PGRES_TUPLES_OK) return Status::Ok();
  const char* state = PQresultErrorField(result, PG_DIAG_SQLSTATE);
  std::string message = what + ": " + PQresultErrorMessage(result);
  while (!message.empty() && message.back() == '\n') message.pop_back();
  if (state != nullptr && std::string(state).rfind("40", 0) == 0) {
    return Status::Aborted(message + " (SQLSTATE " + state + ")");
  }
  return Status::Internal(message);
}

void IgnoreNotice(void*, const char*) {}

}  // namespace

Result<std::unique_ptr<PgConnection>> PgConnection::Connect(const std::string& conninfo) {
  PGconn* conn = PQconnectdb(conninfo.c_str());
  if (PQstatus(conn) != CONNECTION_OK) {
    std::string message = PQerrorMessage(conn);
    PQfinish(conn);
    while (!message.empty() && message.back() == '\n') message.pop_back();
    return Status::Unavailable("cannot connect to PostgreSQL (" + conninfo + "): " + message);
  }
  // Notices (e.g. "table does not exist, skipping") are noise for a bench.
  PQsetNoticeProcessor(conn, IgnoreNotice, nullptr);
  return std::unique_ptr<PgConnection>(new PgConnection(conn));
}

PgConnection::~PgConnection() { PQfinish(conn_); }

Status PgConnection::Error(const std::string& what) const {
  std::string message = PQerrorMessage(conn_);
  while (!message.empty() && message.back() == '\n') message.pop_back();
  return Status::Unavailable(what + ": " + message);
}

Status PgConnection::Exec(const std::string& sql) {
  PGresult* result = PQexec(conn_, sql.c_str());
  if (result == nullptr) return Error(sql);
  Status st = ResultStatus(result, sql);
  PQclear(result);
  return st;
}

Result<int64_t> PgConnection::ExecParams(const std::string& sql,
                                         const std::vector<std::string>& params) {
  std::vector<const char*> values;
  for (const auto& p : params) values.push_back(p.c_str());
  PGresult* result = PQexecParams(conn_, sql.c_str(), static_cast<int>(values.size()), nullptr,
                                  values.data(), nullptr, nullptr, 0);
  if (result == nullptr) return Error(sql);
  Status st = ResultStatus(result, sql);
  const char* tuples = PQcmdTuples(result);
  int64_t changed = (tuples != nullptr && *tuples != '\0') ? std::stoll(tuples) : 0;
  PQclear(result);
  if (!st.ok()) return st;
  return changed;
}

Result<int64_t> PgConnection::QueryInt(const std::string& sql) {
  PGresult* result = PQexec(conn_, sql.c_str());
  if (result == nullptr) return Error(sql);
  Status st = ResultStatus(result, sql);
  if (st.ok() && (PQntuples(result) != 1 || PQnfields(result) < 1)) {
    st = Status::Internal(sql + ": expected one row");
  }
  if (!st.ok()) {
    PQclear(result);
    return st;
  }
  int64_t value = PQgetisnull(result, 0, 0) ? 0 : std::stoll(PQgetvalue(result, 0, 0));
  PQclear(result);
  return value;
}

Status PgConnection::Send(const std::string& sql) {
  if (PQsendQuery(conn_, sql.c_str()) == 0) return Error(sql);
  pending_ = sql;
  return Status::Ok();
}

Status PgConnection::Finish() {
  // Every result must be drained before the connection takes new work.
  Status st;
  while (PGresult* result = PQgetResult(conn_)) {
    Status this_one = ResultStatus(result, pending_);
    if (st.ok()) st = this_one;
    PQclear(result);
  }
  return st;
}

}  // namespace pact
