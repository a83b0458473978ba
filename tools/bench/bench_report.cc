#include "tools/bench/bench_report.h"

#include <cmath>
#include <cstdio>
#include <sstream>

#include "tools/output/output.h"

namespace pact {
namespace {

// Appends one JSON value; tools/output.h's JsonWriter has no real numbers,
// which a benchmark report is mostly made of.
class Json {
 public:
  Json& BeginObject(const char* key = nullptr) { return Open(key, '{'); }
  Json& BeginArray(const char* key = nullptr) { return Open(key, '['); }
  Json& End() {
    out_ << (closers_.back());
    closers_.pop_back();
    first_ = false;
    return *this;
  }
  Json& Number(const char* key, double v) {
    Item(key);
    if (std::isfinite(v)) {
      char buf[32];
      std::snprintf(buf, sizeof(buf), "%.4g", v);
      // %.4g may print 1.235e+04; still valid JSON, but plain digits read better.
      if (std::fabs(v) >= 1e3 && std::fabs(v) < 1e15) std::snprintf(buf, sizeof(buf), "%.1f", v);
      out_ << buf;
    } else {
      out_ << "null";
    }
    return *this;
  }
  Json& Int(const char* key, int64_t v) {
    Item(key);
    out_ << v;
    return *this;
  }
  Json& String(const char* key, const std::string& v) {
    Item(key);
    out_ << JsonEscape(v);
    return *this;
  }
  Json& Bool(const char* key, bool v) {
    Item(key);
    out_ << (v ? "true" : "false");
    return *this;
  }
  Json& Null(const char* key) {
    Item(key);
    out_ << "null";
    return *this;
  }
  std::string str() const { return out_.str(); }

 private:
  Json& Open(const char* key, char c) {
    Item(key);
    out_ << c;
    closers_.push_back(c == '{' ? '}' : ']');
    first_ = true;
    return *this;
  }
  void Item(const char* key) {
    if (!first_) out_ << ",";
    first_ = false;
    if (key != nullptr) out_ << JsonEscape(key) << ":";
  }

  std::ostringstream out_;
  std::vector<char> closers_;
  bool first_ = true;
};

void StringList(Json& j, const char* key, const std::vector<std::string>& items) {
  j.BeginArray(key);
  for (const auto& s : items) j.String(nullptr, s);
  j.End();
}

void StartEndJson(Json& j, const char* key, const std::optional<StartEnd>& v) {
  if (!v) {
    j.Null(key);
    return;
  }
  j.BeginObject(key).Int("start", v->start).Int("end", v->end).End();
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

void LoadJson(const LoadReport& r, std::ostream& out) {
  Json j;
  j.BeginObject()
      .String("mode", r.mode)
      .String("backend", r.backend)
      .String("backend_label", r.backend_label)
      .Int("clients", r.clients)
      .Int("participants", r.participants)
      .Int("statements", r.statements)
      .Int("accounts", r.accounts)
      .Number("warmup_s", r.warmup_s)
      .Number("duration_s", r.measured_seconds)
      .Bool("interrupted", r.interrupted);
  StringList(j, "coordinator_flags", r.coordinator_flags);
  j.Number("tx_per_s", r.tx_per_s())
      .Int("attempted", r.measured.attempted)
      .Int("committed", r.measured.committed)
      .Int("aborted", r.measured.aborted)
      .Int("errors", r.measured.errors);
  j.BeginObject("latency_ms")
      .Number("p50", r.latency.PercentileMicros(0.50) / 1000.0)
      .Number("p95", r.latency.PercentileMicros(0.95) / 1000.0)
      .Number("p99", r.latency.PercentileMicros(0.99) / 1000.0)
      .Number("max", r.latency.max_micros() / 1000.0)
      .Number("mean", r.latency.mean_micros() / 1000.0)
      .End();
  if (r.fsyncs_per_commit) {
    j.Number("journal_fsyncs_per_commit", *r.fsyncs_per_commit);
  } else {
    j.Null("journal_fsyncs_per_commit");
  }
  j.BeginObject("cpu_seconds");
  for (const auto& p : r.cpu) j.Number(p.name.c_str(), p.cpu_seconds);
  j.End();
  StartEndJson(j, "coordinator_rss_bytes", r.coordinator_rss_bytes);
  StartEndJson(j, "journal_bytes", r.journal_bytes);
  StartEndJson(j, "balance_sum", r.balance_sum);
  j.BeginObject("failures_by_code");
  for (const auto& [code, n] : r.failures_by_code) j.Int(code.c_str(), n);
  j.End();
  StringList(j, "failure_examples", r.failure_examples);
  j.Bool("ok", r.ok());
  StringList(j, "problems", r.problems);
  StringList(j, "notes", r.notes);
  j.End();
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
  if (r.mode == "pact") {
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
  Json j;
  j.BeginObject()
      .String("mode", "recovery")
      .Int("decisions", r.decisions)
      .Int("participants", r.participants)
      .Number("journal_setup_s", r.journal_setup_seconds)
      .Number("serving_s", r.serving_seconds)
      .Number("finished_s", r.finished_seconds)
      .Number("decisions_per_s", r.finished_seconds > 0 ? r.decisions / r.finished_seconds : 0)
      .Number("coordinator_cpu_s", r.coordinator_cpu_seconds);
  if (r.committed) {
    j.Int("committed", *r.committed);
  } else {
    j.Null("committed");
  }
  if (r.left_in_journal) {
    j.Int("left_in_journal", *r.left_in_journal);
  } else {
    j.Null("left_in_journal");
  }
  j.Bool("ok", r.ok());
  StringList(j, "problems", r.problems);
  StringList(j, "notes", r.notes);
  j.End();
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
