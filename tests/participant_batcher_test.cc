// The coordinator's per-participant batcher against a scripted transport:
// a lone call goes at once, calls queue behind a batch in flight and go
// together next, every caller gets its own item's answer, a lost batch
// reply leaves every item unknown, and a long queue is split. One
// transaction's calls to several participants go out together and its
// caller hears every answer, or none once it gave up.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <future>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "cluster/wait_until.h"
#include "coordinator/participant_batcher.h"
#include "tests/call_gate.h"

namespace pact {
namespace {

using namespace std::chrono_literals;

// Answers each item as scripted (COMMIT / OK by default) and records every
// batch. While held, a batch waits in the transport, like an RPC in flight.
class ScriptedTransport : public BatchTransport {
 public:
  struct Sent {
    std::string verb;  // "prepare", "commit", "rollback"
    std::string participant;
    std::vector<std::string> txn_ids;
    int timeout_ms = 0;
    std::vector<std::string> openings;  // prepare: each branch's opening
  };

  void Hold() { gate_.Close(); }
  void Release() { gate_.Open(); }
  // Batches (in flight or done) so far.
  size_t batches() {
    std::lock_guard<std::mutex> lock(mu_);
    return sent_.size();
  }
  std::vector<Sent> sent() {
    std::lock_guard<std::mutex> lock(mu_);
    return sent_;
  }
  // The openings each prepare batch carried, in order.
  std::vector<std::vector<std::string>> openings_sent() {
    std::lock_guard<std::mutex> lock(mu_);
    return openings_sent_;
  }
  // The answer to the prepare of txn_id, or to its commit and rollback.
  void ScriptVote(const std::string& txn_id, Result<Vote> vote) { votes_.emplace(txn_id, vote); }
  void ScriptAnswer(const std::string& txn_id, Status status) {
    statuses_.emplace(txn_id, status);
  }
  // Every batch fails whole (a lost reply), or answers one item too few.
  void LoseReplies() { lose_ = true; }
  void AnswerOneTooFew() { one_too_few_ = true; }

  Result<std::vector<Result<Vote>>> PrepareBatch(const std::string& participant,
                                                 const std::vector<PrepareRequest>& items,
                                                 int timeout_ms) override {
    std::vector<std::string> ids, openings;
    for (const auto& item : items) {
      ids.push_back(item.txn_id);
      openings.push_back(item.branch);
    }
    {
      std::lock_guard<std::mutex> lock(mu_);
      openings_sent_.push_back(openings);
    }
    RETURN_NOT_OK(Arrive("prepare", participant, ids, timeout_ms));
    std::vector<Result<Vote>> out;
    for (const auto& id : ids) {
      auto it = votes_.find(id);
      out.push_back(it == votes_.end() ? Result<Vote>(Vote::kCommit) : it->second);
    }
    if (one_too_few_) out.pop_back();
    return out;
  }
  Result<std::vector<Status>> CommitBatch(const std::string& participant,
                                          const std::vector<std::string>& txn_ids) override {
    return Statuses("commit", participant, txn_ids);
  }
  Result<std::vector<Status>> RollbackBatch(const std::string& participant,
                                            const std::vector<std::string>& txn_ids) override {
    return Statuses("rollback", participant, txn_ids);
  }

 private:
  Status Arrive(const char* verb, const std::string& participant,
                const std::vector<std::string>& txn_ids, int timeout_ms) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      sent_.push_back({verb, participant, txn_ids, timeout_ms});
    }
    gate_.Pass();
    if (lose_) return Status::Unavailable("transport: connection reset");
    return Status::Ok();
  }
  Result<std::vector<Status>> Statuses(const char* verb, const std::string& participant,
                                       const std::vector<std::string>& txn_ids) {
    RETURN_NOT_OK(Arrive(verb, participant, txn_ids, 0));
    std::vector<Status> out;
    for (const auto& id : txn_ids) {
      auto it = statuses_.find(id);
      out.push_back(it == statuses_.end() ? Status::Ok() : it->second);
    }
    if (one_too_few_) out.pop_back();
    return out;
  }

  CallGate gate_;
  std::mutex mu_;
  std::vector<Sent> sent_;     // guarded by mu_
  std::vector<std::vector<std::string>> openings_sent_;  // guarded by mu_
  std::map<std::string, Result<Vote>> votes_;  // scripted before the calls
  std::map<std::string, Status> statuses_;     // scripted before the calls
  bool lose_ = false;
  bool one_too_few_ = false;
};

