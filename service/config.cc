#include "config.h"

#include <toml++/toml.h>

#include <boost/asio/ip/address.hpp>
#include <boost/asio/ip/network_v4.hpp>
#include <boost/asio/ip/network_v6.hpp>
#include <charconv>
#include <cstdio>
#include <fstream>
#include <functional>
#include <sstream>

#include "units.h"

namespace callbackd {
namespace {

using Values = std::vector<std::string>;

struct KeyDef {
  const char* name;
  const char* default_text;
  const char* help;
  bool is_list;  // several values (repeatable flag, TOML array, comma-separated)
  // REQUIRES: values not empty unless is_list (an empty list clears: no retries, no networks)
  std::function<Status(Config&, const Values&)> apply;
};

Status not_a(std::string_view value, std::string_view what) {
  return Status::InvalidArgument("\"" + std::string(value) + "\" is not " + std::string(what));
}

// Upper bounds keep sums such as `now + delay` and `2 × attempt_timeout + 1 s` far from
// overflowing, and catch a unit typed wrong ("10d" meant as "10s").
constexpr Millis kMaxDuration = std::chrono::days(30);
constexpr Millis kMaxRetention = std::chrono::days(3650);
constexpr Millis kMaxAttemptTimeout = std::chrono::hours(1);
constexpr Millis kMaxBreakerDuration = std::chrono::hours(1);

// `max_text` names the bound in the message: "30d".
Status set_duration(Millis& out, const std::string& value, Millis max = kMaxDuration,
                    std::string_view max_text = "30d") {
  std::optional<Millis> d = parse_duration(value);
  if (!d || *d <= Millis(0) || *d > max) {
    return not_a(
        value, "a positive duration up to " + std::string(max_text) + " (e.g. 250ms, 30s, 5m, 7d)");
  }
  out = *d;
  return Status::Ok();
}

Status set_count(std::size_t& out, const std::string& value) {
  std::optional<std::uint64_t> n = parse_unsigned(value);
  if (!n || *n == 0 || *n > 100'000'000) {
    return not_a(value, "a whole number from 1 to 100000000");
  }
  out = static_cast<std::size_t>(*n);
  return Status::Ok();
}

Status set_breaker_duration(Millis& out, const std::string& value) {
  return set_duration(out, value, kMaxBreakerDuration, "1h");
}

// PostgreSQL's bounds reach libpq in whole seconds (connect_timeout, keepalives).
Status set_postgres_bound(Millis& out, const std::string& value) {
  if (Status s = set_duration(out, value, Millis(std::chrono::hours(1)), "1h"); !s.ok()) return s;
  if (out < Millis(1000)) return not_a(value, "a duration of at least 1s");
  return Status::Ok();
}

Status check_cidr(const std::string& value) {
  boost::system::error_code ec;
  if (value.find(':') == std::string::npos) {
    boost::asio::ip::make_network_v4(value, ec);
  } else {
    boost::asio::ip::make_network_v6(value, ec);
  }
  if (ec || value.find('/') == std::string::npos) {
    return not_a(value, "a CIDR network (e.g. 10.0.0.0/8 or fd00::/8)");
  }
  return Status::Ok();
}

const std::vector<KeyDef>& key_defs() {
  static const std::vector<KeyDef> defs = {
      {"listen", "127.0.0.1:7780", "HTTP API address (IP:port)", false,
       [](Config& c, const Values& v) {
         if (auto parsed = parse_listen_address(v.back()); !parsed.ok()) return parsed.status();
         c.listen = v.back();
         return Status::Ok();
       }},
      {"data_dir", "./data", "directory of the SQLite file (callbackd.db)", false,
       [](Config& c, const Values& v) {
         if (v.back().empty()) return Status::InvalidArgument("must not be empty");
         c.data_dir = v.back();
         return Status::Ok();
       }},
      {"store", "sqlite",
       "where deliveries live: sqlite (a file in data_dir) or a PostgreSQL connection string "
       "(postgres://user@host/db), shared by several processes",
       false,
       [](Config& c, const Values& v) {
         const std::string& store = v.back();
         // The value may hold a password, so errors never quote it.
         if (store == "sqlite") {
           c.store.clear();
         } else if (store.starts_with("postgres://") || store.starts_with("postgresql://") ||
                    store.find('=') != std::string::npos) {
           c.store = store;
         } else {
           return Status::InvalidArgument(
               "expected sqlite or a PostgreSQL connection string (postgres://user@host/db or "
               "\"host=… dbname=…\")");
         }
         return Status::Ok();
       }},
      {"api_token", "none", "bearer token every /v1 call must carry; without it only loopback",
       false,
       [](Config& c, const Values& v) {
         c.api_token = v.back();
         return Status::Ok();
       }},
      {"retry_schedule", "30s,60s,120s,300s,600s",
       "delays after each failed attempt; its length is the retry count", true,
       [](Config& c, const Values& v) {
         std::vector<Millis> schedule;
         for (const std::string& item : v) {
           Millis d{0};
           if (Status s = set_duration(d, item); !s.ok()) return s;
           schedule.push_back(d);
         }
         if (schedule.size() > 20) return Status::InvalidArgument("more than 20 retries");
         c.retry_schedule = std::move(schedule);
         return Status::Ok();
       }},
      {"attempt_timeout", "10s", "bound on one attempt, start to response", false,
       [](Config& c, const Values& v) {
         return set_duration(c.attempt_timeout, v.back(), kMaxAttemptTimeout, "1h");
       }},
      {"max_in_flight", "256", "concurrent attempts in all", false,
       [](Config& c, const Values& v) { return set_count(c.max_in_flight, v.back()); }},
      {"max_in_flight_per_host", "32", "concurrent attempts to one host", false,
       [](Config& c, const Values& v) { return set_count(c.max_in_flight_per_host, v.back()); }},
      {"allow_networks", "none", "CIDRs opened past the network guard (repeatable)", true,
       [](Config& c, const Values& v) {
         for (const std::string& item : v) {
           if (Status s = check_cidr(item); !s.ok()) return s;
         }
         c.allow_networks = v;
         return Status::Ok();
       }},
      {"max_body_bytes", "1MiB", "ingest body cap (bytes, KiB, MiB)", false,
       [](Config& c, const Values& v) {
         std::optional<std::uint64_t> n = parse_byte_size(v.back());
         if (!n || *n < 1024 || *n > (64ULL << 20)) {
           return not_a(v.back(), "a size from 1KiB to 64MiB");
         }
         c.max_body_bytes = static_cast<std::size_t>(*n);
         return Status::Ok();
       }},
      {"retention", "7d", "how long delivered deliveries are kept", false,
       [](Config& c, const Values& v) {
         return set_duration(c.retention, v.back(), kMaxRetention, "3650d");
       }},
      {"log_level", "info", "trace, debug, info, warn, error, critical or off", false,
       [](Config& c, const Values& v) {
         static const char* kLevels[] = {"trace", "debug",    "info", "warn",
                                         "error", "critical", "off"};
         for (const char* level : kLevels) {
           if (v.back() == level) {
             c.log_level = level;
             return Status::Ok();
           }
         }
         return not_a(v.back(), "a log level (trace, debug, info, warn, error, critical, off)");
       }},
      {"poll_interval", "1s", "how often due retries and expired leases are looked for", false,
       [](Config& c, const Values& v) { return set_duration(c.poll_interval, v.back()); }},
      {"ca_bundle", "system CAs", "PEM file of CAs trusted for https callback URLs", false,
       [](Config& c, const Values& v) {
         c.ca_bundle = v.back();
         return Status::Ok();
       }},
      {"master_key_file", "<data_dir>/callbackd.db.key",
       "key that seals signing secrets at rest (created for a new database); "
       "CALLBACKD_MASTER_KEY overrides it",
       false,
       [](Config& c, const Values& v) {
         if (v.back().empty()) return Status::InvalidArgument("must not be empty");
         c.master_key_file = v.back();
         return Status::Ok();
       }},
      {"secret_overlap", "24h", "how long a rotated-out secret keeps signing (standard scheme)",
       false, [](Config& c, const Values& v) { return set_duration(c.secret_overlap, v.back()); }},
      {"max_pending_per_app", "100000", "unfinished deliveries one app may have (429 past it)",
       false,
       [](Config& c, const Values& v) { return set_count(c.max_pending_per_app, v.back()); }},
      {"max_response_bytes", "1KiB", "first bytes of each response kept with its attempt", false,
       [](Config& c, const Values& v) {
         std::optional<std::uint64_t> n = parse_byte_size(v.back());
         if (!n || *n > (1ULL << 20)) return not_a(v.back(), "a size up to 1MiB");
         c.max_response_bytes = static_cast<std::size_t>(*n);
         return Status::Ok();
       }},
      {"max_connections", "1024",
       "API connections open at once; one more gets 503 too_many_connections", false,
       [](Config& c, const Values& v) {
         std::optional<std::uint64_t> n = parse_unsigned(v.back());
         if (!n || *n == 0 || *n > 1'000'000)
           return not_a(v.back(), "a whole number from 1 to 1000000");
         c.max_connections = static_cast<std::size_t>(*n);
         return Status::Ok();
       }},
      {"breaker_enabled", "true",
       "per endpoint circuit breaker: hold back attempts to an endpoint that keeps failing", false,
       [](Config& c, const Values& v) {
         if (v.back() != "true" && v.back() != "false") return not_a(v.back(), "true or false");
         c.breaker_enabled = v.back() == "true";
         return Status::Ok();
       }},
      {"breaker_failure_rate", "0.5",
       "share of failed attempts in the window that opens an endpoint's breaker", false,
       [](Config& c, const Values& v) {
         const std::string& text = v.back();
         double rate = 0;
         const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), rate);
         if (ec != std::errc() || end != text.data() + text.size() || !(rate > 0 && rate <= 1)) {
           return not_a(text, "a number above 0 and at most 1 (e.g. 0.5)");
         }
         c.breaker_failure_rate = rate;
         return Status::Ok();
       }},
      {"breaker_min_attempts", "20", "attempts the window must hold before the breaker may open",
       false,
       [](Config& c, const Values& v) {
         std::optional<std::uint64_t> n = parse_unsigned(v.back());
         if (!n || *n == 0 || *n > 1'000'000) {
           return not_a(v.back(), "a whole number from 1 to 1000000");
         }
         c.breaker_min_attempts = static_cast<std::size_t>(*n);
         return Status::Ok();
       }},
      {"breaker_window", "60s", "sliding window the failure rate is measured over", false,
       [](Config& c, const Values& v) { return set_breaker_duration(c.breaker_window, v.back()); }},
      {"breaker_cooldown", "30s", "how long an endpoint stays open before one probe", false,
       [](Config& c, const Values& v) {
         return set_breaker_duration(c.breaker_cooldown, v.back());
       }},
      {"breaker_max_cooldown", "5m",
       "cap of the cool-down, which doubles after each failed probe (never below "
       "breaker_cooldown)",
       false,
       [](Config& c, const Values& v) {
         return set_breaker_duration(c.breaker_max_cooldown, v.back());
       }},
      {"postgres_connect_timeout", "5s",
       "PostgreSQL: the most connecting may take (libpq connect_timeout, and every step of it)",
       false,
       [](Config& c, const Values& v) {
         return set_postgres_bound(c.postgres_connect_timeout, v.back());
       }},
      {"postgres_statement_timeout", "5s",
       "PostgreSQL: the most one statement may take (the server cancels it; the client waits "
       "a moment longer, then resets the link)",
       false,
       [](Config& c, const Values& v) {
         return set_postgres_bound(c.postgres_statement_timeout, v.back());
       }},
      {"postgres_keepalive_idle", "5s", "PostgreSQL: TCP keepalive probes start after this silence",
       false,
       [](Config& c, const Values& v) {
         return set_postgres_bound(c.postgres_keepalive_idle, v.back());
       }},
      {"postgres_keepalive_interval", "2s", "PostgreSQL: time between TCP keepalive probes", false,
       [](Config& c, const Values& v) {
         return set_postgres_bound(c.postgres_keepalive_interval, v.back());
       }},
      {"postgres_keepalive_count", "2", "PostgreSQL: unanswered keepalive probes that drop the link",
       false,
       [](Config& c, const Values& v) {
         std::optional<std::uint64_t> n = parse_unsigned(v.back());
         if (!n || *n == 0 || *n > 100) return not_a(v.back(), "a whole number from 1 to 100");
         c.postgres_keepalive_count = static_cast<std::size_t>(*n);
         return Status::Ok();
       }},
      {"postgres_tcp_user_timeout", "5s",
       "PostgreSQL: data the server's host has not acknowledged for this long drops the link",
       false,
       [](Config& c, const Values& v) {
         return set_postgres_bound(c.postgres_tcp_user_timeout, v.back());
       }},
      {"shutdown_timeout", "20s",
       "the most SIGTERM takes, whatever the store does; past it, unfinished leases are left "
       "to recovery",
       false,
       [](Config& c, const Values& v) {
         return set_duration(c.shutdown_timeout, v.back(), Millis(std::chrono::minutes(10)), "10m");
       }},
  };
  return defs;
}

