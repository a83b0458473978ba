#include "coordinator/participant_batcher.h"

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <optional>
#include <utility>

#include "common/parallel.h"

namespace pact {

// One kind of call to one participant. The caller that finds room in the
// lane (fewer than max_in_flight batches being sent) leads: it takes the
// whole queue (its own item included), sends it and hands every item its
// answer; the first item queued meanwhile then leads the next batch. Nobody
// waits unless the lane is full.
template <typename Request, typename Answer>
class ParticipantBatcher::Lane {
 public:
  using Clock = std::chrono::steady_clock;
  // Sends one batch. timeout_ms <= 0: the transport's default.
  using Send = std::function<Result<std::vector<Answer>>(const std::vector<Request>&, int)>;

  Lane(ParticipantBatcher* batcher, Send send) : batcher_(batcher), send_(std::move(send)) {}

  // timeout_ms <= 0: no deadline of its own (the transport's call timeout
  // bounds every batch, so the wait is bounded anyway).
  Answer Call(Request request, int timeout_ms) {
    std::unique_lock<std::mutex> lock(mu_);
    if (HasRoom() && queue_.empty()) {
      // Alone: sent at once, without the queue's bookkeeping (a lone
      // transaction pays next to nothing for batching).
      in_flight_++;
      lock.unlock();
      std::vector<Request> alone;
      alone.push_back(std::move(request));
      std::vector<Answer> answers = SendRequests(alone, timeout_ms);
      lock.lock();
      in_flight_--;
      WakeNextLeader();
      return std::move(answers.front());
    }
    auto item = std::make_shared<Item>(std::move(request));
    if (timeout_ms > 0) item->deadline = Clock::now() + std::chrono::milliseconds(timeout_ms);
    queue_.push_back(item);
    batcher_->waiting_++;
    while (!item->done) {
      if (HasRoom() && !item->taken) {
        Lead(lock);
        continue;
      }
      if (!item->deadline) {
        item->cv.wait(lock);
        continue;
      }
      if (item->cv.wait_until(lock, *item->deadline) == std::cv_status::timeout && !item->done) {
        // The answer may still come; it is dropped, as a single call's late
        // reply is. An item not sent yet is not sent at all.
        if (!item->taken) {
          queue_.erase(std::find(queue_.begin(), queue_.end(), item));
          batcher_->waiting_--;
          WakeNextLeader();
        }
        return Status::Unavailable("no answer within " + std::to_string(timeout_ms) + " ms");
      }
    }
    return std::move(item->answer);
  }

 private:
  struct Item {
    explicit Item(Request r) : request(std::move(r)) {}
    Request request;
    std::optional<Clock::time_point> deadline;
    bool taken = false;  // in a batch being sent
    bool done = false;   // answer set
    Answer answer = Status::Internal("not answered");
    std::condition_variable cv;  // with mu_: done, or the lane may be led
  };
  using Batch = std::vector<std::shared_ptr<Item>>;

  // REQUIRES: lock holds mu_, HasRoom(). Returns with mu_ held again.
  void Lead(std::unique_lock<std::mutex>& lock) {
    Batch all(queue_.begin(), queue_.end());
    queue_.clear();
    batcher_->waiting_ -= static_cast<int64_t>(all.size());
    for (auto& item : all) item->taken = true;
    in_flight_++;
    lock.unlock();

    const size_t max = batcher_->max_batch_;
    std::vector<Batch> chunks;
    for (size_t i = 0; i < all.size(); i += max) {
      chunks.emplace_back(all.begin() + i, all.begin() + std::min(all.size(), i + max));
    }
    std::vector<std::vector<Answer>> answers(chunks.size());
    RunInParallel(chunks.size(), [&](size_t c) { answers[c] = SendChunk(chunks[c]); });

    lock.lock();
    for (size_t c = 0; c < chunks.size(); ++c) {
      for (size_t i = 0; i < chunks[c].size(); ++i) {
        Item& item = *chunks[c][i];
        item.answer = std::move(answers[c][i]);
        item.done = true;
        item.cv.notify_one();
      }
    }
    in_flight_--;
    WakeNextLeader();
  }

  // One answer per item of `chunk`.
  std::vector<Answer> SendChunk(const Batch& chunk) {
    std::vector<Request> requests;
    requests.reserve(chunk.size());
    // The call may take as long as the item with the most time left may
    // wait: no item is given up on before its own deadline.
    std::optional<Clock::time_point> latest;
    for (const auto& item : chunk) {
      requests.push_back(item->request);
      if (item->deadline && (!latest || *item->deadline > *latest)) latest = item->deadline;
    }
    int timeout_ms = 0;
    if (latest) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(*latest - Clock::now());
      timeout_ms = std::max<int>(1, static_cast<int>(left.count()));
    }
    return SendRequests(requests, timeout_ms);
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

  // REQUIRES: mu_ held.
  bool HasRoom() const { return in_flight_ < batcher_->max_in_flight_; }

  // REQUIRES: mu_ held.
  void WakeNextLeader() {
    if (HasRoom() && !queue_.empty()) queue_.front()->cv.notify_one();
  }

  ParticipantBatcher* const batcher_;
  const Send send_;
  std::mutex mu_;
  std::deque<std::shared_ptr<Item>> queue_;  // guarded by mu_; waiting for the next batch
  size_t in_flight_ = 0;                    // guarded by mu_; batch calls being sent
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

ParticipantBatcher::~ParticipantBatcher() = default;

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

Result<Vote> ParticipantBatcher::Prepare(const std::string& participant,
                                         const std::string& txn_id, const std::string& opening,
                                         int timeout_ms) {
  return LanesOf(participant).prepare.Call(PrepareRequest{txn_id, opening}, timeout_ms);
}

Status ParticipantBatcher::Commit(const std::string& participant, const std::string& txn_id) {
  return LanesOf(participant).commit.Call(txn_id, 0);
}

Status ParticipantBatcher::Rollback(const std::string& participant, const std::string& txn_id) {
  return LanesOf(participant).rollback.Call(txn_id, 0);
}

}  // namespace pact
