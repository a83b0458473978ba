// ZooKeeperJournal: the Journal of one shard in ZooKeeper, for coordinators
// that fail over (active/standby). Under the shard's root znode:
//
//   <root>/epoch                          the epoch, decimal; raised by CAS
//   <root>/commits/<txn_id>               one COMMIT record each
//   <root>/participants/<name>            the participant registry
//   <root>/heuristics/<txn_id>/<name>     heuristic records
//
// Fencing: RaiseEpoch remembers the epoch znode's version it wrote, and every
// write after it is a `multi` that first checks that version. Once another
// coordinator raised the epoch, this one writes nothing more: its calls fail
// with kFenced and change nothing, so a paused or partitioned old active can
// never make a decision durable.
//
// COMMIT records are written by one writer thread in batches (group commit):
// every LogCommit waiting at that moment shares one multi, split so that no
// request nears ZooKeeper's 1 MB limit (jute.maxbuffer). Node names are the
// transaction ids, so a record that exists already is that decision, durable.
//
// A COMMIT batch whose connection is lost waits for the session to reconnect,
// reads whether it was written and sends it again if not: a brief loss (a
// ZooKeeper server restarting) costs time, not an unknown outcome. Only once
// the session expired, or ZooKeeper stayed out of reach for twice the session
// timeout, is it kUnavailable: the write may have been applied.
// Other writes are kUnavailable at any connection loss. The session is the
// caller's; after it expired this journal can do nothing more (make a new
// session and journal).
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "common/status.h"
#include "journal/journal.h"
#include "zookeeper/zk_session.h"

namespace pact {

struct ZooKeeperJournalOptions {
  std::string root;  // the shard's znode, e.g. "/pact/shards/c1"; created if missing
  // Longest a lazy END waits before its delete is sent.
  int end_flush_delay_ms = 50;
  // Bytes of paths and data in one multi, well under ZooKeeper's 1 MB limit.
  size_t max_batch_bytes = 256 * 1024;
  // Test seam: runs on the writer thread before each batch of COMMIT records
  // is sent, with its record count; may block to hold it.
  std::function<void(size_t commit_records)> before_batch_write;
};

class ZooKeeperJournal : public Journal {
 public:
  // Creates the shard's znodes that are missing (epoch 0 for a new shard).
  // REQUIRES: `session` outlives the journal.
  static Result<std::unique_ptr<ZooKeeperJournal>> Open(ZkSession* session,
                                                        ZooKeeperJournalOptions options);
  // Sends queued ENDs (if it still can) and stops the writer.
  // REQUIRES: no call on this journal is in progress.
  ~ZooKeeperJournal() override;

  ZooKeeperJournal(const ZooKeeperJournal&) = delete;
  ZooKeeperJournal& operator=(const ZooKeeperJournal&) = delete;

  // Raises the epoch znode by one with a compare-and-set (retrying when
  // another coordinator raced it) and fences every later write on it.
  // kUnavailable: the raise may have happened; calling again is harmless.
  Result<int64_t> RaiseEpoch() override;
  // kFailedPrecondition before RaiseEpoch, kFenced once another coordinator
  // raised the epoch (nothing written), kUnavailable when the outcome is
  // unknown. Branch names must pass IsValidName.
  Status LogCommit(const CommitRecord& record) override;
  // Deletes the transaction's COMMIT record if it is there. A multi this
  // session sent before is settled by then: ZooKeeper applies one session's
  // requests in order, and a request still in flight through a server the
  // session left is refused (session moved), never applied later.
  Status LogAbort(const std::string& txn_id) override;
  void LogEnd(const std::string& txn_id) override;
  // Oldest (first written) first.
  Result<std::vector<CommitRecord>> LoadUnfinished() override;
  Status PutParticipant(const ParticipantRecord& participant) override;
  Result<std::vector<ParticipantRecord>> LoadParticipants() override;
  Status DeleteParticipant(const std::string& name) override;
  Status PutHeuristic(const HeuristicRecord& heuristic) override;
  Result<std::vector<HeuristicRecord>> LoadHeuristics() override;
  Status ForgetHeuristics(const std::string& txn_id) override;
  // fsync_batches counts the multis that carried COMMIT records.
  JournalStats Stats() override;

  // COMMIT records queued and not yet taken by the writer. Test seam only.
  size_t QueuedCommitsForTesting();

 private:
  struct PendingCommit;

  ZooKeeperJournal(ZkSession* session, ZooKeeperJournalOptions options);

  std::string CommitPath(const std::string& txn_id) const;
  // The check that fences a write; kFailedPrecondition before RaiseEpoch.
  Result<ZkOp> EpochCheck();
  // Runs `ops` after the epoch check, atomically.
  Status FencedMulti(std::vector<ZkOp> ops);
  // After a refused multi: kFenced if the epoch moved on; `refused` only once
  // the epoch is seen to be ours still (so another op was refused: a record
  // exists); kUnavailable when the epoch cannot be read, since then nobody
  // can tell which of the two it was.
  Status ExplainRefusal(const Status& refused);

  void WriterLoop();
  // Sets each pending's status.
  // A batch's multi whose outcome is unknown (kUnavailable): waits for the
  // session to reconnect, reads whether its records exist, and sends it
  // again if not. Still kUnavailable (unknown) once the session expired or
  // twice its timeout passed without ZooKeeper.
  Result<std::vector<ZkOpResult>> SettleUnknownBatch(const std::vector<ZkOp>& ops,
                                                     Status unknown);
  void WriteCommits(const std::vector<PendingCommit*>& batch);
  // false if the ENDs should be tried again later.
  bool WriteEnds(const std::vector<std::string>& ends);

  ZkSession* const session_;
  const ZooKeeperJournalOptions options_;
  const std::string epoch_path_;

  std::mutex mu_;  // guards everything below
  std::optional<int32_t> epoch_version_;  // of the epoch znode after our raise
  std::condition_variable writer_cv_;     // work queued or stop_ set
  std::condition_variable done_cv_;       // a batch finished
  std::deque<PendingCommit*> commits_;
  std::vector<std::string> ends_;
  std::chrono::steady_clock::time_point ends_deadline_;
  bool stop_ = false;
  JournalStats stats_;

  std::thread writer_;
};

}  // namespace pact
