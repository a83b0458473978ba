#include "participant/backends/postgres/postgres_backend.h"

#include <glog/logging.h>
#include <libpq-fe.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <mutex>
#include <optional>
#include <thread>
#include <unordered_map>
#include <utility>

#include "common/clock.h"
#include "common/txn_id.h"
#include "participant/backends/branch_state_machine.h"
#include "participant/backends/postgres/pg_handles.h"
#include "participant/backends/postgres/pg_statement_cache.h"
#include "participant/backends/server/connection_pool.h"
#include "participant/backends/server/retry_policy.h"

namespace pact {
namespace {

// Type oids from pg_type.h, which is not among libpq's public headers.
constexpr Oid kBoolOid = 16;
constexpr Oid kByteaOid = 17;
constexpr Oid kInt8Oid = 20;
constexpr Oid kInt2Oid = 21;
constexpr Oid kInt4Oid = 23;
constexpr Oid kOidOid = 26;
constexpr Oid kFloat4Oid = 700;
constexpr Oid kFloat8Oid = 701;
constexpr Oid kNumericOid = 1700;

constexpr size_t kMaxGidBytes = 199;  // GIDSIZE is 200 with the terminating NUL

// Old commit markers are pruned after every Nth commit.
constexpr uint64_t kPruneEveryCommits = 1000;

bool Broken(PGconn* conn) { return conn == nullptr || PQstatus(conn) != CONNECTION_OK; }

std::string Trimmed(const char* text) {
  std::string s = text != nullptr ? text : "";
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.pop_back();
  return s;
}

// The one place that turns a PostgreSQL error into a Status.
Status PgError(PGconn* conn, const PGresult* res, const std::string& context) {
  const char* field = res != nullptr ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : nullptr;
  const std::string state = field != nullptr ? field : "";
  std::string message;
  if (const char* primary =
          res != nullptr ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : nullptr) {
    message = primary;
    if (const char* detail = PQresultErrorField(res, PG_DIAG_MESSAGE_DETAIL)) {
      message += std::string(" (") + detail + ")";
    }
  } else {
    message = Trimmed(conn != nullptr ? PQerrorMessage(conn) : "no connection");
  }
  message = context + ": " + message + (state.empty() ? "" : " [SQLSTATE " + state + "]");
  auto starts = [&](const char* prefix) { return state.rfind(prefix, 0) == 0; };
  // A dead connection first: then the server has rolled back whatever was open.
  // No SQLSTATE means libpq made the error up (no result, a reply it could not
  // read): whatever the server did is unknown, so it counts as unreachable.
  if (Broken(conn) || state.empty() || starts("08") || state == "57P01" || state == "57P02" ||
      state == "57P03" || state == "53300") {
    return Status::Unavailable(message);
  }
  if (state == "40P01") {
    return Status::Aborted("deadlock detected; this transaction must roll back: " + message);
  }
  if (starts("40")) return Status::Aborted("this transaction must roll back: " + message);
  if (state == "53100" || starts("58")) return Status::IoError(message);
  if (starts("53")) return Status::Unavailable(message);  // out of memory, too many files
  if (state == "57014" || state == "55P03" || state == "55006") return Status::Busy(message);
  if (state == "XX001" || state == "XX002") return Status::Corruption(message);
  if (starts("XX")) return Status::Internal(message);
  if (starts("25")) return Status::FailedPrecondition(message);
  return Status::InvalidArgument(message);  // syntax, constraints, unknown objects, privileges
}

// A statement's outcome, with the SQLSTATE where callers must tell errors apart.
struct Reply {
  PgResultPtr res;
  Status status;
  std::string sqlstate;
  bool ok() const { return status.ok(); }
};

Reply Collect(PGconn* conn, PGresult* raw, const std::string& context) {
  Reply reply;
  reply.res.reset(raw);
  ExecStatusType st = raw != nullptr ? PQresultStatus(raw) : PGRES_FATAL_ERROR;
  if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) return reply;
  if (st == PGRES_EMPTY_QUERY) {
    reply.status = Status::InvalidArgument(context + ": no SQL statement");
    return reply;
  }
  if (st == PGRES_COPY_IN || st == PGRES_COPY_OUT || st == PGRES_COPY_BOTH) {
    reply.status =
        Status::InvalidArgument(context + ": COPY from or to the client is not supported");
    return reply;
  }
  const char* state = raw != nullptr ? PQresultErrorField(raw, PG_DIAG_SQLSTATE) : nullptr;
  reply.sqlstate = state != nullptr ? state : "";
  reply.status = PgError(conn, raw, context);
  return reply;
}

// Runs one of Pact's own statements; text parameters, nullptr for NULL.
Reply Run(PGconn* conn, const std::string& sql, const std::vector<const char*>& params = {}) {
  PGresult* raw = PQexecParams(conn, sql.c_str(), static_cast<int>(params.size()), nullptr,
                               params.data(), nullptr, nullptr, 0);
  return Collect(conn, raw, sql);
}

// Runs several of Pact's own statements in one round trip (the simple query
// protocol, which takes no parameters), with every statement's own reply, in
// order; after an error PostgreSQL runs none of the rest, so the error is
// the last reply. Never empty: a reply that did not come is an error one.
std::vector<Reply> RunScriptReplies(PGconn* conn, const std::string& sql) {
  std::vector<Reply> replies;
  if (PQsendQuery(conn, sql.c_str()) == 0) {
    replies.push_back(Collect(conn, nullptr, sql));
    return replies;
  }
  while (PGresult* raw = PQgetResult(conn)) replies.push_back(Collect(conn, raw, sql));
  if (replies.empty()) replies.push_back(Collect(conn, nullptr, sql));
  return replies;
}

// The first error among `replies`, or OK.
Status FirstError(const std::vector<Reply>& replies) {
  for (const Reply& r : replies) {
    if (!r.ok()) return r.status;
  }
  return Status::Ok();
}

// First column of the first row, or nullopt for NULL or no row.
std::optional<std::string> FirstValue(const Reply& reply) {
  if (PQntuples(reply.res.get()) < 1 || PQgetisnull(reply.res.get(), 0, 0)) return std::nullopt;
  return std::string(PQgetvalue(reply.res.get(), 0, 0));
}

// A literal for utility statements, which take no parameters. Right whatever
// standard_conforming_strings says; Pact's gids never need the E'' form.
std::string QuoteLiteral(const std::string& text) {
  const bool backslash = text.find('\\') != std::string::npos;
  std::string out = backslash ? "E'" : "'";
  for (char c : text) {
    if (c == '\'' || (backslash && c == '\\')) out += c;
    out += c;
  }
  return out + "'";
}

void LogNotice(void*, const char* message) { VLOG(1) << "postgresql: " << Trimmed(message); }

// --- The caller's SQL: skipping comments and literals, never parsing. ---

bool IsIdentChar(char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_'; }

// Skips whitespace and comments (nested /* */ as PostgreSQL does).
size_t SkipBlank(const std::string& sql, size_t i) {
  while (i < sql.size()) {
    if (std::isspace(static_cast<unsigned char>(sql[i]))) {
      ++i;
    } else if (sql.compare(i, 2, "--") == 0) {
      i = sql.find('\n', i);
      if (i == std::string::npos) return sql.size();
    } else if (sql.compare(i, 2, "/*") == 0) {
      int depth = 0;
      do {
        if (sql.compare(i, 2, "/*") == 0) {
          ++depth;
          i += 2;
        } else if (sql.compare(i, 2, "*/") == 0) {
          --depth;
          i += 2;
        } else {
          ++i;
        }
      } while (depth > 0 && i < sql.size());
    } else {
      break;
    }
  }
  return i;
}

// The first `count` keywords, upper-cased.
std::vector<std::string> LeadingWords(const std::string& sql, int count) {
  std::vector<std::string> words;
  size_t i = 0;
  while (static_cast<int>(words.size()) < count) {
    i = SkipBlank(sql, i);
    std::string word;
    while (i < sql.size() && IsIdentChar(sql[i])) {
      word += static_cast<char>(std::toupper(static_cast<unsigned char>(sql[i++])));
    }
    if (word.empty()) break;
    words.push_back(std::move(word));
  }
  return words;
}

// Pact owns BEGIN, PREPARE and the decision; a statement ending or
// splitting the transaction would break the branch's contract.
Status CheckStatement(const std::string& sql) {
  if (SkipBlank(sql, 0) == sql.size()) return Status::InvalidArgument("no SQL statement");
  const std::vector<std::string> w = LeadingWords(sql, 3);
  auto is = [&](size_t i, const char* word) { return w.size() > i && w[i] == word; };
  if (is(0, "BEGIN") || is(0, "START") || is(0, "COMMIT") || is(0, "ROLLBACK") || is(0, "END") ||
      is(0, "ABORT") || is(0, "SAVEPOINT") || is(0, "RELEASE") ||
      (is(0, "PREPARE") && is(1, "TRANSACTION")) || (is(0, "SET") && is(1, "TRANSACTION")) ||
      (is(0, "SET") && is(1, "SESSION") && is(2, "CHARACTERISTICS"))) {
    return Status::InvalidArgument("transaction control is Pact's job: refused " + sql);
  }
  return Status::Ok();
}

// Rewrites the ?N and ? placeholders every backend takes into PostgreSQL's $N
// (a bare ? is one more than the highest number so far, as in SQLite),
// outside literals, quoted identifiers and comments. SQL already using $N is
// left alone.
std::string ToDollarPlaceholders(const std::string& sql) {
  std::string out;
  out.reserve(sql.size() + 8);
  int highest = 0;
  size_t i = 0;
  auto copy_until = [&](size_t end) {
    out.append(sql, i, end - i);
    i = end;
  };
  while (i < sql.size()) {
    const char c = sql[i];
    const bool after_ident = i > 0 && (IsIdentChar(sql[i - 1]) || sql[i - 1] == '$');
    if (c == '-' || c == '/') {
      size_t end = SkipBlank(sql, i);
      copy_until(end > i ? end : i + 1);
    } else if (c == '\'' || c == '"') {
      // E'..' strings escape with backslashes; all quote by doubling.
      const bool escapes = c == '\'' && i > 0 && (sql[i - 1] == 'E' || sql[i - 1] == 'e') &&
                           (i < 2 || !IsIdentChar(sql[i - 2]));
      size_t j = i + 1;
      while (j < sql.size()) {
        if (escapes && sql[j] == '\\') {
          j += 2;
        } else if (sql[j] == c) {
          if (j + 1 < sql.size() && sql[j + 1] == c) {
            j += 2;
          } else {
            break;
          }
        } else {
          ++j;
        }
      }
      copy_until(std::min(j + 1, sql.size()));
    } else if (c == '$' && !after_ident) {
      size_t j = i + 1;
      if (j < sql.size() && std::isdigit(static_cast<unsigned char>(sql[j]))) return sql;
      while (j < sql.size() && IsIdentChar(sql[j])) ++j;
      if (j < sql.size() && sql[j] == '$') {  // $tag$ ... $tag$
        const std::string tag = sql.substr(i, j + 1 - i);
        size_t end = sql.find(tag, j + 1);
        copy_until(end == std::string::npos ? sql.size() : end + tag.size());
      } else {
        copy_until(j);
      }
    } else if (c == '?') {
      size_t j = i + 1;
      while (j < sql.size() && std::isdigit(static_cast<unsigned char>(sql[j]))) ++j;
      const int number = j > i + 1 ? std::atoi(sql.c_str() + i + 1) : highest + 1;
      highest = std::max(highest, number);
      out += "$" + std::to_string(number);
      i = j;
    } else {
      out += c;
      ++i;
    }
  }
  return out;
}

SqlValue ColumnValue(const PGresult* res, int row, int col) {
  if (PQgetisnull(res, row, col)) return std::monostate();
  const char* text = PQgetvalue(res, row, col);
  switch (PQftype(res, col)) {
    case kInt2Oid:
    case kInt4Oid:
    case kInt8Oid:
    case kOidOid:
      return static_cast<int64_t>(std::strtoll(text, nullptr, 10));
    case kFloat4Oid:
    case kFloat8Oid:
    case kNumericOid:  // a double: numeric's exact digits beyond 17 are lost
      return std::strtod(text, nullptr);
    case kBoolOid:
      return static_cast<int64_t>(text[0] == 't' ? 1 : 0);
    case kByteaOid: {
      size_t size = 0;
      unsigned char* bytes = PQunescapeBytea(reinterpret_cast<const unsigned char*>(text), &size);
      Blob blob{std::string(reinterpret_cast<const char*>(bytes), bytes != nullptr ? size : 0)};
      PQfreemem(bytes);
      return blob;
    }
    default:
      return std::string(text, PQgetlength(res, row, col));
  }
}

// Opens a connection; the caller's conninfo comes last, so its own settings
// win. Keepalives notice a server that vanished while a statement waits for
// its reply.
Result<PgConnPtr> Connect(const std::string& conninfo, int connect_timeout_s) {
  const std::string timeout = std::to_string(connect_timeout_s);
  const char* keys[] = {
      "connect_timeout",     "application_name", "keepalives", "keepalives_idle",
      "keepalives_interval", "keepalives_count", "dbname",     nullptr};
  const char* values[] = {timeout.c_str(), "pact", "1", "30", "10", "3", conninfo.c_str(),
                          nullptr};
  PgConnPtr conn(PQconnectdbParams(keys, values, 1));
  if (Broken(conn.get())) {
    return Status::Unavailable(
        "cannot connect to PostgreSQL: " +
        Trimmed(conn != nullptr ? PQerrorMessage(conn.get()) : "no memory"));
  }
  PQsetNoticeProcessor(conn.get(), &LogNotice, nullptr);
  LOG_IF(WARNING, !PgStatementCache::Attach(conn.get()))
      << "no statement cache for a PostgreSQL connection: statements run unnamed";
  return conn;
}

// The reset's one query, prepared from SQL on every new connection so that
// the reset's simple-query script runs it with EXECUTE, parsed and planned
// once per connection (planning it at every branch cost more server time
// than DISCARD ALL). It drops session advisory locks and lists the
// session's prepared statements, less itself, for ResetChecked to compare
// with the cache (no aggregate: setting one up at every execution cost more
// than the rows).
constexpr const char* kResetQueryName = "pact_reset";
// The marker INSERTs (Shared::OwnStatements), prepared the same way.
constexpr const char* kMarkerName = "pact_marker";
constexpr const char* kMarkerIfWroteName = "pact_marker_if_wrote";
std::string PrepareResetQuery() {
  return std::string("PREPARE ") + kResetQueryName +
         " AS SELECT from_sql FROM pg_advisory_unlock_all(), pg_prepared_statements"
         " WHERE name NOT IN ('" +
         kResetQueryName + "', '" + kMarkerName + "', '" + kMarkerIfWroteName + "')";
}

// What a branch's statements may leave in a session for the next branch on
// the connection: what DISCARD ALL clears, except the named prepared
// statements (the cache's, and the reset query) and the plans, which
// PostgreSQL revalidates itself. WITH HOLD cursors, settings and roles,
// LISTEN, temporary tables, sequence state, advisory locks; then the cache's
// retired names.
std::string ResetScript(PGconn* conn) {
  PgStatementCache* cache = PgStatementCache::Of(conn);
  return std::string("CLOSE ALL; SET SESSION AUTHORIZATION DEFAULT; RESET ALL; UNLISTEN *;"
                     " DISCARD TEMP; DISCARD SEQUENCES; ") +
         (cache != nullptr ? cache->TakeDeallocations() : std::string()) + "EXECUTE " +
         kResetQueryName;
}
constexpr int kResetStatements = 7;  // in ResetScript, less the DEALLOCATEs

// Whether ResetScript's replies (the `reset` ones, all of it, the last
// being its count) left the session clean. A branch that prepared
// statements from SQL, or deallocated the cache's, has them all dropped and
// the cache emptied: the next branch neither sees the former nor misses the
// latter.
bool ResetChecked(PGconn* conn, const std::vector<Reply>& reset) {
  if (reset.empty() || !FirstError(reset).ok() || Broken(conn)) return false;
  const PGresult* listed = reset.back().res.get();
  if (PQnfields(listed) != 1) return false;
  long long from_sql = 0;
  long long cached = 0;
  for (int r = 0; r < PQntuples(listed); ++r) {
    ++(PQgetvalue(listed, r, 0)[0] == 't' ? from_sql : cached);
  }
  PgStatementCache* cache = PgStatementCache::Of(conn);
  if (from_sql == 0 && cache != nullptr && cached == static_cast<long long>(cache->size())) {
    return true;
  }
  if (cache != nullptr) cache->Clear();
  if (!Run(conn, "DEALLOCATE ALL").ok()) return false;
  const std::string own = cache != nullptr ? cache->own_statements : PrepareResetQuery();
  if (!FirstError(RunScriptReplies(conn, own)).ok()) return false;
  if (cache != nullptr) cache->own_prepared = true;
  return true;
}

// Sends `head` (statements ending the transaction) and the reset as one
// script, and reads the replies of `head` only. When all of them succeeded,
// the reset's replies are left in flight, `*reset_sent` is true and the
// connection may go back to the pool as it is: the session is free (the
// transaction ended), and FinishReset reads and checks the rest before the
// connection serves again, so the caller does not wait for the reset.
std::vector<Reply> RunThenReset(PGconn* conn, const std::string& head, int head_statements,
                                bool* reset_sent) {
  *reset_sent = false;
  PgStatementCache* cache = PgStatementCache::Of(conn);
  const std::string sql = cache != nullptr ? head + "; " + ResetScript(conn) : head;
  std::vector<Reply> replies;
  if (PQsendQuery(conn, sql.c_str()) == 0) {
    replies.push_back(Collect(conn, nullptr, head));
    return replies;
  }
  while (static_cast<int>(replies.size()) < head_statements) {
    PGresult* raw = PQgetResult(conn);
    if (raw == nullptr) break;
    replies.push_back(Collect(conn, raw, head));
    if (!replies.back().ok()) break;
  }
  if (replies.empty()) replies.push_back(Collect(conn, nullptr, head));
  if (static_cast<int>(replies.size()) == head_statements && FirstError(replies).ok() &&
      cache != nullptr) {
    cache->reset_in_flight = true;
    *reset_sent = true;
    return replies;
  }
  // After an error the server ran nothing more; what is left to read is the end.
  while (PGresult* raw = PQgetResult(conn)) PQclear(raw);
  return replies;
}

// Reads the replies of a reset that RunThenReset left in flight, and checks
// them; true if none was in flight. False: the connection must not serve.
bool FinishReset(PGconn* conn) {
  PgStatementCache* cache = PgStatementCache::Of(conn);
  if (cache == nullptr || !cache->reset_in_flight) return true;
  cache->reset_in_flight = false;
  std::vector<Reply> reset;
  while (PGresult* raw = PQgetResult(conn)) reset.push_back(Collect(conn, raw, "reset"));
  return static_cast<int>(reset.size()) >= kResetStatements && ResetChecked(conn, reset) &&
         PQtransactionStatus(conn) == PQTRANS_IDLE;
}

// A statement of the caller's, bound: text parameters of unknown type, which
// PostgreSQL types from the context like quoted literals; blobs as binary
// bytea.
struct BoundParams {
  std::vector<std::string> storage;
  std::vector<const char*> values;
  std::vector<int> lengths;
  std::vector<int> formats;
  std::vector<Oid> types;

  explicit BoundParams(const std::vector<SqlValue>& params)
      : storage(params.size()),
        values(params.size(), nullptr),
        lengths(params.size(), 0),
        formats(params.size(), 0),
        types(params.size(), 0) {
    for (size_t i = 0; i < params.size(); ++i) {
      const SqlValue& value = params[i];
      if (auto* v = std::get_if<int64_t>(&value)) {
        storage[i] = std::to_string(*v);
      } else if (auto* v = std::get_if<double>(&value)) {
        char buffer[64];
        std::snprintf(buffer, sizeof(buffer), "%.17g", *v);
        storage[i] = buffer;
      } else if (auto* v = std::get_if<std::string>(&value)) {
        storage[i] = *v;
      } else if (auto* v = std::get_if<Blob>(&value)) {
        storage[i] = v->bytes;
        formats[i] = 1;
        types[i] = kByteaOid;
      } else {
        continue;  // NULL
      }
      values[i] = storage[i].data();
      lengths[i] = static_cast<int>(storage[i].size());
    }
  }
  int count() const { return static_cast<int>(values.size()); }
};

// The cache key of a statement: its text and the types it is prepared with.
std::string CacheKey(const std::string& text, const BoundParams& p) {
  std::string key = text;
  key += '\0';
  for (Oid type : p.types) key += std::to_string(type) + ",";
  return key;
}

// Runs a caller's statement, with BEGIN before it in the same round trip
// when `begin`. A statement with parameters and no result columns runs as a
// named prepared statement of the session (prepared in the same round trip
// the first time); any other runs unnamed. The reply is BEGIN's if that
// failed, else the statement's.
Reply RunStatement(PGconn* conn, const std::string& text, const BoundParams& p, bool begin) {
  PgStatementCache* cache = p.count() > 0 ? PgStatementCache::Of(conn) : nullptr;
  const std::string key = cache != nullptr ? CacheKey(text, p) : std::string();
  if (cache != nullptr && cache->ReturnsRows(key)) cache = nullptr;
  const std::string* cached = cache != nullptr ? cache->Find(key) : nullptr;
  if (!begin && (cache == nullptr || cached != nullptr)) {
    PGresult* raw =
        cached != nullptr
            ? PQexecPrepared(conn, cached->c_str(), p.count(), p.values.data(), p.lengths.data(),
                             p.formats.data(), 0)
            : PQexecParams(conn, text.c_str(), p.count(), p.types.data(), p.values.data(),
                           p.lengths.data(), p.formats.data(), 0);
    return Collect(conn, raw, "execute");
  }
  // One round trip for BEGIN, PREPARE and the statement (libpq's pipeline
  // mode): after an error the server skips the rest up to the Sync.
  const bool prepare = cache != nullptr && cached == nullptr;
  const std::string name = prepare ? cache->NewName() : cached != nullptr ? *cached : "";
  auto failed = [&](const char* what) {
    Reply reply;
    reply.status = PgError(conn, nullptr, std::string("execute: ") + what);
    return reply;
  };
  if (PQenterPipelineMode(conn) == 0) return failed("cannot enter pipeline mode");
  bool sent = true;
  if (begin) sent = PQsendQueryParams(conn, "BEGIN", 0, nullptr, nullptr, nullptr, nullptr, 0);
  if (sent && prepare) {
    sent = PQsendPrepare(conn, name.c_str(), text.c_str(), p.count(), p.types.data());
  }
  if (sent) {
    sent = !name.empty() ? PQsendQueryPrepared(conn, name.c_str(), p.count(), p.values.data(),
                                               p.lengths.data(), p.formats.data(), 0)
                         : PQsendQueryParams(conn, text.c_str(), p.count(), p.types.data(),
                                             p.values.data(), p.lengths.data(), p.formats.data(),
                                             0);
  }
  if (!sent || PQpipelineSync(conn) == 0) return failed("cannot send");
  // Each step's result, then a null; then the Sync's. A connection that
  // breaks on the way stays in pipeline mode, so the pool will not reuse it.
  std::vector<Reply> replies;
  const int steps = (begin ? 1 : 0) + (prepare ? 1 : 0) + 1;
  for (int i = 0; i < steps; ++i) {
    PGresult* raw = PQgetResult(conn);
    if (raw == nullptr) return failed("no reply");
    if (PQresultStatus(raw) == PGRES_PIPELINE_ABORTED) {
      PQclear(raw);
      replies.push_back(failed("skipped after an error"));
    } else {
      replies.push_back(Collect(conn, raw, "execute"));
    }
    if (PGresult* extra = PQgetResult(conn)) {
      PQclear(extra);
      return failed("unexpected reply");
    }
  }
  PgResultPtr sync(PQgetResult(conn));
  if (sync == nullptr || PQresultStatus(sync.get()) != PGRES_PIPELINE_SYNC ||
      PQexitPipelineMode(conn) == 0) {
    return failed("pipeline did not end");
  }
  if (begin && !replies.front().ok()) return std::move(replies.front());
  Reply& statement = replies.back();
  if (prepare) {
    if (replies[replies.size() - 2].ok()) {  // the server holds the name now
      if (statement.ok() && PQnfields(statement.res.get()) == 0) {
        cache->Insert(key, name);
      } else {
        if (statement.ok()) cache->NoteReturnsRows(key);
        cache->Retire(name);
      }
    } else {
      return std::move(replies[replies.size() - 2]);  // the statement did not parse
    }
  }
  return std::move(statement);
}

using Pool = ConnectionPool<PGconn, PgConnCloser>;

// `own_statements` gives the script that prepares the adapter's own
// statements on a new session.
Pool::Hooks PoolHooks(const std::string& conninfo, std::function<std::string()> own_statements) {
  Pool::Hooks hooks;
  hooks.connect = [conninfo, own_statements](int timeout_s) -> Result<PgConnPtr> {
    ASSIGN_OR_RETURN(PgConnPtr conn, Connect(conninfo, timeout_s));
    const std::string own = own_statements();
    Status prepared = FirstError(RunScriptReplies(conn.get(), own));
    if (!prepared.ok()) return prepared.WithContext("cannot prepare the adapter's statements");
    if (PgStatementCache* cache = PgStatementCache::Of(conn.get())) {
      cache->own_statements = own;
      cache->own_prepared = true;
    }
    return conn;
  };
  // Reads without blocking to notice a server that ended the session. It
  // sends its reason before closing, so the close shows on a second read.
  hooks.alive = [](PGconn* conn) {
    return FinishReset(conn) && PQconsumeInput(conn) == 1 && PQconsumeInput(conn) == 1 &&
           !Broken(conn);
  };
  // A connection whose reset is still in flight is busy until FinishReset.
  hooks.reusable = [](PGconn* conn) {
    const PgStatementCache* cache = PgStatementCache::Of(conn);
    const bool resetting = cache != nullptr && cache->reset_in_flight;
    return !Broken(conn) && PQpipelineStatus(conn) == PQ_PIPELINE_OFF &&
           (resetting || PQtransactionStatus(conn) == PQTRANS_IDLE);
  };
  // Clears what the caller's SQL may have left in the session for the next
  // branch; most branches do it in the round trip that ends them instead.
  hooks.reset = [](PGconn* conn) {
    return ResetChecked(conn, RunScriptReplies(conn, ResetScript(conn)));
  };
  return hooks;
}

// Decisions and outcome queries reconnect for RetryPolicy's window (plus at
// most one connect_timeout_s) before they answer kUnavailable.
RetryPolicy ServerRetry(const PostgresBackendOptions& options) {
  RetryPolicy retry;
  retry.connect_timeout_s = options.connect_timeout_s;
  retry.log_retries = true;
  return retry;
}

// A branch's life; MoveTo in PgBranch is the only writer.
enum class PgState {
  // Holds a connection, inside BEGIN once the first statement ran. Nothing
  // durable: a crash or a lost connection rolls it back.
  kActive,
  // PREPARE TRANSACTION ran, or its reply was lost and it may have: then
  // pg_prepared_xacts lists the gid, with the marker row inside the prepared
  // transaction. No connection.
  kPrepared,
  // Its marker row in kMarkerTable is committed (COMMIT, or COMMIT PREPARED
  // and the gid gone from pg_prepared_xacts); a read-only branch committed
  // with nothing to keep and has no marker.
  kCommitted,
  // Also after an abort vote: no gid in pg_prepared_xacts, no marker row.
  kRolledBack,
  // COMMIT sent, its reply lost, and the marker table could not be read:
  // the marker row tells once the server answers (IsCommitted).
  kUnknown,
};

const char* PgStateName(PgState state) {
  switch (state) {
    case PgState::kActive:
      return "active";
    case PgState::kPrepared:
      return "prepared";
    case PgState::kCommitted:
      return "committed";
    case PgState::kRolledBack:
      return "rolled back";
    case PgState::kUnknown:
      return "of unknown outcome";
  }
  return "?";
}

// Every move a branch can make; kCommitted, kRolledBack and kUnknown are final.
constexpr StateMove<PgState> kPgMoves[] = {
    {PgState::kActive, PgState::kPrepared},    // voted commit (or the vote's reply was lost)
    {PgState::kActive, PgState::kCommitted},   // read-only vote, one-phase commit
    {PgState::kActive, PgState::kRolledBack},  // abort vote, rollback, failed one-phase commit
    {PgState::kActive, PgState::kUnknown},     // one-phase commit lost its reply
    {PgState::kPrepared, PgState::kCommitted},
    {PgState::kPrepared, PgState::kRolledBack},
};

}  // namespace

struct PostgresBackend::Shared {
  explicit Shared(const PostgresBackendOptions& opts)
      : options(opts),
        retry(ServerRetry(options)),
        pool(PoolHooks(options.conninfo, [this] { return OwnStatements(); }),
             options.max_idle_connections, options.connect_timeout_s) {}