const KeyDef* find_key(std::string_view name) {
  for (const KeyDef& def : key_defs()) {
    if (name == def.name) return &def;
  }
  return nullptr;
}

Values split_commas(const std::string& text) {
  Values out;
  std::size_t start = 0;
  while (start <= text.size()) {
    const std::size_t comma = text.find(',', start);
    const std::size_t end = comma == std::string::npos ? text.size() : comma;
    std::string item = text.substr(start, end - start);
    // Tolerate "30s, 60s".
    while (!item.empty() && item.front() == ' ') item.erase(item.begin());
    while (!item.empty() && item.back() == ' ') item.pop_back();
    if (!item.empty()) out.push_back(std::move(item));
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  return out;
}

// Values by key, from one source, with the label errors use for each key.
struct SourceValues {
  std::map<std::string, Values> values;
  std::map<std::string, std::string> labels;
};

// `text` is the TOML; `where` names it in errors ("config file \"/etc/callbackd.toml\"").
Result<SourceValues> read_toml(std::string_view text, const std::string& where) {
  toml::table table;
  try {
    table = toml::parse(text);
  } catch (const toml::parse_error& e) {
    const auto& at = e.source().begin;
    return Status::InvalidArgument(where + ": line " + std::to_string(at.line) + ": " +
                                   std::string(e.description()));
  }
  SourceValues out;
  for (auto&& [key, node] : table) {
    const std::string name(key.str());
    const KeyDef* def = find_key(name);
    if (def == nullptr) return Status::InvalidArgument(where + ": unknown key \"" + name + "\"");
    const std::string label = where + ": " + name;
    // Read the node as its own type only: value<T>() would convert, e.g. a huge float to an
    // integer, which is undefined behaviour.
    auto scalar = [&](const toml::node& n) -> std::optional<std::string> {
      if (const auto* s = n.as_string()) return s->get();
      if (const auto* i = n.as_integer()) return std::to_string(i->get());
      if (const auto* b = n.as_boolean()) return std::string(b->get() ? "true" : "false");
      if (const auto* f = n.as_floating_point()) {
        char text[32];
        std::snprintf(text, sizeof text, "%.15g", f->get());
        return std::string(text);
      }
      return std::nullopt;
    };
    Values values;
    if (const toml::array* array = node.as_array()) {
      if (!def->is_list) return Status::InvalidArgument(label + ": takes one value, not a list");
      for (const toml::node& item : *array) {
        auto text = scalar(item);
        if (!text) return Status::InvalidArgument(label + ": list items must be strings");
        values.push_back(*text);
      }
    } else if (auto text = scalar(node)) {
      values = def->is_list ? split_commas(*text) : Values{*text};
    } else {
      return Status::InvalidArgument(label + ": must be a string, a number or a boolean");
    }
    out.values[name] = std::move(values);
    out.labels[name] = label;
  }
  return out;
}

Result<SourceValues> read_environment(const std::map<std::string, std::string>& environment) {
  SourceValues out;
  for (const auto& [variable, value] : environment) {
    if (variable.rfind("CALLBACKD_", 0) != 0 || is_reserved_environment_variable(variable)) {
      continue;
    }
    std::string name = variable.substr(10);
    for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    const KeyDef* def = find_key(name);
    if (def == nullptr) {
      return Status::InvalidArgument(variable + ": not a configuration key");
    }
    out.values[name] = def->is_list ? split_commas(value) : Values{value};
    out.labels[name] = variable;
  }
  return out;
}

Result<SourceValues> read_flags(const std::vector<std::pair<std::string, std::string>>& flags) {
  SourceValues out;
  for (const auto& [flag, value] : flags) {
    std::string name = flag;
    for (char& c : name) c = c == '-' ? '_' : c;
    const KeyDef* def = find_key(name);
    if (def == nullptr) return Status::InvalidArgument("--" + flag + ": unknown flag");
    Values& values = out.values[name];
    if (def->is_list) {
      for (std::string& item : split_commas(value)) values.push_back(std::move(item));
    } else {
      values = {value};
    }
    out.labels[name] = "--" + flag;
  }
  return out;
}

}  // namespace

