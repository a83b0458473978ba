#include "common/metrics.h"

#include <gtest/gtest.h>
#include <httplib.h>

#include <thread>
#include <vector>

#include "common/metrics_http.h"

namespace pact {
namespace {

TEST(MetricsRegistryTest, RenderMatchesPrometheusTextFormat) {
  MetricsRegistry registry;
  registry.AddCounter("pact_commits_total", "Transactions committed.")->Add(3);
  registry.AddGauge("pact_open_txns", "Transactions not yet decided.")->Set(-2);
  registry.AddCallbackGauge("pact_prepared_branches", "Prepared\\in doubt\nbranches.",
                            [] { return int64_t{7}; });
  Histogram* latency =
      registry.AddHistogram("pact_commit_seconds", "Commit latency.", {0.0005, 0.01, 2.5});
  // Powers of two and integers, so the sum prints exactly.
  for (double v : {0.00048828125, 0.0078125, 0.0078125, 1.0, 100.0}) latency->Observe(v);

  EXPECT_EQ(registry.RenderPrometheus(),
            "# HELP pact_commits_total Transactions committed.\n"
            "# TYPE pact_commits_total counter\n"
            "pact_commits_total 3\n"
            "# HELP pact_open_txns Transactions not yet decided.\n"
            "# TYPE pact_open_txns gauge\n"
            "pact_open_txns -2\n"
            "# HELP pact_prepared_branches Prepared\\\\in doubt\\nbranches.\n"
            "# TYPE pact_prepared_branches gauge\n"
            "pact_prepared_branches 7\n"
            "# HELP pact_commit_seconds Commit latency.\n"
            "# TYPE pact_commit_seconds histogram\n"
            "pact_commit_seconds_bucket{le=\"0.0005\"} 1\n"
            "pact_commit_seconds_bucket{le=\"0.01\"} 3\n"
            "pact_commit_seconds_bucket{le=\"2.5\"} 4\n"
            "pact_commit_seconds_bucket{le=\"+Inf\"} 5\n"
            "pact_commit_seconds_sum 101.01611328125\n"
            "pact_commit_seconds_count 5\n");
}

TEST(MetricsRegistryTest, CallbackGaugeIsEvaluatedAtEachRender) {
  MetricsRegistry registry;
  int64_t prepared = 1;
  registry.AddCallbackGauge("prepared", "h", [&] { return prepared; });
  EXPECT_NE(registry.RenderPrometheus().find("\nprepared 1\n"), std::string::npos);
  prepared = 5;
  EXPECT_NE(registry.RenderPrometheus().find("\nprepared 5\n"), std::string::npos);
}

TEST(MetricsConcurrencyTest, EightThreadsGiveExactTotals) {
  MetricsRegistry registry;
  Counter* counter = registry.AddCounter("c", "h");
  Gauge* gauge = registry.AddGauge("g", "h");
  Histogram* histogram = registry.AddHistogram("h", "h", {1, 2});
  constexpr int kThreads = 8;
  constexpr int kPerThread = 100000;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < kPerThread; ++i) {
        counter->Add();
        gauge->Add(2);
        histogram->Observe(i % 2 == 0 ? 0.5 : 1.5);
      }
    });
  }
  for (auto& t : threads) t.join();

  EXPECT_EQ(counter->value(), kThreads * kPerThread);
  EXPECT_EQ(gauge->value(), 2 * kThreads * kPerThread);
  HistogramSnapshot s = histogram->Snapshot();
  EXPECT_EQ(s.count, uint64_t{kThreads * kPerThread});
  EXPECT_EQ(s.cumulative_counts,
            (std::vector<uint64_t>{kThreads * kPerThread / 2, kThreads * kPerThread,
                                   kThreads * kPerThread}));
  EXPECT_EQ(s.sum, 1.0 * kThreads * kPerThread);
}