  const PostgresBackendOptions options;
  const RetryPolicy retry;
  Pool pool;
  std::string marker_table;  // schema-qualified: a branch may change search_path
  std::atomic<uint64_t> commits{0};

  std::mutex mu;
  // Backend pids of branches whose COMMIT or PREPARE lost its reply: that
  // session may still finish it, so no answer is final until it is gone.
  std::unordered_map<std::string, int> unsettled;  // guarded by mu

  // Runs a statement on some connection, reconnecting through connection
  // failures as `retry` allows.
  Reply RunWithRetry(const std::string& sql, const std::vector<const char*>& params = {}) {
    Reply reply;
    reply.status = pool.WithRetry(retry, [&](PGconn* conn) {
      reply = Run(conn, sql, params);
      return reply.status;
    });
    return reply;
  }

  // The reset query, and once Open knows the marker table the marker
  // INSERTs, prepared on every new connection: parsed and planned there once.
  std::string OwnStatements() const {
    if (marker_table.empty()) return PrepareResetQuery();
    const std::string insert = "(text) AS INSERT INTO " + marker_table +
                               "(txn_id, participant) SELECT $1, " +
                               QuoteLiteral(options.participant_name);
    return PrepareResetQuery() + "; PREPARE " + kMarkerName + insert + "; PREPARE " +
           kMarkerIfWroteName + insert + " WHERE pg_current_xact_id_if_assigned() IS NOT NULL";
  }

