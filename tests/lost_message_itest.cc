// The lost-message matrix: every protocol call (reserving ids, execute,
// prepare, commit, one-phase commit, rollback, recover at a coordinator
// restart, outcome inquiry after a participant restart) x one message lost (the
// request, the reply, or the connection reset right after the request) x a
// transaction that commits or one that aborts. A FaultProxy on every link
// loses exactly one message of that call; the real binaries run over two
// SQLite participants, lite1 and lite2 (one-phase cases over lite1 alone).
//
// Each case checks what a user relies on: every participant ended the same
// way; that way is what the client was told (OK: applied everywhere; ABORTED
// or TIMED_OUT: nowhere; UNAVAILABLE: either, and `status` and pactctl agree
// once settled); money is conserved; nothing is left open or prepared; the
// cluster still commits; the journal holds nothing unfinished.
#include <gtest/gtest.h>
#include <signal.h>

#include <cstdlib>
#include <iostream>
#include <optional>
#include <tuple>

#include "client/pact_client.h"
#include "common/crash_point.h"
#include "tests/process_harness.h"

namespace pact {
namespace {

enum class Call {
  kReserve,
  kExecute,
  kPrepare,
  kCommit,
  kOnePhaseCommit,
  kRollback,
  kRecover,
  kOutcome
};
enum class Loss { kRequest, kReply, kReset };
enum class Kind { kCommit, kAbort };

const char* CallName(Call call) {
  switch (call) {
    case Call::kReserve:
      return "Reserve";
    case Call::kExecute:
      return "Execute";
    case Call::kPrepare:
      return "Prepare";
    case Call::kCommit:
      return "Commit";
    case Call::kOnePhaseCommit:
      return "OnePhaseCommit";
    case Call::kRollback:
      return "Rollback";
    case Call::kRecover:
      return "Recover";
    case Call::kOutcome:
      return "Outcome";
  }
  return "?";
}
const char* LossName(Loss loss) {
  switch (loss) {
    case Loss::kRequest:
      return "RequestLost";
    case Loss::kReply:
      return "ReplyLost";
    case Loss::kReset:
      return "ConnectionReset";
  }
  return "?";
}
const char* KindName(Kind kind) { return kind == Kind::kCommit ? "Committing" : "Aborting"; }
void PrintTo(Call call, std::ostream* os) { *os << CallName(call); }
void PrintTo(Loss loss, std::ostream* os) { *os << LossName(loss); }
void PrintTo(Kind kind, std::ostream* os) { *os << KindName(kind); }

// The Thrift method that carries the call.
const char* Method(Call call) {
  switch (call) {
    case Call::kReserve:
      return "reserveTxnIds";
    case Call::kExecute:
      return "execute";
    case Call::kPrepare:
      return "prepare";
    case Call::kCommit:
    case Call::kOnePhaseCommit:
      return "commit";
    case Call::kRollback:
      return "rollback";
    case Call::kRecover:
      return "recover";
    case Call::kOutcome:
      return "outcome";
  }
  return "?";
}

Fault FaultFor(Loss loss) {
  switch (loss) {
    case Loss::kRequest:
      return Fault::kDropRequest;
    case Loss::kReply:
      return Fault::kDropReply;
    case Loss::kReset:
      return Fault::kResetAfterRequest;
  }
  return Fault::kDropRequest;
}

// A statement runs inside the transaction: a lost execute is lost before the
// application decides.
bool BeforeCommit(Call call) { return call == Call::kExecute; }

// Whether the lost call happens at all in this kind of transaction: an
// aborting one never sends commit, a committing one never sends rollback.
bool Reached(Call call, Kind kind) {
  if (call == Call::kCommit) return kind == Kind::kCommit;
  if (call == Call::kRollback) return kind == Kind::kAbort;
  return true;
}

// The outcome a user must get, where only one is right: an aborting
// transaction never commits, and a COMMIT decision made durable before the
// loss always does. Elsewhere either is right, as long as it is the same
// everywhere and what the client was told.
std::optional<bool> MustCommit(Call call, Kind kind) {
  if (kind == Kind::kAbort) return false;
  // A lost reservation fails a Begin before any work: the next one works.
  if (call == Call::kReserve) return true;
  if (call == Call::kCommit || call == Call::kRecover || call == Call::kOutcome) return true;
  return std::nullopt;
}

using LostCase = std::tuple<Call, Loss, Kind>;

class LostMessageTest : public ::testing::TestWithParam<LostCase> {
 protected:
  static constexpr int kAccounts = 3;
  static constexpr int64_t kInitial = 100;
  static constexpr int64_t kAmount = 30;
  static constexpr int64_t kMoney = 2 * kAccounts * kInitial;
  static constexpr int64_t kTxnTimeoutMs = 8000;
  static constexpr int kSettleMs = 10000;
  // A lost message costs one call timeout: keep them short. The client waits
  // longer than the coordinator, so a commit that lost one prepare (or
  // commit, or rollback) still gets its answer.
  static constexpr int kCallTimeoutMs = 1000;
  static constexpr int kClientCallTimeoutMs = 3500;

