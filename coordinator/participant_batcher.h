// Batches the prepares, commits and rollbacks that concurrent transactions
// send to one participant, beneath the Participants interface (the
// group-commit pattern): while no batch of a kind is in flight to a
// participant, a call goes at once, as a batch of one; while one is, calls
// queue, and when it returns the queue goes as the next batch (or while
// fewer than max_in_flight are, with that option). Each caller
// gets its own item's answer, as the single call would give it.
//
// A transaction's calls to all its participants are queued together and
// answered into one Join, so its thread sleeps once per phase however many
// participants it has; the batches go out from the caller's thread when a
// lane is idle and from a worker that keeps sending while calls queue.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "common/protocol.h"
#include "common/status.h"

namespace pact {

struct PrepareRequest {
  std::string txn_id;
  std::string branch;  // the name of the branch's opening the client reported
};

// How a batch reaches a participant: one RPC per call. A failed call
// (the Status) leaves every item's outcome unknown, like a lost single
// reply; otherwise the answers are one per item, in the items' order.
class BatchTransport {
 public:
  virtual ~BatchTransport() = default;

  // timeout_ms: as Participants::Prepare, for the whole call.
  virtual Result<std::vector<Result<Vote>>> PrepareBatch(const std::string& participant,
                                                         const std::vector<PrepareRequest>& items,
                                                         int timeout_ms) = 0;
  // Two-phase commits only (a one-phase commit is never batched).
  virtual Result<std::vector<Status>> CommitBatch(const std::string& participant,
                                                  const std::vector<std::string>& txn_ids) = 0;
  virtual Result<std::vector<Status>> RollbackBatch(const std::string& participant,
                                                    const std::vector<std::string>& txn_ids) = 0;
};

class ParticipantBatcher {
 public:
  // Runs once the answer of the i-th call of a PrepareEach/CommitEach is in.
  using Answered = std::function<void(size_t)>;

  // A queue longer than max_batch goes as several batches at once. Up to
  // max_in_flight batches of one verb to one participant are sent at once;
  // a call queues only while that many are.
  ParticipantBatcher(BatchTransport* transport, size_t max_batch, size_t max_in_flight = 1);
  // Waits for the batches still being sent (each bounded by its RPC timeout).
  ~ParticipantBatcher();

  // As Participants::PrepareEach: every branch's prepare is queued at once
  // and the caller waits once for all of them; no answer within timeout_ms
  // of this call (queueing included) is kUnavailable.
  std::vector<Result<Vote>> PrepareEach(const std::vector<EnlistedBranch>& branches,
                                        const std::string& txn_id, int timeout_ms,
                                        const Answered& answered = nullptr);
  // Two-phase commits and rollbacks of one transaction at several
  // participants, as PrepareEach (bounded by the transport's call timeout).
  std::vector<Status> CommitEach(const std::vector<std::string>& participants,
                                 const std::string& txn_id, const Answered& answered = nullptr);
  std::vector<Status> RollbackEach(const std::vector<std::string>& participants,
                                   const std::string& txn_id);

  // One call, as Participants::Prepare, ::Commit with one_phase false, ::Rollback.
  Result<Vote> Prepare(const std::string& participant, const std::string& txn_id,
                       const std::string& opening, int timeout_ms);
  Status Commit(const std::string& participant, const std::string& txn_id);
  Status Rollback(const std::string& participant, const std::string& txn_id);

  // Batch RPCs sent and the items they held, since start.
  int64_t batches_sent() const { return batches_sent_.load(); }
  int64_t items_sent() const { return items_sent_.load(); }
  // Calls queued and not sent yet, now.
  int64_t waiting() const { return waiting_.load(); }

 private:
  template <typename Answer>
  class Join;
  template <typename Request, typename Answer>
  class Lane;
  struct Lanes;

  Lanes& LanesOf(const std::string& participant);
  // Queues requests[i] in lane_of(i), all into one Join, and waits for their answers.
  template <typename Request, typename Answer, typename LaneOf>
  std::vector<Answer> CallEach(LaneOf lane_of, std::vector<Request> requests, int timeout_ms,
                               const Answered& answered);

  // A sender of some lane starts or ends (the destructor waits until none is left).
  void SenderStarted();
  void SenderEnded();

  BatchTransport* const transport_;
  const size_t max_batch_;
  const size_t max_in_flight_;
  std::atomic<int64_t> batches_sent_{0};
  std::atomic<int64_t> items_sent_{0};
  std::atomic<int64_t> waiting_{0};
  std::mutex senders_mu_;
  std::condition_variable senders_done_;  // with senders_mu_: senders_ fell to 0
  int senders_ = 0;                       // guarded by senders_mu_; lanes being drained
  std::mutex mu_;
  std::map<std::string, std::unique_ptr<Lanes>> lanes_;  // guarded by mu_; never erased
};

}  // namespace pact
