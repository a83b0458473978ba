// The cluster library's process spawner: what a child gets (its arguments,
// the environment on top of ours, a log, nothing of our descriptors), how it
// ends, and that starting children from many threads while others allocate
// never hangs a child between fork and exec.
#include "cluster/process.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <fstream>
#include <memory>
#include <sstream>
#include <thread>
#include <vector>

#include "cluster/temp_dir.h"

namespace pact {
namespace {

std::string Slurp(const std::string& path) {
  std::ifstream in(path);
  std::stringstream out;
  out << in.rdbuf();
  return out.str();
}

TEST(ProcessTest, ChildGetsItsArgumentsAndEnvironmentAndWritesItsLog) {
  TempDir dir;
  Process child({"/bin/sh", "-c", "echo \"$1 $PACT_PROCESS_TEST\"; echo oops >&2; exit 7", "sh",
                 "hello"},
                {{"PACT_PROCESS_TEST", "from-the-parent"}}, dir.File("child.log"));
  ASSERT_TRUE(child.Start().ok());
  EXPECT_EQ(child.WaitForExit(5000), 7);
  EXPECT_EQ(Slurp(dir.File("child.log")), "hello from-the-parent\noops\n");
}

TEST(ProcessTest, ChildInheritsNoDescriptorOfTheParent) {
  TempDir dir;
  int leaked = open(dir.File("held").c_str(), O_WRONLY | O_CREAT, 0644);  // no O_CLOEXEC
  ASSERT_GE(leaked, 3);
  // The shell lists what its own descriptors point to.
  Process child(
      {"/bin/sh", "-c", "for fd in /proc/$$/fd/*; do readlink \"$fd\"; done; true"}, {},
      dir.File("fds.log"));
  ASSERT_TRUE(child.Start().ok());
  EXPECT_EQ(child.WaitForExit(5000), 0);
  close(leaked);
  const std::string targets = Slurp(dir.File("fds.log"));
  EXPECT_NE(targets.find("fds.log"), std::string::npos) << targets;  // its stdout, as a check
  EXPECT_EQ(targets.find(dir.File("held")), std::string::npos) << targets;
}

TEST(ProcessTest, StopKillsAChildThatIgnoresTerm) {
  TempDir dir;
  Process child({"/bin/sh", "-c", "trap '' TERM; echo ready; while :; do sleep 0.05; done"}, {},
                dir.File("stubborn.log"));
  ASSERT_TRUE(child.Start().ok());
  for (int i = 0; i < 200 && Slurp(dir.File("stubborn.log")).empty(); ++i) usleep(10000);
  EXPECT_EQ(child.Stop(/*grace_ms=*/200), 128 + SIGKILL);
  EXPECT_FALSE(child.running());
}

TEST(ProcessTest, UnknownProgramExitsWith127AndAMissingLogDirectoryIsAnError) {
  TempDir dir;
  Process missing({"/nonexistent/program"}, {}, dir.File("missing.log"));
  ASSERT_TRUE(missing.Start().ok());
  EXPECT_EQ(missing.WaitForExit(5000), 127);
  Process nowhere({"/bin/true"}, {}, dir.File("no/such/dir/x.log"));
  EXPECT_EQ(nowhere.Start().code(), StatusCode::kIoError);
}

// A child forked while another thread held the allocator's lock would
// deadlock in malloc or setenv before exec; every child must get to exec.
TEST(ProcessTest, ManyThreadsStartChildrenWhileOthersAllocate) {
  TempDir dir;
  std::atomic<bool> stop{false};
  std::vector<std::thread> churn;
  for (int t = 0; t < 2; ++t) {
    churn.emplace_back([&] {
      while (!stop) {
        std::vector<std::unique_ptr<std::string>> garbage;
        for (int i = 0; i < 100; ++i) garbage.push_back(std::make_unique<std::string>(64, 'x'));
      }
    });
  }
  std::atomic<int> exited{0};
  std::vector<std::thread> starters;
  for (int t = 0; t < 4; ++t) {
    starters.emplace_back([&, t] {
      for (int i = 0; i < 25; ++i) {
        Process child({"/bin/true"}, {{"PACT_N", std::to_string(i)}},
                      dir.File("t" + std::to_string(t) + ".log"));
        if (child.Start().ok() && child.WaitForExit(10000) == 0) ++exited;
      }
    });
  }
  for (auto& s : starters) s.join();
  stop = true;
  for (auto& c : churn) c.join();
  EXPECT_EQ(exited.load(), 100);
}

}  // namespace
}  // namespace pact