  void SetUp() override {
    cluster_.ProxyEveryLink();
    const std::string timeout = "--rpc_timeout_ms=" + std::to_string(kCallTimeoutMs);
    cluster_.coordinator_flags = {"--prepare_timeout_ms=" + std::to_string(kCallTimeoutMs),
                                  timeout,
                                  "--rpc_connect_timeout_ms=500",
                                  "--commit_retry_initial_ms=50",
                                  "--commit_retry_max_ms=200",
                                  "--shutdown_grace_ms=3000"};
    cluster_.participant_flags = {"--inquiry_interval_ms=200", timeout,
                                  "--rpc_connect_timeout_ms=500"};
    for (const char* p : {"lite1", "lite2"}) {
      Status st = CreateSqliteBank(cluster_.db_path(p), kAccounts);
      ASSERT_TRUE(st.ok()) << st.ToString();
    }
  }

  void TearDown() override {
    if (!HasFailure()) return;
    for (const char* log : {"coordinator", "lite1", "lite2"}) {
      std::cout << "---- " << log << ".log\n" << LogTail(dir_.File(std::string(log) + ".log"), 30);
    }
    if (const char* keep = std::getenv("PACT_KEEP_FAILED_DIR")) {
      std::string cmd = std::string("cp -r ") + dir_.path() + " " + keep;
      (void)!std::system(cmd.c_str());
    }
  }

  std::unique_ptr<Client> Connect(const std::string& address) {
    ClientOptions options;
    options.timeouts = RpcTimeouts{500, kClientCallTimeoutMs};
    auto client = Client::Connect(address, options);
    EXPECT_TRUE(client.ok()) << client.status().ToString();
    return client.ok() ? std::move(*client) : nullptr;
  }

  // The link and proxy that lose the call's message.
  FaultProxy& LinkOf(Call call) {
    switch (call) {
      case Call::kReserve:
        return cluster_.client_proxy();
      case Call::kExecute:
        return cluster_.to_participant("lite2");
      case Call::kOutcome:
        return cluster_.from_participant("lite1");
      default:
        return cluster_.to_participant("lite1");
    }
  }

  int64_t Query(const std::string& participant, const std::string& sql) {
    auto v = QueryInt(cluster_.db_path(participant), sql);
    EXPECT_TRUE(v.ok()) << participant << ": " << v.status().ToString();
    return v.ok() ? *v : -1;
  }
  int64_t Balance(const std::string& participant, int64_t account) {
    return Query(participant, "SELECT balance FROM accounts WHERE id = " + std::to_string(account));
  }
  int64_t Money() {
    return Query("lite1", "SELECT SUM(balance) FROM accounts") +
           Query("lite2", "SELECT SUM(balance) FROM accounts");
  }

  // A row whose foreign key fails at prepare (or at a one-phase commit): the
  // participant votes ABORT.
  Status AddDanglingLedgerRow(Transaction& txn, const std::string& participant) {
    return txn.Execute(participant, "INSERT INTO ledger(account, amount) VALUES (99, 1)").status();
  }

