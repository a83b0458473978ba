// Fences that cannot be forged: in the quick-start configuration (loopback,
// no TLS, no tokens) a stranger who reaches a participant's port sends
// fenced calls with a made-up epoch of the real coordinator, or a made-up
// coordinator. Each is refused and none is stored, so the real coordinator
// keeps committing, across restarts of the participant and of itself.
#include <signal.h>

#include <optional>

#include "gen-cpp/Participant.h"
#include "rpc/rpc_client.h"
#include "tests/bank_fixture.h"

namespace pact {
namespace {

constexpr int64_t kForgedEpoch = 1000000000000;  // 10^12

class ForgedFenceTest : public BankTest {
 protected:
  RpcConnection<rpc::ParticipantClient> Stranger(const std::string& participant) {
    return RpcConnection<rpc::ParticipantClient>(
        Endpoint{"127.0.0.1", cluster_.participant_port(participant)}, RpcTimeouts{});
  }
  static rpc::Fence MakeFence(const std::string& coordinator, int64_t epoch) {
    rpc::Fence fence;
    fence.coordinator = coordinator;
    fence.epoch = epoch;
    return fence;
  }

  // Every fenced call of the Participant service, with `fence`, straight to
  // the participant's port: each must be refused with `code`.
  void ExpectEveryFencedCallRefused(const std::string& participant, const rpc::Fence& fence,
                                    StatusCode code, const std::string& message) {
    auto conn = Stranger(participant);
    const std::string what = participant + " fence {" + fence.coordinator + ", " +
                             std::to_string(fence.epoch) + "}";
    // A transaction of the fence's coordinator: another's is refused before
    // the fence is even looked at.
    const std::string txn = fence.coordinator + ".1.1";
    Status st = conn.Call([&](rpc::ParticipantClient& c) { c.rollback(fence, txn); });
    EXPECT_EQ(st.code(), code) << what << " rollback: " << st.ToString();
    EXPECT_NE(st.message().find(message), std::string::npos) << st.ToString();
    st = conn.Call([&](rpc::ParticipantClient& c) { c.prepare(fence, txn, "forged.1"); });
    EXPECT_EQ(st.code(), code) << what << " prepare: " << st.ToString();
    st = conn.Call([&](rpc::ParticipantClient& c) { c.commit(fence, txn, true); });
    EXPECT_EQ(st.code(), code) << what << " commit: " << st.ToString();
    st = conn.Call([&](rpc::ParticipantClient& c) { c.commit(fence, txn, false); });
    EXPECT_EQ(st.code(), code) << what << " commit: " << st.ToString();
    std::vector<rpc::BranchInfo> branches;
    st = conn.Call([&](rpc::ParticipantClient& c) { c.recover(branches, fence); });
    EXPECT_EQ(st.code(), code) << what << " recover: " << st.ToString();
  }

  // The forgeries of the real coordinator's name and of a stranger's, at
  // every participant.
  void Forge() {
    for (const char* bank : {"bank_a", "bank_b"}) {
      ExpectEveryFencedCallRefused(bank, MakeFence("c1", kForgedEpoch), StatusCode::kFenced,
                                   "epoch 1000000000000 of coordinator c1 is not the one "
                                   "serving at " +
                                       cluster_.coordinator_address());
      ExpectEveryFencedCallRefused(bank, MakeFence("mallory", 1), StatusCode::kFenced,
                                   "coordinator 'mallory' is not the one this participant "
                                   "serves ('c1' at " +
                                       cluster_.coordinator_address() + ")");
    }
  }

