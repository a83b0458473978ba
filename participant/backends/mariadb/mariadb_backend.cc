#include "participant/backends/mariadb/mariadb_backend.h"

#include <errmsg.h>
#include <glog/logging.h>
#include <mysql.h>
#include <mysqld_error.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cstdlib>
#include <functional>
#include <mutex>
#include <thread>
#include <unordered_map>
#include <utility>

#include "common/clock.h"
#include "participant/backends/branch_state_machine.h"
#include "participant/backends/server/connection_pool.h"
#include "participant/backends/server/retry_policy.h"

namespace pact {
namespace {

// The connect timeout while retrying, at most.
constexpr int kRetryConnectTimeoutS = 2;
// How long an outcome query waits for a commit still in flight.
constexpr int kMarkerLockWaitS = 2;
// Old markers are pruned after every Nth one-phase commit.
constexpr uint64_t kPruneEveryCommits = 1000;
// Result buffers start this large; longer values are fetched again in full.
constexpr size_t kInitialFetchBytes = 256;

struct ConnCloser {
  void operator()(MYSQL* conn) const { mysql_close(conn); }
};
struct StmtCloser {
  void operator()(MYSQL_STMT* stmt) const { mysql_stmt_close(stmt); }
};
struct ResultFreer {
  void operator()(MYSQL_RES* result) const { mysql_free_result(result); }
};
using ConnPtr = std::unique_ptr<MYSQL, ConnCloser>;
using StmtPtr = std::unique_ptr<MYSQL_STMT, StmtCloser>;
using ResultPtr = std::unique_ptr<MYSQL_RES, ResultFreer>;

// The client library's global setup is not thread-safe when left to the
// first mysql_init. Connector/C 3.x needs no per-thread init.
void InitLibrary() {
  static std::once_flag once;
  std::call_once(once, [] { CHECK_EQ(mysql_library_init(0, nullptr, nullptr), 0); });
}

bool IsConnectionError(unsigned int code) {
  switch (code) {
    case CR_CONNECTION_ERROR:
    case CR_CONN_HOST_ERROR:
    case CR_IPSOCK_ERROR:
    case CR_UNKNOWN_HOST:
    case CR_SERVER_GONE_ERROR:
    case CR_SERVER_LOST:
    case CR_SERVER_LOST_EXTENDED:
    case ER_CONNECTION_KILLED:
    case ER_SERVER_SHUTDOWN:
    case ER_CON_COUNT_ERROR:
    case ER_TOO_MANY_USER_CONNECTIONS:
    // The client library's own: a reply it could not read (a read timeout
    // among them) leaves what the server did unknown.
    case CR_UNKNOWN_ERROR:
    case CR_OUT_OF_MEMORY:
    case CR_SERVER_HANDSHAKE_ERR:
    case CR_COMMANDS_OUT_OF_SYNC:
    case CR_MALFORMED_PACKET:
    case CR_ERR_NET_READ:
    case CR_ERR_NET_WRITE:
      return true;
    default:
      return false;
  }
}

Status MariaDbError(unsigned int code, const char* message, const std::string& context) {
  std::string text = context + ": " + message + " (MariaDB error " + std::to_string(code) + ")";
  switch (code) {
    case ER_LOCK_DEADLOCK:
      return Status::Aborted("deadlock, MariaDB rolled the transaction back: " + text);
    case ER_LOCK_WAIT_TIMEOUT:
      return Status::Aborted("lock wait timeout, the transaction must roll back: " + text);
    case ER_XA_RBROLLBACK:
    case ER_XA_RBTIMEOUT:
    case ER_XA_RBDEADLOCK:
      return Status::Aborted(text);
    case ER_DISK_FULL:
    case ER_RECORD_FILE_FULL:
    case ER_ERROR_ON_WRITE:
      return Status::IoError(text);
    case ER_XAER_NOTA:
      return Status::NotFound(text);
    default:
      break;
  }
  if (IsConnectionError(code)) return Status::Unavailable(text);
  if (code >= CR_MIN_ERROR) return Status::Internal(text);  // the client library's own
  return Status::InvalidArgument(text);
}

Status ConnError(MYSQL* conn, const std::string& context) {
  return MariaDbError(mysql_errno(conn), mysql_error(conn), context);
}

Status StmtError(MYSQL_STMT* stmt, const std::string& context) {
  return MariaDbError(mysql_stmt_errno(stmt), mysql_stmt_error(stmt), context);
}

std::string Hex(const std::string& bytes) {
  static const char kDigits[] = "0123456789abcdef";
  std::string hex;
  for (unsigned char c : bytes) {
    hex += kDigits[c >> 4];
    hex += kDigits[c & 0xf];
  }
  return hex;
}

// Hex literals need no escaping whatever the bytes and the connection's charset.
std::string XidSql(const std::string& txn_id, const std::string& participant) {
  return "X'" + Hex(txn_id) + "',X'" + Hex(participant) + "'," +
         std::to_string(MariaDbBackend::kFormatId);
}

std::string QuoteIdentifier(const std::string& name) {
  std::string quoted = "`";
  for (char c : name) {
    quoted += c;
    if (c == '`') quoted += '`';
  }
  return quoted + "`";
}

// Runs one of Pact's own statements in the text protocol (XA statements are
// not preparable).
Status Run(MYSQL* conn, const std::string& sql) {
  if (mysql_real_query(conn, sql.data(), sql.size()) != 0) return ConnError(conn, sql);
  ResultPtr ignored(mysql_store_result(conn));
  return Status::Ok();
}

struct Xid {
  int64_t format_id = 0;
  std::string gtrid;
  std::string bqual;
};

// Every prepared XA transaction of the server, whatever its database.
Result<std::vector<Xid>> XaRecover(MYSQL* conn) {
  static const std::string kSql = "XA RECOVER";
  if (mysql_real_query(conn, kSql.data(), kSql.size()) != 0) return ConnError(conn, kSql);
  ResultPtr result(mysql_store_result(conn));
  if (result == nullptr) return ConnError(conn, "XA RECOVER");
  std::vector<Xid> xids;
  while (MYSQL_ROW row = mysql_fetch_row(result.get())) {
    const unsigned long* lengths = mysql_fetch_lengths(result.get());
    if (row[0] == nullptr || row[1] == nullptr || row[2] == nullptr || row[3] == nullptr) continue;
    const size_t gtrid_length = std::strtoul(row[1], nullptr, 10);
    const size_t bqual_length = std::strtoul(row[2], nullptr, 10);
    if (gtrid_length + bqual_length > lengths[3]) {
      return Status::Corruption("XA RECOVER returned a malformed xid");
    }
    xids.push_back(Xid{std::strtoll(row[0], nullptr, 10), std::string(row[3], gtrid_length),
                       std::string(row[3] + gtrid_length, bqual_length)});
  }
  return xids;
}

// The first keyword of `sql`, upper-cased, after whitespace and comments.
// MariaDB runs what is inside /*! ... */ and /*M! ... */, so that is read as SQL.
std::string FirstKeyword(const std::string& sql) {
  size_t i = 0;
  const size_t n = sql.size();
  while (i < n) {
    const char c = sql[i];
    if (std::isspace(static_cast<unsigned char>(c))) {
      ++i;
    } else if (c == '#' || (c == '-' && i + 1 < n && sql[i + 1] == '-' &&
                            (i + 2 == n || std::isspace(static_cast<unsigned char>(sql[i + 2]))))) {
      while (i < n && sql[i] != '\n') ++i;
    } else if (c == '/' && i + 1 < n && sql[i + 1] == '*') {
      size_t body = i + 2;
      if (body < n && sql[body] == 'M') ++body;
      if (body < n && sql[body] == '!') {
        i = body + 1;
        while (i < n && std::isdigit(static_cast<unsigned char>(sql[i]))) ++i;  // version
      } else {
        const size_t end = sql.find("*/", i + 2);
        i = end == std::string::npos ? n : end + 2;
      }
    } else {
      break;
    }
  }
  std::string keyword;
  while (i < n && (std::isalpha(static_cast<unsigned char>(sql[i])) || sql[i] == '_')) {
    keyword += static_cast<char>(std::toupper(static_cast<unsigned char>(sql[i++])));
  }
  return keyword;
}

// Transaction boundaries belong to the XA transaction Pact drives.
Status RefuseTransactionControl(const std::string& sql) {
  static const char* const kRefused[] = {"BEGIN",     "START",   "COMMIT", "ROLLBACK", "XA",
                                         "SAVEPOINT", "RELEASE", "LOCK",   "UNLOCK"};
  const std::string keyword = FirstKeyword(sql);
  bool refused = std::find(std::begin(kRefused), std::end(kRefused), keyword) != std::end(kRefused);
  if (keyword == "SET") {
    std::string upper = sql;
    for (char& c : upper) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    refused = upper.find("AUTOCOMMIT") != std::string::npos;
  }
  if (refused) return Status::InvalidArgument("transaction control is Pact's job: refused " + sql);
  return Status::Ok();
}

// How a result column is fetched and returned.
enum class Kind { kInt, kUnsigned, kDouble, kDecimal, kBit, kText, kBlob };

Kind KindOf(const MYSQL_FIELD& field) {
  switch (field.type) {
    case MYSQL_TYPE_TINY:
    case MYSQL_TYPE_SHORT:
    case MYSQL_TYPE_INT24:
    case MYSQL_TYPE_LONG:
    case MYSQL_TYPE_LONGLONG:
    case MYSQL_TYPE_YEAR:
      return (field.flags & UNSIGNED_FLAG) != 0 ? Kind::kUnsigned : Kind::kInt;
    case MYSQL_TYPE_FLOAT:
    case MYSQL_TYPE_DOUBLE:
      return Kind::kDouble;
    case MYSQL_TYPE_DECIMAL:
    case MYSQL_TYPE_NEWDECIMAL:
      return Kind::kDecimal;
    case MYSQL_TYPE_BIT:
      return Kind::kBit;
    case MYSQL_TYPE_STRING:
    case MYSQL_TYPE_VAR_STRING:
    case MYSQL_TYPE_VARCHAR:
    case MYSQL_TYPE_TINY_BLOB:
    case MYSQL_TYPE_BLOB:
    case MYSQL_TYPE_MEDIUM_BLOB:
    case MYSQL_TYPE_LONG_BLOB:
    case MYSQL_TYPE_GEOMETRY:
      return field.charsetnr == 63 ? Kind::kBlob : Kind::kText;  // 63: the binary charset
    default:
      return Kind::kText;  // dates and times as MariaDB writes them
  }
}

struct OutColumn {
  Kind kind = Kind::kText;
  int64_t integer = 0;
  double real = 0;
  std::string bytes;
  unsigned long length = 0;
  my_bool is_null = 0;
  my_bool error = 0;
};

Result<SqlValue> ColumnValue(MYSQL_STMT* stmt, unsigned int index, OutColumn& column) {
  if (column.is_null) return SqlValue();
  switch (column.kind) {
    case Kind::kInt:
      return SqlValue(column.integer);
    case Kind::kUnsigned: {
      const auto value = static_cast<uint64_t>(column.integer);
      if (value <= static_cast<uint64_t>(INT64_MAX)) return SqlValue(column.integer);
      return SqlValue(std::to_string(value));  // text rather than a wrong number
    }
    case Kind::kDouble:
      return SqlValue(column.real);
    default:
      break;
  }
  std::string data;
  if (column.length <= column.bytes.size()) {
    data.assign(column.bytes.data(), column.length);
  } else {
    data.resize(column.length);
    unsigned long length = 0;
    MYSQL_BIND bind{};
    bind.buffer_type = MYSQL_TYPE_STRING;
    bind.buffer = data.data();
    bind.buffer_length = column.length;
    bind.length = &length;
    if (mysql_stmt_fetch_column(stmt, &bind, index, 0) != 0) return StmtError(stmt, "fetch");
  }
  switch (column.kind) {
    case Kind::kDecimal:
      return SqlValue(std::strtod(data.c_str(), nullptr));
    case Kind::kBit: {
      int64_t value = 0;
      for (unsigned char c : data) value = (value << 8) | c;
      return SqlValue(value);
    }
    case Kind::kBlob:
      return SqlValue(Blob{std::move(data)});
    default:
      return SqlValue(std::move(data));
  }
}

Status FetchRows(MYSQL_STMT* stmt, MYSQL_RES* metadata, QueryResult* result) {
  const unsigned int count = mysql_num_fields(metadata);
  const MYSQL_FIELD* fields = mysql_fetch_fields(metadata);
  std::vector<OutColumn> columns(count);
  std::vector<MYSQL_BIND> binds(count);
  for (unsigned int i = 0; i < count; ++i) {
    result->columns.emplace_back(fields[i].name != nullptr ? fields[i].name : "");
    OutColumn& column = columns[i];
    MYSQL_BIND& bind = binds[i];
    column.kind = KindOf(fields[i]);
    bind.is_null = &column.is_null;
    bind.length = &column.length;
    bind.error = &column.error;
    if (column.kind == Kind::kInt || column.kind == Kind::kUnsigned) {
      bind.buffer_type = MYSQL_TYPE_LONGLONG;
      bind.buffer = &column.integer;
      bind.is_unsigned = column.kind == Kind::kUnsigned;
    } else if (column.kind == Kind::kDouble) {
      bind.buffer_type = MYSQL_TYPE_DOUBLE;
      bind.buffer = &column.real;
    } else {
      column.bytes.resize(kInitialFetchBytes);
      bind.buffer_type = MYSQL_TYPE_STRING;
      bind.buffer = column.bytes.data();
      bind.buffer_length = column.bytes.size();
    }
  }
  if (mysql_stmt_bind_result(stmt, binds.data()) != 0) return StmtError(stmt, "bind result");
  int rc;
  while ((rc = mysql_stmt_fetch(stmt)) == 0 || rc == MYSQL_DATA_TRUNCATED) {
    std::vector<SqlValue>& row = result->rows.emplace_back();
    row.reserve(count);
    for (unsigned int i = 0; i < count; ++i) {
      ASSIGN_OR_RETURN(SqlValue value, ColumnValue(stmt, i, columns[i]));
      row.push_back(std::move(value));
    }
  }
  if (rc != MYSQL_NO_DATA) return StmtError(stmt, "fetch");
  return Status::Ok();
}

// Runs one statement as a server-side prepared statement (a statement string
// holding two is a syntax error there).
Result<QueryResult> RunStatement(MYSQL* conn, const std::string& sql,
                                 const std::vector<SqlValue>& params) {
  StmtPtr stmt(mysql_stmt_init(conn));
  if (stmt == nullptr) return ConnError(conn, "mysql_stmt_init");
  size_t length = sql.size();  // MariaDB takes no trailing ';' here
  while (length > 0 &&
         (sql[length - 1] == ';' || std::isspace(static_cast<unsigned char>(sql[length - 1])))) {
    --length;
  }
  if (mysql_stmt_prepare(stmt.get(), sql.data(), length) != 0) {
    return StmtError(stmt.get(), "cannot prepare");
  }
  const unsigned long expected = mysql_stmt_param_count(stmt.get());
  if (expected != params.size()) {
    return Status::InvalidArgument("the statement takes " + std::to_string(expected) +
                                   " parameters, got " + std::to_string(params.size()));
  }
  std::vector<MYSQL_BIND> binds(params.size());
  for (size_t i = 0; i < params.size(); ++i) {
    MYSQL_BIND& bind = binds[i];
    // The library only reads parameter buffers.
    if (auto* v = std::get_if<int64_t>(&params[i])) {
      bind.buffer_type = MYSQL_TYPE_LONGLONG;
      bind.buffer = const_cast<int64_t*>(v);
    } else if (auto* v = std::get_if<double>(&params[i])) {
      bind.buffer_type = MYSQL_TYPE_DOUBLE;
      bind.buffer = const_cast<double*>(v);
    } else if (auto* v = std::get_if<std::string>(&params[i])) {
      bind.buffer_type = MYSQL_TYPE_STRING;
      bind.buffer = const_cast<char*>(v->data());
      bind.buffer_length = v->size();
    } else if (auto* v = std::get_if<Blob>(&params[i])) {
      bind.buffer_type = MYSQL_TYPE_BLOB;
      bind.buffer = const_cast<char*>(v->bytes.data());
      bind.buffer_length = v->bytes.size();
    } else {
      bind.buffer_type = MYSQL_TYPE_NULL;
    }
  }
  if (!binds.empty() && mysql_stmt_bind_param(stmt.get(), binds.data()) != 0) {
    return StmtError(stmt.get(), "bind parameters");
  }
  if (mysql_stmt_execute(stmt.get()) != 0) return StmtError(stmt.get(), "execute");
  QueryResult result;
  ResultPtr metadata(mysql_stmt_result_metadata(stmt.get()));
  if (metadata != nullptr) {
    RETURN_NOT_OK(FetchRows(stmt.get(), metadata.get(), &result));
  } else {
    result.affected_rows = static_cast<int64_t>(mysql_stmt_affected_rows(stmt.get()));
  }
  // CALL sends more results; the connection is usable only once all are read.
  while (mysql_stmt_more_results(stmt.get())) {
    const int rc = mysql_stmt_next_result(stmt.get());
    if (rc > 0) return StmtError(stmt.get(), "next result");
    if (rc < 0) break;
    mysql_stmt_free_result(stmt.get());
  }
  return result;
}

Result<ConnPtr> Connect(const MariaDbBackendOptions& options, int timeout_s) {
  InitLibrary();
  ConnPtr conn(mysql_init(nullptr));
  if (conn == nullptr) return Status::Internal("mysql_init: out of memory");
  const unsigned int timeout = static_cast<unsigned int>(std::max(1, timeout_s));
  const my_bool reconnect = 0;  // a silent reconnect would lose the XA transaction
  // A server that hangs (rather than dies) must not block a call for ever.
  const unsigned int read_timeout = static_cast<unsigned int>(std::max(1, options.read_timeout_s));
  const unsigned int write_timeout =
      static_cast<unsigned int>(std::max(1, options.write_timeout_s));
  mysql_options(conn.get(), MYSQL_OPT_CONNECT_TIMEOUT, &timeout);
  mysql_options(conn.get(), MYSQL_OPT_READ_TIMEOUT, &read_timeout);
  mysql_options(conn.get(), MYSQL_OPT_WRITE_TIMEOUT, &write_timeout);
  mysql_options(conn.get(), MYSQL_OPT_RECONNECT, &reconnect);
  mysql_options(conn.get(), MYSQL_SET_CHARSET_NAME, "utf8mb4");
  if (mysql_real_connect(conn.get(), options.host.c_str(), options.user.c_str(),
                         options.password.c_str(), options.database.c_str(),
                         static_cast<unsigned int>(options.port), nullptr, 0) == nullptr) {
    return ConnError(conn.get(), "cannot connect to MariaDB at " + options.host + ":" +
                                     std::to_string(options.port));
  }
  return conn;
}

using Pool = ConnectionPool<MYSQL, ConnCloser>;

// Idle connections are trusted (no XA transaction is ever left on one); a
// branch's statements may have left variables and temporary tables behind.
Pool::Hooks PoolHooks(const MariaDbBackendOptions& options) {
  Pool::Hooks hooks;
  hooks.connect = [options](int timeout_s) { return Connect(options, timeout_s); };
  hooks.reset = [](MYSQL* conn) { return mysql_reset_connection(conn) == 0; };
  return hooks;
}

// A decision (or the check after a lost one-phase commit) reconnects for
// RetryPolicy's window before it answers kUnavailable, each connect cut short.
RetryPolicy ServerRetry(const MariaDbBackendOptions& options) {
  RetryPolicy retry;
  retry.connect_timeout_s = std::min(options.connect_timeout_s, kRetryConnectTimeoutS);
  return retry;
}

// A branch's life; MoveTo in MariaDbBranch is the only writer.
enum class XaState {
  // XA START ran on conn_. Nothing durable: a crash or a lost connection
  // rolls it back.
  kActive,
  // XA PREPARE succeeded: XA RECOVER lists the xid, bound to conn_'s session
  // while it lives and detached after.
  kPrepared,
  // XA PREPARE's reply was lost: XA RECOVER may list the xid, so the branch
  // can only roll back.
  kPrepareLost,
  // A one-phase commit's reply was lost and the marker could not be read yet:
  // its row in kMarkerTable tells.
  kCommitLost,
  // One phase: its marker row in kMarkerTable. Two phases: XA COMMIT answered,
  // and XA RECOVER no longer lists the xid.
  kCommitted,
  // Also after a kAbort vote: no xid in XA RECOVER and no marker row.
  kRolledBack,
};

const char* XaStateName(XaState state) {
  switch (state) {
    case XaState::kActive:
      return "active";
    case XaState::kPrepared:
      return "prepared";
    case XaState::kPrepareLost:
      return "maybe prepared (the reply to XA PREPARE was lost)";
    case XaState::kCommitLost:
      return "of unknown outcome (the reply to the one-phase commit was lost)";
    case XaState::kCommitted:
      return "committed";
    case XaState::kRolledBack:
      return "rolled back";
  }
  return "?";
}

// Every move a branch can make; kCommitted and kRolledBack are final.
constexpr StateMove<XaState> kXaMoves[] = {
    {XaState::kActive, XaState::kPrepared},
    {XaState::kActive, XaState::kPrepareLost},
    {XaState::kActive, XaState::kCommitLost},
    {XaState::kActive, XaState::kCommitted},   // one-phase commit
    {XaState::kActive, XaState::kRolledBack},  // abort vote, rollback, failed one-phase commit
    {XaState::kPrepared, XaState::kCommitted},
    {XaState::kPrepared, XaState::kRolledBack},
    {XaState::kPrepareLost, XaState::kRolledBack},
    {XaState::kCommitLost, XaState::kCommitted},  // the marker says
    {XaState::kCommitLost, XaState::kRolledBack},
};

}  // namespace

struct MariaDbBackend::Shared {
  explicit Shared(const MariaDbBackendOptions& opts)
      : options(opts),
        retry(ServerRetry(options)),
        pool(PoolHooks(options), options.max_idle_connections, options.connect_timeout_s) {}

