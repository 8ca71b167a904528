// Configuration: defaults, TOML file < environment < flags, and errors naming source and key.
#include "config.h"

#include <gtest/gtest.h>

#include <fstream>

#include "temp_dir.h"
#include "units.h"

namespace callbackd {
namespace {

using namespace std::chrono_literals;

TEST(Units, DurationsSizesAndCounts) {
  EXPECT_EQ(parse_duration("250ms"), Millis(250));
  EXPECT_EQ(parse_duration("30s"), Millis(30000));
  EXPECT_EQ(parse_duration("5m"), Millis(300000));
  EXPECT_EQ(parse_duration("2h"), Millis(7200000));
  EXPECT_EQ(parse_duration("7d"), Millis(604800000));
  for (const char* bad : {"", "10", "s", "1.5s", "-1s", "10 s", "10sec", "99999999999999999999d"}) {
    EXPECT_EQ(parse_duration(bad), std::nullopt) << bad;
  }
  EXPECT_EQ(parse_byte_size("1MiB"), 1048576u);
  EXPECT_EQ(parse_byte_size("512KiB"), 524288u);
  EXPECT_EQ(parse_byte_size("4096"), 4096u);
  EXPECT_EQ(parse_byte_size("1MB"), 1000000u);
  EXPECT_EQ(parse_byte_size("1TiB"), std::nullopt);
  EXPECT_EQ(parse_unsigned("42"), 42u);
  EXPECT_EQ(parse_unsigned("4x"), std::nullopt);
}

TEST(Config, DefaultsAreDesignMdsTable) {
  Result<Config> config = load_config({});
  ASSERT_TRUE(config.ok()) << config.status().to_string();
  EXPECT_EQ(config->listen, "127.0.0.1:7780");
  EXPECT_EQ(config->data_dir, "./data");
  EXPECT_TRUE(config->api_token.empty());
  EXPECT_EQ(config->retry_schedule, (std::vector<Millis>{30s, 60s, 120s, 300s, 600s}));
  EXPECT_EQ(config->attempt_timeout, 10s);
  EXPECT_EQ(config->max_in_flight, 256u);
  EXPECT_EQ(config->max_in_flight_per_host, 32u);
  EXPECT_TRUE(config->allow_networks.empty());
  EXPECT_EQ(config->max_body_bytes, 1u << 20);
  EXPECT_EQ(config->retention, std::chrono::duration_cast<Millis>(std::chrono::days(7)));
  EXPECT_EQ(config->log_level, "info");
  EXPECT_EQ(config->database_path(), std::filesystem::path("./data/callbackd.db"));
  EXPECT_TRUE(config->breaker_enabled);
  EXPECT_EQ(config->breaker_failure_rate, 0.5);
  EXPECT_EQ(config->breaker_min_attempts, 20u);
  EXPECT_EQ(config->breaker_window, 60s);
  EXPECT_EQ(config->breaker_cooldown, 30s);
  EXPECT_EQ(config->breaker_max_cooldown, 5min);
}

class ConfigFileTest : public ::testing::Test {
 protected:
  std::filesystem::path write(const std::string& text) {
    auto path = dir_ / "callbackd.toml";
    std::ofstream(path) << text;
    return path;
  }
  testing::TempDir dir_;
};

TEST_F(ConfigFileTest, FileThenEnvironmentThenFlags) {
  ConfigSources sources;
  sources.file = write(R"(
listen = "127.0.0.1:9000"
data_dir = "/var/lib/callbackd"
retry_schedule = ["1s", "2s"]
max_in_flight = 64
max_in_flight_per_host = 8
allow_networks = ["10.0.0.0/8", "fd00::/8"]
max_body_bytes = "2MiB"
attempt_timeout = "5s"
)");
  sources.environment = {{"CALLBACKD_MAX_IN_FLIGHT", "128"},
                         {"CALLBACKD_ATTEMPT_TIMEOUT", "3s"},
                         {"HOME", "/root"},
                         {"CALLBACKD_MASTER_KEY", "not-a-config-key"}};
  sources.flags = {{"attempt-timeout", "2500ms"},
                   {"allow-networks", "192.168.0.0/16"},
                   {"allow-networks", "172.16.0.0/12"}};
  Result<Config> config = load_config(sources);
  ASSERT_TRUE(config.ok()) << config.status().to_string();
  EXPECT_EQ(config->listen, "127.0.0.1:9000");
  EXPECT_EQ(config->data_dir, "/var/lib/callbackd");
  EXPECT_EQ(config->retry_schedule, (std::vector<Millis>{1s, 2s}));
  EXPECT_EQ(config->max_in_flight, 128u);  // environment beats file
  EXPECT_EQ(config->max_in_flight_per_host, 8u);
  EXPECT_EQ(config->attempt_timeout, 2500ms);  // flag beats environment and file
  EXPECT_EQ(config->allow_networks, (std::vector<std::string>{"192.168.0.0/16", "172.16.0.0/12"}));
  EXPECT_EQ(config->max_body_bytes, 2u << 20);
}

// TOML booleans and floats are read as such; the environment and flags give the same as text.
TEST_F(ConfigFileTest, BreakerKeysTakeABooleanAndAFraction) {
  ConfigSources sources;
  sources.file = write(
      "breaker_enabled = false\nbreaker_failure_rate = 0.25\nbreaker_min_attempts = 5\n"
      "breaker_window = \"10s\"\nbreaker_cooldown = \"250ms\"\nbreaker_max_cooldown = \"1h\"\n");
  Result<Config> config = load_config(sources);
  ASSERT_TRUE(config.ok()) << config.status().to_string();
  EXPECT_FALSE(config->breaker_enabled);
  EXPECT_EQ(config->breaker_failure_rate, 0.25);
  EXPECT_EQ(config->breaker_min_attempts, 5u);
  EXPECT_EQ(config->breaker_window, 10s);
  EXPECT_EQ(config->breaker_cooldown, 250ms);
  EXPECT_EQ(config->breaker_max_cooldown, 1h);
  sources.environment = {{"CALLBACKD_BREAKER_ENABLED", "true"}};
  sources.flags = {{"breaker-failure-rate", "1"}};
  config = load_config(sources);
  ASSERT_TRUE(config.ok()) << config.status().to_string();
  EXPECT_TRUE(config->breaker_enabled);
  EXPECT_EQ(config->breaker_failure_rate, 1.0);
}

TEST_F(ConfigFileTest, AnEmptyScheduleMeansNoRetries) {
  ConfigSources sources;
  sources.file = write("retry_schedule = []\n");
  EXPECT_TRUE(load_config(sources)->retry_schedule.empty());
}

TEST_F(ConfigFileTest, ErrorsNameTheSourceAndTheKey) {
  struct Case {
    std::string file;
    std::map<std::string, std::string> env;
    std::vector<std::pair<std::string, std::string>> flags;
    std::string message;
  } cases[] = {
      {"max_inflight = 3\n", {}, {}, "unknown key \"max_inflight\""},
      {"listen = [\"a\"]\n", {}, {}, "listen: takes one value, not a list"},
      {"retention = 3.5\n", {}, {}, "retention: \"3.5\" is not a positive duration"},
      // Found by the config fuzzer: a float too big for an integer must not be converted.
      {"max_in_flight = 9999999999999999999.9\n",
       {},
       {},
       "max_in_flight: \"1e+19\" is not a whole number"},
      {"listen = 2024-01-01\n", {}, {}, "listen: must be a string, a number or a boolean"},
      {"breaker_enabled = 1\n", {}, {}, "breaker_enabled: \"1\" is not true or false"},
      {"breaker_failure_rate = 1.5\n", {}, {}, "breaker_failure_rate: \"1.5\" is not a number"},
      {"", {{"CALLBACKD_BREAKER_FAILURE_RATE", "0"}}, {}, "\"0\" is not a number above 0"},
      {"", {}, {{"breaker-min-attempts", "0"}}, "--breaker-min-attempts: \"0\" is not a whole"},
      {"",
       {},
       {{"breaker-cooldown", "2h"}},
       "--breaker-cooldown: \"2h\" is not a positive duration up to 1h"},
      {"attempt_timeout = \n", {}, {}, "line 1"},
      {"", {{"CALLBACKD_NOPE", "1"}}, {}, "CALLBACKD_NOPE: not a configuration key"},
      {"",
       {{"CALLBACKD_RETENTION", "forever"}},
       {},
       "CALLBACKD_RETENTION: \"forever\" is not a positive duration"},
      {"", {}, {{"max-in-flight", "0"}}, "--max-in-flight: \"0\" is not a whole number"},
      {"", {}, {{"log-level", "loud"}}, "--log-level: \"loud\" is not a log level"},
      {"", {}, {{"listen", "localhost"}}, "--listen: \"localhost\" is not an IP address and port"},
      {"", {}, {{"allow-networks", "10.0.0.0"}}, "--allow-networks: \"10.0.0.0\" is not a CIDR"},
      {"", {}, {{"max-body-bytes", "10"}}, "--max-body-bytes: \"10\" is not a size"},
      {"", {}, {{"retry-schedule", "1s,x"}}, "--retry-schedule: \"x\" is not a positive duration"},
      {"", {}, {{"listen", "0.0.0.0:7780"}}, "listen: 0.0.0.0:7780 is not a loopback address"},
      {"", {}, {{"bogus", "1"}}, "--bogus: unknown flag"},
      // Upper bounds: sums like now + delay must never overflow.
      {"",
       {},
       {{"attempt-timeout", "61m"}},
       "--attempt-timeout: \"61m\" is not a positive duration up to 1h"},
      {"",
       {},
       {{"retry-schedule", "30s,31d"}},
       "--retry-schedule: \"31d\" is not a positive duration up to 30d"},
      {"",
       {},
       {{"poll-interval", "99999999999h"}},
       "--poll-interval: \"99999999999h\" is not a positive duration up to 30d"},
      {"",
       {},
       {{"secret-overlap", "31d"}},
       "--secret-overlap: \"31d\" is not a positive duration up to 30d"},
      {"retention = \"3651d\"\n",
       {},
       {},
       "retention: \"3651d\" is not a positive duration up to 3650d"},
      {"",
       {},
       {{"max-body-bytes", "2GiB"}},
       "--max-body-bytes: \"2GiB\" is not a size from 1KiB to 64MiB"},
      {"",
       {},
       {{"max-connections", "0"}},
       "--max-connections: \"0\" is not a whole number from 1 to 1000000"},
  };
  for (const Case& c : cases) {
    ConfigSources sources;
    if (!c.file.empty()) sources.file = write(c.file);
    sources.environment = c.env;
    sources.flags = c.flags;
    Result<Config> config = load_config(sources);
    ASSERT_FALSE(config.ok()) << c.message;
    EXPECT_EQ(config.status().code(), StatusCode::kInvalidArgument);
    EXPECT_NE(config.status().message().find(c.message), std::string::npos)
        << "got: " << config.status().message() << "\nwanted: " << c.message;
  }
}

TEST_F(ConfigFileTest, BoundsAreInclusive) {
  ConfigSources sources;
  sources.flags = {{"attempt-timeout", "1h"},
                   {"retry-schedule", "30d"},
                   {"retention", "3650d"},
                   {"max-connections", "1000000"}};
  Result<Config> config = load_config(sources);
  ASSERT_TRUE(config.ok()) << config.status().to_string();
  EXPECT_EQ(config->attempt_timeout, std::chrono::hours(1));
  EXPECT_EQ(config->max_connections, 1000000u);
  EXPECT_EQ(load_config({})->max_connections, 1024u);
}

TEST_F(ConfigFileTest, ATokenAllowsANonLoopbackListenAddress) {
  ConfigSources sources;
  sources.flags = {{"listen", "0.0.0.0:7780"}, {"api-token", "s3cret"}};
  EXPECT_TRUE(load_config(sources).ok());
}

}  // namespace
}  // namespace callbackd
