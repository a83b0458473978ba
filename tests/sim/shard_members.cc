#include "tests/sim/shard_members.h"

#include <algorithm>
#include <cinttypes>
#include <cstdio>

namespace pact::sim {
namespace {

// ZooKeeper appends a 10-digit sequence number to a sequential node's name;
// candidates are ordered by it alone (their prefixes differ by session).
std::string SequenceOf(const std::string& name) {
  return name.size() >= 10 ? name.substr(name.size() - 10) : name;
}

}  // namespace

ShardMembers::ShardMembers(ShardEnvironment env, int members, int session_timeout_ms)
    : env_(std::move(env)),
      root_("/pact/shards/" + env_.name),
      zk_(env_.clock, env_.random, env_.faults, env_.history, session_timeout_ms) {
  for (int i = 0; i < members; ++i) {
    members_.push_back(std::make_unique<Member>("c" + std::to_string(i)));
    Member* m = members_.back().get();
    m->process.OnCrash([this, m](const std::string& why) {
      env_.history->Add("CRASH " + m->process.name() + " " + why);
      Count("member exits");
      m->process.down_since_ms = env_.clock->elapsed_ms();
      zk_.Resume(m->process.name());  // a pause ends in death
      if (m->session != 0) zk_.Died(m->session);
      m->leading = false;
      m->wake_at_ms = -1;
      m->pause_after_step = false;
    });
  }
  zk_.on_applied = [this](int64_t session, const std::vector<ZkOp>& ops) {
    CheckWrite(session, ops);
  };
}

ShardMembers::~ShardMembers() {
  for (auto& m : members_) m->coordinator.reset();
}

std::vector<std::string> ShardMembers::Names() const {
  std::vector<std::string> names;
  for (const auto& m : members_) names.push_back(m->process.name());
  return names;
}

void ShardMembers::StartAll() {
  for (auto& m : members_) {
    if (m->process.up()) continue;
    int run = m->process.Start();
    env_.history->Add("START " + m->process.name() + " (run " + std::to_string(run) + ")");
  }
}

bool ShardMembers::Serving(const Member& m) const {
  return m.process.up() && !m.process.asleep && m.leading && m.coordinator &&
         env_.clock->elapsed_ms() - m.lease_renewed_ms < zk_.session_timeout_ms() / 2;
}

bool ShardMembers::Runnable(const Member& m) const {
  return m.process.up() && !m.process.asleep && m.in_client_calls == 0;
}

void ShardMembers::Drive() {
  for (auto& owned : members_) {
    Member& m = *owned;
    if (!Runnable(m)) continue;
    if (m.session == 0) {
      Result<int64_t> session = zk_.Connect(m.process.name());
      if (!session.ok()) continue;
      m.session = *session;
    }
    if (m.stopping_steps > 0) {
      if (--m.stopping_steps == 0) m.process.Crash("(stopped cleanly)");
      continue;
    }
    if (m.node.empty() && !Join(m)) continue;
    Look(m);
    if (m.process.up() && m.leading && !m.coordinator) TakeOver(m);
  }
}

bool ShardMembers::Join(Member& m) {
  char prefix[32];
  std::snprintf(prefix, sizeof(prefix), "c-%016" PRIx64 "-", static_cast<uint64_t>(m.session));
  Status st = zk_.CreateAll(m.session, ElectionPath());
  Result<std::vector<std::string>> children = st.ok() ? zk_.Children(m.session, ElectionPath())
                                                      : Result<std::vector<std::string>>(st);
  if (children.ok()) {
    // A create whose reply was lost may have made the node: look first.
    for (const auto& child : *children) {
      if (child.rfind(prefix, 0) == 0) m.node = child;
    }
    if (m.node.empty()) {
      Result<std::string> created =
          zk_.Create(m.session, ElectionPath() + "/" + prefix, m.process.name(),
                     ZkCreateMode::kEphemeralSequential);
      if (created.ok()) m.node = created->substr(created->rfind('/') + 1);
      st = created.status();
    }
  } else {
    st = children.status();
  }
  if (!m.node.empty()) {
    env_.history->Add(m.process.name() + ": candidate " + m.node);
    return true;
  }
  if (zk_.Reachable(m.process.name()) && zk_.Expired(m.session)) {
    m.process.Crash("(its ZooKeeper session expired while joining: it exits)");
  }
  return false;
}

void ShardMembers::Look(Member& m) {
  const bool was_leading = m.leading;
  auto report = [&] {
    if (m.leading != was_leading) {
      env_.history->Add(m.process.name() + (m.leading ? " leads" : " does not lead"));
    }
  };
  if (!zk_.Reachable(m.process.name())) {
    m.leading = false;  // the connection is lost: leading ends at once
    return report();
  }
  if (zk_.Expired(m.session)) {
    // Another member may already serve: decide nothing more, come back later.
    m.leading = false;
    m.process.Crash("(its ZooKeeper session expired: it exits, to come back as a new candidate)");
    return;
  }
  Result<std::vector<std::string>> children = zk_.Children(m.session, ElectionPath());
  if (!children.ok()) {
    m.leading = false;
    return report();
  }
  std::vector<std::string> order = *children;
  std::sort(order.begin(), order.end(), [](const std::string& a, const std::string& b) {
    return SequenceOf(a) < SequenceOf(b);
  });
  auto mine = std::find(order.begin(), order.end(), m.node);
  if (mine == order.end()) {
    m.leading = false;
    m.process.Crash("(its candidate node is gone: it exits)");
    return;
  }
  if (mine != order.begin()) {
    m.leading = false;
    return report();
  }
  const int64_t asked = env_.clock->elapsed_ms();
  Result<std::optional<ZkStat>> stat = zk_.Exists(m.session, ElectionPath() + "/" + m.node);
  if (stat.ok() && stat->has_value()) m.lease_renewed_ms = asked;
  m.leading = stat.ok() && stat->has_value() && (*stat)->ephemeral_owner == m.session;
  report();
}

void ShardMembers::TakeOver(Member& m) {
  auto journal = SimZkJournal::Open(&zk_, m.session, root_, &m.process, env_.random, env_.clock,
                                    env_.history);
  if (!journal.ok()) {
    m.process.Crash("(cannot open the shard's journal: " + journal.status().ToString() + ")");
    return;
  }
  m.journal = std::move(*journal);
  m.links = std::make_unique<SimParticipants>(env_.network, env_.directory, env_.invariants);
  m.links->SetSender(&m.process);
  CoordinatorOptions options = SimCoordinatorOptions(env_.name, env_.clock, env_.random);
  options.protocol.on_journal_lost = [process = &m.process](const Status& st) {
    process->Crash("(it exits: journal lost: " + st.message() + ")");
  };
  m.coordinator = std::make_unique<Coordinator>(options, m.journal.get(), m.links.get());
  m.was_active = true;
  Count("take-overs");
  env_.history->Add(m.process.name() + " takes over: journal open, recovering");
  // Served from before Start, as in ServeShardMember: participants asked to
  // confirm the raised epoch during recovery hear it.
  Status st = m.coordinator->Start();
  if (!m.process.up()) return;
  if (!st.ok()) {
    m.process.Crash("(cannot take over: " + st.ToString() + ")");
    return;
  }
  env_.history->Add(m.process.name() + " ACTIVE, epoch " + std::to_string(m.coordinator->epoch()));
}

Coordinator* ShardMembers::Active() {
  for (auto& m : members_) {
    if (Serving(*m)) return m->coordinator.get();
  }
  return nullptr;
}

CoordinatorRoute ShardMembers::Route() {
  std::vector<Member*> serving;
  for (auto& m : members_) {
    if (Serving(*m)) serving.push_back(m.get());
  }
  if (serving.size() > 1) {
    env_.invariants->Violation("election: " + serving[0]->process.name() + " and " +
                               serving[1]->process.name() + " serve at once");
  }
  Member* to = !serving.empty() ? serving[0]
                                : members_[env_.random->Below(members_.size())].get();
  const int incarnation = to->process.incarnation();
  return {&to->process, [this, to, incarnation](const std::function<void(Coordinator*)>& call,
                                                bool from_client) -> Status {
            if (!to->process.Alive(incarnation)) return Status::Unavailable("sim: it restarted");
            if (Serving(*to)) {
              if (from_client) ++to->in_client_calls;
              call(to->coordinator.get());
              if (from_client) --to->in_client_calls;
              return Status::Ok();
            }
            if (to->was_active) {
              return Status::Unavailable("the active coordinator of shard " + env_.name +
                                         " lost contact with ZooKeeper; ask again");
            }
            return Status::NotLeader("sim: " + to->process.name() + " is a standby of shard " +
                                     env_.name);
          }};
}

void ShardMembers::TickOne() {
  std::vector<Member*> awake;
  for (auto& m : members_) {
    if (m->coordinator && Runnable(*m)) awake.push_back(m.get());
  }
  if (!awake.empty()) env_.random->Pick(awake)->coordinator->Tick();
}

void ShardMembers::TickAll() {
  for (auto& m : members_) {
    if (m->coordinator && Runnable(*m)) m->coordinator->Tick();
  }
}

void ShardMembers::Flush() {
  for (auto& m : members_) {
    if (m->journal && Runnable(*m)) m->journal->Flush();
  }
}

void ShardMembers::Stop(Member& m) {
  Count("clean stops");
  env_.history->Add("STOP " + m.process.name() + " (SIGTERM, epoch " +
                    std::to_string(m.coordinator->epoch()) + "): drains, resigns, winds down");
  const size_t open = m.coordinator->Drain(0);
  Status resigned = zk_.Delete(m.session, ElectionPath() + "/" + m.node, kZkAnyVersion);
  env_.history->Add(m.process.name() + ": " + std::to_string(open) +
                    " transactions open; resign: " + Show(resigned));
  m.leading = false;
  m.stopping_steps = static_cast<int>(env_.random->Range(1, 30));
}

void ShardMembers::Pause(Member& m, const std::string& when) {
  const int timeout = zk_.session_timeout_ms();
  m.process.asleep = true;
  zk_.Pause(m.process.name());
  const int64_t ms = env_.random->Range(timeout / 4, 3 * timeout);
  m.wake_at_ms = env_.clock->elapsed_ms() + ms;
  Count("pauses");
  env_.history->Add("PAUSE " + m.process.name() + " " + when + " for " + std::to_string(ms) +
                    " ms (epoch " +
                    std::to_string(m.coordinator ? m.coordinator->epoch() : 0) + ")");
}

void ShardMembers::Wake(Member& m) {
  m.process.asleep = false;
  m.wake_at_ms = -1;
  zk_.Resume(m.process.name());
  env_.history->Add("WAKE " + m.process.name() + ": it carries on" +
                    (m.coordinator ? " with epoch " + std::to_string(m.coordinator->epoch())
                                   : std::string(" as a standby")));
}

bool ShardMembers::CanWaitInCall(const Member& m) const {
  // Only a call whose stack holds nothing but the application's step and
  // this member can wait while the world runs on: a participant's handler on
  // the stack would be entered again.
  return m.in_client_calls > 0 && !pause_in_progress_ && !env_.invariants->delivering() &&
         run_world_step;
}

void ShardMembers::RunWorldUntil(const Member& m, int64_t until_ms) {
  pause_in_progress_ = true;
  for (int i = 0; i < 5000 && m.process.up() && env_.clock->elapsed_ms() < until_ms; ++i) {
    run_world_step();
  }
  pause_in_progress_ = false;
}

void ShardMembers::PauseAtEvent(Member& m) {
  if (!CanWaitInCall(m)) {
    m.pause_after_step = true;
    return;
  }
  Pause(m, "inside an application's call");
  RunWorldUntil(m, m.wake_at_ms);
  if (m.process.up()) Wake(m);
}

void ShardMembers::StopAtDecision(Member& m) {
  if (!CanWaitInCall(m) || !m.coordinator) return;
  // The drain's grace ran out with this decision still being made: the
  // member resigns, its successor takes over (presuming abort), and only
  // then does the decision reach its journal, on a session still alive.
  Count("clean stops");
  const int64_t ms = env_.random->Range(zk_.session_timeout_ms() / 4, zk_.session_timeout_ms());
  Status resigned = zk_.Delete(m.session, ElectionPath() + "/" + m.node, kZkAnyVersion);
  env_.history->Add("STOP " + m.process.name() + " (SIGTERM, epoch " +
                    std::to_string(m.coordinator->epoch()) +
                    ") while deciding: the grace ran out, resign: " + Show(resigned) +
                    "; the decision goes on " + std::to_string(ms) + " ms later");
  m.leading = false;
  m.stopping_steps = 1000;  // winding down: no looks, no take-over
  RunWorldUntil(m, env_.clock->elapsed_ms() + ms);
  if (m.process.up()) m.stopping_steps = static_cast<int>(env_.random->Range(1, 10));
}

void ShardMembers::InjectFaults() {
  const Faults& f = *env_.faults;
  for (auto& m : members_) {
    if (m->pause_after_step && m->process.up() && !m->process.asleep) {
      m->pause_after_step = false;
      Pause(*m, "after its armed event");
    }
  }
  Member* active = nullptr;
  std::vector<Member*> up;
  bool any_paused = pause_in_progress_;
  for (auto& m : members_) {
    if (Serving(*m) && !active) active = m.get();
    if (m->process.up()) up.push_back(m.get());
    any_paused = any_paused || m->wake_at_ms >= 0 || m->pause_after_step;
  }
  SimRandom& random = *env_.random;
  if (random.Chance(f.member_kill) && !up.empty()) {
    Member* victim = active && random.Chance(0.6) ? active : random.Pick(up);
    if (victim == active && random.Chance(0.15)) {
      Stop(*active);
    } else if (victim == active && random.Chance(0.15)) {
      active->journal->PauseAtNextCommit([this, active] { StopAtDecision(*active); });
      env_.history->Add("armed: " + active->process.name() +
                        " is stopped at its next COMMIT write");
    } else if (random.Chance(0.3)) {
      victim->process.Crash("(kill -9 between steps)");
    } else if (victim == active && random.Chance(0.3)) {
      active->journal->KillAtNextCommit();
      env_.history->Add("armed: " + active->process.name() + " is killed at its next COMMIT write");
    } else {
      int64_t n = random.Range(1, 15);
      victim->process.ArmCrash(n);
      env_.history->Add("armed: " + victim->process.name() + " is killed at its event " +
                        std::to_string(n) + " from now");
    }
  }
  if (random.Chance(f.active_pause) && active && !any_paused) {
    if (random.Chance(0.4)) {
      Pause(*active, "between steps");
    } else if (random.Chance(0.4)) {
      active->journal->PauseAtNextCommit([this, active] { PauseAtEvent(*active); });
      env_.history->Add("armed: " + active->process.name() + " is paused at its next COMMIT write");
    } else {
      int64_t n = random.Range(1, 15);
      active->process.ArmFreeze(n, [this, active] { PauseAtEvent(*active); });
      env_.history->Add("armed: " + active->process.name() + " is paused at its event " +
                        std::to_string(n) + " from now");
    }
  }
  const int timeout = zk_.session_timeout_ms();
  if (random.Chance(f.zk_outage) && !zk_.InOutage()) {
    Count("zookeeper outages");
    zk_.Outage(random.Range(200, 2 * timeout));
  }
  if (random.Chance(f.zk_partition)) {
    Count("zookeeper partitions");
    zk_.Partition(random.Pick(Names()), random.Range(200, 2 * timeout));
  }
}

void ShardMembers::WakeDue() {
  for (auto& m : members_) {
    // A member paused inside a call wakes there (PauseAtEvent), not here.
    if (m->wake_at_ms < 0 || m->in_client_calls > 0 || !m->process.up()) continue;
    if (env_.clock->elapsed_ms() < m->wake_at_ms) continue;
    Wake(*m);
    // Its background work goes out at once, with its old epoch's fence.
    if (m->coordinator) m->coordinator->Tick();
  }
}

void ShardMembers::Reap() {
  for (auto& m : members_) {
    if (m->process.up() || m->in_client_calls > 0) continue;
    m->coordinator.reset();
    m->links.reset();
    m->journal.reset();
    m->session = 0;
    m->node.clear();
    m->leading = false;
    m->was_active = false;
    m->stopping_steps = 0;
  }
}

void ShardMembers::RestartDue(bool all) {
  for (auto& m : members_) {
    if (m->process.up() || m->in_client_calls > 0) continue;
    if (!all && (env_.clock->elapsed_ms() - m->process.down_since_ms < 300 ||
                 !env_.random->Chance(0.2))) {
      continue;
    }
    Count("restarts");
    int run = m->process.Start();
    env_.history->Add("START " + m->process.name() + " (run " + std::to_string(run) + ")");
  }
}

void ShardMembers::HealAll() {
  zk_.HealAll();
  for (auto& m : members_) {
    m->process.ArmCrash(0);
    m->pause_after_step = false;
    if (m->wake_at_ms >= 0 && m->process.up() && m->in_client_calls == 0) Wake(*m);
  }
}

std::string ShardMembers::Unquiet() {
  Coordinator* active = Active();
  if (active == nullptr) return " no member serves;";
  if (!active->ready()) return " the active is recovering;";
  std::string why;
  for (const auto& t : active->ListTransactions({TxnState::kActive, TxnState::kPreparing,
                                                 TxnState::kCommitting, TxnState::kAborting})) {
    why += " active: " + t.id + " is " + TxnStateName(t.state) + ";";
  }
  return why;
}

std::vector<HeuristicRecord> ShardMembers::Heuristics() const {
  std::vector<HeuristicRecord> out;
  const std::string dir = root_ + "/heuristics";
  for (const auto& txn_id : zk_.PeekChildren(dir)) {
    for (const auto& participant : zk_.PeekChildren(dir + "/" + txn_id)) {
      out.push_back({txn_id, participant, false, "", 0});
    }
  }
  return out;
}

void ShardMembers::CheckWrite(int64_t session, const std::vector<ZkOp>& ops) {
  const std::string commits = root_ + "/commits/";
  std::optional<ZkNode> epoch_node = zk_.Peek(root_ + "/epoch");
  const int64_t current = epoch_node ? std::stoll(epoch_node->data) : 0;
  for (const ZkOp& op : ops) {
    if (op.type != ZkOp::Type::kCreate || op.path.rfind(commits, 0) != 0) continue;
    Count("decisions durable");
    for (auto& m : members_) {
      if (m->session != session) continue;
      const int64_t epoch = m->journal ? m->journal->epoch() : 0;
      if (epoch != current) {
        env_.invariants->Violation("fence: " + m->process.name() + " made COMMIT " +
                                   op.path.substr(commits.size()) + " durable with epoch " +
                                   std::to_string(epoch) + " once epoch " +
                                   std::to_string(current) + " existed");
      }
    }
  }
}

}  // namespace pact::sim
