// A fresh directory under /tmp for one test, removed with everything in it.
#pragma once

#include <sys/stat.h>

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
  // A subdirectory for a database server, which runs as another user
  // (postgres, mysql): this directory is made traversable for it first.
  // Failures show when the server cannot start there.
  std::string ServerDir(const std::string& name) const {
    chmod(path_.c_str(), 0755);
    mkdir(File(name).c_str(), 0755);
    return File(name);
  }

 private:
  std::string path_;
};

}  // namespace pact
