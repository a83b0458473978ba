#include "coordinator/thrift_participants.h"

#include <chrono>

#include <thrift/TApplicationException.h>

#include "common/parallel.h"

namespace pact {

void ThriftParticipants::SetFence(const Fence& fence) {
  fence_.coordinator = fence.coordinator;
  fence_.epoch = fence.epoch;
}

ThriftParticipants::ThriftParticipants(RpcTimeouts timeouts, RpcCredentials credentials,
                                       size_t max_batch, size_t max_in_flight)
    : timeouts_(timeouts), credentials_(std::move(credentials)) {
  BatchTransport* transport = this;  // a private base: convertible only in here
  if (max_batch > 1) {
    batcher_ = std::make_unique<ParticipantBatcher>(transport, max_batch, max_in_flight);
  }
}

void ThriftParticipants::SetEndpoint(const std::string& participant, const std::string& host,
                                     int port) {
  std::lock_guard<std::mutex> lock(mu_);
  auto& peer = peers_[participant];
  if (peer && peer->pool->endpoint().host == host && peer->pool->endpoint().port == port) return;
  peer = std::make_shared<Peer>();
  peer->pool = std::make_shared<Pool>(Endpoint{host, port}, timeouts_,
                                      credentials_.ToServer(Role::kParticipant, participant));
}

Result<std::shared_ptr<ThriftParticipants::Peer>> ThriftParticipants::PeerFor(
    const std::string& participant) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = peers_.find(participant);
  if (it == peers_.end()) {
    return Status::NotFound("participant '" + participant + "' is not registered");
  }
  return it->second;
}

Result<Vote> ThriftParticipants::Prepare(const std::string& participant,
                                         const std::string& txn_id, const std::string& opening,
                                         int timeout_ms) {
  if (batcher_) return batcher_->Prepare(participant, txn_id, opening, timeout_ms);
  ASSIGN_OR_RETURN(auto peer, PeerFor(participant));
  return PrepareOne(*peer->pool, txn_id, opening, timeout_ms);
}

Status ThriftParticipants::Commit(const std::string& participant, const std::string& txn_id,
                                  bool one_phase) {
  if (batcher_ && !one_phase) return batcher_->Commit(participant, txn_id);
  ASSIGN_OR_RETURN(auto peer, PeerFor(participant));
  return CommitOne(*peer->pool, txn_id, one_phase);
}

Status ThriftParticipants::Rollback(const std::string& participant, const std::string& txn_id) {
  if (batcher_) return batcher_->Rollback(participant, txn_id);
  ASSIGN_OR_RETURN(auto peer, PeerFor(participant));
  return RollbackOne(*peer->pool, txn_id);
}

std::vector<Result<Vote>> ThriftParticipants::PrepareEach(
    const std::vector<EnlistedBranch>& branches, const std::string& txn_id, int timeout_ms,
    const FanOut& fan_out, const Answered& answered) {
  if (!batcher_) return Participants::PrepareEach(branches, txn_id, timeout_ms, fan_out, answered);
  return batcher_->PrepareEach(branches, txn_id, timeout_ms, answered);
}

std::vector<Status> ThriftParticipants::CommitEach(const std::vector<std::string>& participants,
                                                   const std::string& txn_id,
                                                   const FanOut& fan_out,
                                                   const Answered& answered) {
  if (!batcher_) return Participants::CommitEach(participants, txn_id, fan_out, answered);
  return batcher_->CommitEach(participants, txn_id, answered);
}

std::vector<Status> ThriftParticipants::RollbackEach(const std::vector<std::string>& participants,
                                                     const std::string& txn_id,
                                                     const FanOut& fan_out) {
  if (!batcher_) return Participants::RollbackEach(participants, txn_id, fan_out);
  return batcher_->RollbackEach(participants, txn_id);
}