  // What the participant's state store holds for `coordinator` (read from
  // its file, as any reader of it could), or nothing.
  std::optional<int64_t> StoredEpoch(const std::string& participant,
                                     const std::string& coordinator) {
    auto epoch = QueryInt(dir_.File(participant + "-state.db"),
                          "SELECT epoch FROM fences WHERE coordinator = '" + coordinator + "'");
    if (epoch.status().code() == StatusCode::kNotFound) return std::nullopt;
    EXPECT_TRUE(epoch.ok()) << epoch.status().ToString();
    return epoch.ok() ? std::optional<int64_t>(*epoch) : std::nullopt;
  }
  void ExpectStored(int64_t c1_epoch) {
    for (const char* bank : {"bank_a", "bank_b"}) {
      EXPECT_EQ(StoredEpoch(bank, "c1"), c1_epoch) << bank;
      EXPECT_EQ(StoredEpoch(bank, "mallory"), std::nullopt) << bank;
    }
  }

  void ExpectTransferCommits() {
    auto client = Connect();
    int64_t a = Balance("bank_a", 1), b = Balance("bank_b", 1);
    auto txn = PrepareTransfer(*client, 5);
    ASSERT_TRUE(txn);
    Status st = txn->Commit();
    EXPECT_TRUE(st.ok()) << st.ToString();
    EXPECT_EQ(Balance("bank_a", 1), a - 5);
    EXPECT_EQ(Balance("bank_b", 1), b + 5);
  }

  void RestartParticipant(const std::string& name) {
    cluster_.participant(name).Signal(SIGKILL);
    ASSERT_GE(cluster_.participant(name).WaitForExit(10000), 0);
    Status st = cluster_.StartParticipant(name);
    ASSERT_TRUE(st.ok()) << st.ToString();
  }
  void RestartCoordinator() {
    cluster_.coordinator().Signal(SIGKILL);
    ASSERT_GE(cluster_.coordinator().WaitForExit(10000), 0);
    Status st = cluster_.StartCoordinator();
    ASSERT_TRUE(st.ok()) << st.ToString();
  }
};

TEST_F(ForgedFenceTest, ForgedFencesAreRefusedAndTheRealCoordinatorKeepsCommitting) {
  ExpectTransferCommits();  // both participants admitted c1's epoch 1 (confirmed)
  ExpectStored(1);
  Forge();
  ExpectStored(1);
  ExpectTransferCommits();

  // The state store is on disk: what a restart reads back is still epoch 1.
  RestartParticipant("bank_a");
  ExpectStored(1);
  ExpectTransferCommits();

  // A real restart raises c1's epoch: confirmed with the coordinator and
  // admitted, and the forgeries (of the old and the new epoch's successor)
  // are still refused.
  RestartCoordinator();
  ExpectTransferCommits();
  ExpectStored(2);
  Forge();
  ExpectEveryFencedCallRefused("bank_a", MakeFence("c1", 3), StatusCode::kFenced,
                               "epoch 3 of coordinator c1 is not the one serving at " +
                                   cluster_.coordinator_address() + " (epoch 2)");
  ExpectStored(2);
  ExpectTransferCommits();
  RestartParticipant("bank_b");
  ExpectTransferCommits();
  EXPECT_TRUE(cluster_.EventuallyNoOpenBranches());
  EXPECT_EQ(Total("bank_a") + Total("bank_b"), 6 * kInitialBalance);
}

// While the coordinator is down nobody can confirm a raise: the forgery is
// UNAVAILABLE (nothing stored), and the coordinator's next run is admitted.
TEST_F(ForgedFenceTest, RaiseWhileTheCoordinatorIsDownIsUnavailableAndStoresNothing) {
  ExpectTransferCommits();
  cluster_.coordinator().Signal(SIGKILL);
  ASSERT_GE(cluster_.coordinator().WaitForExit(10000), 0);
  auto conn = Stranger("bank_a");
  rpc::Fence forged = MakeFence("c1", kForgedEpoch);
  Status st = conn.Call([&](rpc::ParticipantClient& c) { c.rollback(forged, "c1.1.1"); });
  EXPECT_EQ(st.code(), StatusCode::kUnavailable) << st.ToString();
  ExpectStored(1);
  ASSERT_TRUE(cluster_.StartCoordinator().ok());
  ExpectTransferCommits();
  ExpectStored(2);
}

}  // namespace
}  // namespace pact
