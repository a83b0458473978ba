// ThriftParticipants with batching against an in-process Thrift server: a
// participant with the batch methods gets one batch, and one without them
// (it answers UNKNOWN_METHOD, as a participant built before them does) gets
// the same calls one by one, every caller answered.
#include <gtest/gtest.h>

#include <future>
#include <mutex>
#include <vector>

#include <thrift/TApplicationException.h>

#include "cluster/ports.h"
#include "cluster/wait_until.h"
#include "coordinator/thrift_participants.h"
#include "gen-cpp/Participant.h"
#include "rpc/rpc_server.h"
#include "tests/call_gate.h"

namespace pact {
namespace {

// Votes COMMIT on everything. While held, a single prepare waits, so that the
// calls behind it queue in the coordinator's batcher.
class VotingParticipant : public rpc::ParticipantIf {
 public:
  void Hold() { gate_.Close(); }
  void Release() { gate_.Open(); }
  int singles() {
    std::lock_guard<std::mutex> lock(mu_);
    return singles_;
  }
  std::vector<size_t> batches() {
    std::lock_guard<std::mutex> lock(mu_);
    return batches_;
  }

  rpc::Vote::type prepare(const rpc::Fence&, const std::string&, const std::string&) override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      singles_++;
    }
    gate_.Pass();
    return rpc::Vote::COMMIT;
  }
  void prepareBatch(std::vector<rpc::PrepareAnswer>& out, const rpc::Fence&,
                    const std::vector<rpc::PrepareItem>& items) override {
    std::lock_guard<std::mutex> lock(mu_);
    batches_.push_back(items.size());
    for (size_t i = 0; i < items.size(); ++i) out.push_back(PrepareAnswerToRpc(Vote::kCommit));
  }
  void authenticate(const std::string&) override {}
  void info(rpc::ParticipantInfo&) override {}
  void execute(rpc::ExecuteResult&, const std::string&, const std::string&,
               const std::vector<rpc::Value>&, int64_t) override {}
  void abandon(const std::string&, const std::string&) override {}
  void commit(const rpc::Fence&, const std::string&, bool) override {}
  void rollback(const rpc::Fence&, const std::string&) override {}
  void recover(std::vector<rpc::BranchInfo>&, const rpc::Fence&) override {}
  void listBranches(std::vector<rpc::BranchInfo>&) override {}
  void resolve(const std::string&, bool) override {}
  void listHeuristics(std::vector<rpc::HeuristicInfo>&) override {}
  void forgetHeuristic(const std::string&) override {}
  void commitBatch(std::vector<rpc::BatchAnswer>&, const rpc::Fence&,
                   const std::vector<std::string>&) override {}
  void rollbackBatch(std::vector<rpc::BatchAnswer>&, const rpc::Fence&,
                     const std::vector<std::string>&) override {}

 private:
  CallGate gate_;
  std::mutex mu_;
  int singles_ = 0;             // guarded by mu_
  std::vector<size_t> batches_;  // guarded by mu_; the size of each
};

// The generated processor without the batch methods: it answers them as
// the generated code answers any method it does not know (UNKNOWN_METHOD),
// without running anything.
class ProcessorWithoutBatches : public rpc::ParticipantProcessor {
 public:
  using ParticipantProcessor::ParticipantProcessor;

 protected:
  bool dispatchCall(apache::thrift::protocol::TProtocol* in,
                    apache::thrift::protocol::TProtocol* out, const std::string& method,
                    int32_t seqid, void* context) override {
    const std::string suffix = "Batch";
    if (method.size() < suffix.size() ||
        method.compare(method.size() - suffix.size(), suffix.size(), suffix) != 0) {
      return ParticipantProcessor::dispatchCall(in, out, method, seqid, context);
    }
    in->skip(apache::thrift::protocol::T_STRUCT);
    in->readMessageEnd();
    in->getTransport()->readEnd();
    apache::thrift::TApplicationException unknown(
        apache::thrift::TApplicationException::UNKNOWN_METHOD,
        "Invalid method name: '" + method + "'");
    out->writeMessageBegin(method, apache::thrift::protocol::T_EXCEPTION, seqid);
    unknown.write(out);
    out->writeMessageEnd();
    out->getTransport()->writeEnd();
    out->getTransport()->flush();
    return true;
  }
};

class ThriftParticipantsTest : public ::testing::TestWithParam<bool> {
 protected:
  void SetUp() override {
    handler_ = std::make_shared<VotingParticipant>();
    std::shared_ptr<apache::thrift::TProcessor> processor;
    if (GetParam()) {
      processor = std::make_shared<rpc::ParticipantProcessor>(handler_);
    } else {
      processor = std::make_shared<ProcessorWithoutBatches>(handler_);
    }
    port_ = FreePort();
    server_ = std::make_unique<RpcServer>(processor, "127.0.0.1", port_);
    ASSERT_TRUE(server_->Start().ok());
    participants_.SetFence({"c1", 1});
    participants_.SetEndpoint("p1", "127.0.0.1", port_);
  }
  void TearDown() override {
    if (server_) server_->Stop();
  }

  std::shared_ptr<VotingParticipant> handler_;
  int port_ = 0;
  std::unique_ptr<RpcServer> server_;
  ThriftParticipants participants_{RpcTimeouts{}, RpcCredentials{}, /*max_batch=*/64};
};

TEST_P(ThriftParticipantsTest, QueuedPreparesGoAsOneBatchOrOneByOneAndAllAreAnswered) {
  const bool has_batches = GetParam();
  handler_->Hold();
  auto first =
      std::async(std::launch::async, [&] { return participants_.Prepare("p1", "a", "run1.1", 5000); });
  ASSERT_TRUE(PollUntil([&] { return handler_->singles() == 1; }, 5000, 1));
  std::vector<std::future<Result<Vote>>> queued;
  for (int i = 0; i < 4; ++i) {
    queued.push_back(std::async(std::launch::async, [&, i] {
      return participants_.Prepare("p1", "t" + std::to_string(i), "run1.1", 5000);
    }));
  }
  ASSERT_TRUE(PollUntil([&] { return participants_.batcher()->waiting() == 4; }, 5000, 1));
  handler_->Release();
  auto vote = first.get();
  ASSERT_TRUE(vote.ok()) << vote.status().ToString();
  for (auto& call : queued) {
    auto v = call.get();
    ASSERT_TRUE(v.ok()) << v.status().ToString();
    EXPECT_EQ(*v, Vote::kCommit);
  }
  if (has_batches) {
    EXPECT_EQ(handler_->singles(), 1);
    EXPECT_EQ(handler_->batches(), std::vector<size_t>{4});
  } else {
    EXPECT_EQ(handler_->singles(), 5);
    EXPECT_TRUE(handler_->batches().empty());
  }
}

INSTANTIATE_TEST_SUITE_P(Participant, ThriftParticipantsTest, ::testing::Bool(),
                         [](const ::testing::TestParamInfo<bool>& info) {
                           return info.param ? "WithBatchMethods" : "WithoutBatchMethods";
                         });

}  // namespace
}  // namespace pact
