// Who may call what, on the real processes: a cluster on mutual TLS, one on
// tokens, and the quick start's open one. Every refusal is checked for its
// error and for changing nothing (balances, open branches, what a later
// transfer does).
#include <gtest/gtest.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <fstream>

#include "gen-cpp/Coordinator.h"
#include "gen-cpp/Participant.h"
#include "rpc/rpc_client.h"
#include "tests/bank_fixture.h"

namespace pact {
namespace {

constexpr RpcTimeouts kTimeouts{1000, 3000};
constexpr int64_t kForgedEpoch = 1000000000000;

rpc::Fence FenceOf(const std::string& coordinator, int64_t epoch) {
  rpc::Fence fence;
  fence.coordinator = coordinator;
  fence.epoch = epoch;
  return fence;
}

// Makes certificates with the project's own helper script.
void MakeCertificates(const std::string& dir, const std::vector<std::string>& args) {
  Status st = MakeTlsCertificates(dir, args);
  ASSERT_TRUE(st.ok()) << st.ToString();
}

// A TLS client written straight on OpenSSL, which (unlike Pact's) does not
// check its own certificate first: presents `files` to 127.0.0.1:port,
// sends `frame` and returns what happened (OpenSSL's error, or "answered").
// max_version: offer no TLS version above it (0: any).
std::string RawTlsCall(int port, const TlsFiles& files, const std::string& frame,
                       int max_version = 0) {
  SSL_CTX* ctx = SSL_CTX_new(TLS_client_method());
  if (max_version != 0) {
    // Let this side offer old versions at all; the server must refuse them.
    SSL_CTX_set_security_level(ctx, 0);
    SSL_CTX_set_min_proto_version(ctx, TLS1_VERSION);
    SSL_CTX_set_max_proto_version(ctx, max_version);
  }
  SSL_CTX_use_certificate_chain_file(ctx, files.cert_path.c_str());
  SSL_CTX_use_PrivateKey_file(ctx, files.key_path.c_str(), SSL_FILETYPE_PEM);
  SSL_CTX_load_verify_locations(ctx, files.ca_path.c_str(), nullptr);
  int fd = ConnectToLoopback(port);
  std::string outcome = "cannot connect";
  if (fd >= 0) {
    timeval tv{3, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    SSL* ssl = SSL_new(ctx);
    SSL_set_fd(ssl, fd);
    char buf[256];
    // With TLS 1.3 the server judges the client's certificate after the
    // client's handshake is done; its alert comes first, unasked. Read it
    // before writing: a write to the closed connection would draw a reset
    // that discards the alert.
    pollfd pfd{fd, POLLIN, 0};
    bool refused_early = SSL_connect(ssl) != 1 || poll(&pfd, 1, 500) == 1;
    if (refused_early || SSL_write(ssl, frame.data(), static_cast<int>(frame.size())) <= 0 ||
        SSL_read(ssl, buf, sizeof(buf)) <= 0) {
      if (refused_early) SSL_read(ssl, buf, sizeof(buf));
      unsigned long e = ERR_get_error();
      outcome = e == 0 ? "connection closed" : ERR_error_string(e, buf);
    } else {
      outcome = "answered";
    }
    SSL_free(ssl);
    close(fd);
  }
  SSL_CTX_free(ctx);
  return outcome;
}

// A framed, strict binary `Coordinator.beginTxn(0)` call.
std::string BeginFrame() {
  std::string body;
  auto put32 = [&](uint32_t v) {
    for (int shift = 24; shift >= 0; shift -= 8) body.push_back(static_cast<char>(v >> shift));
  };
  put32(0x80010001);  // version 1, CALL
  std::string name = "beginTxn";
  put32(static_cast<uint32_t>(name.size()));
  body += name;
  put32(1);                                // seqid
  body += std::string("\x0a\x00\x01", 3);  // field 1: i64
  body += std::string(8, '\0');            // timeout_ms = 0
  body.push_back('\0');                    // stop
  std::string frame;
  uint32_t n = static_cast<uint32_t>(body.size());
  for (int shift = 24; shift >= 0; shift -= 8) frame.push_back(static_cast<char>(n >> shift));
  return frame + body;
}

class SecureBankTest : public BankTest {
 protected:
  // How the cluster authenticates; set by each fixture before SetUp.
  virtual Status Secure() = 0;

  void SetUp() override {
    Status st = Secure();
    ASSERT_TRUE(st.ok()) << st.ToString();
    BankTest::SetUp();
  }

  Endpoint CoordinatorEndpoint() { return *Endpoint::Parse(cluster_.coordinator_address()); }
  Endpoint ParticipantEndpoint(const std::string& name) {
    return {"127.0.0.1", cluster_.participant_port(name)};
  }

  // One transfer of 10 from bank_a/1 to bank_b/1; its outcome.
  Status Transfer(const RpcCredentials& credentials) {
    ClientOptions options;
    options.credentials = credentials;
    options.commit_budget_ms = 1000;
    auto client = Client::Connect(cluster_.coordinator_address(), options);
    if (!client.ok()) return client.status();
    auto txn = (*client)->Begin();
    if (!txn.ok()) return txn.status();
    RETURN_NOT_OK((*txn)
                      ->Execute("bank_a", "UPDATE accounts SET balance = balance - 10 WHERE id = 1")
                      .status());
    RETURN_NOT_OK((*txn)
                      ->Execute("bank_b", "UPDATE accounts SET balance = balance + 10 WHERE id = 1")
                      .status());
    return (*txn)->Commit();
  }

  // Nothing any refusal touched changed, and the cluster still commits.
  void ExpectUntouchedAndWorking(int committed_before) {
    EXPECT_EQ(Balance("bank_a", 1), kInitialBalance - 10 * committed_before);
    EXPECT_EQ(Balance("bank_b", 1), kInitialBalance + 10 * committed_before);
    EXPECT_TRUE(cluster_.EventuallyNoOpenBranches(5000));
    Status st = Transfer(cluster_.application_credentials());
    EXPECT_TRUE(st.ok()) << st.ToString();
    EXPECT_EQ(Balance("bank_a", 1), kInitialBalance - 10 * (committed_before + 1));
    EXPECT_EQ(Total("bank_a") + Total("bank_b"), 6 * kInitialBalance);
  }
};

class TlsBankTest : public SecureBankTest {
 protected:
  Status Secure() override { return cluster_.UseTls(); }

  // Credentials from a certificate in the cluster's CA directory.
  RpcCredentials As(const std::string& name) {
    auto tls = TlsContext::ForClient(CertificateFiles(cluster_.tls_dir(), name, cluster_.tls_dir()));
    EXPECT_TRUE(tls.ok()) << tls.status().ToString();
    return RpcCredentials{tls.ok() ? *tls : nullptr, ""};
  }
};

TEST_F(TlsBankTest, TransfersCommitOverMutualTlsOnEveryLink) {
  for (int i = 0; i < 5; ++i) {
    Status st = Transfer(cluster_.application_credentials());
    ASSERT_TRUE(st.ok()) << st.ToString();
  }
  EXPECT_EQ(Balance("bank_a", 1), kInitialBalance - 50);
  EXPECT_EQ(Balance("bank_b", 1), kInitialBalance + 50);
  // The participants reached the coordinator (register) and it
  // reached them (prepare, commit) over TLS: nothing else would commit.
  EXPECT_TRUE(cluster_.EventuallyNoOpenBranches(5000));
}

TEST_F(TlsBankTest, PlaintextCallersAreRefusedOnEveryPort) {
  // An application without TLS: nothing begins.
  Status st = Transfer(RpcCredentials{});
  EXPECT_EQ(st.code(), StatusCode::kUnavailable) << st.ToString();
  // A stranger's plaintext rollback with a forged fence never reaches the
  // participant's service.
  RpcConnection<rpc::ParticipantClient> stranger(ParticipantEndpoint("bank_a"), kTimeouts);
  st = stranger.Call(
      [](rpc::ParticipantClient& c) { c.rollback(FenceOf("c1", kForgedEpoch), "c1.1.1"); });
  EXPECT_EQ(st.code(), StatusCode::kUnavailable) << st.ToString();
  ExpectUntouchedAndWorking(0);
}

TEST_F(TlsBankTest, CertificatesOfAnotherCaAreRefusedBothWays) {
  std::string other = dir_.File("other-ca");
  MakeCertificates(other, {"--ca-name", "someone-else", "app:application+operator"});
  // Their certificate, trusting our CA: the server refuses the client.
  auto theirs = TlsContext::ForClient(CertificateFiles(other, "app", cluster_.tls_dir()));
  ASSERT_TRUE(theirs.ok()) << theirs.status().ToString();
  Status st = Transfer(RpcCredentials{*theirs, ""});
  EXPECT_FALSE(st.ok());
  // Our certificate, trusting their CA: the client refuses the server, before
  // sending anything.
  auto distrustful =
      TlsContext::ForClient({cluster_.tls_dir() + "/harness.pem",
                             cluster_.tls_dir() + "/harness-key.pem", other + "/ca.pem"});
  ASSERT_TRUE(distrustful.ok()) << distrustful.status().ToString();
  RpcConnection<rpc::CoordinatorClient> conn(CoordinatorEndpoint(), kTimeouts,
                                             RpcCredentials{*distrustful, ""});
  rpc::BeginResult begun;
  st = conn.Call([&](rpc::CoordinatorClient& c) { c.beginTxn(begun, 0); });
  EXPECT_EQ(st.code(), StatusCode::kUnauthenticated) << st.ToString();
  EXPECT_NE(st.message().find("certificate verify failed"), std::string::npos) << st.ToString();
  ExpectUntouchedAndWorking(0);
}

TEST_F(TlsBankTest, ServerWhoseCertificateNamesAnotherHostIsRefused) {
  // A coordinator with a valid certificate of the cluster's CA, but for
  // elsewhere.example only: dialled at 127.0.0.1, the client refuses it.
  MakeCertificates(cluster_.tls_dir(),
                   {"--no-loopback", "--host", "elsewhere.example", "c9:coordinator"});
  int port = FreePort();
  std::vector<std::string> argv = {PACT_COORDINATOR_BIN, "--name=c9",
                                   "--port=" + std::to_string(port),
                                   "--journal=" + dir_.File("c9.db")};
  for (const std::string& flag : cluster_.SecurityFlagsOf("c9")) argv.push_back(flag);
  Process impostor(argv, {}, dir_.File("c9.log"));
  ASSERT_TRUE(impostor.Start().ok());
  RpcConnection<rpc::CoordinatorClient> conn(Endpoint{"127.0.0.1", port}, kTimeouts,
                                             cluster_.credentials());
  Status st;
  ASSERT_TRUE(PollUntil(
      [&] {
        rpc::CoordinatorInfo info;
        st = conn.Call([&](rpc::CoordinatorClient& c) { c.info(info); });
        return st.code() != StatusCode::kUnavailable;  // listening
      },
      10000))
      << st.ToString() << "\n"
      << LogTail(dir_.File("c9.log"));
  EXPECT_EQ(st.code(), StatusCode::kUnauthenticated) << st.ToString();
  EXPECT_NE(st.message().find("authorize"), std::string::npos) << st.ToString();
}

TEST_F(TlsBankTest, ProcessWhoseCertificateNamesAnotherRefusesToStart) {
  // bank_a's certificate on a coordinator named c1: its peers would refuse
  // every call, so it says so and stops before touching anything.
  std::vector<std::string> argv = {PACT_COORDINATOR_BIN, "--name=c1",
                                   "--port=" + std::to_string(FreePort()),
                                   "--journal=" + dir_.File("other-journal.db")};
  for (const std::string& flag : cluster_.SecurityFlagsOf("bank_a")) argv.push_back(flag);
  Process misconfigured(argv, {}, dir_.File("misconfigured.log"));
  ASSERT_TRUE(misconfigured.Start().ok());
  EXPECT_EQ(misconfigured.WaitForExit(10000), 2);
  EXPECT_NE(LogTail(dir_.File("misconfigured.log"))
                .find("must name this coordinator: CN=c1 and O=coordinator; it has CN=bank_a, "
                      "O=participant"),
            std::string::npos)
      << LogTail(dir_.File("misconfigured.log"));
}

TEST_F(TlsBankTest, ExpiredCertificateAndOldTlsAreRefusedByTheServer) {
  MakeCertificates(cluster_.tls_dir(), {"--days", "-1", "expired:application"});
  // Pact's own client will not even load it.
  auto mine = TlsContext::ForClient(CertificateFiles(cluster_.tls_dir(), "expired", cluster_.tls_dir()));
  EXPECT_EQ(mine.status().code(), StatusCode::kInvalidArgument);
  // A client that does: the coordinator ends the handshake.
  std::string outcome =
      RawTlsCall(CoordinatorEndpoint().port,
                 CertificateFiles(cluster_.tls_dir(), "expired", cluster_.tls_dir()), BeginFrame());
  EXPECT_NE(outcome.find("certificate expired"), std::string::npos) << outcome;
  // Nor TLS 1.1, with a valid certificate.
  outcome = RawTlsCall(CoordinatorEndpoint().port,
                       CertificateFiles(cluster_.tls_dir(), "harness", cluster_.tls_dir()), BeginFrame(),
                       TLS1_1_VERSION);
  EXPECT_NE(outcome.find("alert protocol version"), std::string::npos) << outcome;
  // The same raw client with a valid certificate is answered: the refusals
  // above were the expiry and the version.
  EXPECT_EQ(RawTlsCall(CoordinatorEndpoint().port,
                       CertificateFiles(cluster_.tls_dir(), "harness", cluster_.tls_dir()), BeginFrame()),
            "answered");
  ExpectUntouchedAndWorking(0);
}

TEST_F(TlsBankTest, EachRoleMayMakeOnlyItsOwnCalls) {
  MakeCertificates(cluster_.tls_dir(),
                   {"app:application", "ops:operator", "c2:coordinator", "bank_a:participant"});
  // One prepared-to-be transaction, so that the coordinator's calls below
  // have a real branch to hit.
  auto client = Connect();
  auto txn = PrepareTransfer(*client, 10);
  ASSERT_NE(txn, nullptr);
  const std::string id = txn->id();

  struct Refusal {
    const char* what;
    Status status;
  };
  std::vector<Refusal> refusals;
  auto participant = [&](const std::string& as, auto&& fn) {
    RpcConnection<rpc::ParticipantClient> conn(ParticipantEndpoint("bank_a"), kTimeouts, As(as));
    return conn.Call(fn);
  };
  auto coordinator = [&](const std::string& as, auto&& fn) {
    RpcConnection<rpc::CoordinatorClient> conn(CoordinatorEndpoint(), kTimeouts, As(as));
    return conn.Call(fn);
  };
  rpc::BeginResult begun;
  rpc::CommitResult result;
  std::vector<rpc::BranchInfo> branches;
  refusals.push_back({"an application prepares", participant("app", [&](rpc::ParticipantClient& c) {
                        c.prepare(FenceOf("c1", 1), id, "x.1");
                      })});
  refusals.push_back({"an application resolves",
                      participant("app", [&](rpc::ParticipantClient& c) { c.resolve(id, true); })});
  refusals.push_back({"an operator begins", coordinator("ops", [&](rpc::CoordinatorClient& c) {
                        c.beginTxn(begun, 0);
                      })});
  refusals.push_back({"an operator commits", coordinator("ops", [&](rpc::CoordinatorClient& c) {
                        c.commitTxn(result, id, false, {});
                      })});
  refusals.push_back(
      {"an application removes a participant", coordinator("app", [&](rpc::CoordinatorClient& c) {
         c.removeParticipant("bank_b", true);
       })});
  refusals.push_back({"another coordinator rolls back under c1's name",
                      participant("c2", [&](rpc::ParticipantClient& c) {
                        c.rollback(FenceOf("c1", kForgedEpoch), id);
                      })});
  refusals.push_back(
      {"another coordinator rolls back c1's transaction under its own name",
       participant("c2", [&](rpc::ParticipantClient& c) { c.rollback(FenceOf("c2", 1), id); })});
  refusals.push_back({"another coordinator recovers under c1's name",
                      participant("c2", [&](rpc::ParticipantClient& c) {
                        c.recover(branches, FenceOf("c1", 1));
                      })});
  refusals.push_back({"a participant commits", coordinator("bank_a", [&](rpc::CoordinatorClient& c) {
                        c.commitTxn(result, id, false, {});
                      })});
  refusals.push_back({"participant bank_a registers bank_b at its own address",
                      coordinator("bank_a", [&](rpc::CoordinatorClient& c) {
                        rpc::ParticipantEndpoint endpoint;
                        endpoint.name = "bank_b";
                        endpoint.host = "127.0.0.1";
                        endpoint.port = 1;
                        c.registerParticipant(endpoint);
                      })});
  refusals.push_back(
      {"a participant commits a branch", participant("bank_a", [&](rpc::ParticipantClient& c) {
         c.commit(FenceOf("c1", 1), id, true);
       })});
  rpc::IdBlock ids;
  refusals.push_back({"an operator reserves transaction ids",
                      coordinator("ops", [&](rpc::CoordinatorClient& c) {
                        c.reserveTxnIds(ids, 8);
                      })});
  for (const char* who : {"ops", "c2"}) {  // only an application gives up its branch
    refusals.push_back({who[0] == 'o' ? "an operator abandons a branch"
                                      : "a coordinator abandons a branch",
                        participant(who, [&](rpc::ParticipantClient& c) {
                          c.abandon(id, "x.1");
                        })});
  }
  std::vector<rpc::PrepareAnswer> votes;
  std::vector<rpc::BatchAnswer> answers;
  rpc::PrepareItem item;
  item.txn_id = id;
  item.branch = "x.1";
  refusals.push_back({"an application prepares a batch",
                      participant("app", [&](rpc::ParticipantClient& c) {
                        c.prepareBatch(votes, FenceOf("c1", 1), {item});
                      })});
  refusals.push_back({"another coordinator commits a batch under c1's name",
                      participant("c2", [&](rpc::ParticipantClient& c) {
                        c.commitBatch(answers, FenceOf("c1", kForgedEpoch), {id});
                      })});
  refusals.push_back({"another coordinator rolls back a batch under c1's name",
                      participant("c2", [&](rpc::ParticipantClient& c) {
                        c.rollbackBatch(answers, FenceOf("c1", kForgedEpoch), {id});
                      })});
  for (const auto& r : refusals) {
    EXPECT_EQ(r.status.code(), StatusCode::kPermissionDenied)
        << r.what << ": " << r.status.ToString();
  }
  // The refused calls changed nothing: the transaction is still open and
  // commits; the registry still has bank_b where it was.
  Status st = txn->Commit();
  ASSERT_TRUE(st.ok()) << st.ToString();
  ExpectUntouchedAndWorking(1);
}

TEST_F(TlsBankTest, PactctlWorksOverTlsAndNotWithout) {
  std::vector<std::string> args = cluster_.SecurityFlagsOf("harness");
  args.insert(args.end(),
              {"--coordinator", cluster_.coordinator_address(), "--json", "participants"});
  Ran ran = RunPactctl(args);
  EXPECT_EQ(ran.code, 0) << ran.out;
  size_t reachable = 0;
  for (size_t at = ran.out.find("\"reachable\":true"); at != std::string::npos;
       at = ran.out.find("\"reachable\":true", at + 1)) {
    ++reachable;
  }
  EXPECT_EQ(reachable, 2u) << ran.out;
  Ran plaintext = RunPactctl({"--coordinator", cluster_.coordinator_address(), "participants"});
  EXPECT_EQ(plaintext.code, 3) << plaintext.out;
}

class TokenBankTest : public SecureBankTest {
 protected:
  Status Secure() override { return cluster_.UseTokens(); }

  RpcCredentials WithToken(Role role) {
    auto tokens = TokenTable::Load(cluster_.tokens_path());
    EXPECT_TRUE(tokens.ok());
    return RpcCredentials{nullptr, tokens->TokenOf(role)};
  }
};

TEST_F(TokenBankTest, EveryCallNeedsItsRolesToken) {
  Status st = Transfer(WithToken(Role::kApplication));
  ASSERT_TRUE(st.ok()) << st.ToString();

  // No token, a wrong token: nothing begins.
  st = Transfer(RpcCredentials{});
  EXPECT_EQ(st.code(), StatusCode::kUnauthenticated) << st.ToString();
  st = Transfer(RpcCredentials{nullptr, "0123456789abcdef0123456789abcdef"});
  EXPECT_EQ(st.code(), StatusCode::kUnauthenticated) << st.ToString();
  // The application's token does not make it an operator or a coordinator.
  RpcConnection<rpc::ParticipantClient> app(ParticipantEndpoint("bank_a"), kTimeouts,
                                            WithToken(Role::kApplication));
  st = app.Call([](rpc::ParticipantClient& c) { c.resolve("c1.1.1", true); });
  EXPECT_EQ(st.code(), StatusCode::kPermissionDenied) << st.ToString();
  st = app.Call(
      [](rpc::ParticipantClient& c) { c.rollback(FenceOf("c1", kForgedEpoch), "c1.1.1"); });
  EXPECT_EQ(st.code(), StatusCode::kPermissionDenied) << st.ToString();
  // The operator's token lists what pactctl shows.
  std::vector<std::string> args = cluster_.SecurityFlagsOf("harness");
  args.insert(args.end(), {"--coordinator", cluster_.coordinator_address(), "txns"});
  Ran ran = RunPactctl(args);
  EXPECT_EQ(ran.code, 0) << ran.out;
  ExpectUntouchedAndWorking(1);
}

TEST(OpenServerTest, ListeningBeyondLoopbackWithoutTlsWarnsLoudly) {
  TempDir dir;
  int port = FreePort();
  Process coordinator({PACT_COORDINATOR_BIN, "--host=0.0.0.0", "--port=" + std::to_string(port),
                       "--journal=" + dir.File("journal.db")},
                      {}, dir.File("coordinator.log"));
  ASSERT_TRUE(coordinator.Start().ok());
  bool warned = PollUntil(
      [&] {
        return LogTail(dir.File("coordinator.log"), 40).find("INSECURE") != std::string::npos;
      },
      10000);
  EXPECT_TRUE(warned) << LogTail(dir.File("coordinator.log"));
}

}  // namespace
}  // namespace pact
