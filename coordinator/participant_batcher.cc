#include "coordinator/participant_batcher.h"

#include <algorithm>
#include <chrono>
#include <deque>
#include <optional>
#include <utility>

#include "common/parallel.h"

namespace pact {
namespace {
using Clock = std::chrono::steady_clock;
}  // namespace

// The answers to one caller's calls (one per participant), filled in by the
// lanes as they come; the caller sleeps once for all of them.
template <typename Answer>
class ParticipantBatcher::Join {
 public:
  Join(size_t n, std::optional<Clock::time_point> deadline, const Answered* answered)
      : answers_(n), missing_(n), deadline_(deadline), answered_(answered) {}

  const std::optional<Clock::time_point>& deadline() const { return deadline_; }
  // The caller stopped waiting: an item not sent yet is not sent at all.
  bool given_up() const { return given_up_.load(std::memory_order_acquire); }
  // After Wait: every answer came in time.
  bool complete() const { return complete_; }

  // The i-th answer. Dropped once the caller gave up, as a single call's
  // late reply is.
  void Deliver(size_t i, Answer answer) {
    std::lock_guard<std::mutex> lock(mu_);
    if (given_up_ || answers_[i]) return;
    answers_[i] = std::move(answer);
    // Under mu_, before the caller may return: *answered_ still exists.
    if (*answered_) (*answered_)(i);
    if (--missing_ == 0) all_in_.notify_one();
  }

  // Every answer, once all are in or the deadline passed; `late` stands for
  // each one missing then.
  std::vector<Answer> Wait(const Status& late) {
    std::unique_lock<std::mutex> lock(mu_);
    auto done = [this] { return missing_ == 0; };
    if (deadline_) {
      all_in_.wait_until(lock, *deadline_, done);
    } else {
      all_in_.wait(lock, done);
    }
    given_up_.store(true, std::memory_order_release);
    complete_ = missing_ == 0;
    std::vector<Answer> out;
    out.reserve(answers_.size());
    for (auto& answer : answers_) out.push_back(answer ? std::move(*answer) : Answer(late));
    return out;
  }

 private:
  std::mutex mu_;
  std::condition_variable all_in_;              // with mu_: missing_ fell to 0
  std::vector<std::optional<Answer>> answers_;  // guarded by mu_
  size_t missing_;                              // guarded by mu_
  const std::optional<Clock::time_point> deadline_;
  const Answered* const answered_;  // the caller's; called only while it waits
  std::atomic<bool> given_up_{false};
  bool complete_ = false;  // set by Wait, read by its caller
};

// One kind of call to one participant. A call queues; a lane with room
// (fewer than max_in_flight batches being sent) gets a sender, which takes
// the whole queue, sends it and hands every item its answer, and goes on
// while calls queued meanwhile. Nobody waits for a send unless the lane is
// full.
template <typename Request, typename Answer>
class ParticipantBatcher::Lane {
 public:
  // Sends one batch. timeout_ms <= 0: the transport's default.
  using Send = std::function<Result<std::vector<Answer>>(const std::vector<Request>&, int)>;

  Lane(ParticipantBatcher* batcher, Send send) : batcher_(batcher), send_(std::move(send)) {}

  // Queues `request`, answered into slot `index` of `join`. True when the
  // lane had room: the caller is now its sender and must call Drain.
  bool Submit(Request request, std::shared_ptr<Join<Answer>> join, size_t index) {
    std::lock_guard<std::mutex> lock(mu_);
    queue_.push_back(Item{std::move(request), std::move(join), index});
    batcher_->waiting_++;
    if (in_flight_ >= batcher_->max_in_flight_) return false;
    in_flight_++;
    batcher_->SenderStarted();
    return true;
  }

  // Takes back the items of `join` not sent yet (its caller gave up on them).
  void Withdraw(const Join<Answer>* join) {
    std::lock_guard<std::mutex> lock(mu_);
    auto gone = std::remove_if(queue_.begin(), queue_.end(),
                               [join](const Item& item) { return item.join.get() == join; });
    batcher_->waiting_ -= static_cast<int64_t>(queue_.end() - gone);
    queue_.erase(gone, queue_.end());
  }

