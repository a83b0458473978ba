// Batches the prepares, commits and rollbacks that concurrent transactions
// send to one participant, beneath the Participants interface (the
// group-commit pattern): while no batch of a kind is in flight to a
// participant, a call goes at once, as a batch of one; while one is, calls
// queue, and when it returns the queue goes as the next batch (or while
// fewer than max_in_flight are, with that option). Each caller
// gets its own item's answer, as the single call would give it.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
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
  // A queue longer than max_batch goes as several batches at once. Up to
  // max_in_flight batches of one verb to one participant are sent at once;
  // a call queues only while that many are.
  ParticipantBatcher(BatchTransport* transport, size_t max_batch, size_t max_in_flight = 1);
  ~ParticipantBatcher();

  // As Participants::Prepare: no answer within timeout_ms of this call
  // (queueing included) is kUnavailable.
  Result<Vote> Prepare(const std::string& participant, const std::string& txn_id,
                       const std::string& opening, int timeout_ms);
  // As Participants::Commit with one_phase false.
  Status Commit(const std::string& participant, const std::string& txn_id);
  Status Rollback(const std::string& participant, const std::string& txn_id);

  // Batch RPCs sent and the items they held, since start.
  int64_t batches_sent() const { return batches_sent_.load(); }
  int64_t items_sent() const { return items_sent_.load(); }
  // Calls queued and not sent yet, now.
  int64_t waiting() const { return waiting_.load(); }

 private:
  template <typename Request, typename Answer>
  class Lane;
  struct Lanes;

  Lanes& LanesOf(const std::string& participant);

  BatchTransport* const transport_;
  const size_t max_batch_;
  const size_t max_in_flight_;
  std::atomic<int64_t> batches_sent_{0};
  std::atomic<int64_t> items_sent_{0};
  std::atomic<int64_t> waiting_{0};
  std::mutex mu_;
  std::map<std::string, std::unique_ptr<Lanes>> lanes_;  // guarded by mu_; never erased
};

}  // namespace pact