Result<ListenAddress> parse_listen_address(std::string_view text) {
  const Status bad = not_a(text, "an IP address and port (e.g. 127.0.0.1:7780 or [::1]:7780)");
  const auto colon = text.rfind(':');
  if (colon == std::string_view::npos) return bad;
  std::string_view host = text.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  boost::system::error_code ec;
  const auto address = boost::asio::ip::make_address(host, ec);
  const std::optional<std::uint64_t> port = parse_unsigned(text.substr(colon + 1));
  if (ec || !port || *port > 65535) return bad;
  return ListenAddress{address, static_cast<std::uint16_t>(*port)};
}

bool is_reserved_environment_variable(std::string_view name) {
  return name == "CALLBACKD_MASTER_KEY";
}

std::vector<ConfigKeyInfo> config_key_infos() {
  std::vector<ConfigKeyInfo> infos;
  for (const KeyDef& def : key_defs()) infos.push_back({def.name, def.default_text, def.help});
  return infos;
}

Result<SourceValues> read_file(const std::filesystem::path& path) {
  const std::string where = "config file \"" + path.string() + "\"";
  std::ifstream in(path, std::ios::binary);
  if (!in) return Status::InvalidArgument(where + ": cannot be read");
  std::stringstream text;
  text << in.rdbuf();
  return read_toml(text.str(), where);
}