  // The transfer: lite1's account 1 pays kAmount to lite2's account 1 (to
  // lite1's account 2 in a one-phase case). Returns what the application
  // was told at the end: Commit's answer, or ABORTED when it rolled back
  // after a failed statement (and Rollback said OK).
  Status RunTransfer(Client& client, Call call, Kind kind) {
    auto txn = client.Begin(kTxnTimeoutMs);
    if (call == Call::kReserve) {
      // The reservation was lost: Begin says so, and the next one reserves
      // afresh (ids of a block whose answer was lost never become anything).
      EXPECT_EQ(txn.status().code(), StatusCode::kUnavailable) << txn.status().ToString();
      txn = client.Begin(kTxnTimeoutMs);
    }
    if (!txn.ok()) return txn.status().WithContext("begin");
    txn_id_ = (*txn)->id();
    const bool one_phase = call == Call::kOnePhaseCommit;
    const std::string payee = one_phase ? "lite1" : "lite2";
    const int64_t payee_account = one_phase ? 2 : 1;
    auto debit = (*txn)->Execute("lite1", "UPDATE accounts SET balance = balance - ?1 WHERE id = 1",
                                 {kAmount});
    EXPECT_TRUE(debit.ok()) << debit.status().ToString();
    auto credit = (*txn)->Execute(payee, "UPDATE accounts SET balance = balance + ?1 WHERE id = ?2",
                                  {kAmount, payee_account});
    execute_status_ = credit.status();
    if (BeforeCommit(call)) {
      // Lost on purpose. An application that saw the statement fail either
      // rolls back or asks to commit anyway; neither may commit half of it.
      EXPECT_FALSE(credit.ok()) << "the lost " << Method(call) << " went unnoticed";
      if (kind == Kind::kCommit) return (*txn)->Commit();
      Status rolled_back = (*txn)->Rollback();
      return rolled_back.ok() ? Status::Aborted("rolled back by the application") : rolled_back;
    }
    EXPECT_TRUE(credit.ok()) << credit.status().ToString();
    if (kind == Kind::kAbort) {
      Status st = AddDanglingLedgerRow(**txn, payee);
      EXPECT_TRUE(st.ok()) << st.ToString();
    }
    return (*txn)->Commit();
  }

  // Recover: the coordinator dies at a crash point during commit and its
  // restart (unarmed) calls recover on every participant.
  Status RunWithCoordinatorRestart(Client& client, Call call, Kind kind) {
    Status told = RunTransfer(client, call, kind);
    EXPECT_EQ(cluster_.coordinator().WaitForExit(10000), kCrashExitCode)
        << "the coordinator did not crash at " << CrashPointFor(kind);
    Status st = cluster_.StartCoordinator();
    EXPECT_TRUE(st.ok()) << st.ToString();
    coordinator_restarted_ = true;
    return told;
  }
  static std::string CrashPointFor(Kind kind) {
    // Committing: the decision is durable, recovery re-drives it. Aborting:
    // lite1 is prepared, lite2 voted ABORT, nothing was decided durably.
    return kind == Kind::kCommit ? "after_decision_logged" : "after_votes_collected";
  }

  // Outcome: lite1 prepares, the decision (commit or rollback) never reaches
  // it, it is killed and restarted, and its restored branch must ask.
  // `lost` is armed just before the restart, so the restart's first inquiry
  // is the one lost.
  Status RunWithParticipantRestart(Client& client, Call call, Kind kind, const Rule& lost,
                                   RuleId* lost_id) {
    FaultProxy& to_lite1 = cluster_.to_participant("lite1");
    to_lite1.AddRule({kind == Kind::kCommit ? "commit" : "rollback", Fault::kDropRequest,
                      /*count=*/1 << 30});
    Status told = RunTransfer(client, call, kind);
    cluster_.participant("lite1").Signal(SIGKILL);
    EXPECT_EQ(cluster_.participant("lite1").WaitForExit(5000), 128 + SIGKILL);
    *lost_id = LinkOf(call).AddRule(lost);
    cluster_.participant_flags.front() = "--inquiry_interval_ms=200";
    Status st = cluster_.StartParticipant("lite1");
    EXPECT_TRUE(st.ok()) << st.ToString();
    // Only the inquiry can decide lite1's branch; once it did, the
    // coordinator's own redelivery may go through again.
    EXPECT_TRUE(LinkOf(call).WaitUntilFired(*lost_id, kSettleMs));
    EXPECT_TRUE(cluster_.EventuallyNoOpenBranches(kSettleMs))
        << "lite1's restored branch was not decided by its inquiry";
    to_lite1.ClearRules();
    return told;
  }