TEST(HistogramTest, PercentileLandsInTheBucketHoldingTheRank) {
  Histogram histogram({1, 2, 4, 8});
  for (int i = 0; i < 10; ++i) histogram.Observe(0.5);  // (0, 1]
  for (int i = 0; i < 40; ++i) histogram.Observe(1.5);  // (1, 2]
  for (int i = 0; i < 50; ++i) histogram.Observe(6);    // (4, 8]

  double p05 = histogram.Percentile(0.05);
  EXPECT_GT(p05, 0);
  EXPECT_LE(p05, 1);
  double p50 = histogram.Percentile(0.5);
  EXPECT_GT(p50, 1);
  EXPECT_LE(p50, 2);
  double p99 = histogram.Percentile(0.99);
  EXPECT_GT(p99, 4);
  EXPECT_LE(p99, 8);
  EXPECT_DOUBLE_EQ(p99, 4 + 4 * 49.0 / 50);  // linear inside the bucket
}

TEST(HistogramTest, PercentileAboveLastBoundReturnsLastBoundAndEmptyReturnsZero) {
  Histogram histogram({1, 2});
  EXPECT_EQ(histogram.Percentile(0.5), 0);
  histogram.Observe(50);
  EXPECT_EQ(histogram.Percentile(0.99), 2);
}

TEST(MetricsRegistryDeathTest, InvalidMetricNameAborts) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  MetricsRegistry registry;
  registry.AddCounter("ok_Name:sub_9", "h");  // every allowed character class
  EXPECT_DEATH(registry.AddCounter("", "h"), "invalid metric name");
  EXPECT_DEATH(registry.AddCounter("9lives", "h"), "invalid metric name");
  EXPECT_DEATH(registry.AddGauge("has-dash", "h"), "invalid metric name");
  EXPECT_DEATH(registry.AddHistogram("has space", "h", {1}), "invalid metric name");
  EXPECT_DEATH(registry.AddCallbackGauge("dot.ted", "h", [] { return int64_t{0}; }),
               "invalid metric name");
}

TEST(MetricsRegistryDeathTest, DuplicateNameOrUnsortedBoundsAborts) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  MetricsRegistry registry;
  registry.AddCounter("twice", "h");
  EXPECT_DEATH(registry.AddGauge("twice", "h"), "registered twice");
  EXPECT_DEATH(registry.AddHistogram("unsorted", "h", {2, 1}), "strictly increasing");
}

constexpr char kContentType[] = "text/plain; version=0.0.4; charset=utf-8";

TEST(MetricsHttpServerTest, ServesMetricsWithPrometheusContentTypeAnd404Elsewhere) {
  MetricsRegistry registry;
  registry.AddCounter("pact_commits_total", "Transactions committed.")->Add(42);
  MetricsHttpServer server(&registry, "127.0.0.1", 0);
  ASSERT_TRUE(server.Start().ok());
  ASSERT_GT(server.port(), 0);

  httplib::Client client("127.0.0.1", server.port());
  auto res = client.Get("/metrics");
  ASSERT_TRUE(res) << httplib::to_string(res.error());
  EXPECT_EQ(res->status, 200);
  EXPECT_EQ(res->get_header_value("Content-Type"), kContentType);
  EXPECT_EQ(res->body, registry.RenderPrometheus());
  EXPECT_NE(res->body.find("pact_commits_total 42\n"), std::string::npos);

  auto other = client.Get("/other");
  ASSERT_TRUE(other);
  EXPECT_EQ(other->status, 404);

  int port = server.port();
  server.Stop();
  server.Stop();  // idempotent
  EXPECT_FALSE(httplib::Client("127.0.0.1", port).Get("/metrics"));
}

TEST(MetricsHttpServerTest, StartOnPortInUseFailsWithIoError) {
  MetricsRegistry registry;
  MetricsHttpServer first(&registry, "127.0.0.1", 0);
  ASSERT_TRUE(first.Start().ok());
  MetricsHttpServer second(&registry, "127.0.0.1", first.port());
  Status st = second.Start();
  EXPECT_EQ(st.code(), StatusCode::kIoError) << st.ToString();
  EXPECT_NE(st.message().find(std::to_string(first.port())), std::string::npos);
}

TEST(MetricsHttpServerTest, RestartsAfterStop) {
  MetricsRegistry registry;
  MetricsHttpServer server(&registry, "127.0.0.1", 0);
  ASSERT_TRUE(server.Start().ok());
  EXPECT_EQ(server.Start().code(), StatusCode::kFailedPrecondition);
  server.Stop();
  ASSERT_TRUE(server.Start().ok());
  auto res = httplib::Client("127.0.0.1", server.port()).Get("/metrics");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200);
}

}  // namespace
}  // namespace pact