  const MariaDbBackendOptions options;
  const RetryPolicy retry;
  Pool pool;  // none of its idle connections holds an XA transaction
  std::string marker_table;  // qualified with the database: sessions may switch it
  std::atomic<uint64_t> commits{0};

  std::mutex mu;
  // Session ids of branches whose connection was lost in the middle of a
  // statement: that session may still prepare or commit the branch, so no
  // answer about it is final until the session is gone.
  std::unordered_map<std::string, unsigned long> unsettled;  // guarded by mu

  // Runs `op` on a pooled connection, reconnecting through connection
  // failures as `retry` allows.
  Status WithRetry(const std::function<Status(MYSQL*)>& op) { return pool.WithRetry(retry, op); }

  void NoteUnsettled(const std::string& txn_id, unsigned long session) {
    std::lock_guard<std::mutex> lock(mu);
    unsettled[txn_id] = session;
  }

  // Makes sure the session that lost a reply for `txn_id` can no longer
  // prepare or commit it: kills it and waits until it is gone.
  Status Settle(const std::string& txn_id) {
    unsigned long session = 0;
    {
      std::lock_guard<std::mutex> lock(mu);
      auto it = unsettled.find(txn_id);
      if (it == unsettled.end()) return Status::Ok();
      session = it->second;
    }
    const std::string id = std::to_string(session);
    const TimePoint deadline = SteadyClock::now() + Millis(retry.window_ms);
    Status settled = WithRetry([&](MYSQL* conn) -> Status {
      while (mysql_thread_id(conn) != session) {  // ids of live sessions are unique
        // Only a session of Pact's user: after a server restart the id may
        // name someone else's.
        ASSIGN_OR_RETURN(QueryResult alive,
                         RunStatement(conn,
                                      "SELECT 1 FROM information_schema.PROCESSLIST"
                                      " WHERE ID = ? AND USER = ?",
                                      {static_cast<int64_t>(session), options.user}));
        if (alive.rows.empty()) return Status::Ok();
        if (SteadyClock::now() > deadline) return Status::Busy("session " + id + " still runs");
        // A killed session shows until it has finished its statement.
        Status killed = Run(conn, "KILL CONNECTION " + id);
        if (!killed.ok() && mysql_errno(conn) != ER_NO_SUCH_THREAD) return killed;
        std::this_thread::sleep_for(Millis(retry.first_backoff_ms));
      }
      return Status::Ok();
    });
    if (!settled.ok()) {
      return Status::Unavailable("cannot end the session that lost a reply for branch " + txn_id +
                                 ": " + settled.message());
    }
    std::lock_guard<std::mutex> lock(mu);
    unsettled.erase(txn_id);
    return Status::Ok();
  }

