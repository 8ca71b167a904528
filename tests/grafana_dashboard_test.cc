// deploy/grafana-dashboard.json asks only for what callbackd exports: every metric name and
// every label="value" matcher in its queries appears in the /metrics of a live daemon (one on
// SQLite and one on PostgreSQL, which adds the connection gauges).
#include <gtest/gtest.h>

#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <regex>
#include <set>

#include "api_client.h"
#include "daemon_process.h"
#include "postgres_cluster.h"
#include "temp_dir.h"

namespace callbackd {
namespace {

using nlohmann::json;

struct Exposed {
  std::set<std::string> names;                           // sample names, _bucket etc. too
  std::set<std::pair<std::string, std::string>> labels;  // (label, value)
};

void add_exposition(const std::string& text, Exposed& exposed) {
  static const std::regex kLabel(R"re(([a-zA-Z_]+)="([^"]*)")re");
  std::istringstream lines(text);
  for (std::string line; std::getline(lines, line);) {
    if (line.empty() || line[0] == '#') continue;
    const std::size_t end = line.find_first_of("{ ");
    exposed.names.insert(line.substr(0, end));
    if (end != std::string::npos && line[end] == '{') {
      const std::string labels = line.substr(end, line.find('}') - end);
      for (std::sregex_iterator it(labels.begin(), labels.end(), kLabel), last; it != last; ++it) {
        exposed.labels.emplace((*it)[1], (*it)[2]);
      }
    }
  }
}

std::string scrape(const std::vector<std::string>& args, const std::vector<std::string>& env,
                   const testing::TempDir& dir, const std::string& name) {
  testing::DaemonProcess daemon(CALLBACKD_BINARY, args, dir / (name + ".log"), env);
  if (!daemon.wait_listening()) {
    ADD_FAILURE() << name << " daemon did not start: " << daemon.log();
    return "";
  }
  Result<ApiReply> metrics = call_api("GET", daemon.base_url(), "/metrics", "");
  EXPECT_TRUE(metrics.ok() && metrics->status == 200) << name;
  return metrics.ok() ? metrics->body : "";
}

// Every PromQL text in the dashboard: panel targets and template variable queries.
void collect_queries(const json& node, std::vector<std::string>& queries) {
  if (node.is_object()) {
    for (const auto& [key, value] : node.items()) {
      if ((key == "expr" || key == "query" || key == "definition") && value.is_string()) {
        queries.push_back(value.get<std::string>());
      } else {
        collect_queries(value, queries);
      }
    }
  } else if (node.is_array()) {
    for (const json& item : node) collect_queries(item, queries);
  }
}

TEST(GrafanaDashboard, QueriesUseOnlyMetricsTheDaemonExports) {
  std::ifstream file(CALLBACKD_GRAFANA_DASHBOARD);
  ASSERT_TRUE(file) << CALLBACKD_GRAFANA_DASHBOARD;
  const json dashboard = json::parse(file, nullptr, false);
  ASSERT_FALSE(dashboard.is_discarded()) << "not JSON";

  for (const json& panel : dashboard.at("panels")) {
    if (panel.at("type") == "row") continue;
    ASSERT_TRUE(panel.contains("targets") && !panel["targets"].empty()) << panel["title"];
    for (const json& target : panel["targets"]) {
      EXPECT_FALSE(target.value("expr", "").empty()) << panel["title"];
    }
  }
  std::vector<std::string> queries;
  collect_queries(dashboard, queries);

  testing::TempDir dir;
  Exposed exposed;
  add_exposition(
      scrape({"serve", "--listen=127.0.0.1:0", "--data-dir=" + (dir / "sqlite").string()}, {}, dir,
             "sqlite"),
      exposed);
  add_exposition(
      scrape(
          {"serve", "--listen=127.0.0.1:0", "--data-dir=" + (dir / "pg").string(),
           "--store=" + testing::fresh_postgres_database()},
          {"CALLBACKD_MASTER_KEY=00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"},
          dir, "postgres"),
      exposed);
  ASSERT_TRUE(exposed.names.contains("callbackd_store_connections")) << "no PostgreSQL metrics";

  static const std::regex kMetric(R"(\bcallbackd_[a-z_]+\b)");
  static const std::regex kMatcher(R"re(\b([a-zA-Z_]+)="([^"]*)")re");
  std::set<std::string> used;
  for (const std::string& query : queries) {
    for (std::sregex_iterator it(query.begin(), query.end(), kMetric), last; it != last; ++it) {
      used.insert(it->str());
      EXPECT_TRUE(exposed.names.contains(it->str())) << it->str() << " in: " << query;
    }
    for (std::sregex_iterator it(query.begin(), query.end(), kMatcher), last; it != last; ++it) {
      EXPECT_TRUE(exposed.labels.contains({(*it)[1], (*it)[2]}))
          << (*it)[1] << "=\"" << (*it)[2] << "\" in: " << query;
    }
  }
  // The dashboard covers the exported families (a histogram counts through any of its series).
  for (const char* family :
       {"callbackd_attempts_total", "callbackd_deliveries_finished_total",
        "callbackd_enqueued_total", "callbackd_deliveries", "callbackd_stale_lease_writes_total",
        "callbackd_store_info", "callbackd_store_connections", "callbackd_attempts_in_flight",
        "callbackd_attempt_duration_seconds_bucket", "callbackd_enqueue_duration_seconds_bucket",
        "callbackd_http_responses_total"}) {
    EXPECT_TRUE(used.contains(family)) << family << " has no panel";
  }
}

}  // namespace
}  // namespace callbackd
