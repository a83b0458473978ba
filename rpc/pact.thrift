// Pact wire protocol. Two services: the Coordinator (applications, participant
// adapters and pactctl call it) and the Participant (the coordinator, the
// client library and pactctl call it). Any process that implements
// Participant can be enlisted, in any language Thrift supports.

namespace cpp pact.rpc
namespace py pact_rpc

// Kept in step with pact::StatusCode (common/status.h).
enum ErrorCode {
  NOT_FOUND = 1,            // unknown transaction, branch or participant
  INVALID_ARGUMENT = 2,     // malformed request or SQL
  FAILED_PRECONDITION = 3,  // wrong state for the call (e.g. execute after commit)
  ABORTED = 4,              // the transaction was rolled back
  TIMED_OUT = 5,            // a deadline passed
  UNAVAILABLE = 6,          // a peer did not answer; the outcome is unknown
  IO_ERROR = 7,             // local storage failed
  FENCED = 8,               // the caller's coordinator epoch is superseded
  CORRUPTION = 9,
  BUSY = 10,                // the resource is held by another transaction
  INTERNAL = 11,
  HEURISTIC_MIXED = 12,     // an operator decided the branch the other way
  UNAUTHENTICATED = 13,     // the caller did not prove who it is (no or unknown token)
  PERMISSION_DENIED = 14,   // the caller's role may not make this call; nothing changed
  NOT_LEADER = 15,          // a standby coordinator: ask the shard's active (PactError.leader)
}

exception PactError {
  1: ErrorCode code,
  2: string message,
  // execute only: the opening of the branch the failed statement ran in
  // (ExecuteResult.branch), when one is open, so that the client can still
  // name it at commit or rollback.
  3: optional string branch,
  // NOT_LEADER only: host:port of the shard's active coordinator, when known.
  4: optional string leader,
}

// ---------------------------------------------------------------- SQL values

enum ValueType { NULL_VALUE = 0, INTEGER = 1, REAL = 2, TEXT = 3, BLOB = 4 }

struct Value {
  1: ValueType type,
  2: optional i64 integer_value,
  3: optional double real_value,
  4: optional string text_value,
  5: optional binary blob_value,
}

struct ExecuteResult {
  1: list<string> columns,
  2: list<list<Value>> rows,
  3: i64 affected_rows,
  // The participant's name for this opening of the transaction's branch,
  // unique per participant process run ("<random run id>.<counter>"). The
  // client hands it to commitTxn; a different name for the same participant
  // within one transaction means the first opening's work is gone (the
  // participant restarted, or rolled the branch back), so the transaction
  // can only abort.
  4: string branch,
}

// ---------------------------------------------------------------- protocol

// Who is calling a participant: a participant refuses any epoch lower than the
// highest it has seen for that coordinator name, so a replaced coordinator can
// never decide anything.
struct Fence {
  1: string coordinator,
  2: i64 epoch,
}

enum Vote { COMMIT = 1, ABORT = 2, READ_ONLY = 3 }

// The coordinator's view of a transaction.
enum TxnState {
  ACTIVE = 1,      // begun; branches may still be enlisted and executed
  PREPARING = 2,   // commit requested; votes being collected
  COMMITTING = 3,  // COMMIT decision durable; branches being told
  COMMITTED = 4,   // every branch acknowledged the commit
  ABORTING = 5,    // rolling back; branches being told
  ABORTED = 6,     // rolled back everywhere it had reached
}

// What a coordinator answers a participant holding a prepared branch.
enum Outcome { COMMITTED = 1, ABORTED = 2, ACTIVE = 3 }

// ---------------------------------------------------------------- participant

enum BranchState { ACTIVE = 1, PREPARED = 2 }

struct BranchInfo {
  1: string txn_id,
  2: BranchState state,
  3: i64 age_ms,              // since the branch began (ACTIVE) or prepared
  4: optional i64 deadline_in_ms,  // ACTIVE only: rolled back by itself after this
}

struct HeuristicInfo {
  1: string txn_id,
  2: string participant,
  3: bool committed,          // what the operator did at the participant
  4: string decision,         // the coordinator's decision: "COMMIT", "ABORT" or "" (unknown yet)
  5: i64 at_ms,               // wall clock of the heuristic decision (or of the report)
}

struct ParticipantInfo {
  1: string name,
  2: string backend,          // "sqlite", ...
}

// ---------------------------------------------------------------- batches