  // Whether the branch committed in one phase. The locking read waits for a
  // commit still in flight in another session, which holds the marker's
  // key; one that does not end in time leaves the answer unknown.
  Result<bool> Committed(const std::string& txn_id) {
    RETURN_NOT_OK(Settle(txn_id));
    bool committed = false;
    Status status = WithRetry([&](MYSQL* conn) -> Status {
      ASSIGN_OR_RETURN(QueryResult marker, RunStatement(conn,
                                                        "SELECT 1 FROM " + marker_table +
                                                            " WHERE txn_id = ? AND participant = ?"
                                                            " LOCK IN SHARE MODE WAIT " +
                                                            std::to_string(kMarkerLockWaitS),
                                                        {txn_id, options.participant_name}));
      committed = !marker.rows.empty();
      return Status::Ok();
    });
    if (!status.ok()) {
      return Status::Unavailable("whether branch " + txn_id +
                                 " committed is unknown: " + status.message());
    }
    return committed;
  }

  Status PruneMarkers(MYSQL* conn) {
    return Run(conn, "DELETE FROM " + marker_table + " WHERE committed_at < NOW() - INTERVAL " +
                         std::to_string(options.commit_marker_retention_ms / 1000) + " SECOND");
  }
};

class MariaDbBackend::MariaDbBranch : public Branch {
 public:
  using State = XaState;

