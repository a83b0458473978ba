// A scripted Participants for coordinator tests: each participant answers
// every verb as the test says, and every call is recorded.
#pragma once

#include <chrono>
#include <condition_variable>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "coordinator/participants.h"

namespace pact {

class FakeParticipants : public Participants {
 public:
  struct Call {
    std::string verb;  // "prepare", "commit", "commit1pc", "rollback", "recover"
    std::string participant;
    std::string txn_id;
  };

  // --- scripting
  void SetVote(const std::string& p, Result<Vote> vote) {
    std::lock_guard<std::mutex> lock(mu_);
    script_[p].vote = std::move(vote);
  }
  // Prepare takes this long; past the caller's timeout it fails UNAVAILABLE.
  void SetPrepareDelay(const std::string& p, int ms) {
    std::lock_guard<std::mutex> lock(mu_);
    script_[p].prepare_delay_ms = ms;
  }
  // The next `times` commits fail with `error`, then they succeed.
  void FailCommits(const std::string& p, int times,
                   Status error = Status::Unavailable("connection refused")) {
    std::lock_guard<std::mutex> lock(mu_);
    script_[p].commit_failures = times;
    script_[p].commit_error = std::move(error);
  }
  // Two-phase commits at `p` wait until ReleaseCommits (a participant that
  // is slow to finish phase two).
  // The next commits to p answer these, in order (before FailCommits' errors).
  void AnswerCommits(const std::string& p, std::vector<Status> answers) {
    std::lock_guard<std::mutex> lock(mu_);
    script_[p].commit_answers = std::move(answers);
  }
  void HoldCommits(const std::string& p) {
    std::lock_guard<std::mutex> lock(mu_);
    script_[p].commits_held = true;
  }
  void ReleaseCommits(const std::string& p) {
    std::lock_guard<std::mutex> lock(mu_);
    script_[p].commits_held = false;
    released_.notify_all();
  }
  void FailRollbacks(const std::string& p, Status error) {
    std::lock_guard<std::mutex> lock(mu_);
    script_[p].rollback_error = std::move(error);
  }
  void SetPrepared(const std::string& p, std::vector<std::string> txn_ids) {
    std::lock_guard<std::mutex> lock(mu_);
    script_[p].prepared = std::move(txn_ids);
  }

  // --- inspection
  std::vector<Call> calls() {
    std::lock_guard<std::mutex> lock(mu_);
    return calls_;
  }
  int Count(const std::string& verb, const std::string& p) {
    std::lock_guard<std::mutex> lock(mu_);
    int n = 0;
    for (const auto& c : calls_) n += (c.verb == verb && c.participant == p);
    return n;
  }
  Fence fence() {
    std::lock_guard<std::mutex> lock(mu_);
    return fence_;
  }

  // --- Participants
  void SetFence(const Fence& fence) override {
    std::lock_guard<std::mutex> lock(mu_);
    fence_ = fence;
  }
  void SetEndpoint(const std::string&, const std::string&, int) override {}

  Result<Vote> Prepare(const std::string& p, const std::string& txn_id, const std::string&,
                       int timeout_ms) override {
    int delay;
    {
      std::lock_guard<std::mutex> lock(mu_);
      calls_.push_back({"prepare", p, txn_id});
      delay = script_[p].prepare_delay_ms;
    }
    if (delay > timeout_ms) {
      std::this_thread::sleep_for(std::chrono::milliseconds(timeout_ms));
      return Status::Unavailable("timed out after " + std::to_string(timeout_ms) + " ms");
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(delay));
    std::lock_guard<std::mutex> lock(mu_);
    return script_[p].vote;
  }

  Status Commit(const std::string& p, const std::string& txn_id, bool one_phase) override {
    std::unique_lock<std::mutex> lock(mu_);
    calls_.push_back({one_phase ? "commit1pc" : "commit", p, txn_id});
    Script& s = script_[p];
    released_.wait(lock, [&] { return one_phase || !s.commits_held; });
    if (!s.commit_answers.empty()) {
      Status answer = s.commit_answers.front();
      s.commit_answers.erase(s.commit_answers.begin());
      return answer;
    }
    if (s.commit_failures > 0) {
      s.commit_failures--;
      return s.commit_error;
    }
    return Status::Ok();
  }

  Status Rollback(const std::string& p, const std::string& txn_id) override {
    std::lock_guard<std::mutex> lock(mu_);
    calls_.push_back({"rollback", p, txn_id});
    return script_[p].rollback_error;
  }

  Status ForgetHeuristic(const std::string& p, const std::string& txn_id) override {
    std::lock_guard<std::mutex> lock(mu_);
    calls_.push_back({"forget", p, txn_id});
    return Status::Ok();
  }

  Result<std::vector<PreparedBranch>> ListBranches(const std::string& p) override {
    std::lock_guard<std::mutex> lock(mu_);
    std::vector<PreparedBranch> out;
    for (const auto& id : script_[p].prepared) out.push_back({id, 1000});
    return out;
  }

  Result<std::vector<PreparedBranch>> Recover(const std::string& p) override {
    std::lock_guard<std::mutex> lock(mu_);
    calls_.push_back({"recover", p, ""});
    std::vector<PreparedBranch> out;
    for (const auto& id : script_[p].prepared) out.push_back({id, 1000});
    return out;
  }

 private:
  struct Script {
    Result<Vote> vote = Vote::kCommit;
    int prepare_delay_ms = 0;
    int commit_failures = 0;
    bool commits_held = false;
    Status commit_error;
    std::vector<Status> commit_answers;
    Status rollback_error;
    std::vector<std::string> prepared;
  };
  std::mutex mu_;
  std::condition_variable released_;
  std::map<std::string, Script> script_;
  std::vector<Call> calls_;
  Fence fence_;
};

}  // namespace pact