  // The statement that writes the branch's marker; with `if_wrote`, only if
  // the transaction has an xid (wrote something). The prepared one where
  // the session has it (a DEALLOCATE of the caller's may have dropped it).
  std::string MarkerInsert(PGconn* conn, const std::string& txn_id, bool if_wrote) const {
    const PgStatementCache* cache = PgStatementCache::Of(conn);
    if (cache != nullptr && cache->own_prepared && !marker_table.empty()) {
      return std::string("EXECUTE ") + (if_wrote ? kMarkerIfWroteName : kMarkerName) + "(" +
             QuoteLiteral(txn_id) + ")";
    }
    return "INSERT INTO " + marker_table + "(txn_id, participant) SELECT " + QuoteLiteral(txn_id) +
           ", " + QuoteLiteral(options.participant_name) +
           (if_wrote ? " WHERE pg_current_xact_id_if_assigned() IS NOT NULL" : "");
  }

  // Old markers go after every Nth commit, so the table stays bounded
  // without a thread of its own.
  void CountCommit() {
    if (commits.fetch_add(1) % kPruneEveryCommits != kPruneEveryCommits - 1) return;
    Status pruned = Prune();
    LOG_IF(WARNING, !pruned.ok()) << "pruning commit markers: " << pruned.ToString();
  }