  MariaDbBranch(std::shared_ptr<Shared> shared, std::string txn_id, ConnPtr conn, State state)
      : shared_(std::move(shared)),
        txn_id_(std::move(txn_id)),
        xid_(XidSql(txn_id_, shared_->options.participant_name)),
        conn_(std::move(conn)),
        session_(conn_ != nullptr ? mysql_thread_id(conn_.get()) : 0),
        state_(state, kXaMoves, &XaStateName, txn_id_) {}

  ~MariaDbBranch() override {
    // Closing conn_ rolls back an XA transaction that is not prepared and
    // detaches a prepared one, which XA RECOVER then lists.
    if (state_.Is(State::kPrepared) || state_.Is(State::kPrepareLost)) {
      LOG(WARNING) << "branch " << txn_id_ << " dropped undecided; it stays prepared in MariaDB "
                   << "until RecoverPrepared finds it";
    }
  }

  Result<QueryResult> Execute(const std::string& sql,
                              const std::vector<SqlValue>& params) override {
    RETURN_NOT_OK(state_.Require(State::kActive, "take more statements"));
    if (!rollback_only_.empty()) return Status::Aborted(rollback_only_);
    RETURN_NOT_OK(RefuseTransactionControl(sql));
    Result<QueryResult> result = RunStatement(conn_.get(), sql, params);
    if (!result.ok()) NoteFailure(result.status());
    return result;
  }