// Starts `calls` prepares of txn ids "<prefix>0".. on threads.
std::vector<std::future<Result<Vote>>> PrepareAsync(ParticipantBatcher* batcher,
                                                    const std::string& prefix, int calls,
                                                    int timeout_ms = 5000) {
  std::vector<std::future<Result<Vote>>> out;
  for (int i = 0; i < calls; ++i) {
    out.push_back(std::async(std::launch::async, [=] {
      return batcher->Prepare("p1", prefix + std::to_string(i), "run1.1", timeout_ms);
    }));
  }
  return out;
}

// A first prepare ("first") in flight and held, and `queued` more queued
// behind it.
struct InFlight {
  std::future<Result<Vote>> first;
  std::vector<std::future<Result<Vote>>> queued;
};
InFlight HoldOneAndQueue(ScriptedTransport* transport, ParticipantBatcher* batcher,
                         int queued, int timeout_ms = 5000) {
  transport->Hold();
  InFlight out;
  out.first = std::async(std::launch::async, [=] { return batcher->Prepare("p1", "first", "run1.1", 5000); });
  EXPECT_TRUE(PollUntil([&] { return transport->batches() == 1; }, 5000, 1));
  out.queued = PrepareAsync(batcher, "t", queued, timeout_ms);
  EXPECT_TRUE(PollUntil([&] { return batcher->waiting() == queued; }, 5000, 1));
  return out;
}

void ExpectEveryCallUnavailable(InFlight* calls) {
  EXPECT_EQ(calls->first.get().status().code(), StatusCode::kUnavailable);
  for (auto& call : calls->queued) {
    EXPECT_EQ(call.get().status().code(), StatusCode::kUnavailable);
  }
}

TEST(ParticipantBatcherTest, LoneCallGoesAtOnceAsABatchOfOne) {
  ScriptedTransport transport;
  ParticipantBatcher batcher(&transport, 64);
  auto vote = batcher.Prepare("p1", "t0", "run1.7", 1234);
  ASSERT_TRUE(vote.ok()) << vote.status().ToString();
  EXPECT_EQ(*vote, Vote::kCommit);
  EXPECT_EQ(transport.openings_sent(), (std::vector<std::vector<std::string>>{{"run1.7"}}));
  EXPECT_TRUE(batcher.Commit("p1", "t0").ok());
  EXPECT_TRUE(batcher.Rollback("p1", "t1").ok());
  auto sent = transport.sent();
  ASSERT_EQ(sent.size(), 3u);
  EXPECT_EQ(sent[0].verb, "prepare");
  EXPECT_EQ(sent[0].txn_ids, std::vector<std::string>{"t0"});
  EXPECT_GT(sent[0].timeout_ms, 1000);  // the caller's timeout, less what passed
  EXPECT_LE(sent[0].timeout_ms, 1234);
  EXPECT_EQ(sent[1].verb, "commit");
  EXPECT_EQ(sent[2].verb, "rollback");
  EXPECT_EQ(sent[2].txn_ids, std::vector<std::string>{"t1"});
  EXPECT_EQ(batcher.batches_sent(), 3);
}

TEST(ParticipantBatcherTest, CallsQueuedWhileABatchIsInFlightGoTogetherWhenItReturns) {
  ScriptedTransport transport;
  ParticipantBatcher batcher(&transport, 64);
  InFlight calls = HoldOneAndQueue(&transport, &batcher, 5);
  EXPECT_EQ(transport.batches(), 1u);  // nothing more is sent while one is in flight
  transport.Release();
  ASSERT_TRUE(calls.first.get().ok());
  for (auto& call : calls.queued) ASSERT_TRUE(call.get().ok());
  auto sent = transport.sent();
  ASSERT_EQ(sent.size(), 2u);
  EXPECT_EQ(sent[1].txn_ids.size(), 5u);
  EXPECT_EQ(batcher.items_sent(), 6);
  EXPECT_EQ(batcher.waiting(), 0);
}

TEST(ParticipantBatcherTest, EveryCallerGetsItsOwnItemsAnswer) {
  ScriptedTransport transport;
  transport.ScriptVote("t1", Status::Aborted("constraint failed"));
  transport.ScriptVote("t2", Result<Vote>(Vote::kReadOnly));
  transport.ScriptVote("t3", Status::Fenced("epoch 1 < 2"));
  transport.ScriptVote("t4", Status::NotFound("no such branch"));
  ParticipantBatcher batcher(&transport, 64);
  InFlight calls = HoldOneAndQueue(&transport, &batcher, 5);
  transport.Release();
  std::vector<Result<Vote>> votes;
  for (auto& call : calls.queued) votes.push_back(call.get());
  ASSERT_TRUE(votes[0].ok());
  EXPECT_EQ(*votes[0], Vote::kCommit);
  EXPECT_EQ(votes[1].status().code(), StatusCode::kAborted);
  EXPECT_EQ(votes[1].status().message(), "constraint failed");
  ASSERT_TRUE(votes[2].ok());
  EXPECT_EQ(*votes[2], Vote::kReadOnly);
  EXPECT_EQ(votes[3].status().code(), StatusCode::kFenced);
  EXPECT_EQ(votes[4].status().code(), StatusCode::kNotFound);

  // Commits and rollbacks alike.
  transport.ScriptAnswer("c1", Status::NotFound("no such branch"));
  transport.ScriptAnswer("c2", Status::HeuristicMixed("rolled back by an operator"));
  EXPECT_TRUE(batcher.Commit("p1", "c0").ok());
  EXPECT_EQ(batcher.Commit("p1", "c1").code(), StatusCode::kNotFound);
  EXPECT_EQ(batcher.Rollback("p1", "c2").code(), StatusCode::kHeuristicMixed);
}