  std::string OpenBranchesText(const std::string& participant) {
    auto open = cluster_.OpenBranches(participant);
    return open.ok() ? ::testing::PrintToString(*open) : open.status().ToString();
  }

  // What `status` says once the transaction settled (COMMITTED or ABORTED).
  Result<TxnState> SettledState(Client& observer) {
    Result<TxnState> state = Status::Internal("not asked");
    PollUntil(
        [&] {
          state = observer.GetState(txn_id_);
          return !state.ok() || *state == TxnState::kCommitted || *state == TxnState::kAborted;
        },
        kSettleMs);
    return state;
  }

  TempDir dir_;
  TestCluster cluster_{dir_};
  std::string txn_id_;
  Status execute_status_;
  bool coordinator_restarted_ = false;
};

TEST_P(LostMessageTest, EndsTheSameEverywhereAsTheClientWasTold) {
  const auto& [call, loss, kind] = GetParam();
  const bool one_phase = call == Call::kOnePhaseCommit;
  const Rule lost{Method(call), FaultFor(loss), /*count=*/1};

  std::map<std::string, std::string> coordinator_env;
  if (call == Call::kRecover) coordinator_env["PACT_CRASH_POINT"] = CrashPointFor(kind);
  // Outcome: lite1's first incarnation must not ask by itself.
  if (call == Call::kOutcome) cluster_.participant_flags.front() = "--inquiry_interval_ms=600000";
  Status st = cluster_.StartCoordinator(coordinator_env);
  ASSERT_TRUE(st.ok()) << st.ToString();
  for (const char* p : {"lite1", "lite2"}) {
    st = cluster_.StartParticipant(p);
    ASSERT_TRUE(st.ok()) << st.ToString();
  }
  auto client = Connect(cluster_.client_address());
  auto observer = Connect(cluster_.coordinator_address());  // no proxy in between
  ASSERT_TRUE(client && observer);

  const auto start = std::chrono::steady_clock::now();
  RuleId rule = -1;
  Status told;
  if (call == Call::kOutcome) {
    told = RunWithParticipantRestart(*client, call, kind, lost, &rule);
  } else {
    rule = LinkOf(call).AddRule(lost);
    told = call == Call::kRecover ? RunWithCoordinatorRestart(*client, call, kind)
                                  : RunTransfer(*client, call, kind);
  }
  if (HasFatalFailure()) return;

  // The message was lost where the case says (or the call never happened).
  if (Reached(call, kind)) {
    EXPECT_TRUE(LinkOf(call).WaitUntilFired(rule, kSettleMs))
        << "no " << Method(call) << " passed the proxy";
  } else {
    EXPECT_EQ(LinkOf(call).Hits(rule), 0) << Method(call) << " was sent";
  }
  cluster_.ClearProxyRules();

  // Nothing is left open or prepared anywhere, within a bound.
  EXPECT_TRUE(cluster_.EventuallyNoOpenBranches(kSettleMs))
      << "branches still open: lite1 " << OpenBranchesText("lite1") << ", lite2 "
      << OpenBranchesText("lite2");
  const auto settle_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                             std::chrono::steady_clock::now() - start)
                             .count();

  // Every participant ended the same way: the debit at lite1 and the credit
  // (at lite2, or at lite1's account 2) both applied, or neither.
  const std::string payee = one_phase ? "lite1" : "lite2";
  const int64_t debited = Balance("lite1", 1), credited = Balance(payee, one_phase ? 2 : 1);
  const bool committed = debited == kInitial - kAmount;
  EXPECT_TRUE(debited == kInitial || committed) << "lite1 account 1 holds " << debited;
  EXPECT_EQ(credited, committed ? kInitial + kAmount : kInitial)
      << "the debit " << (committed ? "committed" : "rolled back") << ", the credit did not";
  EXPECT_EQ(Money(), kMoney) << "money was created or destroyed";
  EXPECT_EQ(Query(payee, "SELECT count(*) FROM ledger"), 0);