  Result<Vote> Prepare(std::string* abort_reason) override {
    if (state_.Is(State::kPrepared)) return Vote::kCommit;
    RETURN_NOT_OK(state_.Require(State::kActive, "prepare"));
    if (!rollback_only_.empty()) {
      *abort_reason = rollback_only_;
      RETURN_NOT_OK(RollBackActive());
      return Vote::kAbort;
    }
    Status ended = Run(conn_.get(), "XA END " + xid_);
    Status prepared = ended.ok() ? Run(conn_.get(), "XA PREPARE " + xid_) : ended;
    if (prepared.ok()) {
      // conn_ stays with the branch: MariaDB keeps a prepared XA transaction
      // bound to its session (other sessions get "unknown XID") until the
      // session decides it or ends.
      RETURN_NOT_OK(state_.MoveTo(State::kPrepared));
      return Vote::kCommit;
    }
    if (ended.ok() && prepared.code() == StatusCode::kUnavailable) {
      LoseConnection();
      RETURN_NOT_OK(state_.MoveTo(State::kPrepareLost));
      RETURN_NOT_OK(Decide("XA ROLLBACK")
                        .WithContext("the reply to XA PREPARE of branch " + txn_id_ +
                                     " was lost (" + prepared.message() +
                                     "), and it may be prepared; rolling it back failed"));
      RETURN_NOT_OK(state_.MoveTo(State::kRolledBack));
      *abort_reason = "lost the connection during XA PREPARE: " + prepared.message();
      return Vote::kAbort;
    }
    *abort_reason = "cannot prepare branch " + txn_id_ + ": " + prepared.message();
    RETURN_NOT_OK(RollBackActive());
    return Vote::kAbort;
  }

