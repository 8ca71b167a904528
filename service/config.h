// The daemon's configuration: a TOML file, overridden by CALLBACKD_<KEY> environment variables,
// overridden by --<key-with-dashes> flags. Unknown keys and bad values are start-up errors.
#pragma once

#include <callbackd/clock.h>
#include <callbackd/status.h>

#include <boost/asio/ip/address.hpp>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace callbackd {

using namespace std::chrono_literals;

struct Config {
  std::string listen = "127.0.0.1:7780";
  std::filesystem::path data_dir = "./data";
  // Empty: SQLite in data_dir. Otherwise a PostgreSQL connection string, shared by several
  // processes. May hold a password: never log or echo it.
  std::string store;
  std::string api_token;  // empty: none; then only loopback is served
  std::vector<Millis> retry_schedule{30s, 60s, 120s, 300s, 600s};
  Millis attempt_timeout = 10s;
  std::size_t max_in_flight = 256;
  std::size_t max_in_flight_per_host = 32;
  std::vector<std::string> allow_networks;  // CIDRs opened past the network guard
  std::size_t max_body_bytes = 1 << 20;
  Millis retention = std::chrono::duration_cast<Millis>(std::chrono::days(7));
  std::string log_level = "info";
  Millis poll_interval = 1s;
  std::string ca_bundle;                  // empty: the system's CAs
  std::filesystem::path master_key_file;  // empty: <data_dir>/callbackd.db.key
  Millis secret_overlap = 24h;
  std::size_t max_pending_per_app = 100000;
  std::size_t max_response_bytes = 1024;
  std::size_t max_connections = 1024;
  // Per endpoint circuit breaker (see BreakerOptions in callbackd/endpoint_health.h).
  bool breaker_enabled = true;
  double breaker_failure_rate = 0.5;
  std::size_t breaker_min_attempts = 20;
  Millis breaker_window = 60s;
  Millis breaker_cooldown = 30s;
  Millis breaker_max_cooldown = 5min;
  // The most a SIGTERM takes, whatever the store does (inside the 30 s systemd and Kubernetes
  // wait before they kill).
  Millis shutdown_timeout = 20s;
  // Bounds on every wait on a PostgreSQL store (see PostgresLinkBounds in
  // callbackd/postgres_store.h), so a frozen database costs a bounded error, never a hang.
  Millis postgres_connect_timeout = 5s;
  Millis postgres_statement_timeout = 5s;
  Millis postgres_keepalive_idle = 5s;
  Millis postgres_keepalive_interval = 2s;
  std::size_t postgres_keepalive_count = 2;
  Millis postgres_tcp_user_timeout = 5s;

  std::filesystem::path database_path() const { return data_dir / "callbackd.db"; }
};

// `listen` as an address and port: "127.0.0.1:7780" or "[::1]:7780" (port 0: any free port).
struct ListenAddress {
  boost::asio::ip::address address;
  std::uint16_t port = 0;
};
// kInvalidArgument when `text` is not an IP address and a port; the message quotes it.
Result<ListenAddress> parse_listen_address(std::string_view text);

// One documented key: what --help prints.
struct ConfigKeyInfo {
  std::string name;  // as in the TOML file: max_in_flight
  std::string default_text;
  std::string help;
};
std::vector<ConfigKeyInfo> config_key_infos();

// Where values come from, lowest precedence first.
struct ConfigSources {
  std::optional<std::filesystem::path> file;
  std::optional<std::string> file_text;            // TOML given directly instead of `file`
  std::map<std::string, std::string> environment;  // every variable; only CALLBACKD_* are read
  std::vector<std::pair<std::string, std::string>> flags;  // ("max-in-flight", "64"), in order
};

// kInvalidArgument naming the source and key ("--max-in-flight: ...",
// "CALLBACKD_RETENTION: ...", "config file \"x.toml\": unknown key \"foo\"").
Result<Config> load_config(const ConfigSources& sources);

// Environment variables that are not configuration keys but are still callbackd's.
bool is_reserved_environment_variable(std::string_view name);

}  // namespace callbackd