Result<Config> load_config(const ConfigSources& sources) {
  std::vector<SourceValues> layers;  // lowest precedence first
  if (sources.file || sources.file_text) {
    Result<SourceValues> file =
        sources.file_text ? read_toml(*sources.file_text, "config text") : read_file(*sources.file);
    if (!file.ok()) return file.status();
    layers.push_back(std::move(*file));
  }
  Result<SourceValues> environment = read_environment(sources.environment);
  if (!environment.ok()) return environment.status();
  layers.push_back(std::move(*environment));
  Result<SourceValues> flags = read_flags(sources.flags);
  if (!flags.ok()) return flags.status();
  layers.push_back(std::move(*flags));

  Config config;
  for (const KeyDef& def : key_defs()) {
    for (auto layer = layers.rbegin(); layer != layers.rend(); ++layer) {
      auto found = layer->values.find(def.name);
      if (found == layer->values.end()) continue;
      const std::string& label = layer->labels.at(def.name);
      if (found->second.empty() && !def.is_list) {
        return Status::InvalidArgument(label + ": needs a value");
      }
      if (Status s = def.apply(config, found->second); !s.ok()) {
        return Status::InvalidArgument(label + ": " + s.message());
      }
      break;  // the highest-precedence source wins
    }
  }
  // The value was checked when it was read.
  if (config.api_token.empty() && !parse_listen_address(config.listen)->address.is_loopback()) {
    return Status::InvalidArgument("listen: " + config.listen +
                                   " is not a loopback address; set api_token to serve on it");
  }
  return config;
}

}  // namespace callbackd