  Status CommitOnePhase() override {
    if (state_.Is(State::kCommitted)) return Status::Ok();
    if (state_.Is(State::kCommitLost)) return CheckOnePhaseOutcome();  // a retry
    RETURN_NOT_OK(state_.Require(State::kActive, "commit in one phase"));
    if (!rollback_only_.empty()) {
      RETURN_NOT_OK(RollBackActive());
      return Status::Aborted(rollback_only_);
    }
    // The marker commits with the changes: after a lost reply it tells
    // whether the commit happened.
    Status status = RunStatement(conn_.get(),
                                 "INSERT INTO " + shared_->marker_table +
                                     "(txn_id, participant, committed_at) VALUES(?, ?, NOW())",
                                 {txn_id_, shared_->options.participant_name})
                        .status();
    if (status.ok()) status = Run(conn_.get(), "XA END " + xid_);
    if (status.ok()) status = Run(conn_.get(), "XA COMMIT " + xid_ + " ONE PHASE");
    if (status.ok()) {
      RETURN_NOT_OK(state_.MoveTo(State::kCommitted));
      if (shared_->commits.fetch_add(1) % kPruneEveryCommits == kPruneEveryCommits - 1) {
        Status pruned = shared_->PruneMarkers(conn_.get());
        LOG_IF(WARNING, !pruned.ok()) << "pruning commit markers: " << pruned.ToString();
      }
      shared_->pool.Give(std::move(conn_), true);
      return Status::Ok();
    }
    if (status.code() != StatusCode::kUnavailable) {
      RETURN_NOT_OK(RollBackActive());
      return status.WithContext("branch " + txn_id_ + " rolled back");
    }
    LoseConnection();
    RETURN_NOT_OK(state_.MoveTo(State::kCommitLost));
    return CheckOnePhaseOutcome();
  }