namespace {

// Prepare, two-phase commit and rollback are idempotent (a repeated one is
// answered as the first was), so one that failed on the transport (a pooled
// connection its server closed as the call went out, a reset) is sent once
// more, on a new connection, while its time lasts. A one-phase commit is not
// retried here: TwoPhaseCommit asks again for what it learned.
template <typename Pool, typename Fn>
Status CallIdempotent(Pool& pool, Fn&& fn, int timeout_ms) {
  const auto start = std::chrono::steady_clock::now();
  Status st = pool.Call(fn, timeout_ms);
  if (st.code() != StatusCode::kUnavailable) return st;
  int left_ms = 0;  // the pool's own timeout
  if (timeout_ms > 0) {
    const auto spent = std::chrono::duration_cast<std::chrono::milliseconds>(
        std::chrono::steady_clock::now() - start);
    left_ms = timeout_ms - static_cast<int>(spent.count());
    if (left_ms <= 0) return st;
  }
  return pool.Call(fn, left_ms);
}

}  // namespace

Result<Vote> ThriftParticipants::PrepareOne(Pool& pool, const std::string& txn_id,
                                            const std::string& opening, int timeout_ms) {
  rpc::Vote::type vote = rpc::Vote::ABORT;
  RETURN_NOT_OK(CallIdempotent(
      pool, [&](rpc::ParticipantClient& c) { vote = c.prepare(fence_, txn_id, opening); },
      timeout_ms));
  return VoteFromRpc(vote);
}

Status ThriftParticipants::CommitOne(Pool& pool, const std::string& txn_id, bool one_phase) {
  auto commit = [&](rpc::ParticipantClient& c) { c.commit(fence_, txn_id, one_phase); };
  return one_phase ? pool.Call(commit) : CallIdempotent(pool, commit, 0);
}

Status ThriftParticipants::RollbackOne(Pool& pool, const std::string& txn_id) {
  return CallIdempotent(
      pool, [&](rpc::ParticipantClient& c) { c.rollback(fence_, txn_id); }, 0);
}

namespace {

// Each answer as the single call would give it: an error carries the
// endpoint, as RpcConnection adds it to a single call's.
Status InContext(const Status& answer, const Endpoint& endpoint) {
  return answer.WithContext(endpoint.ToString());
}
Result<Vote> InContext(const Result<Vote>& answer, const Endpoint& endpoint) {
  if (answer.ok()) return answer;
  return answer.status().WithContext(endpoint.ToString());
}

// Sends `items` to `peer` in one call, batch(client, &rpc_answers), and
// converts each answer. A batch of one goes as its single call, one(item):
// the same message as without batching, so a lone transaction costs what it
// did. So does every batch for a participant that answers UNKNOWN_METHOD
// (it predates batches; it acted on nothing).
template <typename Answer, typename RpcAnswer, typename Peer, typename Item, typename BatchFn,
          typename OneFn, typename Convert>
Result<std::vector<Answer>> SendBatch(Peer& peer, const std::vector<Item>& items, int timeout_ms,
                                      BatchFn batch, OneFn one, Convert convert) {
  if (items.size() == 1) return std::vector<Answer>{one(items.front())};
  auto one_by_one = [&] {
    std::vector<Answer> out(items.size(), Answer(Status::Internal("not sent")));
    RunInParallel(items.size(), [&](size_t i) { out[i] = one(items[i]); });
    return out;
  };
  if (peer.singles_only) return one_by_one();
  std::vector<RpcAnswer> answers;
  bool unknown_method = false;
  RETURN_NOT_OK(CallIdempotent(
      *peer.pool,
      [&](rpc::ParticipantClient& c) {
        answers.clear();
        try {
          batch(c, &answers);
        } catch (const apache::thrift::TApplicationException& e) {
          if (e.getType() != apache::thrift::TApplicationException::UNKNOWN_METHOD) throw;
          unknown_method = true;
        }
      },
      timeout_ms));
  if (unknown_method) {
    peer.singles_only = true;
    return one_by_one();
  }
  std::vector<Answer> out;
  out.reserve(answers.size());
  for (const auto& a : answers) out.push_back(InContext(convert(a), peer.pool->endpoint()));
  return out;
}

}  // namespace

