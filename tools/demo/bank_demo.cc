// pact-bank-demo: the quick start's example workload. Moves money between
// accounts held by two participants (bank_a, bank_b) in atomic transfers:
// some commit, one aborts because bank_b votes no at prepare, one is rolled
// back by the application. Prints balances before and after.
#include <iostream>
#include <string>

#include <boost/program_options.hpp>

#include "client/pact_client.h"
#include "rpc/security_flags.h"

namespace {

struct Transfer {
  std::string description;
  std::string from_bank;
  int64_t from_account;
  std::string to_bank;
  int64_t to_account;
  int64_t amount;
};

// Debits and credits with a ledger row on each side, then commits.
pact::Status RunTransfer(pact::Client& client, const Transfer& t, std::string* txn_id) {
  auto txn = client.Begin(/*timeout_ms=*/10000);
  if (!txn.ok()) return txn.status();
  *txn_id = (*txn)->id();
  auto step = [&](const std::string& bank, int64_t account, int64_t delta) -> pact::Status {
    auto updated = (*txn)->Execute(
        bank, "UPDATE accounts SET balance = balance + ?1 WHERE id = ?2", {delta, account});
    if (!updated.ok()) return updated.status();
    auto logged = (*txn)->Execute(
        bank, "INSERT INTO ledger(txn_id, account, amount) VALUES (?1, ?2, ?3)",
        {*txn_id, account, delta});
    return logged.status();
  };
  pact::Status st = step(t.from_bank, t.from_account, -t.amount);
  if (st.ok()) st = step(t.to_bank, t.to_account, t.amount);
  if (!st.ok()) {
    // The application gives up: roll back everything this transfer touched.
    pact::Status rolled_back = (*txn)->Rollback();
    return pact::Status::Aborted("rolled back by the application after: " + st.ToString() +
                                 (rolled_back.ok() ? "" : " (" + rolled_back.ToString() + ")"));
  }
  return (*txn)->Commit();
}

// Prints every account of both banks; returns the total.
pact::Result<int64_t> PrintBalances(pact::Client& client, const std::string& title) {
  std::cout << "\n" << title << "\n";
  int64_t total = 0;
  auto txn = client.Begin();
  if (!txn.ok()) return txn.status();
  for (const std::string bank : {"bank_a", "bank_b"}) {
    auto rows = (*txn)->Execute(bank, "SELECT id, owner, balance FROM accounts ORDER BY id");
    if (!rows.ok()) return rows.status();
    for (const auto& row : rows->rows) {
      int64_t balance = std::get<int64_t>(row[2]);
      std::cout << "  " << bank << "  account " << std::get<int64_t>(row[0]) << "  "
                << std::get<std::string>(row[1]) << "\t" << balance << "\n";
      total += balance;
    }
  }
  pact::Status st = (*txn)->Commit();  // read-only
  if (!st.ok()) return st;
  std::cout << "  total " << total << "\n";
  return total;
}

}  // namespace

int main(int argc, char** argv) {
  namespace po = boost::program_options;
  std::string coordinator;
  pact::SecurityFlags security;
  po::options_description desc("Usage: pact-bank-demo [COORDINATOR_HOST:PORT] [options]");
  desc.add_options()("help,h", "print this help")(
      "coordinator", po::value(&coordinator)->default_value("127.0.0.1:7700"),
      "coordinator HOST:PORT");
  pact::AddSecurityFlags(&desc, &security);
  po::positional_options_description positional;
  positional.add("coordinator", 1);
  try {
    po::variables_map vm;
    po::store(po::command_line_parser(argc, argv).options(desc).positional(positional).run(), vm);
    po::notify(vm);
    if (vm.count("help")) {
      std::cout << desc << "\n";
      return 0;
    }
  } catch (const po::error& e) {
    std::cerr << "pact-bank-demo: " << e.what() << "\n" << desc << "\n";
    return 2;
  }
  pact::ClientOptions options;
  auto credentials = pact::MakeClientCredentials(security, pact::Role::kApplication);
  if (!credentials.ok()) {
    std::cerr << "pact-bank-demo: " << credentials.status().ToString() << "\n";
    return 2;
  }
  options.credentials = *credentials;
  auto client = pact::Client::Connect(coordinator, options);
  if (!client.ok()) {
    std::cerr << client.status().ToString() << "\n";
    return 1;
  }
  auto before = PrintBalances(**client, "Balances before:");
  if (!before.ok()) {
    std::cerr << "cannot read balances: " << before.status().ToString() << "\n";
    return 1;
  }

  const Transfer kTransfers[] = {
      {"alice (bank_a) pays bob (bank_b) 30", "bank_a", 1, "bank_b", 1, 30},
      {"bob (bank_b) pays carol (bank_a) 45", "bank_b", 1, "bank_a", 2, 45},
      {"carol (bank_a) pays account 99 at bank_b, which does not exist", "bank_a", 2, "bank_b",
       99, 20},
      {"dave (bank_b) pays alice (bank_a) 500, more than he has", "bank_b", 2, "bank_a", 1, 500},
      {"dave (bank_b) pays alice (bank_a) 25", "bank_b", 2, "bank_a", 1, 25},
  };
  std::cout << "\nTransfers:\n";
  int committed = 0, aborted = 0;
  for (const auto& t : kTransfers) {
    std::string txn_id;
    pact::Status st = RunTransfer(**client, t, &txn_id);
    std::cout << "  " << txn_id << "  " << t.description << "\n      -> "
              << (st.ok() ? "COMMITTED" : st.ToString()) << "\n";
    (st.ok() ? committed : aborted)++;
  }

  auto after = PrintBalances(**client, "Balances after:");
  if (!after.ok()) {
    std::cerr << "cannot read balances: " << after.status().ToString() << "\n";
    return 1;
  }
  std::cout << "\n" << committed << " committed, " << aborted << " aborted; total before "
            << *before << ", after " << *after
            << (*before == *after ? " (no money created or lost)" : "  MISMATCH") << "\n";
  return *before == *after ? 0 : 1;
}