  Status CommitPrepared() override {
    if (state_.Is(State::kCommitted)) return Status::Ok();
    RETURN_NOT_OK(state_.Require(State::kPrepared, "commit as prepared"));
    RETURN_NOT_OK(Decide("XA COMMIT").WithContext("commit of prepared branch " + txn_id_));
    return state_.MoveTo(State::kCommitted);
  }

  Status Rollback() override {
    switch (state_.state()) {
      case State::kRolledBack:
        return Status::Ok();
      case State::kCommitted:
        return Status::FailedPrecondition("branch " + txn_id_ + " already committed");
      case State::kCommitLost:
        return Status::FailedPrecondition("branch " + txn_id_ +
                                          " may have committed: " + state_.Name());
      case State::kActive:
        return RollBackActive();
      case State::kPrepared:
      case State::kPrepareLost:
        break;
    }
    RETURN_NOT_OK(Decide("XA ROLLBACK").WithContext("rollback of prepared branch " + txn_id_));
    return state_.MoveTo(State::kRolledBack);
  }

 private:
  // After a failed statement: whether MariaDB gave up the whole transaction.
  void NoteFailure(const Status& status) {
    if (status.code() == StatusCode::kAborted) {
      rollback_only_ = status.message();
    } else if (status.code() == StatusCode::kUnavailable) {
      rollback_only_ =
          "lost the connection, MariaDB rolls the transaction back: " + status.message();
      conn_.reset();  // nothing it still runs can commit: no XA COMMIT or PREPARE was sent
      shared_->pool.DropIdle();
    }
  }

  // After an XA PREPARE or COMMIT whose reply was lost: the session may still
  // be running it.
  void LoseConnection() {
    conn_.reset();
    shared_->pool.DropIdle();
    if (session_ != 0) shared_->NoteUnsettled(txn_id_, session_);
  }

  // Ends an XA transaction that is not prepared. When MariaDB refuses, closing
  // the connection rolls it back instead.
  Status RollBackActive() {
    if (conn_ != nullptr) {
      Status ignored = Run(conn_.get(), "XA END " + xid_);  // fails if already ended: fine
      Status rolled_back = Run(conn_.get(), "XA ROLLBACK " + xid_);
      if (rolled_back.ok()) {
        shared_->pool.Give(std::move(conn_), true);
      } else {
        conn_.reset();
      }
    }
    return state_.MoveTo(State::kRolledBack);
  }

  // XA COMMIT or XA ROLLBACK of the prepared xid: on conn_ while it lives,
  // then on other connections as the retry policy allows.
  Status Decide(const std::string& verb) {
    const std::string sql = verb + " " + xid_;
    if (conn_ != nullptr) {
      Status status = Run(conn_.get(), sql);
      const unsigned int code = mysql_errno(conn_.get());
      if (status.ok() || code == ER_XA_RBROLLBACK) {
        shared_->pool.Give(std::move(conn_), true);
        return Status::Ok();
      }
      if (status.code() != StatusCode::kUnavailable) return status;
      LoseConnection();
    }
    // NOTA is final only once the session that lost a reply cannot still
    // prepare the xid.
    RETURN_NOT_OK(shared_->Settle(txn_id_));
    return shared_->WithRetry([&](MYSQL* conn) -> Status {
      Status status = Run(conn, sql);
      const unsigned int code = mysql_errno(conn);
      // A read-only branch was "prepared" without anything to keep: MariaDB
      // answers that it rolled back, which is all a commit could do.
      if (status.ok() || code == ER_XA_RBROLLBACK) return Status::Ok();
      if (code != ER_XAER_NOTA) return status;
      // NOTA also answers for an xid still bound to another session (ours,
      // lost but not yet noticed by the server): done only if XA RECOVER
      // no longer lists it.
      ASSIGN_OR_RETURN(std::vector<Xid> xids, XaRecover(conn));
      for (const Xid& xid : xids) {
        if (xid.format_id == kFormatId && xid.gtrid == txn_id_ &&
            xid.bqual == shared_->options.participant_name) {
          return Status::Unavailable(
              "the xid is bound to another session (maybe a lost one the server has not "
              "noticed yet): " +
              status.message());
        }
      }
      LOG(WARNING) << "branch " << txn_id_ << ": " << verb
                   << " found no such XA transaction; an earlier attempt whose reply was lost "
                   << "did it";
      return Status::Ok();
    });
  }