TEST(ParticipantBatcherTest, LostBatchReplyLeavesEveryItemUnavailable) {
  ScriptedTransport transport;
  ParticipantBatcher batcher(&transport, 64);
  InFlight calls = HoldOneAndQueue(&transport, &batcher, 4);
  transport.LoseReplies();
  transport.Release();
  ExpectEveryCallUnavailable(&calls);
  EXPECT_EQ(batcher.Commit("p1", "c0").code(), StatusCode::kUnavailable);
  EXPECT_EQ(batcher.Rollback("p1", "c0").code(), StatusCode::kUnavailable);
}

TEST(ParticipantBatcherTest, ReplyWithTheWrongNumberOfAnswersLeavesEveryItemUnavailable) {
  ScriptedTransport transport;
  transport.AnswerOneTooFew();
  ParticipantBatcher batcher(&transport, 64);
  InFlight calls = HoldOneAndQueue(&transport, &batcher, 3);
  transport.Release();
  ExpectEveryCallUnavailable(&calls);
  // Never kNotFound: for a commit that would read as a lost branch.
  EXPECT_EQ(batcher.Commit("p1", "c0").code(), StatusCode::kUnavailable);
}

TEST(ParticipantBatcherTest, QueueLongerThanTheMaximumGoesAsSeveralBatches) {
  ScriptedTransport transport;
  ParticipantBatcher batcher(&transport, 2);
  InFlight calls = HoldOneAndQueue(&transport, &batcher, 5);
  transport.Release();
  ASSERT_TRUE(calls.first.get().ok());
  for (auto& call : calls.queued) ASSERT_TRUE(call.get().ok());
  auto sent = transport.sent();
  ASSERT_EQ(sent.size(), 4u);  // the first, then 2 + 2 + 1
  std::multiset<size_t> sizes;
  std::set<std::string> ids;
  for (size_t i = 1; i < sent.size(); ++i) {
    sizes.insert(sent[i].txn_ids.size());
    ids.insert(sent[i].txn_ids.begin(), sent[i].txn_ids.end());
  }
  EXPECT_EQ(sizes, (std::multiset<size_t>{1, 2, 2}));
  EXPECT_EQ(ids.size(), 5u);  // each item sent once
}

TEST(ParticipantBatcherTest, PrepareQueuedPastItsTimeoutIsUnavailableAndNeverSent) {
  ScriptedTransport transport;
  ParticipantBatcher batcher(&transport, 64);
  InFlight calls = HoldOneAndQueue(&transport, &batcher, 2, /*timeout_ms=*/100);
  for (auto& call : calls.queued) {
    ASSERT_EQ(call.wait_for(5s), std::future_status::ready);  // before the release
    EXPECT_EQ(call.get().status().code(), StatusCode::kUnavailable);
  }
  EXPECT_EQ(batcher.waiting(), 0);
  transport.Release();
  ASSERT_TRUE(calls.first.get().ok());
  EXPECT_EQ(transport.batches(), 1u);
  // The lane is idle again: the next call goes at once.
  ASSERT_TRUE(batcher.Prepare("p1", "later", "run1.1", 5000).ok());
  EXPECT_EQ(transport.batches(), 2u);
}

TEST(ParticipantBatcherTest, WithTwoInFlightASecondCallGoesAtOnceAndAThirdQueues) {
  ScriptedTransport transport;
  ParticipantBatcher batcher(&transport, 64, /*max_in_flight=*/2);
  transport.Hold();
  auto first = std::async(std::launch::async, [&] { return batcher.Prepare("p1", "a", "run1.1", 5000); });
  auto second = std::async(std::launch::async, [&] { return batcher.Prepare("p1", "b", "run1.1", 5000); });
  ASSERT_TRUE(PollUntil([&] { return transport.batches() == 2; }, 5000, 1));
  auto queued = PrepareAsync(&batcher, "t", 3);
  ASSERT_TRUE(PollUntil([&] { return batcher.waiting() == 3; }, 5000, 1));
  EXPECT_EQ(transport.batches(), 2u);
  transport.Release();
  EXPECT_TRUE(first.get().ok());
  EXPECT_TRUE(second.get().ok());
  for (auto& call : queued) EXPECT_TRUE(call.get().ok());
  auto sent = transport.sent();
  size_t items = 0;
  for (const auto& batch : sent) items += batch.txn_ids.size();
  EXPECT_EQ(items, 5u);
  EXPECT_LE(sent.size(), 4u);  // the three queued went in at most two batches
}