  Status Prune() {
    const std::string retention = std::to_string(options.commit_marker_retention_ms);
    return RunWithRetry("DELETE FROM " + marker_table +
                            " WHERE participant = $1 AND committed_at <"
                            " now() - $2::int8 * interval '1 millisecond'",
                        {options.participant_name.c_str(), retention.c_str()})
        .status;
  }

  void NoteUnsettled(const std::string& txn_id, int pid) {
    std::lock_guard<std::mutex> lock(mu);
    unsettled[txn_id] = pid;
  }

  // Makes sure the session that lost a reply for `txn_id` can no longer
  // commit or prepare it: ends it and waits until it is gone.
  Status Settle(const std::string& txn_id) {
    int pid = 0;
    {
      std::lock_guard<std::mutex> lock(mu);
      auto it = unsettled.find(txn_id);
      if (it == unsettled.end()) return Status::Ok();
      pid = it->second;
    }
    const std::string pid_text = std::to_string(pid);
    // Only a session of this database and role: after a server restart the
    // pid may name someone else's.
    const std::string terminate =
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
        " WHERE pid = $1 AND datname = current_database() AND usename = current_user";
    const TimePoint deadline = SteadyClock::now() + Millis(retry.window_ms);
    Reply gone = RunWithRetry(terminate, {pid_text.c_str()});
    while (gone.ok() && FirstValue(gone)) {  // it shows until it has ended its transaction
      if (SteadyClock::now() > deadline) {
        return Status::Unavailable("session " + pid_text + " of branch " + txn_id +
                                   " is still ending");
      }
      std::this_thread::sleep_for(Millis(retry.first_backoff_ms));
      gone = RunWithRetry(terminate, {pid_text.c_str()});
    }
    if (!gone.ok()) return gone.status.WithContext("cannot end the session of branch " + txn_id);
    std::lock_guard<std::mutex> lock(mu);
    unsettled.erase(txn_id);
    return Status::Ok();
  }

