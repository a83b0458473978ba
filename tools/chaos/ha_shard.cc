#include "tools/chaos/ha_shard.h"

#include <signal.h>

#include <thread>

#include "cluster/ports.h"
#include "cluster/wait_until.h"

namespace pact {
namespace {

constexpr int kTermGraceMs = 30000;  // a SIGTERMed coordinator drains, then must exit

bool Due(const std::optional<HaShard::Clock::time_point>& at) {
  return at && HaShard::Clock::now() >= *at;
}

// The last line of a log that says why a process gave up, for the summary.
std::string LastErrorLine(const std::string& log_path) {
  const std::string tail = LogTail(log_path, 40);
  size_t end = tail.size();
  while (end > 0) {
    size_t begin = tail.rfind('\n', end - 1);
    begin = begin == std::string::npos ? 0 : begin + 1;
    const std::string line = tail.substr(begin, end - begin);
    // glog: "E1202 00:01:02.123456 1234 main.cc:95] cannot reach ZooKeeper ..."
    const bool error = !line.empty() && (line[0] == 'E' || line[0] == 'F');
    if (error && line.find("] ") != std::string::npos) {
      return line.substr(line.find("] ") + 2);
    }
    if (begin == 0) break;
    end = begin - 1;
  }
  return "(no error in its log)";
}

}  // namespace

HaShard::HaShard(Cluster* cluster, uint64_t seed, std::function<void(const std::string&)> violation)
    : cluster_(cluster), rng_(seed), violation_(std::move(violation)) {}

HaShard::~HaShard() {
  second_.reset();
  zk_.reset();
}

Result<std::unique_ptr<HaShard>> HaShard::Create(
    const std::string& dir, const std::string& coordinator_bin, Cluster* cluster, uint64_t seed,
    std::function<void(const std::string&)> violation) {
  std::unique_ptr<HaShard> shard(new HaShard(cluster, seed, std::move(violation)));
  shard->dir_ = dir;
  shard->coordinator_bin_ = coordinator_bin;
  auto zk = ZooKeeperEnsemble::Start(dir + "/zk");
  if (!zk.ok()) {
    return Status::Unavailable(
        "cannot start a three-node ZooKeeper ensemble (Debian's zookeeper package; "
        "scripts/install-deps --with-servers installs it): " +
        zk.status().ToString());
  }
  shard->zk_ = std::move(*zk);
  shard->zk_restart_at_.resize(shard->zk_->size());
  shard->second_port_ = FreePort();
  if (shard->second_port_ == 0) return Status::Unavailable("no free loopback port");
  cluster->OverrideCoordinatorFlags({"--zookeeper=" + shard->zk_->ConnectString(),
                                     "--zk_session_timeout_ms=" +
                                         std::to_string(kSessionTimeoutMs)});
  cluster->standby_coordinators = "127.0.0.1:" + std::to_string(shard->second_port_);
  return shard;
}

std::string HaShard::ClientAddresses() const {
  return cluster_->client_address() + ",127.0.0.1:" + std::to_string(second_port_);
}

std::string HaShard::log_path(int m) const {
  return dir_ + "/" + member_name(m) + ".log";
}

Process& HaShard::process(int m) { return m == 0 ? cluster_->coordinator() : *second_; }

bool HaShard::running(int m) { return (m == 0 || second_) && process(m).running(); }

Status HaShard::Launch(int m) {
  members_[m] = Member{};
  if (m == 0) return cluster_->LaunchCoordinator();
  // Like the cluster's own coordinator, on its own port; the journal flag
  // names a file it never opens (its decisions live in ZooKeeper).
  std::vector<std::string> argv = {coordinator_bin_,
                                   "--name=" + cluster_->coordinator_name(),
                                   "--port=" + std::to_string(second_port_),
                                   "--journal=" + dir_ + "/" + member_name(m) + "-unused.db"};
  argv.insert(argv.end(), cluster_->coordinator_flags.begin(), cluster_->coordinator_flags.end());
  ProcessOptions options;
  options.name = member_name(m);
  options.argv = std::move(argv);
  options.log_path = log_path(m);
  second_ = std::make_unique<Process>(std::move(options));
  return second_->Start();
}

Status HaShard::StartStandby() {
  RETURN_NOT_OK(Launch(1));
  return WaitUntil([&] { return ProbeCoordinator(second_port_).role == CoordinatorRole::kStandby; },
                   [&] {
                     return second_->running()
                                ? Status::Ok()
                                : Status::Unavailable("the second coordinator exited: " +
                                                      LogTail(log_path(1)));
                   },
                   15000, 20, "the second coordinator does not stand by");
}

std::optional<int> HaShard::FindActive() const {
  std::optional<int> cut_off;
  for (int m = 0; m < kMembers; ++m) {
    const CoordinatorRole role = ProbeCoordinator(port(m)).role;
    if (role == CoordinatorRole::kActive || role == CoordinatorRole::kRecovering) return m;
    if (role == CoordinatorRole::kCutOff) cut_off = m;
  }
  return cut_off;
}

std::optional<int> HaShard::FindStandby() const {
  for (int m = 0; m < kMembers; ++m) {
    if (ProbeCoordinator(port(m)).role == CoordinatorRole::kStandby) return m;
  }
  return std::nullopt;
}

void HaShard::Kill(int m) {
  if (!running(m)) return;
  members_[m].expect = Expect::kKill;
  members_[m].signalled_at = Clock::now();
  process(m).Signal(SIGKILL);
  process(m).WaitForExit(5000);
}

void HaShard::Terminate(int m) {
  if (!running(m)) return;
  members_[m].expect = Expect::kTerm;
  members_[m].signalled_at = Clock::now();
  process(m).Signal(SIGTERM);
}

int HaShard::RandomMs(int min_ms, int max_ms) {
  return min_ms + static_cast<int>(rng_() % static_cast<uint64_t>(max_ms - min_ms + 1));
}

bool HaShard::AllZooKeeperServersServe() const {
  for (int i = 0; i < zk_->size(); ++i) {
    if (!zk_->running(i) || zk_->Mode(i, 300) == ZooKeeperMode::kNotServing) return false;
  }
  return true;
}

bool HaShard::ZooKeeperDegraded() const { return !AllZooKeeperServersServe(); }

void HaShard::KillZooKeeperServerUntil(int i, Clock::time_point restart_at) {
  const bool leader = zk_->Mode(i, 300) == ZooKeeperMode::kLeader;
  Status st = zk_->Kill(i);
  if (!st.ok()) {
    violation_("cannot kill ZooKeeper server " + std::to_string(i) + ": " + st.ToString());
  }
  faults_[std::string("kill -9 of the ZooKeeper ") + (leader ? "leader" : "follower")]++;
  zk_restart_at_[i] = restart_at;
}

bool HaShard::KillZooKeeperServer() {
  if (!AllZooKeeperServersServe()) return false;
  const int i = static_cast<int>(rng_() % static_cast<uint64_t>(zk_->size()));
  KillZooKeeperServerUntil(i, Clock::now() + std::chrono::milliseconds(RandomMs(1000, 5000)));
  return true;
}

bool HaShard::LoseZooKeeperQuorum() {
  if (!AllZooKeeperServersServe()) return false;
  const int spared = static_cast<int>(rng_() % static_cast<uint64_t>(zk_->size()));
  // Both come back together: the quorum is gone for the downtime plus a
  // JVM's start and an election.
  const auto restart_at = Clock::now() + std::chrono::milliseconds(RandomMs(300, 1500));
  for (int i = 0; i < zk_->size(); ++i) {
    if (i != spared) KillZooKeeperServerUntil(i, restart_at);
  }
  faults_["ZooKeeper quorum lost (two servers killed)"]++;
  return true;
}

void HaShard::NoteExit(int m) {
  const Member& member = members_[m];
  const int code = process(m).exit_code();
  const std::string who = member_name(m);
  if (member.expect == Expect::kKill && code == 128 + SIGKILL) return;  // the fault itself
  if (member.expect == Expect::kTerm && code == 0) {
    exits_["exit 0 after SIGTERM (handed over)"]++;
    return;
  }
  switch (code) {
    case 4:
      exits_["exit 4 (ZooKeeper session expired)"]++;
      return;
    case 3:
      exits_["exit 3 (journal outcome lost)"]++;
      return;
    case 1:
      // It could not join or take over: ZooKeeper unreachable, or lost while
      // it took over. A supervisor starts it again, and so do we.
      exits_["exit 1: " + LastErrorLine(log_path(m))]++;
      return;
    default:
      break;
  }
  exits_["died on its own (" + std::to_string(code) + ")"]++;
  const std::string how =
      code > 128 ? "signal " + std::to_string(code - 128) : "exit " + std::to_string(code);
  violation_(who + " died on its own (" + how +
             (member.expect == Expect::kTerm ? " after SIGTERM" : "") + "); see " + log_path(m));
}

void HaShard::Supervise() {
  for (int m = 0; m < kMembers; ++m) {
    Member& member = members_[m];
    if (running(m)) {
      if (member.expect == Expect::kTerm &&
          Clock::now() - member.signalled_at > std::chrono::milliseconds(kTermGraceMs)) {
        violation_(member_name(m) + " did not stop within " + std::to_string(kTermGraceMs / 1000) +
                   " s of SIGTERM; see " + log_path(m));
        Kill(m);
      }
      continue;
    }
    if (!member.restart_at) {
      NoteExit(m);
      member.restart_at = Clock::now() + std::chrono::milliseconds(RandomMs(100, 1500));
    }
    if (Due(member.restart_at)) {
      if (Status st = Launch(m); !st.ok()) {
        violation_("cannot start " + member_name(m) + " again: " + st.ToString());
      }
    }
  }
  for (int i = 0; i < zk_->size(); ++i) {
    if (!Due(zk_restart_at_[i])) continue;
    zk_restart_at_[i].reset();
    if (Status st = zk_->StartAgain(i); !st.ok()) {
      violation_("cannot start ZooKeeper server " + std::to_string(i) + " again: " + st.ToString());
    }
  }
}

Status HaShard::BringEverythingBack(int timeout_ms) {
  for (int i = 0; i < zk_->size(); ++i) {
    if (zk_restart_at_[i]) zk_restart_at_[i] = Clock::now();
  }
  for (Member& member : members_) {
    if (member.restart_at) member.restart_at = Clock::now();
  }
  Supervise();
  Status quorum = zk_->WaitForServing(zk_->size(), timeout_ms);
  if (!quorum.ok()) return quorum;
  // A coordinator may still exit now (its session expired while ZooKeeper
  // was down): the supervisor starts it again until both are up.
  return WaitUntil(
      [&] {
        Supervise();
        std::vector<CoordinatorRole> roles;
        for (int m = 0; m < kMembers; ++m) roles.push_back(ProbeCoordinator(port(m)).role);
        return (roles[0] == CoordinatorRole::kActive && roles[1] == CoordinatorRole::kStandby) ||
               (roles[1] == CoordinatorRole::kActive && roles[0] == CoordinatorRole::kStandby);
      },
      [] { return Status::Ok(); }, timeout_ms, 50,
      "the shard has no active coordinator with a standby");
}

Status HaShard::StopCleanlyAndCheckDecisions() {
  std::optional<int> active = FindActive();
  if (!active) return Status::Unavailable("no active coordinator to stop");
  for (int m : {1 - *active, *active}) {
    process(m).Signal(SIGTERM);
    const int code = process(m).WaitForExit(kTermGraceMs);
    if (code != 0) {
      return Status::Internal(member_name(m) + "'s clean stop ended with " +
                              std::to_string(code) + "; see " + log_path(m));
    }
  }
  Ran shards = cluster_->RunPactctl({"--json", "shards", "--zookeeper=" + zk_->ConnectString()});
  if (shards.code != 0 ||
      shards.out.find("\"shard\":\"" + cluster_->coordinator_name() + "\"") == std::string::npos) {
    return Status::Internal("pactctl shards: " + shards.out);
  }
  if (shards.out.find("\"unfinished_decisions\":0") == std::string::npos) {
    return Status::Internal("the shard holds unfinished decisions after a clean stop: " +
                            shards.out);
  }
  return Status::Ok();
}

}  // namespace pact