TEST(ParticipantBatcherTest, EachParticipantAndEachVerbHasItsOwnLane) {
  ScriptedTransport transport;
  ParticipantBatcher batcher(&transport, 64);
  transport.Hold();
  auto first = std::async(std::launch::async, [&] { return batcher.Prepare("p1", "a", "run1.1", 5000); });
  ASSERT_TRUE(PollUntil([&] { return transport.batches() == 1; }, 5000, 1));
  // Neither waits behind p1's prepare: each is sent (and held) at once.
  auto other_participant =
      std::async(std::launch::async, [&] { return batcher.Prepare("p2", "b", "run1.1", 5000); });
  auto other_verb = std::async(std::launch::async, [&] { return batcher.Commit("p1", "c"); });
  EXPECT_TRUE(PollUntil([&] { return transport.batches() == 3; }, 5000, 1));
  transport.Release();
  EXPECT_TRUE(first.get().ok());
  EXPECT_TRUE(other_participant.get().ok());
  EXPECT_TRUE(other_verb.get().ok());
}

TEST(ParticipantBatcherTest, OneTransactionsCallsToSeveralParticipantsGoOutTogether) {
  ScriptedTransport transport;
  ParticipantBatcher batcher(&transport, 64);
  transport.ScriptVote("t", Status::Aborted("p2 said no"));  // every participant, here
  transport.Hold();
  std::mutex mu;
  std::set<size_t> answered;
  auto votes = std::async(std::launch::async, [&] {
    return batcher.PrepareEach({{"p1", "run1.1"}, {"p2", "run2.4"}, {"p3", "run3.9"}}, "t", 5000,
                               [&](size_t i) {
                                 std::lock_guard<std::mutex> lock(mu);
                                 answered.insert(i);
                               });
  });
  // All three are on the wire before any is answered: no call waits for another's reply.
  ASSERT_TRUE(PollUntil([&] { return transport.batches() == 3; }, 5000, 1));
  transport.Release();
  std::vector<Result<Vote>> got = votes.get();
  ASSERT_EQ(got.size(), 3u);
  for (const auto& vote : got) EXPECT_EQ(vote.status().code(), StatusCode::kAborted);
  EXPECT_EQ(answered, (std::set<size_t>{0, 1, 2}));
  std::set<std::string> openings;
  for (const auto& batch : transport.openings_sent()) openings.insert(batch.at(0));
  EXPECT_EQ(openings, (std::set<std::string>{"run1.1", "run2.4", "run3.9"}));

  std::vector<Status> commits = batcher.CommitEach({"p1", "p2"}, "t");
  EXPECT_EQ(commits.size(), 2u);
  EXPECT_EQ(transport.batches(), 5u);
}

TEST(ParticipantBatcherTest, ACallerThatGaveUpHearsNothingLaterAndItsQueuedCallsAreNeverSent) {
  ScriptedTransport transport;
  ParticipantBatcher batcher(&transport, 64);
  transport.Hold();
  auto busy_p1 = std::async(std::launch::async, [&] { return batcher.Prepare("p1", "a", "r", 5000); });
  auto busy_p2 = std::async(std::launch::async, [&] { return batcher.Prepare("p2", "b", "r", 5000); });
  ASSERT_TRUE(PollUntil([&] { return transport.batches() == 2; }, 5000, 1));
  std::atomic<int> answered{0};
  std::vector<Result<Vote>> votes = batcher.PrepareEach(
      {{"p1", "run1.1"}, {"p2", "run2.1"}}, "t", 100, [&](size_t) { answered++; });
  ASSERT_EQ(votes.size(), 2u);
  for (const auto& vote : votes) EXPECT_EQ(vote.status().code(), StatusCode::kUnavailable);
  EXPECT_EQ(batcher.waiting(), 0);
  transport.Release();
  EXPECT_TRUE(busy_p1.get().ok());
  EXPECT_TRUE(busy_p2.get().ok());
  ASSERT_TRUE(batcher.Prepare("p1", "later", "run1.1", 5000).ok());
  EXPECT_EQ(answered.load(), 0);
  for (const auto& batch : transport.sent()) {
    for (const auto& id : batch.txn_ids) EXPECT_NE(id, "t");
  }
}

}  // namespace
}  // namespace pact