Result<std::vector<Result<Vote>>> ThriftParticipants::PrepareBatch(
    const std::string& participant, const std::vector<PrepareRequest>& items, int timeout_ms) {
  ASSIGN_OR_RETURN(auto peer, PeerFor(participant));
  return SendBatch<Result<Vote>, rpc::PrepareAnswer>(
      *peer, items, timeout_ms,
      [&](rpc::ParticipantClient& c, std::vector<rpc::PrepareAnswer>* answers) {
        std::vector<rpc::PrepareItem> request(items.size());
        for (size_t i = 0; i < items.size(); ++i) {
          request[i].txn_id = items[i].txn_id;
          request[i].branch = items[i].branch;
        }
        c.prepareBatch(*answers, fence_, request);
      },
      [&](const PrepareRequest& item) {
        return PrepareOne(*peer->pool, item.txn_id, item.branch, timeout_ms);
      },
      PrepareAnswerFromRpc);
}

Result<std::vector<Status>> ThriftParticipants::CommitBatch(
    const std::string& participant, const std::vector<std::string>& txn_ids) {
  ASSIGN_OR_RETURN(auto peer, PeerFor(participant));
  return SendBatch<Status, rpc::BatchAnswer>(
      *peer, txn_ids, 0,
      [&](rpc::ParticipantClient& c, std::vector<rpc::BatchAnswer>* answers) {
        c.commitBatch(*answers, fence_, txn_ids);
      },
      [&](const std::string& txn_id) {
        return CommitOne(*peer->pool, txn_id, /*one_phase=*/false);
      },
      BatchAnswerFromRpc);
}

Result<std::vector<Status>> ThriftParticipants::RollbackBatch(
    const std::string& participant, const std::vector<std::string>& txn_ids) {
  ASSIGN_OR_RETURN(auto peer, PeerFor(participant));
  return SendBatch<Status, rpc::BatchAnswer>(
      *peer, txn_ids, 0,
      [&](rpc::ParticipantClient& c, std::vector<rpc::BatchAnswer>* answers) {
        c.rollbackBatch(*answers, fence_, txn_ids);
      },
      [&](const std::string& txn_id) { return RollbackOne(*peer->pool, txn_id); },
      BatchAnswerFromRpc);
}

Result<std::vector<PreparedBranch>> ThriftParticipants::Recover(const std::string& participant) {
  ASSIGN_OR_RETURN(auto peer, PeerFor(participant));
  Pool& pool = *peer->pool;
  std::vector<rpc::BranchInfo> branches;
  RETURN_NOT_OK(pool.Call([&](rpc::ParticipantClient& c) { c.recover(branches, fence_); }));
  std::vector<PreparedBranch> out;
  for (const auto& b : branches) out.push_back({b.txn_id, b.age_ms});
  return out;
}

Result<std::vector<PreparedBranch>> ThriftParticipants::ListBranches(
    const std::string& participant) {
  ASSIGN_OR_RETURN(auto peer, PeerFor(participant));
  Pool& pool = *peer->pool;
  std::vector<rpc::BranchInfo> branches;
  RETURN_NOT_OK(pool.Call([&](rpc::ParticipantClient& c) { c.listBranches(branches); }));
  std::vector<PreparedBranch> out;
  for (const auto& b : branches) out.push_back({b.txn_id, b.age_ms});
  return out;
}

Status ThriftParticipants::ForgetHeuristic(const std::string& participant,
                                           const std::string& txn_id) {
  ASSIGN_OR_RETURN(auto peer, PeerFor(participant));
  Pool& pool = *peer->pool;
  return pool.Call([&](rpc::ParticipantClient& c) { c.forgetHeuristic(txn_id); });
}

}  // namespace pact