  // Whether the branch committed: its marker commits with it and nothing else.
  Result<bool> Committed(const std::string& txn_id) {
    RETURN_NOT_OK(Settle(txn_id));
    Reply reply =
        RunWithRetry("SELECT 1 FROM " + marker_table + " WHERE txn_id = $1 AND participant = $2",
                     {txn_id.c_str(), options.participant_name.c_str()});
    if (!reply.ok()) {
      return reply.status.WithContext("whether branch " + txn_id + " committed is unknown");
    }
    return FirstValue(reply).has_value();
  }
};

class PostgresBackend::PgBranch : public Branch {
 public:
  // An active branch: `conn` is idle, and BEGIN goes with the first
  // statement. A prepared one: `conn` is null.
  PgBranch(std::shared_ptr<Shared> shared, std::string txn_id, PgConnPtr conn)
      : shared_(std::move(shared)),
        txn_id_(std::move(txn_id)),
        gid_(Gid(shared_->options.participant_name, txn_id_)),
        conn_(std::move(conn)),
        pid_(conn_ != nullptr ? PQbackendPID(conn_.get()) : 0),
        state_(conn_ != nullptr ? State::kActive : State::kPrepared, kPgMoves, &PgStateName,
               txn_id_) {}

  ~PgBranch() override {
    // An active branch's connection closes, and PostgreSQL rolls it back.
    if (state_.Is(State::kPrepared)) {
      LOG(WARNING) << "prepared branch " << gid_ << " dropped undecided; it stays prepared in "
                   << "PostgreSQL and RecoverPrepared finds it again";
    }
  }

