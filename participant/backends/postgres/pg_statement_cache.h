// The named prepared statements of one libpq session, so that a statement
// the backend runs again is parsed by the server once per connection instead
// of at every branch. The cache lives in the connection's libpq instance
// data: it dies with the PGconn and empties when PQreset replaces the
// session, so a name is only ever executed on the session that prepared it.
// Names are never reused on a session, so forgetting the cache (after the
// session's statements may have been dropped) never collides with a name the
// server still holds.
#pragma once

#include <libpq-fe.h>

#include <cstddef>
#include <cstdint>
#include <list>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

namespace pact {

class PgStatementCache {
 public:
  static constexpr size_t kCapacity = 64;

  // Attaches an empty cache to a new connection; false if libpq refused.
  static bool Attach(PGconn* conn);
  // The cache of `conn`, or nullptr when none is attached.
  static PgStatementCache* Of(PGconn* conn);

  // The name `key` is prepared under, or nullptr; a hit makes it the most
  // recently used.
  const std::string* Find(const std::string& key);
  // A name this session has never used.
  std::string NewName() { return "pact_s" + std::to_string(++named_); }
  // Records `key` as prepared under `name`. Beyond kCapacity the least
  // recently used entry is retired.
  void Insert(const std::string& key, std::string name);
  // `name` is held by the server but no longer used: deallocated at the next
  // reset of the session.
  void Retire(std::string name) { retired_.push_back(std::move(name)); }
  // The DEALLOCATE statements for the retired names ("" if none), which are
  // then forgotten: the caller runs them or drops the connection.
  std::string TakeDeallocations();

  // Statements whose results have columns are not cached: a schema change
  // could change their result type, which fails a prepared statement
  // ("cached plan must not change result type") but not a fresh one.
  bool ReturnsRows(const std::string& key) const { return returns_rows_.count(key) > 0; }
  void NoteReturnsRows(const std::string& key);

  // The statements the server holds for the cache.
  size_t size() const { return by_key_.size(); }
  // After the session's statements were dropped (DEALLOCATE ALL).
  void Clear();

  // The adapter's own statements, prepared from SQL when the session opened
  // and again after a DEALLOCATE ALL: the script that prepares them, and
  // whether they are there (Clear forgets it too).
  std::string own_statements;
  bool own_prepared = false;

  // The session's reset was sent after the statements that ended a branch,
  // and its replies are still to be read (postgres_backend.cc, FinishReset).
  bool reset_in_flight = false;

 private:
  using Entry = std::pair<std::string, std::string>;  // key, name; most recent first
  std::list<Entry> lru_;
  std::unordered_map<std::string, std::list<Entry>::iterator> by_key_;
  std::unordered_set<std::string> returns_rows_;  // bounded by kCapacity too
  std::vector<std::string> retired_;
  uint64_t named_ = 0;
};

}  // namespace pact