  // After a lost one-phase commit reply: the marker tells, once the lost
  // session is gone.
  Status CheckOnePhaseOutcome() {
    Result<bool> committed = shared_->Committed(txn_id_);
    if (!committed.ok()) {
      return committed.status().WithContext("the reply to the one-phase commit of branch " +
                                            txn_id_ + " was lost");
    }
    RETURN_NOT_OK(state_.MoveTo(*committed ? State::kCommitted : State::kRolledBack));
    if (*committed) return Status::Ok();
    return Status::Aborted("branch " + txn_id_ +
                           " rolled back: the connection was lost before the one-phase commit");
  }

  const std::shared_ptr<Shared> shared_;
  const std::string txn_id_;
  const std::string xid_;        // as SQL: X'gtrid',X'bqual',formatID
  ConnPtr conn_;                 // while active, and while prepared until it is lost
  const unsigned long session_;  // the server's id of conn_'s session; 0 if none
  BranchStateMachine<State> state_;
  std::string rollback_only_;  // why MariaDB rolled the transaction back, if it did
};

MariaDbBackend::MariaDbBackend(std::shared_ptr<Shared> shared) : shared_(std::move(shared)) {}

MariaDbBackend::~MariaDbBackend() = default;

Result<std::unique_ptr<MariaDbBackend>> MariaDbBackend::Open(const MariaDbBackendOptions& options) {
  if (options.database.empty()) return Status::InvalidArgument("database is empty");
  const std::string& name = options.participant_name;
  if (name.empty() || name.size() > kMaxXidPartBytes) {
    return Status::InvalidArgument("participant name \"" + name + "\" must be 1 to " +
                                   std::to_string(kMaxXidPartBytes) +
                                   " bytes: it is the bqual of MariaDB XA xids");
  }
  auto shared = std::make_shared<Shared>(options);
  shared->marker_table = QuoteIdentifier(options.database) + "." + kMarkerTable;
  ASSIGN_OR_RETURN(ConnPtr conn, shared->pool.Take());

  // 10.5 keeps prepared XA transactions across disconnects and restarts.
  const std::string server = mysql_get_server_info(conn.get());
  if (server.find("MariaDB") == std::string::npos ||
      mysql_get_server_version(conn.get()) < 100500) {
    return Status::FailedPrecondition("the server at " + options.host + ":" +
                                      std::to_string(options.port) + " is " + server +
                                      "; Pact's MariaDB backend needs MariaDB 10.5 or later");
  }
  RETURN_NOT_OK(Run(conn.get(), "CREATE TABLE IF NOT EXISTS " + shared->marker_table +
                                    "(txn_id VARCHAR(128) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin"
                                    " NOT NULL,"
                                    " participant VARCHAR(64) CHARACTER SET utf8mb4 COLLATE"
                                    " utf8mb4_bin NOT NULL,"
                                    " committed_at TIMESTAMP NOT NULL,"
                                    " PRIMARY KEY(txn_id, participant)) ENGINE=InnoDB"));
  RETURN_NOT_OK(shared->PruneMarkers(conn.get()));
  shared->pool.Give(std::move(conn), false);
  return std::unique_ptr<MariaDbBackend>(new MariaDbBackend(std::move(shared)));
}

Result<std::unique_ptr<Branch>> MariaDbBackend::Begin(const std::string& txn_id) {
  if (txn_id.empty() || txn_id.size() > kMaxXidPartBytes) {
    return Status::InvalidArgument("transaction id \"" + txn_id + "\" must be 1 to " +
                                   std::to_string(kMaxXidPartBytes) +
                                   " bytes: it is the gtrid of a MariaDB XA xid");
  }
  const std::string start = "XA START " + XidSql(txn_id, shared_->options.participant_name);
  ASSIGN_OR_RETURN(ConnPtr conn, shared_->pool.TakeStarted([&](MYSQL* c) {
    return Run(c, start).WithContext("cannot begin branch " + txn_id);
  }));
  return std::unique_ptr<Branch>(
      std::make_unique<MariaDbBranch>(shared_, txn_id, std::move(conn), XaState::kActive));
}

Result<std::vector<RecoveredBranch>> MariaDbBackend::RecoverPrepared() {
  return PreparedBranches({});
}

Result<std::vector<RecoveredBranch>> MariaDbBackend::FindOrphans(
    const std::set<std::string>& held) {
  return PreparedBranches(held);
}

Result<std::vector<RecoveredBranch>> MariaDbBackend::PreparedBranches(
    const std::set<std::string>& skip) {
  std::vector<Xid> xids;
  RETURN_NOT_OK(shared_->WithRetry([&](MYSQL* conn) -> Status {
    ASSIGN_OR_RETURN(xids, XaRecover(conn));
    return Status::Ok();
  }));
  std::vector<RecoveredBranch> found;
  for (Xid& xid : xids) {
    if (xid.format_id != kFormatId || xid.bqual != shared_->options.participant_name ||
        skip.count(xid.gtrid) > 0) {
      continue;
    }
    LOG(INFO) << "branch " << xid.gtrid << " is prepared in MariaDB";
    auto branch = std::make_unique<MariaDbBranch>(shared_, xid.gtrid, nullptr, XaState::kPrepared);
    found.push_back(RecoveredBranch{xid.gtrid, WallMillis(), std::move(branch)});
  }
  return found;
}

Result<bool> MariaDbBackend::IsCommitted(const std::string& txn_id) {
  return shared_->Committed(txn_id);
}

}  // namespace pact
