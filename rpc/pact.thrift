// Pact wire protocol. Two services: the Coordinator (applications, participant
// adapters and pactctl call it) and the Participant (the coordinator, the
// client library and pactctl call it). Any process that implements
// Participant can be enlisted, in any language Thrift supports.

namespace cpp pact.rpc

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
}

exception PactError {
  1: ErrorCode code,
  2: string message,
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
  2: string branch,           // the name of the branch's opening; "" (ignored for now)
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

  // Runs one statement inside the transaction's branch, creating the branch
  // (and enlisting it with the owning coordinator) on first use.
  ExecuteResult execute(1: string txn_id, 2: string sql, 3: list<Value> params)
      throws (1: PactError error),

  // Makes the branch durable and votes. COMMIT means it will commit whatever
  // happens to this process until told otherwise.
  Vote prepare(1: Fence fence, 2: string txn_id) throws (1: PactError error),

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

  // timeout_ms <= 0 takes the coordinator's default transaction timeout.
  BeginResult beginTxn(1: i64 timeout_ms) throws (1: PactError error),

  // Adds a participant branch to an ACTIVE transaction; idempotent for one
  // `branch`. Returns the milliseconds left before the transaction's deadline.
  // `branch` names this opening of the branch, unique per participant
  // process run (e.g. "<random run id>.<counter>"). The same participant
  // enlisting the transaction under another `branch` lost the work of the
  // first (it restarted, or rolled the branch back): the transaction is then
  // doomed, the call fails with ABORTED and commit answers ABORTED.
  i64 enlist(1: string txn_id, 2: string participant, 3: string branch)
      throws (1: PactError error),

  // Runs two-phase commit. Idempotent: asking again returns the same outcome.
  // return_at_decision: answer COMMITTED as soon as the decision is durable
  // and finish phase two in the background (a read at a participant right
  // after may still find the branch prepared); false (the default) answers
  // once every branch acknowledged.
  CommitResult commitTxn(1: string txn_id, 2: bool return_at_decision)
      throws (1: PactError error),

  // Rolls back an ACTIVE transaction; idempotent for an aborted one.
  void rollbackTxn(1: string txn_id) throws (1: PactError error),

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