  // REQUIRES: Submit returned true for this sender. Sends the queue as
  // batches until it is empty. On a caller's own thread it sends one round
  // and hands what queued meanwhile to a worker: a caller never works long
  // for the others.
  void Drain(bool on_callers_thread) {
    std::unique_lock<std::mutex> lock(mu_);
    for (bool sent_a_round = false; !queue_.empty(); sent_a_round = true) {
      if (on_callers_thread && sent_a_round) {
        lock.unlock();
        RunDetached([this] { Drain(/*on_callers_thread=*/false); });
        return;
      }
      std::vector<Item> all(std::make_move_iterator(queue_.begin()),
                            std::make_move_iterator(queue_.end()));
      queue_.clear();
      batcher_->waiting_ -= static_cast<int64_t>(all.size());
      lock.unlock();
      SendAll(std::move(all));
      lock.lock();
    }
    in_flight_--;
    lock.unlock();
    batcher_->SenderEnded();
  }

 private:
  struct Item {
    Request request;
    std::shared_ptr<Join<Answer>> join;
    size_t index;
  };

  void SendAll(std::vector<Item> all) {
    all.erase(std::remove_if(all.begin(), all.end(),
                             [](const Item& item) { return item.join->given_up(); }),
              all.end());
    const size_t max = batcher_->max_batch_;
    const size_t chunks = (all.size() + max - 1) / max;
    RunInParallel(chunks, [&](size_t c) {
      auto begin = all.begin() + c * max;
      SendChunk(begin, begin + std::min(max, static_cast<size_t>(all.end() - begin)));
    });
  }

  // Sends items [begin, end) as one batch and delivers each its answer.
  template <typename It>
  void SendChunk(It begin, It end) {
    std::vector<Request> requests;
    requests.reserve(end - begin);
    // The call may take as long as the item with the most time left may
    // wait: no item is given up on before its own deadline.
    std::optional<Clock::time_point> latest;
    for (It it = begin; it != end; ++it) {
      requests.push_back(it->request);
      const auto& deadline = it->join->deadline();
      if (deadline && (!latest || *deadline > *latest)) latest = deadline;
    }
    int timeout_ms = 0;
    if (latest) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(*latest - Clock::now());
      timeout_ms = std::max<int>(1, static_cast<int>(left.count()));
    }
    std::vector<Answer> answers = SendRequests(requests, timeout_ms);
    for (It it = begin; it != end; ++it) {
      it->join->Deliver(it->index, std::move(answers[it - begin]));
    }
  }

  // One answer per request, whatever the transport did.
  std::vector<Answer> SendRequests(const std::vector<Request>& requests, int timeout_ms) {
    batcher_->batches_sent_++;
    batcher_->items_sent_ += static_cast<int64_t>(requests.size());
    Result<std::vector<Answer>> sent = send_(requests, timeout_ms);
    if (sent.ok() && sent->size() == requests.size()) return std::move(sent).value();
    // The participant may have acted on any item: each outcome is unknown.
    Status unknown = sent.ok() ? Status::Unavailable("the participant answered " +
                                                     std::to_string(sent->size()) +
                                                     " items of a batch of " +
                                                     std::to_string(requests.size()))
                               : sent.status();
    return std::vector<Answer>(requests.size(), Answer(unknown));
  }

  ParticipantBatcher* const batcher_;
  const Send send_;
  std::mutex mu_;
  std::deque<Item> queue_;  // guarded by mu_; waiting for the next batch
  size_t in_flight_ = 0;    // guarded by mu_; senders at work
};

struct ParticipantBatcher::Lanes {
  Lane<PrepareRequest, Result<Vote>> prepare;
  Lane<std::string, Status> commit;
  Lane<std::string, Status> rollback;
};

ParticipantBatcher::ParticipantBatcher(BatchTransport* transport, size_t max_batch,
                                       size_t max_in_flight)
    : transport_(transport),
      max_batch_(std::max<size_t>(1, max_batch)),
      max_in_flight_(std::max<size_t>(1, max_in_flight)) {}

ParticipantBatcher::~ParticipantBatcher() {
  std::unique_lock<std::mutex> lock(senders_mu_);
  senders_done_.wait(lock, [this] { return senders_ == 0; });
}

void ParticipantBatcher::SenderStarted() {
  std::lock_guard<std::mutex> lock(senders_mu_);
  senders_++;
}

