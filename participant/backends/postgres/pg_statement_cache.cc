#include "participant/backends/postgres/pg_statement_cache.h"

#include <libpq-events.h>

namespace pact {
namespace {

// Owns the cache of each connection: frees it with the connection, empties
// it when PQreset opens a new session.
int CacheEvents(PGEventId event, void* info, void*) {
  switch (event) {
    case PGEVT_REGISTER: {
      auto* e = static_cast<PGEventRegister*>(info);
      return PQsetInstanceData(e->conn, &CacheEvents, new PgStatementCache());
    }
    case PGEVT_CONNRESET: {
      auto* e = static_cast<PGEventConnReset*>(info);
      delete static_cast<PgStatementCache*>(PQinstanceData(e->conn, &CacheEvents));
      return PQsetInstanceData(e->conn, &CacheEvents, new PgStatementCache());
    }
    case PGEVT_CONNDESTROY: {
      auto* e = static_cast<PGEventConnDestroy*>(info);
      delete static_cast<PgStatementCache*>(PQinstanceData(e->conn, &CacheEvents));
      return 1;
    }
    default:
      return 1;
  }
}

}  // namespace

bool PgStatementCache::Attach(PGconn* conn) {
  return PQregisterEventProc(conn, &CacheEvents, "pact statement cache", nullptr) == 1;
}

PgStatementCache* PgStatementCache::Of(PGconn* conn) {
  return static_cast<PgStatementCache*>(PQinstanceData(conn, &CacheEvents));
}

const std::string* PgStatementCache::Find(const std::string& key) {
  auto it = by_key_.find(key);
  if (it == by_key_.end()) return nullptr;
  lru_.splice(lru_.begin(), lru_, it->second);
  return &it->second->second;
}

void PgStatementCache::Insert(const std::string& key, std::string name) {
  auto it = by_key_.find(key);
  if (it != by_key_.end()) {  // prepared twice: keep the newer name
    Retire(std::move(it->second->second));
    lru_.erase(it->second);
    by_key_.erase(it);
  }
  lru_.emplace_front(key, std::move(name));
  by_key_[key] = lru_.begin();
  if (lru_.size() > kCapacity) {
    Retire(std::move(lru_.back().second));
    by_key_.erase(lru_.back().first);
    lru_.pop_back();
  }
}

std::string PgStatementCache::TakeDeallocations() {
  std::string sql;
  for (const std::string& name : retired_) sql += "DEALLOCATE " + name + "; ";
  retired_.clear();
  return sql;
}

void PgStatementCache::NoteReturnsRows(const std::string& key) {
  if (returns_rows_.size() >= kCapacity) returns_rows_.clear();
  returns_rows_.insert(key);
}

void PgStatementCache::Clear() {
  own_prepared = false;
  lru_.clear();
  by_key_.clear();
  retired_.clear();
}

}  // namespace pact
