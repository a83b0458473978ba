// A fresh directory under /tmp for one test, removed with everything in it.
#pragma once

#include <cstdlib>
#include <filesystem>
#include <string>

namespace pact {

class TempDir {
 public:
  TempDir() {
    char tmpl[] = "/tmp/pact-test-XXXXXX";
    path_ = mkdtemp(tmpl);
  }
  // PACT_KEEP_TEST_FILES=1 keeps them, to read a failed test's logs.
  ~TempDir() {
    if (std::getenv("PACT_KEEP_TEST_FILES") != nullptr) return;
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
  }
  const std::string& path() const { return path_; }
  std::string File(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

}  // namespace pact
