#include "tests/sim/simulation.h"

#include <algorithm>
#include <functional>
#include <memory>

#include <glog/logging.h>

#include "coordinator/coordinator.h"
#include "participant/participant_service.h"
#include "participant/state_store.h"
#include "tests/sim/faults.h"
#include "tests/sim/history.h"
#include "tests/sim/invariants.h"
#include "tests/sim/shard_members.h"
#include "tests/sim/sim_backend.h"
#include "tests/sim/sim_journal.h"
#include "tests/sim/sim_links.h"
#include "tests/sim/sim_network.h"
#include "tests/sim/transfer_client.h"

namespace pact::sim {
namespace {

constexpr char kCoordinatorName[] = "pact";
constexpr int kParticipants = 3;
constexpr int kAccounts = 4;
constexpr int64_t kOpeningBalance = 100;
constexpr int kMaxSteps = 6000;
constexpr int kSettleRounds = 400;

// The core's warnings and errors, into the history of the run in progress.
class HistoryLogSink : public google::LogSink {
 public:
  explicit HistoryLogSink(History* history) : history_(history) { google::AddLogSink(this); }
  ~HistoryLogSink() override { google::RemoveLogSink(this); }
  void send(google::LogSeverity severity, const char*, const char* file, int line,
            const google::LogMessageTime&, const char* message, size_t length) override {
    if (severity < google::GLOG_WARNING) return;
    history_->Add(std::string("  log ") + file + ":" + std::to_string(line) + ": " +
                  std::string(message, length));
  }

 private:
  History* history_;
};

class Simulation {
 public:
  Simulation(uint64_t seed, bool ha)
      : seed_(seed),
        ha_(ha),
        random_(seed),
        faults_(ha ? Faults::DrawHa(random_) : Faults::Draw(random_)),
        history_(&clock_),
        invariants_(&history_),
        network_(&random_, &faults_, &history_, &clock_) {}
  ~Simulation();

  SimulationResult Run();

 private:
  struct Bank {
    BankDisk disk;
    MemoryStateStore state;
    std::unique_ptr<SimBackend> backend;
    std::unique_ptr<SimCoordinatorLink> link;
    std::unique_ptr<ParticipantService> service;
  };

  void Setup();
  void StartCoordinator();
  void StartShard();
  void StartParticipant(const std::string& name);
  // Destroys the objects of processes that crashed during the last step.
  void Reap();
  void Step();
  void InjectFault();
  void Freeze(const std::string& when);
  void StepZombie();
  void Forge();
  void RestartSomeone(bool all);
  void StartClient();
  void TickParticipants();
  bool Quiet(std::string* why);
  void Settle();
  void CheckFinal();
  void CheckBalances();
  int64_t Total();
  std::vector<std::string> Names() const;
  void Count(const std::string& what, int64_t n = 1) { counts_[what] += n; }

  const uint64_t seed_;
  const bool ha_;
  SimClock clock_;
  SimRandom random_;
  Faults faults_;
  History history_;
  Invariants invariants_;
  SimNetwork network_;
  Directory directory_;
  std::map<std::string, int64_t> counts_;

  JournalDisk journal_disk_;
  std::unique_ptr<SimJournal> journal_;
  std::unique_ptr<SimParticipants> coordinator_links_;
  std::unique_ptr<Coordinator> coordinator_;
  std::map<std::string, Bank> banks_;
  // A frozen old run of the coordinator (see Freeze), on its copy of the journal.
  struct Zombie {
    JournalDisk disk;
    std::unique_ptr<SimJournal> journal;
    std::unique_ptr<SimParticipants> links;
    std::unique_ptr<Coordinator> coordinator;
  } zombie_;

  // An HA run's coordinators (instead of the single one above).
  std::unique_ptr<ShardMembers> shard_;