  Result<QueryResult> Execute(const std::string& sql,
                              const std::vector<SqlValue>& params) override {
    RETURN_NOT_OK(state_.Require(State::kActive, "take more statements"));
    if (!failed_.empty()) {
      return Status::FailedPrecondition(
          "an earlier statement failed; the transaction can only roll back (" + failed_ + ")");
    }
    RETURN_NOT_OK(CheckStatement(sql));
    const std::string text = params.empty() ? sql : ToDollarPlaceholders(sql);
    const BoundParams bound(params);
    ran_user_sql_ = true;
    const std::vector<std::string> verb = LeadingWords(sql, 1);
    if (!verb.empty() && (verb[0] == "DEALLOCATE" || verb[0] == "DISCARD")) {
      // It may drop the cache's statements: new names from now on, and the
      // reset drops whatever is left (ResetChecked).
      if (PgStatementCache* cache = PgStatementCache::Of(conn_.get())) cache->Clear();
    }
    Reply reply = RunStatement(conn_.get(), text, bound, !begun_);
    if (!begun_ && !reply.ok() && Broken(conn_.get())) {
      // An idle connection can have died unnoticed; the server rolled back
      // whatever it ran, so the first statement goes once more on a new one.
      shared_->pool.DropIdle();
      Result<PgConnPtr> fresh = shared_->pool.Take();
      if (fresh.ok()) {
        conn_ = std::move(fresh).value();
        pid_ = PQbackendPID(conn_.get());
        reply = RunStatement(conn_.get(), text, bound, true);
      }
    }
    // BEGIN ran unless the reply says the connection is gone or BEGIN failed:
    // either way the transaction status tells.
    begun_ = begun_ || PQtransactionStatus(conn_.get()) != PQTRANS_IDLE;
    if (!reply.ok()) {
      // PostgreSQL aborts the transaction at any error (or lost it with the
      // connection); only a statement it never ran leaves it usable.
      if (PQtransactionStatus(conn_.get()) != PQTRANS_INTRANS) failed_ = reply.status.message();
      return reply.status;
    }
    PGresult* res = reply.res.get();
    QueryResult result;
    const int columns = PQnfields(res);
    const int rows = PQntuples(res);
    for (int c = 0; c < columns; ++c) result.columns.emplace_back(PQfname(res, c));
    result.rows.reserve(rows);
    for (int r = 0; r < rows; ++r) {
      std::vector<SqlValue>& row = result.rows.emplace_back();
      row.reserve(columns);
      for (int c = 0; c < columns; ++c) row.push_back(ColumnValue(res, r, c));
    }
    // PQcmdTuples also counts the rows a SELECT returned; only changes count.
    const std::vector<std::string> command = LeadingWords(PQcmdStatus(res), 1);
    if (!command.empty() && (command[0] == "INSERT" || command[0] == "UPDATE" ||
                             command[0] == "DELETE" || command[0] == "MERGE")) {
      result.affected_rows = std::strtoll(PQcmdTuples(res), nullptr, 10);
      if (result.affected_rows > 0) wrote_ = true;
    }
    return result;
  }