void ParticipantBatcher::SenderEnded() {
  std::lock_guard<std::mutex> lock(senders_mu_);
  if (--senders_ == 0) senders_done_.notify_all();
}

ParticipantBatcher::Lanes& ParticipantBatcher::LanesOf(const std::string& participant) {
  std::lock_guard<std::mutex> lock(mu_);
  auto& lanes = lanes_[participant];
  if (!lanes) {
    lanes.reset(new Lanes{
        {this,
         [this, participant](const std::vector<PrepareRequest>& items, int timeout_ms) {
           return transport_->PrepareBatch(participant, items, timeout_ms);
         }},
        {this,
         [this, participant](const std::vector<std::string>& txn_ids, int) {
           return transport_->CommitBatch(participant, txn_ids);
         }},
        {this,
         [this, participant](const std::vector<std::string>& txn_ids, int) {
           return transport_->RollbackBatch(participant, txn_ids);
         }},
    });
  }
  return *lanes;
}

template <typename Request, typename Answer, typename LaneOf>
std::vector<Answer> ParticipantBatcher::CallEach(LaneOf lane_of, std::vector<Request> requests,
                                                 int timeout_ms, const Answered& answered) {
  const size_t n = requests.size();
  std::optional<Clock::time_point> deadline;
  if (timeout_ms > 0) deadline = Clock::now() + std::chrono::milliseconds(timeout_ms);
  auto join = std::make_shared<Join<Answer>>(n, deadline, &answered);
  std::vector<Lane<Request, Answer>*> lanes, idle;
  for (size_t i = 0; i < n; ++i) {
    lanes.push_back(&lane_of(i));
    if (lanes.back()->Submit(std::move(requests[i]), join, i)) idle.push_back(lanes.back());
  }
  // Idle lanes send at once: all but one from workers, the last from here.
  for (size_t k = 0; k + 1 < idle.size(); ++k) {
    RunDetached([lane = idle[k]] { lane->Drain(/*on_callers_thread=*/false); });
  }
  if (!idle.empty()) idle.back()->Drain(/*on_callers_thread=*/true);
  std::vector<Answer> answers =
      join->Wait(Status::Unavailable("no answer within " + std::to_string(timeout_ms) + " ms"));
  if (!join->complete()) {
    for (auto* lane : lanes) lane->Withdraw(join.get());
  }
  return answers;
}

std::vector<Result<Vote>> ParticipantBatcher::PrepareEach(
    const std::vector<EnlistedBranch>& branches, const std::string& txn_id, int timeout_ms,
    const Answered& answered) {
  std::vector<PrepareRequest> requests;
  for (const auto& b : branches) requests.push_back(PrepareRequest{txn_id, b.opening});
  return CallEach<PrepareRequest, Result<Vote>>(
      [&](size_t i) -> auto& { return LanesOf(branches[i].participant).prepare; },
      std::move(requests), timeout_ms, answered);
}

std::vector<Status> ParticipantBatcher::CommitEach(const std::vector<std::string>& participants,
                                                   const std::string& txn_id,
                                                   const Answered& answered) {
  return CallEach<std::string, Status>(
      [&](size_t i) -> auto& { return LanesOf(participants[i]).commit; },
      std::vector<std::string>(participants.size(), txn_id), 0, answered);
}

std::vector<Status> ParticipantBatcher::RollbackEach(const std::vector<std::string>& participants,
                                                     const std::string& txn_id) {
  return CallEach<std::string, Status>(
      [&](size_t i) -> auto& { return LanesOf(participants[i]).rollback; },
      std::vector<std::string>(participants.size(), txn_id), 0, nullptr);
}

Result<Vote> ParticipantBatcher::Prepare(const std::string& participant,
                                         const std::string& txn_id, const std::string& opening,
                                         int timeout_ms) {
  return std::move(PrepareEach({EnlistedBranch{participant, opening}}, txn_id, timeout_ms)[0]);
}

Status ParticipantBatcher::Commit(const std::string& participant, const std::string& txn_id) {
  return CommitEach({participant}, txn_id)[0];
}

Status ParticipantBatcher::Rollback(const std::string& participant, const std::string& txn_id) {
  return RollbackEach({participant}, txn_id)[0];
}

}  // namespace pact