  std::vector<std::unique_ptr<TransferClient>> clients_;
  std::vector<TransferClient*> stepping_;  // clients inside a Step (an HA pause nests steps)
  int total_clients_ = 0;
  int max_concurrent_ = 0;
  int64_t initial_total_ = 0;
};

Simulation::~Simulation() {
  for (auto& [name, bank] : banks_) {
    bank.service.reset();
    bank.link.reset();
    bank.backend.reset();
  }
  coordinator_.reset();
  zombie_.coordinator.reset();
  shard_.reset();
}

std::vector<std::string> Simulation::Names() const {
  std::vector<std::string> names;
  for (const auto& [name, bank] : banks_) names.push_back(name);
  return names;
}

void Simulation::Setup() {
  history_.Add("seed " + std::to_string(seed_) + ": faults lose_request=" +
               std::to_string(faults_.lose_request) + " lose_reply=" +
               std::to_string(faults_.lose_reply) + " duplicate=" +
               std::to_string(faults_.duplicate) + " delay=" + std::to_string(faults_.delay) +
               " journal=" + std::to_string(faults_.journal_clean_failure) + "/" +
               std::to_string(faults_.journal_ambiguous_failure) + "/" +
               std::to_string(faults_.journal_abort_failure) + " backend=" +
               std::to_string(faults_.prepare_failure) + "/" +
               std::to_string(faults_.prepare_ambiguous) + "/" +
               std::to_string(faults_.commit_failure) + "/" +
               std::to_string(faults_.one_phase_ambiguous) + " crash=" +
               std::to_string(faults_.crash) + " partition=" + std::to_string(faults_.partition) +
               " zombie=" + std::to_string(faults_.zombie) +
               " forge=" + std::to_string(faults_.forge) +
               (ha_ ? " ha: kill=" + std::to_string(faults_.member_kill) +
                          " pause=" + std::to_string(faults_.active_pause) +
                          " zk_outage=" + std::to_string(faults_.zk_outage) +
                          " zk_partition=" + std::to_string(faults_.zk_partition) +
                          " zk_reply_lost=" + std::to_string(faults_.zk_reply_lost)
                    : std::string()));
  for (int i = 0; i < kParticipants; ++i) {
    std::string name = "p" + std::to_string(i);
    Bank& bank = banks_[name];
    for (int a = 0; a < kAccounts; ++a) bank.disk.balances["a" + std::to_string(a)] = kOpeningBalance;
    auto node = std::make_unique<Directory::Node>(name);
    node->process.OnCrash([this, name](const std::string& why) {
      history_.Add("CRASH " + name + " " + why);
      Count("crashes");
      directory_.Find(name)->process.down_since_ms = clock_.elapsed_ms();
      invariants_.Crashed(name);
      if (banks_[name].backend) banks_[name].backend->LoseVolatile();
    });
    directory_.participants[name] = std::move(node);
  }
  directory_.coordinator.OnCrash([this](const std::string& why) {
    history_.Add("CRASH coordinator " + why);
    Count("crashes");
    directory_.coordinator.down_since_ms = clock_.elapsed_ms();
  });
  directory_.zombie.OnCrash([this](const std::string& why) { history_.Add("CRASH zombie " + why); });
  directory_.client.Start();
  directory_.stranger.Start();
  invariants_.highest_epoch = [this](const std::string& participant) {
    return banks_[participant].state.HighestEpoch(kCoordinatorName);
  };
  initial_total_ = Total();
  total_clients_ = static_cast<int>(random_.Range(10, 40));
  max_concurrent_ = static_cast<int>(random_.Range(1, 8));

  if (ha_) {
    StartShard();
  } else {
    StartCoordinator();
  }
  for (const auto& name : Names()) StartParticipant(name);
  TickParticipants();  // they register
  Reap();
}

void Simulation::StartShard() {
  const int members = static_cast<int>(random_.Range(2, 3));
  const int session_timeout_ms = static_cast<int>(random_.Range(2000, 4000));
  history_.Add("HA: " + std::to_string(members) + " members, session timeout " +
               std::to_string(session_timeout_ms) + " ms");
  shard_ = std::make_unique<ShardMembers>(
      ShardEnvironment{kCoordinatorName, &clock_, &random_, &faults_, &history_, &invariants_,
                       &network_, &directory_, &counts_},
      members, session_timeout_ms);
  directory_.ha_route = [this] { return shard_->Route(); };
  shard_->run_world_step = [this] { Step(); };
  shard_->StartAll();
  // The first election, before the participants register with its winner.
  for (int round = 0; round < 50 && (!shard_->Active() || !shard_->Active()->ready()); ++round) {
    shard_->Drive();
    Reap();
    clock_.Advance(100);
  }
}

void Simulation::StartCoordinator() {
  Process& process = directory_.coordinator;
  int incarnation = process.Start();
  history_.Add("START coordinator (run " + std::to_string(incarnation) + ")");
  journal_ = std::make_unique<SimJournal>(&journal_disk_, &process, &random_, &faults_, &history_);
  coordinator_links_ = std::make_unique<SimParticipants>(&network_, &directory_, &invariants_);
  CoordinatorOptions options = SimCoordinatorOptions(kCoordinatorName, &clock_, &random_);
  options.protocol.on_journal_lost = [journal = journal_.get()](const Status& st) {
    journal->process()->Crash("(it exits: journal lost: " + st.message() + ")");  // maybe the zombie
  };
  coordinator_ = std::make_unique<Coordinator>(options, journal_.get(), coordinator_links_.get());
  directory_.coordinator_object = coordinator_.get();
  Status st = coordinator_->Start();
  if (!st.ok()) {
    process.Crash("(start failed: " + st.ToString() + ")");
  } else {
    history_.Add("coordinator ready, epoch " + std::to_string(coordinator_->epoch()));
  }
}

void Simulation::StartParticipant(const std::string& name) {
  Process& process = directory_.Find(name)->process;
  Bank& bank = banks_[name];
  int incarnation = process.Start();
  ParticipantOptions options;
  options.self = {name, "sim", 7000 + static_cast<int>(banks_.size()), "sim"};
  options.incarnation = name + "-" + std::to_string(incarnation) + "-" + random_.Hex(8);
  options.inquiry_interval_ms = 1000;
  options.orphan_check_interval_ms = 3000;
  options.runtime.clock = &clock_;
  options.runtime.fan_out = SequentialFanOut(&random_);
  options.runtime.background_threads = false;
  history_.Add("START " + name + " (incarnation " + options.incarnation + ", " +
               std::to_string(bank.disk.prepared.size()) + " prepared on disk)");
  bank.backend = std::make_unique<SimBackend>(name, &bank.disk, &process, &random_, &faults_,
                                              &invariants_, &clock_);
  bank.link = std::make_unique<SimCoordinatorLink>(&network_, &directory_, &process);
  bank.service = std::make_unique<ParticipantService>(options, bank.backend.get(), &bank.state,
                                                      bank.link.get());
  directory_.Find(name)->service = bank.service.get();
  Status st = bank.service->Start();
  if (!st.ok()) process.Crash("(start failed: " + st.ToString() + ")");
}

void Simulation::Reap() {
  if (shard_) shard_->Reap();
  if (!directory_.coordinator.up()) {
    directory_.coordinator_object = nullptr;
    coordinator_.reset();
    coordinator_links_.reset();
    journal_.reset();  // its unflushed END records are lost
  }
  if (!directory_.zombie.up() && zombie_.coordinator) {
    directory_.zombie_object = nullptr;
    zombie_.coordinator.reset();
    zombie_.links.reset();
    zombie_.journal.reset();
  }
  for (auto& [name, bank] : banks_) {
    Directory::Node* node = directory_.Find(name);
    if (node->process.up() || !bank.service) continue;
    node->service = nullptr;
    bank.service.reset();
    bank.link.reset();
    bank.backend.reset();
  }
}

void Simulation::StartClient() {
  TransferPlan plan;
  std::vector<std::string> names = Names();
  plan.from = random_.Pick(names);
  plan.to = random_.Chance(0.3) ? plan.from : random_.Pick(names);
  plan.from_account = "a" + std::to_string(random_.Below(kAccounts));
  plan.to_account = "a" + std::to_string(random_.Below(kAccounts));
  if (plan.from == plan.to && plan.from_account == plan.to_account) {
    plan.to_account = "a" + std::to_string((random_.Below(kAccounts - 1) + 1 +
                                            std::stoi(plan.from_account.substr(1))) % kAccounts);
  }
  plan.amount = random_.Chance(0.1) ? random_.Range(150, 400) : random_.Range(1, 60);
  plan.timeout_ms = random_.Range(800, 6000);
  plan.credit_first = random_.Chance(0.5);
  plan.application_rollback = random_.Chance(0.1);
  plan.commit_after_overdraft = random_.Chance(0.5);
  plan.return_at_decision = random_.Chance(0.5);
  plan.reserved_id = random_.Chance(0.5);
  if (ha_) {
    plan.begin_attempts = 30;
    plan.commit_attempts = 20;
  }
  int id = static_cast<int>(clients_.size()) + 1;
  clients_.push_back(std::make_unique<TransferClient>(id, plan, &network_, &directory_,
                                                      &invariants_, &history_));
}

void Simulation::TickParticipants() {
  std::vector<std::string> names = Names();
  random_.Shuffle(names);
  for (const auto& name : names) {
    if (auto* node = directory_.Find(name); node->process.up()) node->service->Tick();
  }
}

void Simulation::InjectFault() {
  if (random_.Chance(faults_.crash)) {
    std::vector<Process*> up;  // an HA run's members have their own kills
    if (!ha_ && directory_.coordinator.up()) up.push_back(&directory_.coordinator);
    for (auto& [name, node] : directory_.participants) {
      if (node->process.up()) up.push_back(&node->process);
    }
    if (!up.empty()) {
      // The coordinator is the one whose crashes matter most: half of them.
      Process* victim = directory_.coordinator.up() && random_.Chance(0.5)
                            ? &directory_.coordinator
                            : random_.Pick(up);
      if (random_.Chance(0.3)) {
        victim->Crash("(between steps)");
      } else {
        int64_t n = random_.Range(1, 15);
        victim->ArmCrash(n);
        history_.Add("armed: " + victim->name() + " crashes at its event " + std::to_string(n) +
                     " from now");
      }
    }
  }
  if (random_.Chance(faults_.zombie) && coordinator_ && coordinator_->ready() &&
      directory_.coordinator.up() && !directory_.zombie.up()) {
    if (random_.Chance(0.3)) {
      Freeze("between steps");
    } else {
      int64_t n = random_.Range(1, 15);
      directory_.coordinator.ArmFreeze(n, [this] { Freeze("at its armed event"); });
      history_.Add("armed: coordinator freezes at its event " + std::to_string(n) + " from now");
    }
  }
  if (random_.Chance(faults_.forge)) Forge();
  if (random_.Chance(faults_.partition)) {
    std::vector<std::string> nodes = Names();
    if (ha_) {
      for (const auto& member : shard_->Names()) nodes.push_back(member);
    } else {
      nodes.push_back("coordinator");
    }
    std::string a = random_.Pick(nodes);
    std::string b = random_.Pick(nodes);
    if (a != b) {
      network_.Partition(a, b, random_.Range(200, 5000));
      Count("partitions");
    }
  }
}

// The zombie fault: the coordinator's run is paused, not dead, as when an old
// active stalls and a new one takes over from shared storage that does not
// fence it. The object lives on with its in-flight and queued work; its
// journal writes go, from this moment, to a copy of the journal disk as it is
// now; and the coordinator's process is down, so that a new run starts on the
// real disk in the usual way (RestartSomeone), raises the epoch and presumes
// abort (the freeze counts as one of its crashes). This
// may happen in the middle of a call (an armed freeze): the rest of that call
// runs as the zombie, asleep, so that its messages fail and only its journal
// writes (to its copy) happen.
void Simulation::Freeze(const std::string& when) {
  Process& zombie = directory_.zombie;
  zombie.Start();
  zombie.asleep = true;
  zombie_.disk = journal_disk_;
  journal_->Fork(&zombie_.disk, &zombie);
  coordinator_links_->SetSender(&zombie);
  zombie_.journal = std::move(journal_);
  zombie_.links = std::move(coordinator_links_);
  zombie_.coordinator = std::move(coordinator_);
  directory_.zombie_object = zombie_.coordinator.get();  // Reap clears coordinator_object
  Count("zombies");
  directory_.coordinator.Crash("(it freezes " + when + ": run " +
                               std::to_string(directory_.coordinator.incarnation()) + ", epoch " +
                               std::to_string(directory_.zombie_object->epoch()) +
                               ", lives on asleep as the zombie, on a copy of the journal)");
}

// The zombie wakes (and ticks at once: its queued retries go out with its old
// epoch's fence), carries on for a while, and is killed for good. It wakes
// only once every participant has admitted a newer epoch. Before that it could
// commit where it is not yet fenced while the new run presumes abort
// elsewhere: a split brain that no participant's fence can prevent (only
// journal storage that refuses the old run's writes could).
void Simulation::StepZombie() {
  Process& zombie = directory_.zombie;
  if (!zombie.up()) return;
  if (!zombie.asleep) {
    if (random_.Chance(0.03)) zombie.Crash("(killed for good)");
    return;
  }
  const int64_t epoch = zombie_.coordinator->epoch();
  for (const auto& name : Names()) {
    if (banks_[name].state.HighestEpoch(kCoordinatorName) <= epoch) return;
  }
  if (!random_.Chance(0.5)) return;
  zombie.asleep = false;
  Count("zombies woken");
  history_.Add("WAKE zombie (epoch " + std::to_string(epoch) + "): it carries on");
  zombie_.coordinator->Tick();
}

// The forgery fault: a stranger on the network sends a participant a fenced
// call with a made-up fence, an epoch of the real coordinator's name that no
// run of it will reach or another coordinator's name, about a branch it
// holds. It must be refused, change nothing, and leave no trace in the
// participant's state (a stored forged epoch would fence the real
// coordinator off for good).
void Simulation::Forge() {
  constexpr int64_t kForgedEpoch = 1000000000000;
  const std::string target = random_.Pick(Names());
  Directory::Node* node = directory_.Find(target);
  Fence fence = random_.Chance(0.5)
                    ? Fence{kCoordinatorName, kForgedEpoch + random_.Range(0, 1000)}
                    : Fence{"stranger-" + random_.Hex(4), random_.Range(0, 3)};
  std::string txn_id = std::string(kCoordinatorName) + ".1.1";
  if (node->process.up()) {
    auto held = node->service->ListBranches();
    if (!held.empty()) txn_id = random_.Pick(held).txn_id;
  }
  static const char* const kVerbs[] = {"prepare", "commit", "commit-1pc", "rollback", "recover"};
  const std::string verb = kVerbs[random_.Below(5)];
  Count("forgeries");
  Directory* directory = &directory_;
  Invariants* invariants = &invariants_;
  StateStore* state = &banks_[target].state;
  (void)network_.Send<Status>(  // the stranger does not care what it is told
      directory_.stranger, node->process,
      "forged " + verb + " " + txn_id + " [" + fence.coordinator + " epoch " +
          std::to_string(fence.epoch) + "]",
      [=]() -> Status {
        ParticipantService* p = directory->Find(target)->service;
        invariants->BeginDelivery(target, fence, /*forged=*/true);
        Status st = verb == "prepare"      ? p->Prepare(fence, txn_id, "forged.1").status()
                    : verb == "commit"     ? p->Commit(fence, txn_id, false)
                    : verb == "commit-1pc" ? p->Commit(fence, txn_id, true)
                    : verb == "rollback"   ? p->Rollback(fence, txn_id)
                                           : p->Recover(fence).status();
        invariants->EndDelivery(st);
        // The name never seen before, or the epoch no run reaches: stored
        // would be a leak (the first fences the real one off for good).
        int64_t stored = state->HighestEpoch(fence.coordinator);
        if (fence.coordinator == kCoordinatorName ? stored >= kForgedEpoch : stored != 0) {
          invariants->Violation("forgery: " + target + " stored epoch " +
                                std::to_string(stored) + " of coordinator " +
                                fence.coordinator + " on a stranger's word");
        }
        return st;
      });
}

void Simulation::RestartSomeone(bool all) {
  auto due = [&](const Process& p) {
    return !p.up() && (all || (clock_.elapsed_ms() - p.down_since_ms >= 300 && random_.Chance(0.2)));
  };
  if (shard_) {
    shard_->RestartDue(all);
  } else if (due(directory_.coordinator)) {
    Count("restarts");
    StartCoordinator();
  }
  for (const auto& name : Names()) {
    if (due(directory_.Find(name)->process)) {
      Count("restarts");
      StartParticipant(name);
    }
  }
}

void Simulation::Step() {
  std::vector<TransferClient*> running;
  for (auto& c : clients_) {
    const bool inside = std::count(stepping_.begin(), stepping_.end(), c.get()) > 0;
    if (!c->done() && !inside) running.push_back(c.get());
  }
  std::vector<std::pair<int, std::function<void()>>> actions;
  if (!running.empty()) {
    actions.push_back({40, [&] {
                         TransferClient* client = random_.Pick(running);
                         stepping_.push_back(client);
                         client->Step();
                         stepping_.pop_back();
                       }});
  }
  if (static_cast<int>(clients_.size()) < total_clients_ &&
      static_cast<int>(running.size()) < max_concurrent_) {
    actions.push_back({12, [&] { StartClient(); }});
  }
  actions.push_back({8, [&] {
                       if (shard_) {
                         shard_->TickOne();
                       } else if (directory_.coordinator.up()) {
                         coordinator_->Tick();
                       }
                     }});
  if (directory_.zombie.up() && !directory_.zombie.asleep) {
    actions.push_back({8, [&] { zombie_.coordinator->Tick(); }});
  }
  actions.push_back({10, [&] {
                       auto* node = directory_.Find(random_.Pick(Names()));
                       if (node->process.up()) node->service->Tick();
                     }});
  actions.push_back({15, [&] {
                       clock_.Advance(random_.Chance(0.1) ? random_.Range(1000, 4000)
                                                          : random_.Range(1, 200));
                     }});
  if (network_.held() > 0) actions.push_back({6, [&] { network_.DeliverOneHeld(); }});
  actions.push_back({3, [&] {
                       if (shard_) shard_->Flush();
                       if (journal_) journal_->Flush();
                     }});
  int total = 0;
  for (const auto& a : actions) total += a.first;
  int pick = static_cast<int>(random_.Below(total));
  for (const auto& a : actions) {
    if ((pick -= a.first) < 0) {
      a.second();
      break;
    }
  }
  Reap();
  if (shard_) {
    shard_->Drive();
    shard_->InjectFaults();
    shard_->WakeDue();
    Reap();
  }
  InjectFault();
  StepZombie();
  Reap();
  RestartSomeone(false);
  Reap();
  CheckBalances();
}

int64_t Simulation::Total() {
  int64_t total = 0;
  for (const auto& [name, bank] : banks_) total += bank.disk.Total();
  return total;
}

void Simulation::CheckBalances() {
  for (const auto& [name, bank] : banks_) {
    for (const auto& [account, balance] : bank.disk.balances) {
      if (balance < 0) {
        invariants_.Violation("balance: " + name + "/" + account + " is " + std::to_string(balance));
      }
    }
  }
}

bool Simulation::Quiet(std::string* why) {
  why->clear();
  if (network_.held() > 0) *why += " messages still held;";
  for (auto& [name, bank] : banks_) {
    for (const auto& [txn, p] : bank.disk.prepared) *why += " " + name + " holds " + txn + " prepared;";
    if (!bank.service) {
      *why += " " + name + " is down;";
      continue;
    }
    for (const auto& b : bank.service->ListBranches()) {
      *why += " " + name + " holds a branch of " + b.txn_id + ";";
    }
  }
  if (shard_) {
    *why += shard_->Unquiet();
  } else if (!coordinator_) {
    *why += " the coordinator is down;";
  } else {
    for (const auto& t : coordinator_->ListTransactions(
             {TxnState::kActive, TxnState::kPreparing, TxnState::kCommitting,
              TxnState::kAborting})) {
      *why += " coordinator: " + t.id + " is " + TxnStateName(t.state) + ";";
    }
  }
  return why->empty();
}

void Simulation::Settle() {
  history_.Add("--- settling: faults off, partitions healed, everyone restarted ---");
  faults_ = Faults{};
  directory_.zombie.Crash("(killed for good before settling)");
  Reap();
  network_.HealAll();
  if (shard_) shard_->HealAll();
  directory_.coordinator.ArmCrash(0);
  for (auto& [name, node] : directory_.participants) node->process.ArmCrash(0);
  RestartSomeone(/*all=*/true);
  Reap();
  while (network_.held() > 0) network_.DeliverOneHeld();
  std::string why;
  for (int round = 0; round < kSettleRounds; ++round) {
    if (shard_) {
      shard_->RestartDue(true);
      shard_->Drive();
      Reap();
    } else if (!directory_.coordinator.up() || !coordinator_) {
      RestartSomeone(true);
    }
    if (Quiet(&why)) break;
    clock_.Advance(500);
    if (shard_) shard_->TickAll();
    if (coordinator_) coordinator_->Tick();
    TickParticipants();
    Reap();
  }
  if (journal_) journal_->Flush();
  if (shard_) shard_->Flush();
  if (!Quiet(&why)) invariants_.Violation("did not settle:" + why);
  // A one-phase commit whose outcome was lost is asked again until the
  // participant answers: nothing may stay PREPARING once the faults stop.
  Coordinator* deciding = shard_ ? shard_->Active() : coordinator_.get();
  if (deciding) {
    for (const auto& t : deciding->ListTransactions({TxnState::kPreparing})) {
      invariants_.Violation("liveness: " + t.id + " is still PREPARING at the coordinator");
    }
  }
}

void Simulation::CheckFinal() {
  invariants_.CheckOutcomes();
  CheckBalances();
  if (Total() != initial_total_) {
    invariants_.Violation("money: the banks hold " + std::to_string(Total()) + ", not " +
                          std::to_string(initial_total_));
  }
  std::vector<HeuristicRecord> journaled;
  for (const auto& [key, h] : journal_disk_.heuristics) journaled.push_back(h);
  if (shard_) journaled = shard_->Heuristics();
  for (const auto& h : journaled) {
    invariants_.Violation("heuristic hazard journaled for " + h.txn_id + " at " + h.participant +
                          " (no operator acted: the protocol lost work)");
  }
  for (auto& [name, bank] : banks_) {
    for (const auto& h : bank.state.Heuristics()) {
      invariants_.Violation("heuristic decision at " + name + " for " + h.txn_id);
    }
  }
}

SimulationResult Simulation::Run() {
  HistoryLogSink sink(&history_);
  Setup();
  int steps = 0;
  auto finished = [&] {
    if (static_cast<int>(clients_.size()) < total_clients_) return false;
    for (auto& c : clients_) {
      if (!c->done()) return false;
    }
    return true;
  };
  while (!finished() && steps < kMaxSteps) {
    Step();
    ++steps;
  }
  if (!finished()) invariants_.Violation("clients did not finish in " + std::to_string(steps) + " steps");
  Settle();
  CheckFinal();
  for (auto& c : clients_) Count(std::string("told ") + ToldName(c->told()));
  Count("steps", steps);
  Count("fenced answers", invariants_.fenced_answers());
  Count("transactions", static_cast<int64_t>(clients_.size()));
  Count("sim seconds", clock_.elapsed_ms() / 1000);
  history_.Add(invariants_.violations().empty()
                   ? "--- all invariants hold ---"
                   : "--- " + std::to_string(invariants_.violations().size()) + " violation(s) ---");
  SimulationResult result;
  result.seed = seed_;
  result.violations = invariants_.violations();
  result.history = history_.lines();
  result.counts = counts_;
  return result;
}

}  // namespace

SimulationResult RunSimulation(uint64_t seed, bool ha) {
  Simulation simulation(seed, ha);
  return simulation.Run();
}

}  // namespace pact::sim