  Result<Vote> Prepare(std::string* abort_reason) override {
    RETURN_NOT_OK(state_.Require(State::kActive, "prepare"));
    auto vote_abort = [&](const std::string& reason) -> Result<Vote> {
      *abort_reason = reason;
      RETURN_NOT_OK(RollbackActive());
      return Vote::kAbort;
    };
    if (!failed_.empty()) return vote_abort(failed_);
    if (!begun_) {  // no statement ran: there is not even a transaction
      RETURN_NOT_OK(Release(State::kCommitted, false));
      return Vote::kReadOnly;
    }
    if (!wrote_) {
      // Whether some statement wrote after all (a function called by a
      // SELECT, say): only the server can tell, one round trip.
      Reply xid = Run(conn_.get(), "SELECT pg_current_xact_id_if_assigned()");
      if (!xid.ok()) return vote_abort(xid.status.message());
      wrote_ = FirstValue(xid).has_value();
    }
    if (!wrote_) {
      // No xid: the branch never wrote, so there is nothing to hold.
      bool reset = false;
      std::vector<Reply> commit = RunThenReset(conn_.get(), "COMMIT", 1, &reset);
      if (!commit.front().ok()) return vote_abort(commit.front().status.message());
      RETURN_NOT_OK(Release(State::kCommitted, !reset));
      return Vote::kReadOnly;
    }
    // The marker is part of the prepared transaction, so it commits exactly
    // when COMMIT PREPARED does; one round trip for both, and for the reset
    // of the session, which PREPARE TRANSACTION has left free.
    bool reset = false;
    std::vector<Reply> replies = RunThenReset(
        conn_.get(),
        shared_->MarkerInsert(conn_.get(), txn_id_, false) + "; PREPARE TRANSACTION " +
            QuoteLiteral(gid_),
        2, &reset);
    // PREPARE's own reply decides; without one, the error that stopped it.
    Reply prepare;
    prepare.status = replies.size() >= 2 ? replies[1].status : FirstError(replies);
    if (replies.size() < 2 && prepare.status.ok()) {
      prepare.status = Status::Unavailable("no reply to PREPARE TRANSACTION");
    }
    if (prepare.status.code() == StatusCode::kUnavailable) {
      // The reply was lost: the branch may be prepared or rolled back. Held
      // as prepared, so the Rollback that follows an error takes it back.
      LoseConnection();
      RETURN_NOT_OK(state_.MoveTo(State::kPrepared));
      return prepare.status.WithContext("branch " + txn_id_ + " may be prepared");
    }
    if (!prepare.ok()) return vote_abort(prepare.status.message());  // PostgreSQL rolled it back
    RETURN_NOT_OK(Release(State::kPrepared, !reset));
    return Vote::kCommit;
  }

  Status CommitOnePhase() override {
    if (state_.Is(State::kCommitted)) return Status::Ok();
    RETURN_NOT_OK(state_.Require(State::kActive, "commit in one phase"));
    if (!failed_.empty()) {
      RETURN_NOT_OK(RollbackActive());
      return Status::Aborted("an earlier statement failed, so the branch rolled back: " + failed_);
    }
    if (!begun_) {  // no statement ran: nothing to commit
      RETURN_NOT_OK(Release(State::kCommitted, false));
      return Status::Ok();
    }
    // The marker commits with the changes, in the same round trip (and the
    // reset of the session); a branch that wrote nothing gets none and stays
    // read-only.
    bool reset = false;
    std::vector<Reply> replies =
        RunThenReset(conn_.get(),
                     shared_->MarkerInsert(conn_.get(), txn_id_, true) + "; COMMIT",
                     2, &reset);
    Reply commit;
    commit.status = replies.size() >= 2 ? replies[1].status : FirstError(replies);
    if (replies.size() < 2 && commit.status.ok()) {
      commit.status = Status::Unavailable("no reply to COMMIT");
    }
    if (commit.status.code() != StatusCode::kUnavailable) {
      // COMMIT on an aborted transaction "succeeds" as ROLLBACK.
      const bool committed =
          commit.ok() && std::strcmp(PQcmdStatus(replies[1].res.get()), "COMMIT") == 0;
      if (!committed) {
        if (reset) FinishReset(conn_.get());  // the reset ran after the ROLLBACK; checked again
        RETURN_NOT_OK(RollbackActive());  // an error in the INSERT leaves the transaction open
        return Status::Aborted("COMMIT of branch " + txn_id_ + " rolled back" +
                               (commit.ok() ? "" : ": " + commit.status.message()));
      }
      RETURN_NOT_OK(Release(State::kCommitted, !reset));
      shared_->CountCommit();
      return Status::Ok();
    }
    // The COMMIT's reply was lost: the marker tells, once the session is gone.
    LoseConnection();
    Result<bool> committed = shared_->Committed(txn_id_);
    if (!committed.ok()) {
      RETURN_NOT_OK(state_.MoveTo(State::kUnknown));
      return Status::Unavailable(
          "COMMIT of branch " + txn_id_ +
          " lost its reply; outcome unknown: " + committed.status().message());
    }
    RETURN_NOT_OK(state_.MoveTo(*committed ? State::kCommitted : State::kRolledBack));
    if (*committed) return Status::Ok();
    return Status::Aborted("COMMIT of branch " + txn_id_ + " lost its reply and rolled back");
  }

  Status CommitPrepared() override {
    if (state_.Is(State::kCommitted)) return Status::Ok();
    RETURN_NOT_OK(state_.Require(State::kPrepared, "commit as prepared"));
    Reply reply = shared_->RunWithRetry("COMMIT PREPARED " + QuoteLiteral(gid_));
    if (reply.sqlstate == "42704") {
      // XA's NOTA after a commit: an earlier attempt committed and its reply
      // was lost, or someone committed it by hand. Rolling back a prepared
      // branch is only ever Pact's decision, so this is taken as done.
      LOG(WARNING) << "prepared transaction " << gid_ << " is gone; taking it as committed";
    } else if (!reply.ok()) {
      return reply.status.WithContext("branch " + txn_id_ + " stays prepared");
    }
    RETURN_NOT_OK(state_.MoveTo(State::kCommitted));
    shared_->CountCommit();
    return Status::Ok();
  }

  Status Rollback() override {
    switch (state_.state()) {
      case State::kRolledBack:
        return Status::Ok();
      case State::kCommitted:
        return Status::FailedPrecondition("branch " + txn_id_ + " already committed");
      case State::kUnknown:
        return Status::FailedPrecondition("branch " + txn_id_ +
                                          " sent COMMIT and its outcome is unknown");
      case State::kActive:
        return RollbackActive();
      case State::kPrepared:
        break;
    }
    // "No such gid" is only final once no session can still be preparing it.
    Status settled = shared_->Settle(txn_id_);
    if (!settled.ok()) return settled.WithContext("branch " + txn_id_ + " may stay prepared");
    Reply reply = shared_->RunWithRetry("ROLLBACK PREPARED " + QuoteLiteral(gid_));
    if (!reply.ok() && reply.sqlstate != "42704") {  // 42704: already gone
      return reply.status.WithContext("branch " + txn_id_ + " stays prepared");
    }
    return state_.MoveTo(State::kRolledBack);
  }

 private:
  using State = PgState;