// The coordinator sends the prepares (commits, rollbacks) that concurrent
// transactions have for one participant in one call. A batch holds at most
// MAX_BATCH_ITEMS items; a participant refuses an empty or larger one with
// INVALID_ARGUMENT. Each item is run as its single call would be and gets
// the answer that call would: one item's failure is never another's.
const i32 MAX_BATCH_ITEMS = 1024

struct PrepareItem {
  1: string txn_id,
  2: string branch,           // the opening the client reported, as in prepare
}

// Exactly one field set: the vote, or the error the single prepare would throw.
struct PrepareAnswer {
  1: optional Vote vote,
  2: optional PactError error,
}

// No error: done, as when the single call returns.
struct BatchAnswer {
  1: optional PactError error,
}

// Every call may fail with UNAUTHENTICATED or PERMISSION_DENIED: who may call
// what is in the README ("Security model").

service Participant {
  // Without TLS, on a server that has tokens: presents this connection's
  // token (once, before other calls); the connection then holds its role.
  // A no-op with TLS (the certificate says who the caller is) or without tokens.
  void authenticate(1: string token) throws (1: PactError error),

  ParticipantInfo info() throws (1: PactError error),

  // Runs one statement inside the transaction's branch, opening the branch on
  // first use. timeout_ms: what is left of the transaction's time; a branch
  // not prepared by then rolls back by itself (taken when the branch opens).
  // The coordinator hears of the branch only from the client's commitTxn: a
  // branch it is never told about times out here and is never prepared.
  ExecuteResult execute(1: string txn_id, 2: string sql, 3: list<Value> params,
                        4: i64 timeout_ms) throws (1: PactError error),

  // The client gives up its branch opened as `branch` (the name execute
  // answered: only the client that ran the statements knows it) when it
  // cannot reach the coordinator to roll back. Rolls back an active branch;
  // a prepared one is refused with FAILED_PRECONDITION (only its coordinator
  // decides it); one already gone is OK. Safe at any time: a branch rolled
  // back before its prepare only makes the transaction abort.
  void abandon(1: string txn_id, 2: string branch) throws (1: PactError error),

  // Makes the branch durable and votes. COMMIT means it will commit whatever
  // happens to this process until told otherwise. `branch` is the opening the
  // client reported (ExecuteResult.branch): a branch opened under another
  // name, or none, votes ABORT, since the work the client saw is gone.
  Vote prepare(1: Fence fence, 2: string txn_id, 3: string branch)
      throws (1: PactError error),

  // Idempotent: committing a committed branch succeeds. With one_phase the
  // branch was never prepared and the participant decides.
  void commit(1: Fence fence, 2: string txn_id, 3: bool one_phase)
      throws (1: PactError error),

  // Idempotent: rolling back an unknown or rolled-back branch succeeds.
  void rollback(1: Fence fence, 2: string txn_id) throws (1: PactError error),

  // Prepared branches, for the fenced coordinator's recovery.
  list<BranchInfo> recover(1: Fence fence) throws (1: PactError error),

  // Every open branch (active and prepared), for operators.
  list<BranchInfo> listBranches() throws (1: PactError error),

  // Heuristic decision by an operator whose coordinator is lost: commits or
  // rolls back a prepared branch here and records that it did. If the
  // coordinator later decides the other way, the mix is reported to it.
  void resolve(1: string txn_id, 2: bool commit) throws (1: PactError error),

  // Heuristic decisions not yet reconciled with their coordinator.
  list<HeuristicInfo> listHeuristics() throws (1: PactError error),

  // An operator dealt with the heuristic decision: stop reporting it.
  void forgetHeuristic(1: string txn_id) throws (1: PactError error),

  // Batches of prepare, commit (two-phase only) and rollback: one answer per
  // item, in the items' order. A failure of the whole call (a lost reply)
  // leaves every item's outcome unknown, as for a lost single reply.
  list<PrepareAnswer> prepareBatch(1: Fence fence, 2: list<PrepareItem> items)
      throws (1: PactError error),
  list<BatchAnswer> commitBatch(1: Fence fence, 2: list<string> txn_ids)
      throws (1: PactError error),
  list<BatchAnswer> rollbackBatch(1: Fence fence, 2: list<string> txn_ids)
      throws (1: PactError error),
}

// ---------------------------------------------------------------- coordinator

struct BeginResult {
  1: string txn_id,
  2: i64 timeout_ms,
}