  // As the client was told.
  if (told.ok()) {
    EXPECT_TRUE(committed) << "the client was told COMMITTED, but nothing was applied";
  } else if (told.code() != StatusCode::kUnavailable) {
    EXPECT_FALSE(committed) << "the client was told " << told.ToString() << ", but it committed";
  }
  if (MustCommit(call, kind).has_value()) {
    EXPECT_EQ(committed, *MustCommit(call, kind))
        << "this loss must not change the outcome: it must "
        << (*MustCommit(call, kind) ? "commit" : "roll back");
  }
  if (kind == Kind::kAbort) {
    EXPECT_FALSE(told.ok()) << "an aborting transaction was reported COMMITTED";
  }

  // `status` and pactctl agree with the data once settled.
  Result<TxnState> state = SettledState(*observer);
  const TxnState expected = committed ? TxnState::kCommitted : TxnState::kAborted;
  if (state.ok()) {
    EXPECT_EQ(*state, expected) << "status of " << txn_id_ << " disagrees with the data";
    Ran shown =
        RunPactctl({"--coordinator", cluster_.coordinator_address(), "--json", "show", txn_id_});
    std::string state_json = "\"txn_id\":\"" + txn_id_ + "\",\"state\":\"" +
                             (committed ? "COMMITTED" : "ABORTED") + "\"";
    EXPECT_NE(shown.out.find(state_json), std::string::npos) << shown.out;
  } else {
    // Forgotten only by a restarted coordinator that never decided it.
    EXPECT_EQ(state.status().code(), StatusCode::kNotFound) << state.status().ToString();
    EXPECT_TRUE(coordinator_restarted_ && !committed)
        << "status forgot " << txn_id_ << ": " << state.status().ToString();
  }

  // Nothing stays locked: the next transfer, with no fault, commits.
  auto next = client->Begin(kTxnTimeoutMs);
  ASSERT_TRUE(next.ok()) << next.status().ToString();
  EXPECT_TRUE(
      (*next)->Execute("lite1", "UPDATE accounts SET balance = balance - 1 WHERE id = 3").ok());
  EXPECT_TRUE(
      (*next)->Execute("lite2", "UPDATE accounts SET balance = balance + 1 WHERE id = 3").ok());
  Status next_told = (*next)->Commit();
  EXPECT_TRUE(next_told.ok()) << next_told.ToString();
  EXPECT_EQ(Balance("lite1", 3), kInitial - 1);
  EXPECT_EQ(Balance("lite2", 3), kInitial + 1);
  EXPECT_TRUE(cluster_.EventuallyNoOpenBranches(kSettleMs));

  // The journal, read with the coordinator stopped, holds nothing unfinished.
  Status journal = cluster_.StopCoordinatorAndCheckJournal();
  EXPECT_TRUE(journal.ok()) << journal.ToString();

  const std::string told_name = told.ok() ? "OK" : StatusCodeName(told.code());
  RecordProperty("client_told", told_name);
  RecordProperty("outcome", committed ? "committed" : "rolled back");
  std::cout << "[ lost     ] " << CallName(call) << " " << LossName(loss) << " " << KindName(kind)
            << ": "
            << (BeforeCommit(call) ? "execute said " + execute_status_.ToString() + ", " : "")
            << "client told " << (told.ok() ? "OK" : told.ToString()) << ", outcome "
            << (committed ? "committed" : "rolled back") << ", settled in " << settle_ms << " ms\n";
}

std::string CaseName(const ::testing::TestParamInfo<LostCase>& info) {
  const auto& [call, loss, kind] = info.param;
  return std::string(CallName(call)) + "_" + LossName(loss) + "_" + KindName(kind);
}

INSTANTIATE_TEST_SUITE_P(
    EveryCall, LostMessageTest,
    ::testing::Combine(::testing::Values(Call::kReserve, Call::kExecute, Call::kPrepare,
                                         Call::kCommit, Call::kOnePhaseCommit, Call::kRollback,
                                         Call::kRecover, Call::kOutcome),
                       ::testing::Values(Loss::kRequest, Loss::kReply, Loss::kReset),
                       ::testing::Values(Kind::kCommit, Kind::kAbort)),
    CaseName);

}  // namespace
}  // namespace pact
