// The highest epoch seen per coordinator name, kept durably so that a
// replaced coordinator stays fenced off even after this process restarts.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "common/status.h"

struct sqlite3;

namespace pact {

class FenceStore {
 public:
  static Result<std::unique_ptr<FenceStore>> Open(const std::string& path);
  ~FenceStore();

  // OK when `epoch` is at least the highest seen for `coordinator`; a higher
  // one is made durable first. kFenced when it is lower.
  Status Admit(const std::string& coordinator, int64_t epoch);

 private:
  explicit FenceStore(sqlite3* db) : db_(db) {}

  std::mutex mu_;
  sqlite3* db_;                             // guarded by mu_
  std::map<std::string, int64_t> highest_;  // guarded by mu_
};

}  // namespace pact