// Transaction ids a client may begin with, without asking again:
// "<coordinator>.<epoch>.<seq>" for seq in [first_seq, first_seq + count).
// Each is used for one transaction, begun within valid_ms of the answer.
struct IdBlock {
  1: string coordinator,
  2: i64 epoch,
  3: i64 first_seq,
  4: i32 count,
  5: i64 valid_ms,
  6: i64 default_timeout_ms,  // a transaction's time unless the client asks otherwise
  7: i64 max_timeout_ms,
}

// A branch the client opened: the participant and its name for the opening
// (ExecuteResult.branch).
struct EnlistedBranch {
  1: string participant,
  2: string branch,
}

struct CommitResult {
  1: TxnState state,          // COMMITTED or ABORTED
  2: string reason,           // why it aborted, empty when committed
}

struct BranchStatus {
  1: string participant,
  2: optional Vote vote,
  3: string state,            // "enlisted", "prepared", "committed", "commit pending", ...
  4: i32 attempts,
  5: string last_error,
}

struct TxnStatus {
  1: string txn_id,
  2: TxnState state,
  3: list<BranchStatus> branches,
  4: i64 age_ms,
  5: i64 deadline_in_ms,      // negative once passed
  6: string reason,
}

struct ParticipantEndpoint {
  1: string name,
  2: string host,
  3: i32 port,
  4: string backend,
}

struct CoordinatorInfo {
  1: string name,
  2: i64 epoch,
  3: bool ready,              // recovery finished; new work accepted
}

service Coordinator {
  // As Participant.authenticate.
  void authenticate(1: string token) throws (1: PactError error),

  CoordinatorInfo info() throws (1: PactError error),

  // Begins one transaction, visible to status at once. timeout_ms <= 0 takes
  // the coordinator's default transaction timeout.
  BeginResult beginTxn(1: i64 timeout_ms) throws (1: PactError error),

  // Reserves up to `count` transaction ids: a client that begins many
  // transactions begins each without a round trip. A reserved id becomes a
  // transaction when its commitTxn or rollbackTxn arrives.
  IdBlock reserveTxnIds(1: i32 count) throws (1: PactError error),

  // Runs two-phase commit over `branches`: every branch the client opened
  // (it learned each name from execute). Idempotent: asking again returns
  // the same outcome. return_at_decision: answer COMMITTED as soon as the
  // decision is durable and finish phase two in the background (a read at a
  // participant right after may still find the branch prepared); false (the
  // default) answers once every branch acknowledged.
  CommitResult commitTxn(1: string txn_id, 2: bool return_at_decision,
                         3: list<EnlistedBranch> branches) throws (1: PactError error),

  // Rolls back a transaction not decided yet and tells `branches`;
  // idempotent for an aborted one.
  void rollbackTxn(1: string txn_id, 2: list<EnlistedBranch> branches)
      throws (1: PactError error),

  TxnStatus status(1: string txn_id) throws (1: PactError error),

  // A participant holding a prepared branch asks what became of it.
  Outcome outcome(1: string txn_id) throws (1: PactError error),

  void registerParticipant(1: ParticipantEndpoint participant) throws (1: PactError error),
  list<ParticipantEndpoint> listParticipants() throws (1: PactError error),

  // Transactions the coordinator holds in memory (open and recently finished)
  // plus unfinished journal decisions; only those in `states` unless empty.
  list<TxnStatus> listTransactions(1: list<TxnState> states) throws (1: PactError error),

  // Counters since start: transactions begun/committed/aborted/timed out,
  // journal commit records and fsync batches, commit latency percentiles.
  map<string, i64> stats() throws (1: PactError error),

  // Retries the pending commits of a COMMITTING transaction now.
  void retryCommit(1: string txn_id) throws (1: PactError error),

  // Refused while the participant may still hold branches: while this
  // coordinator has unfinished transactions with it, or (unless force) while
  // it holds branches or cannot be asked.
  void removeParticipant(1: string name, 2: bool force) throws (1: PactError error),

  // A participant tells that an operator decided a branch heuristically in a
  // way that disagrees with the coordinator's decision. Journaled.
  void reportHeuristic(1: HeuristicInfo heuristic) throws (1: PactError error),

  // Heuristic mixes the journal holds, until an operator forgets them.
  list<HeuristicInfo> listHeuristics() throws (1: PactError error),
  // Forgets them here and at the participants involved (best effort).
  void forgetHeuristic(1: string txn_id) throws (1: PactError error),
}