  // Ends the branch's hold on its connection, which goes back to the pool if
  // it is still usable, reset first unless `reset` is false (done already, or
  // nothing ran).
  Status Release(State final_state, bool reset = true) {
    shared_->pool.Give(std::move(conn_), reset && ran_user_sql_);
    return state_.MoveTo(final_state);
  }

  // After a lost reply: the session may still be working on it, and is
  // settled before any answer about the branch counts.
  void LoseConnection() {
    conn_.reset();
    shared_->pool.DropIdle();
    shared_->NoteUnsettled(txn_id_, pid_);
  }

  // A broken connection needs no ROLLBACK: the server rolled it back.
  Status RollbackActive() {
    if (!Broken(conn_.get()) && PQtransactionStatus(conn_.get()) != PQTRANS_IDLE) {
      Reply reply = Run(conn_.get(), "ROLLBACK");
      LOG_IF(WARNING, !reply.ok()) << txn_id_ << ": " << reply.status.ToString();
    }
    return Release(State::kRolledBack);
  }

  const std::shared_ptr<Shared> shared_;
  const std::string txn_id_;
  const std::string gid_;
  PgConnPtr conn_;
  int pid_;  // the server process of conn_, 0 for a recovered branch
  BranchStateMachine<State> state_;
  std::string failed_;         // the first statement error: only rollback is left
  bool ran_user_sql_ = false;  // the session may carry the caller's settings
  bool begun_ = false;         // BEGIN was sent, with the first statement
  bool wrote_ = false;         // a statement changed rows: the branch has an xid
};

PostgresBackend::PostgresBackend(std::shared_ptr<Shared> shared) : shared_(std::move(shared)) {}

PostgresBackend::~PostgresBackend() = default;

std::string PostgresBackend::Gid(const std::string& participant_name, const std::string& txn_id) {
  return "pact:" + participant_name + ":" + txn_id;
}

Result<std::unique_ptr<PostgresBackend>> PostgresBackend::Open(
    const PostgresBackendOptions& options) {
  if (!IsValidName(options.participant_name)) {
    return Status::InvalidArgument("participant name '" + options.participant_name +
                                   "' is not [A-Za-z0-9_-]{1,64}");
  }
  auto shared = std::make_shared<Shared>(options);
  ASSIGN_OR_RETURN(PgConnPtr conn, shared->pool.Take());
  const int version = PQserverVersion(conn.get());
  if (version < 130000) {  // pg_current_xact_id_if_assigned, pg_xact_status(xid8)
    return Status::FailedPrecondition("PostgreSQL " + std::to_string(version / 10000) +
                                      " is too old; Pact needs 13 or later");
  }
  Reply reply = Run(conn.get(), "SHOW max_prepared_transactions");
  if (!reply.ok()) return reply.status;
  if (FirstValue(reply).value_or("0") == "0") {
    return Status::FailedPrecondition(
        "max_prepared_transactions is 0 on this server; set it to at least the number of "
        "concurrent transactions (e.g. 100) and restart PostgreSQL");
  }
  Reply schema = Run(conn.get(), "SELECT quote_ident(current_schema())");
  if (!schema.ok()) return schema.status;
  if (!FirstValue(schema)) {
    return Status::FailedPrecondition("no schema on the search_path for " +
                                      std::string(kMarkerTable));
  }
  shared->marker_table = *FirstValue(schema) + "." + kMarkerTable;
  // Two participants opening one database at once may both create it.
  Reply created = Run(conn.get(), "CREATE TABLE IF NOT EXISTS " + shared->marker_table +
                                      "(txn_id text NOT NULL, participant text NOT NULL,"
                                      " committed_at timestamptz NOT NULL DEFAULT now(),"
                                      " PRIMARY KEY(txn_id, participant))");
  if (!created.ok() && created.sqlstate != "23505" && created.sqlstate != "42P07") {
    return created.status.WithContext("cannot create the commit marker table");
  }
  // This first session was opened before the marker table was known, so it
  // lacks the prepared marker INSERTs: the next ones have them.
  conn.reset();
  RETURN_NOT_OK(shared->Prune());
  return std::unique_ptr<PostgresBackend>(new PostgresBackend(std::move(shared)));
}

Result<std::unique_ptr<Branch>> PostgresBackend::Begin(const std::string& txn_id) {
  // Parsing also keeps the gid free of characters that would need quoting.
  RETURN_NOT_OK(TxnId::Parse(txn_id).status());
  const std::string gid = Gid(shared_->options.participant_name, txn_id);
  if (gid.size() > kMaxGidBytes) {
    return Status::InvalidArgument("gid " + gid + " is longer than PostgreSQL's 199 bytes");
  }
  // BEGIN goes with the first statement, in its round trip.
  ASSIGN_OR_RETURN(PgConnPtr conn, shared_->pool.Take());
  return std::unique_ptr<Branch>(new PgBranch(shared_, txn_id, std::move(conn)));
}

Result<std::vector<RecoveredBranch>> PostgresBackend::RecoverPrepared() {
  return PreparedBranches({});
}

Result<std::vector<RecoveredBranch>> PostgresBackend::FindOrphans(
    const std::set<std::string>& held) {
  return PreparedBranches(held);
}

Result<std::vector<RecoveredBranch>> PostgresBackend::PreparedBranches(
    const std::set<std::string>& skip) {
  const std::string prefix = Gid(shared_->options.participant_name, "");
  // starts_with rather than LIKE: '_' in a participant name is a wildcard.
  Reply reply = shared_->RunWithRetry(
      "SELECT gid, (extract(epoch FROM prepared) * 1000)::int8 FROM pg_prepared_xacts"
      " WHERE database = current_database() AND starts_with(gid, $1) ORDER BY prepared",
      {prefix.c_str()});
  if (!reply.ok()) return reply.status;
  std::vector<RecoveredBranch> found;
  for (int r = 0; r < PQntuples(reply.res.get()); ++r) {
    const std::string gid = PQgetvalue(reply.res.get(), r, 0);
    RecoveredBranch branch;
    branch.txn_id = gid.substr(prefix.size());
    if (skip.count(branch.txn_id) > 0) continue;
    branch.prepared_at_ms = std::strtoll(PQgetvalue(reply.res.get(), r, 1), nullptr, 10);
    branch.branch.reset(new PgBranch(shared_, branch.txn_id, nullptr));
    LOG(INFO) << "found prepared transaction " << gid;
    found.push_back(std::move(branch));
  }
  return found;
}

Result<bool> PostgresBackend::IsCommitted(const std::string& txn_id) {
  return shared_->Committed(txn_id);
}

}  // namespace pact
