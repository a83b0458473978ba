// pactctl: inspect and resolve transactions of a Pact coordinator and its
// participants.
#include <iostream>
#include <string>
#include <vector>

#include <boost/program_options.hpp>

#include "rpc/security_flags.h"
#include "tools/pactctl/pactctl.h"

namespace po = boost::program_options;

namespace {

const char kUsage[] =
    "Usage: pactctl [--coordinator HOST:PORT] [--json] COMMAND [ARGS]\n"
    "\n"
    "Looking:\n"
    "  txns [--state S]      transactions the coordinator holds: open ones, recently\n"
    "                        finished ones and unfinished commits. S is one of ACTIVE,\n"
    "                        PREPARING, COMMITTING, COMMITTED, ABORTING, ABORTED.\n"
    "  show TXN              one transaction: state, age, deadline, and every branch with\n"
    "                        its vote, state, attempts and last error\n"
    "  participants          registered participants: backend, endpoint, reachable or\n"
    "                        not, open and prepared branches, oldest prepared\n"
    "  branches [NAME]       the open branches (ACTIVE or PREPARED) at every participant,\n"
    "                        or at NAME\n"
    "  in-doubt              every prepared branch at every participant, how long it has\n"
    "                        waited, and what its coordinator says: COMMITTED, ACTIVE,\n"
    "                        ABORTED or unreachable\n"
    "  heuristics            heuristic mixes: branches an operator decided against the\n"
    "                        coordinator's decision (kept until `forget`)\n"
    "  stats                 the coordinator's counters and commit latency percentiles\n"
    "  journal PATH          read a journal file with the coordinator stopped: epoch,\n"
    "                        participants, unfinished decisions, heuristic mixes\n"
    "  shards --zookeeper Z  highly available shards: each one's active and standbys,\n"
    "                        whether it is in the shard map, its epoch and its unfinished\n"
    "                        decisions, from ZooKeeper\n"
    "\n"
    "Acting:\n"
    "  unmap-shard NAME --zookeeper Z   take a shard out of the shard map: zk:// clients\n"
    "                        begin no new transaction there; its coordinators finish what\n"
    "                        it owns (map-shard NAME puts it back)\n"
    "  retry TXN             re-send the pending commits of a COMMITTING transaction now\n"
    "  resolve TXN --commit|--rollback [--participant P]... [--force] [--journal PATH]\n"
    "                        decide an in-doubt branch by hand when its coordinator is\n"
    "                        lost. Refused while the coordinator answers and knows the\n"
    "                        outcome (it finishes the branch itself) unless --force. P is\n"
    "                        a registered name or HOST:PORT; default every participant.\n"
    "  forget TXN            drop the heuristic mix records of TXN once dealt with\n"
    "  remove-participant NAME [--force]\n"
    "                        unregister a participant; refused while it may hold branches\n"
    "                        (--force skips asking the participant itself)\n"
    "\n"
    "With the coordinator down, `participants`, `branches`, `in-doubt` and `resolve`\n"
    "find the participants in the coordinator's journal: add --journal PATH.\n"
    "\n"
    "Exit status: 0 ok; 1 the service answered an error or the request was refused;\n"
    "2 bad usage; 3 the coordinator could not be reached.";

}  // namespace

int main(int argc, char** argv) {
  using namespace pact::ctl;
  std::string coordinator, state, command;
  std::vector<std::string> args;
  ResolveRequest resolve;
  pact::SecurityFlags security;
  po::options_description desc("Options");
  desc.add_options()
      ("help,h", "print this help")
      ("coordinator", po::value(&coordinator)->default_value("127.0.0.1:7700"),
       "coordinator HOST:PORT")
      ("json", "print JSON instead of tables")
      ("state", po::value(&state)->default_value(""), "txns: only transactions in this state")
      ("commit", "resolve: commit the branch")
      ("rollback", "resolve: roll the branch back")
      ("participant", po::value(&resolve.participants)->composing(),
       "resolve: where (name or HOST:PORT; repeatable)")
      ("journal", po::value<std::string>()->default_value(""),
       "participants, branches, in-doubt, resolve: the coordinator's journal file, to find "
       "the participants while the coordinator is down")
      ("force", "resolve, remove-participant: override the safety refusal")
      ("zookeeper", po::value<std::string>()->default_value(""),
       "shards, map-shard, unmap-shard: ZooKeeper connect string (HOST:PORT,...)")
      ("zk_root", po::value<std::string>()->default_value("/pact"),
       "shards: the znode the coordinators were given as --zk_root");
  pact::AddSecurityFlags(&desc, &security);
  po::options_description hidden;
  hidden.add_options()("command", po::value(&command))("args", po::value(&args));
  po::options_description all;
  all.add(desc).add(hidden);
  po::positional_options_description positional;
  positional.add("command", 1).add("args", -1);
  po::variables_map vm;
  try {
    po::store(po::command_line_parser(argc, argv).options(all).positional(positional).run(), vm);
    po::notify(vm);
  } catch (const po::error& e) {
    std::cerr << "pactctl: " << e.what() << "\n\n" << kUsage << "\n";
    return kExitUsage;
  }
  if (vm.count("help") || command.empty()) {
    std::cout << kUsage << "\n\n" << desc << "\n";
    return vm.count("help") ? kExitOk : kExitUsage;
  }
  auto endpoint = pact::Endpoint::Parse(coordinator);
  if (!endpoint.ok()) {
    std::cerr << "pactctl: --coordinator: " << endpoint.status().ToString() << "\n";
    return kExitUsage;
  }
  auto credentials = pact::MakeClientCredentials(security, pact::Role::kOperator);
  if (!credentials.ok()) {
    std::cerr << "pactctl: " << credentials.status().ToString() << "\n";
    return kExitUsage;
  }
  Context ctx;
  ctx.coordinator = *endpoint;
  ctx.credentials = *credentials;
  ctx.json = vm.count("json") > 0;
  ctx.journal = vm["journal"].as<std::string>();
  bool force = vm.count("force") > 0;
  const size_t n = args.size();

  if (command == "txns" && n == 0) return Txns(ctx, state);
  if (command == "show" && n == 1) return Show(ctx, args[0]);
  if (command == "participants" && n == 0) return Participants(ctx);
  if (command == "branches" && n <= 1) return Branches(ctx, n == 0 ? "" : args[0]);
  if (command == "in-doubt" && n == 0) return InDoubt(ctx);
  if (command == "heuristics" && n == 0) return Heuristics(ctx);
  if (command == "stats" && n == 0) return Stats(ctx);
  if (command == "journal" && n == 1) return Journal(ctx, args[0]);
  if (command == "shards" && n == 0) {
    return Shards(ctx, vm["zookeeper"].as<std::string>(), vm["zk_root"].as<std::string>());
  }
  if ((command == "map-shard" || command == "unmap-shard") && n == 1) {
    return MapShard(ctx, vm["zookeeper"].as<std::string>(), vm["zk_root"].as<std::string>(),
                    args[0], command == "map-shard");
  }
  if (command == "retry" && n == 1) return Retry(ctx, args[0]);
  if (command == "forget" && n == 1) return Forget(ctx, args[0]);
  if (command == "remove-participant" && n == 1) return RemoveParticipant(ctx, args[0], force);
  if (command == "resolve" && n == 1 && vm.count("commit") != vm.count("rollback")) {
    resolve.txn_id = args[0];
    resolve.commit = vm.count("commit") > 0;
    resolve.force = force;
    return Resolve(ctx, resolve);
  }
  std::cerr << "pactctl: bad command line\n\n" << kUsage << "\n";
  return kExitUsage;
}
