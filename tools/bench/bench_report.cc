#include "tools/bench/bench_report.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "tools/output/output.h"

namespace pact {
namespace {

void StringList(JsonWriter& j, const char* key, const std::vector<std::string>& items) {
  j.Key(key).BeginArray();
  for (const auto& s : items) j.String(s);
  j.EndArray();
}

void StartEndJson(JsonWriter& j, const char* key, const std::optional<StartEnd>& v) {
  j.Key(key);
  if (!v) {
    j.Null();
    return;
  }
  j.BeginObject().Key("start").Int(v->start).Key("end").Int(v->end).EndObject();
}

std::string Format(const char* fmt, double v) {
  char buf[64];
  std::snprintf(buf, sizeof(buf), fmt, v);
  return buf;
}

std::string Count(int64_t n, const std::string& noun) {
  return std::to_string(n) + " " + noun + (n == 1 ? "" : "s");
}

std::string Mib(int64_t bytes) { return Format("%.1f MiB", bytes / 1048576.0); }
std::string Kib(int64_t bytes) { return Format("%.0f KiB", bytes / 1024.0); }
std::string Ms(int64_t micros) { return Format("%.2f", micros / 1000.0); }

// CPU milliseconds per committed transaction, or nothing when none committed.
std::optional<double> CpuMsPerTx(double cpu_seconds, int64_t committed) {
  if (committed <= 0) return std::nullopt;
  return cpu_seconds * 1000.0 / committed;
}

bool IsZooKeeper(const ProcessUsage& p) { return p.name.rfind("zookeeper", 0) == 0; }

// Pact's own processes: everything sampled but the load generator and the
// ZooKeeper servers.
std::optional<double> PactCpuSeconds(const LoadReport& r) {
  if (r.mode != "pact" || r.cpu.empty()) return std::nullopt;
  double total = 0;
  for (const auto& p : r.cpu) {
    if (p.name != "pact-bench" && !IsZooKeeper(p)) total += p.cpu_seconds;
  }
  return total;
}

std::optional<double> ZooKeeperCpuSeconds(const LoadReport& r) {
  std::optional<double> total;
  for (const auto& p : r.cpu) {
    if (IsZooKeeper(p)) total = total.value_or(0) + p.cpu_seconds;
  }
  return total;
}

// Nearest rank over the kills: with 20, p90 is the 18th and p99 the 20th.
int64_t KillPercentile(std::vector<int64_t> ms, double q) {
  if (ms.empty()) return 0;
  std::sort(ms.begin(), ms.end());
  size_t rank = static_cast<size_t>(std::ceil(q * ms.size()));
  return ms[std::min(ms.size(), std::max<size_t>(rank, 1)) - 1];
}

struct KillFigure {
  const char* key;
  const char* label;
  int64_t FailoverKill::*field;
};

const KillFigure kKillFigures[] = {
    {"serving_ms", "standby serving", &FailoverKill::serving_ms},
    {"first_commit_ms", "first commit   ", &FailoverKill::first_commit_ms},
    {"standing_by_ms", "restart standby", &FailoverKill::standing_by_ms},
};

std::vector<int64_t> KillValues(const LoadReport& r, int64_t FailoverKill::*field) {
  std::vector<int64_t> ms;
  for (const auto& k : r.failovers) ms.push_back(k.*field);
  return ms;
}

std::string SessionTimeout(const LoadReport& r) {
  return r.zk_session_timeout_ms > 0 ? std::to_string(r.zk_session_timeout_ms) + " ms"
                                     : std::string("the coordinator's default");
}

void LoadJson(const LoadReport& r, std::ostream& out) {
  JsonWriter j;
  j.BeginObject()
      .Key("mode").String(r.mode)
      .Key("backend").String(r.backend)
      .Key("backend_label").String(r.backend_label)
      .Key("clients").Int(r.clients)
      .Key("participants").Int(r.participants)
      .Key("statements").Int(r.statements)
      .Key("accounts").Int(r.accounts)
      .Key("decisions_in").String(r.decisions_in)
      .Key("shards").Int(r.shards)
      .Key("warmup_s").Double(r.warmup_s)
      .Key("duration_s").Double(r.measured_seconds)
      .Key("interrupted").Bool(r.interrupted);
  StringList(j, "coordinator_flags", r.coordinator_flags);
  j.Key("tx_per_s").Double(r.tx_per_s())
      .Key("attempted").Int(r.measured.attempted)
      .Key("committed").Int(r.measured.committed)
      .Key("aborted").Int(r.measured.aborted)
      .Key("errors").Int(r.measured.errors);
  j.Key("latency_ms").BeginObject()
      .Key("p50").Double(r.latency.PercentileMicros(0.50) / 1000.0)
      .Key("p95").Double(r.latency.PercentileMicros(0.95) / 1000.0)
      .Key("p99").Double(r.latency.PercentileMicros(0.99) / 1000.0)
      .Key("max").Double(r.latency.max_micros() / 1000.0)
      .Key("mean").Double(r.latency.mean_micros() / 1000.0)
      .EndObject();
  if (r.fsyncs_per_commit) {
    j.Key("journal_fsyncs_per_commit").Double(*r.fsyncs_per_commit);
  } else {
    j.Key("journal_fsyncs_per_commit").Null();
  }
  j.Key("cpu_seconds").BeginObject();
  for (const auto& p : r.cpu) j.Key(p.name.c_str()).Double(p.cpu_seconds);
  j.EndObject();
  j.Key("cpu_ms_per_committed_tx").BeginObject();
  for (const auto& p : r.cpu) {
    if (auto ms = CpuMsPerTx(p.cpu_seconds, r.measured.committed)) {
      j.Key(p.name.c_str()).Double(*ms);
    }
  }
  j.EndObject();
  const std::optional<double> pact_cpu = PactCpuSeconds(r);
  const std::optional<double> pact_ms =
      pact_cpu ? CpuMsPerTx(*pact_cpu, r.measured.committed) : std::nullopt;
  j.Key("pact_cpu_ms_per_committed_tx");
  if (pact_ms) {
    j.Double(*pact_ms);
  } else {
    j.Null();
  }
  if (auto zk_cpu = ZooKeeperCpuSeconds(r)) {
    j.Key("zookeeper_cpu_ms_per_committed_tx");
    if (auto ms = CpuMsPerTx(*zk_cpu, r.measured.committed)) {
      j.Double(*ms);
    } else {
      j.Null();
    }
  }
  if (!r.failovers.empty()) {
    j.Key("zk_session_timeout_ms").Int(r.zk_session_timeout_ms);
    j.Key("failovers").BeginObject().Key("kills").Int(static_cast<int64_t>(r.failovers.size()));
    for (const KillFigure& f : kKillFigures) {
      std::vector<int64_t> ms = KillValues(r, f.field);
      j.Key(f.key).BeginObject()
          .Key("min").Int(KillPercentile(ms, 0))
          .Key("p50").Int(KillPercentile(ms, 0.50))
          .Key("p90").Int(KillPercentile(ms, 0.90))
          .Key("p99").Int(KillPercentile(ms, 0.99))
          .Key("max").Int(KillPercentile(ms, 1))
          .Key("each").BeginArray();
      for (int64_t v : ms) j.Int(v);
      j.EndArray().EndObject();
    }
    j.EndObject();
  }
  StartEndJson(j, "coordinator_rss_bytes", r.coordinator_rss_bytes);
  StartEndJson(j, "journal_bytes", r.journal_bytes);
  StartEndJson(j, "balance_sum", r.balance_sum);
  j.Key("failures_by_code").BeginObject();
  for (const auto& [code, n] : r.failures_by_code) j.Key(code.c_str()).Int(n);
  j.EndObject();
  StringList(j, "failure_examples", r.failure_examples);
  j.Key("ok").Bool(r.ok());
  StringList(j, "problems", r.problems);
  StringList(j, "notes", r.notes);
  j.EndObject();
  out << j.str() << "\n";
}

void LoadText(const LoadReport& r, std::ostream& out) {
  out << "pact-bench: " << r.backend_label << "\n";
  out << "  " << Count(r.clients, "client") << ", " << Count(r.participants, "participant") << ", "
      << Count(r.statements, "statement") << " per branch, " << r.accounts
      << " accounts per participant; warm-up " << Format("%.1f", r.warmup_s) << " s, measured "
      << Format("%.2f", r.measured_seconds) << " s" << (r.interrupted ? " (interrupted)" : "")
      << "\n";
  if (!r.coordinator_flags.empty()) {
    out << "  coordinator flags:";
    for (const auto& f : r.coordinator_flags) out << " " << f;
    out << "\n";
  }
  out << "\n";
  out << "throughput        " << Format("%.1f", r.tx_per_s()) << " committed tx/s\n";
  out << "transactions      attempted " << r.measured.attempted << ", committed "
      << r.measured.committed << ", aborted " << r.measured.aborted << ", errors "
      << r.measured.errors << "\n";
  out << "latency (ms)      p50 " << Ms(r.latency.PercentileMicros(0.50)) << "  p95 "
      << Ms(r.latency.PercentileMicros(0.95)) << "  p99 " << Ms(r.latency.PercentileMicros(0.99))
      << "  max " << Ms(r.latency.max_micros()) << "  (committed, begin to commit returned)\n";
  if (r.mode == "pact" && !r.failovers.empty()) {
    // The killed actives took their counters with them: no per-commit figure.
  } else if (r.mode == "pact" && r.decisions_in == "zookeeper") {
    out << "ZooKeeper multis  "
        << (r.fsyncs_per_commit ? Format("%.3f", *r.fsyncs_per_commit) : std::string("n/a"))
        << " per committed transaction";
    if (r.fsync_batches && r.coordinator_commits) {
      out << " (" << *r.fsync_batches << " multis, " << *r.coordinator_commits << " commits)";
    }
    out << "\n";
  } else if (r.mode == "pact") {
    out << "journal fsyncs    "
        << (r.fsyncs_per_commit ? Format("%.3f", *r.fsyncs_per_commit) : std::string("n/a"))
        << " per committed transaction";
    if (r.fsync_batches && r.coordinator_commits) {
      out << " (" << *r.fsync_batches << " fsyncs, " << *r.coordinator_commits << " commits)";
    }
    out << "\n";
  }
  if (r.journal_bytes) {
    out << "journal size      " << Kib(r.journal_bytes->start) << " at start, "
        << Kib(r.journal_bytes->end) << " at end\n";
  }
  if (r.coordinator_rss_bytes) {
    out << "coordinator RSS   " << Mib(r.coordinator_rss_bytes->start) << " at start, "
        << Mib(r.coordinator_rss_bytes->end) << " at end\n";
  }
  if (!r.cpu.empty()) {
    out << "CPU seconds       ";
    for (const auto& p : r.cpu) out << p.name << " " << Format("%.2f", p.cpu_seconds) << "  ";
    out << "\n";
  }
  if (!r.cpu.empty() && r.measured.committed > 0) {
    out << "CPU ms per tx     ";
    for (const auto& p : r.cpu) {
      out << p.name << " " << Format("%.3f", *CpuMsPerTx(p.cpu_seconds, r.measured.committed))
          << "  ";
    }
    if (auto pact_cpu = PactCpuSeconds(r)) {
      out << "Pact total " << Format("%.3f", *CpuMsPerTx(*pact_cpu, r.measured.committed));
    }
    if (auto zk_cpu = ZooKeeperCpuSeconds(r)) {
      out << "  ZooKeeper total " << Format("%.3f", *CpuMsPerTx(*zk_cpu, r.measured.committed));
    }
    out << "  (per committed transaction)\n";
  }
  if (!r.failovers.empty()) {
    out << "failovers         " << r.failovers.size() << " kill -9 of the active, session timeout "
        << SessionTimeout(r) << "; ms from the kill (restart: from the relaunch):\n";
    for (const KillFigure& f : kKillFigures) {
      std::vector<int64_t> ms = KillValues(r, f.field);
      out << "  " << f.label << "  min " << KillPercentile(ms, 0) << "  p50 "
          << KillPercentile(ms, 0.50) << "  p90 " << KillPercentile(ms, 0.90) << "  p99 "
          << KillPercentile(ms, 0.99) << "  max " << KillPercentile(ms, 1) << "   each:";
      for (int64_t v : ms) out << " " << v;
      out << "\n";
    }
  }
  if (!r.failures_by_code.empty()) {
    out << "failures          ";
    for (const auto& [code, n] : r.failures_by_code) out << code << " " << n << "  ";
    out << "\n";
    for (const auto& e : r.failure_examples) out << "  e.g. " << e << "\n";
  }
  out << "check             ";
  if (r.balance_sum) {
    out << "sum of balances " << r.balance_sum->start << " before, " << r.balance_sum->end
        << " after; ";
  }
  out << (r.ok() ? "every transaction accounted for: OK" : "FAILED") << "\n";
  for (const auto& p : r.problems) out << "  problem: " << p << "\n";
  for (const auto& n : r.notes) out << "  note: " << n << "\n";
}

void RecoveryJson(const RecoveryReport& r, std::ostream& out) {
  JsonWriter j;
  j.BeginObject()
      .Key("mode").String("recovery")
      .Key("decisions").Int(r.decisions)
      .Key("participants").Int(r.participants)
      .Key("journal_setup_s").Double(r.journal_setup_seconds)
      .Key("serving_s").Double(r.serving_seconds)
      .Key("finished_s").Double(r.finished_seconds)
      .Key("decisions_per_s").Double(r.finished_seconds > 0 ? r.decisions / r.finished_seconds : 0)
      .Key("coordinator_cpu_s").Double(r.coordinator_cpu_seconds);
  if (r.committed) {
    j.Key("committed").Int(*r.committed);
  } else {
    j.Key("committed").Null();
  }
  if (r.left_in_journal) {
    j.Key("left_in_journal").Int(*r.left_in_journal);
  } else {
    j.Key("left_in_journal").Null();
  }
  j.Key("ok").Bool(r.ok());
  StringList(j, "problems", r.problems);
  StringList(j, "notes", r.notes);
  j.EndObject();
  out << j.str() << "\n";
}

void RecoveryText(const RecoveryReport& r, std::ostream& out) {
  out << "pact-bench: coordinator recovery, " << r.decisions << " unfinished COMMIT decisions over "
      << r.participants << " null participants\n\n";
  out << "journal set-up    " << Format("%.2f", r.journal_setup_seconds)
      << " s (writing the records; not part of recovery)\n";
  out << "serving after     " << Format("%.3f", r.serving_seconds) << " s\n";
  out << "all finished      " << Format("%.3f", r.finished_seconds) << " s ("
      << Format("%.0f", r.finished_seconds > 0 ? r.decisions / r.finished_seconds : 0)
      << " decisions/s) from coordinator start\n";
  out << "coordinator CPU   " << Format("%.2f", r.coordinator_cpu_seconds) << " s\n";
  out << "committed         " << (r.committed ? std::to_string(*r.committed) : "n/a")
      << " (coordinator's txns_committed)\n";
  out << "left in journal   " << (r.left_in_journal ? std::to_string(*r.left_in_journal) : "n/a")
      << " after the coordinator stopped\n";
  out << "check             " << (r.ok() ? "OK" : "FAILED") << "\n";
  for (const auto& p : r.problems) out << "  problem: " << p << "\n";
  for (const auto& n : r.notes) out << "  note: " << n << "\n";
}

}  // namespace

void PrintLoadReport(const LoadReport& report, bool json, std::ostream& out) {
  json ? LoadJson(report, out) : LoadText(report, out);
}

void PrintRecoveryReport(const RecoveryReport& report, bool json, std::ostream& out) {
  json ? RecoveryJson(report, out) : RecoveryText(report, out);
}

}  // namespace pact
