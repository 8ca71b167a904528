#include "cli.h"

#include <callbackd/postgres_store.h>
#include <callbackd/signature.h>

#include <cstdio>
#include <fstream>
#include <iostream>
#include <iterator>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "api_client.h"
#include "config.h"
#include "daemon.h"
#include "help_text.h"
#include "json_views.h"
#include "store_copy.h"
#include "units.h"

extern char** environ;

namespace callbackd {
namespace {

struct Args {
  std::vector<std::string> words;                            // command and positional arguments
  std::vector<std::pair<std::string, std::string>> options;  // ("state", "dead")
  bool help = false;
  bool version = false;
};

std::optional<Args> parse_args(int argc, char** argv, std::string& error) {
  Args args;
  bool options_done = false;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (options_done || arg.size() < 2 || arg[0] != '-') {
      args.words.push_back(arg);
      continue;
    }
    if (arg == "--") {
      options_done = true;
    } else if (arg == "--help" || arg == "-h") {
      args.help = true;
    } else if (arg == "--version") {
      args.version = true;
    } else if (arg.rfind("--", 0) == 0) {
      const std::size_t equals = arg.find('=');
      if (equals != std::string::npos) {
        args.options.emplace_back(arg.substr(2, equals - 2), arg.substr(equals + 1));
      } else if (i + 1 < argc) {
        args.options.emplace_back(arg.substr(2), argv[++i]);
      } else {
        error = arg + ": needs a value";
        return std::nullopt;
      }
    } else {
      error = arg + ": unknown option";
      return std::nullopt;
    }
  }
  return args;
}

void print_help() { std::cout << help_text(); }

int usage_error(const std::string& message) {
  std::cerr << "callbackd: " << message << "\n(run `callbackd --help` for usage)\n";
  return 2;
}

// Splits options into the command's own and configuration flags.
struct CommandOptions {
  std::map<std::string, std::string> own;
  ConfigSources config;
};

CommandOptions split_options(const Args& args, const std::set<std::string>& own_names) {
  CommandOptions out;
  for (char** variable = environ; *variable != nullptr; ++variable) {
    const std::string_view entry = *variable;
    const std::size_t equals = entry.find('=');
    // The master key is read once, where it is used, and wiped: no copy of it here.
    if (equals == std::string_view::npos ||
        is_reserved_environment_variable(entry.substr(0, equals))) {
      continue;
    }
    out.config.environment[std::string(entry.substr(0, equals))] =
        std::string(entry.substr(equals + 1));
  }
  for (const auto& [name, value] : args.options) {
    if (own_names.contains(name)) {
      out.own[name] = value;
    } else if (name == "config") {
      out.config.file = value;
    } else {
      out.config.flags.emplace_back(name, value);
    }
  }
  return out;
}

std::optional<std::string> read_input(const std::vector<std::string>& words, std::size_t index,
                                      std::string& error) {
  if (words.size() > index + 1) {
    error = "too many arguments";
    return std::nullopt;
  }
  if (words.size() == index + 1 && words[index] != "-") {
    std::ifstream file(words[index], std::ios::binary);
    if (!file) {
      error = words[index] + ": cannot be read";
      return std::nullopt;
    }
    return std::string(std::istreambuf_iterator<char>(file), {});
  }
  return std::string(std::istreambuf_iterator<char>(std::cin), {});
}

std::string daemon_url(const Config& config) {
  const ListenAddress listen = *parse_listen_address(config.listen);  // checked when loaded
  auto address = listen.address;
  // A daemon listening on every address is reached over loopback.
  if (address.is_unspecified()) {
    address = address.is_v4() ? boost::asio::ip::address(boost::asio::ip::address_v4::loopback())
                              : boost::asio::ip::address(boost::asio::ip::address_v6::loopback());
  }
  const std::string host = address.is_v6() ? "[" + address.to_string() + "]" : address.to_string();
  return "http://" + host + ":" + std::to_string(listen.port);
}

std::string url_encode(const std::string& text) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : text) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out.push_back(static_cast<char>(c));
    } else {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
  }
  return out;
}

// Calls the daemon and prints the reply: pretty JSON on success, the error on stderr.
int call_and_print(const Config& config, const std::string& method, const std::string& path,
                   const std::string& body = "") {
  Result<ApiReply> reply = call_api(method, daemon_url(config), path, config.api_token, body);
  if (!reply.ok()) {
    std::cerr << "callbackd: " << reply.status().message() << "\n";
    return 1;
  }
  auto json = nlohmann::json::parse(reply->body, nullptr, false);
  if (reply->status >= 200 && reply->status < 300) {
    std::cout << (json.is_discarded() ? reply->body : json.dump(2)) << "\n";
    return 0;
  }
  if (!json.is_discarded() && json.contains("error")) {
    std::cerr << "callbackd: HTTP " << reply->status << " " << json["error"].value("code", "error")
              << ": " << json["error"].value("message", "") << "\n";
  } else {
    std::cerr << "callbackd: HTTP " << reply->status << ": " << reply->body << "\n";
  }
  return 1;
}

// "2h" (that long ago) or an RFC 3339 time, as the API's RFC 3339 text.
std::optional<std::string> time_option(const std::string& text) {
  if (std::optional<Millis> age = parse_duration(text)) {
    return rfc3339(std::chrono::time_point_cast<Millis>(std::chrono::system_clock::now()) - *age);
  }
  if (std::optional<TimePoint> time = parse_rfc3339(text)) return rfc3339(*time);
  return std::nullopt;
}

// Bulk redelivery: POST /v1/callbacks/redeliver until next_cursor is null (or --limit is
// reached), then the total queued.
int redeliver_matching(const Config& config, std::map<std::string, std::string> own) {
  nlohmann::json body = {{"state", own.contains("state") ? own["state"] : "dead"}};
  if (own.contains("app")) body["app_id"] = own["app"];
  for (const auto& [option, field] : {std::pair{"since", "since"}, std::pair{"until", "until"}}) {
    if (!own.contains(option)) continue;
    std::optional<std::string> time = time_option(own[option]);
    if (!time) {
      return usage_error(std::string("deliveries redeliver: --") + option + ": \"" + own[option] +
                         "\" is neither a duration (2h, 30m) nor an RFC 3339 time");
    }
    body[field] = *time;
  }
  std::optional<std::uint64_t> remaining;
  if (own.contains("limit")) {
    remaining = parse_unsigned(own["limit"]);
    if (!remaining || *remaining == 0) {
      return usage_error("deliveries redeliver: --limit: must be a positive number");
    }
  }
  std::uint64_t total = 0;
  for (;;) {
    body["limit"] = remaining ? std::min<std::uint64_t>(*remaining, 1000) : 1000;
    Result<ApiReply> reply = call_api("POST", daemon_url(config), "/v1/callbacks/redeliver",
                                      config.api_token, body.dump());
    if (!reply.ok()) {
      std::cerr << "callbackd: " << reply.status().message() << "\n";
      return 1;
    }
    auto json = nlohmann::json::parse(reply->body, nullptr, false);
    if (reply->status != 200 || json.is_discarded() || !json.contains("queued")) {
      const bool is_error = !json.is_discarded() && json.contains("error");
      std::cerr << "callbackd: HTTP " << reply->status << " "
                << (is_error ? json["error"].value("code", "error") + ": " +
                                   json["error"].value("message", "")
                             : reply->body)
                << " (" << total << " queued before)\n";
      return 1;
    }
    const auto queued = json["queued"].get<std::uint64_t>();
    total += queued;
    if (remaining) *remaining -= std::min(*remaining, queued);
    if (json["next_cursor"].is_null() || (remaining && *remaining == 0)) break;
    body["cursor"] = json["next_cursor"];
  }
  std::cout << "queued " << total << " deliveries\n";
  return 0;
}

int verify(const Args& args) {
  std::map<std::string, std::string> own;
  for (const auto& [name, value] : args.options) {
    if (name != "secret" && name != "signature")
      return usage_error("verify: unknown option --" + name);
    own[name] = value;
  }
  if (!own.contains("secret") || !own.contains("signature")) {
    return usage_error("verify needs --secret and --signature");
  }
  std::string error;
  std::optional<std::string> body = read_input(args.words, 1, error);
  if (!body) return usage_error("verify: " + error);
  if (verify_hex_signature(own["secret"], *body, own["signature"])) {
    std::cout << "signature ok\n";
    return 0;
  }
  std::cerr << "callbackd: signature does not match the body\n";
  return 1;
}

int copy_store(const Config& config) {
  if (config.store.empty()) {
    return usage_error(
        "store copy: set store (--store or CALLBACKD_STORE) to the PostgreSQL "
        "database to copy into");
  }
  Result<StoreCopyReport> copied =
      copy_sqlite_store_to_postgres(config.database_path(), config.store);
  if (!copied.ok()) {
    std::cerr << "callbackd: store copy: " << copied.status().message() << "\n";
    return 1;
  }
  std::cout << "copied " << copied->apps << " apps, " << copied->settings << " settings, "
            << copied->deliveries << " deliveries and " << copied->attempts << " attempts from "
            << config.database_path().string() << "\n";
  return 0;
}

}  // namespace

int run_cli(int argc, char** argv) {
  std::string error;
  std::optional<Args> args = parse_args(argc, argv, error);
  if (!args) return usage_error(error);
  if (args->version) {
    std::cout << version_text() << "\n";
    return 0;
  }
  if (args->words.empty() || args->words[0] == "help") {
    print_help();
    return args->words.empty() && !args->help ? 2 : 0;
  }
  if (args->help) {
    print_help();
    return 0;
  }
  const std::string command = args->words[0];
  const std::string sub = args->words.size() > 1 ? args->words[1] : "";
  if (command == "verify") return verify(*args);

  std::set<std::string> own_names;
  if (command == "apps" && sub == "create") own_names = {"name", "scheme"};
  if (command == "deliveries" && sub == "list") {
    own_names = {"state", "app-id", "task-id", "limit", "cursor"};
  }
  if (command == "deliveries" && sub == "redeliver" && args->words.size() == 2) {
    own_names = {"state", "since", "until", "app", "limit"};
  }
  CommandOptions options = split_options(*args, own_names);
  Result<Config> config = load_config(options.config);
  if (!config.ok()) {
    std::cerr << "callbackd: configuration: " << config.status().message() << "\n";
    return 2;
  }

  if (command == "serve") {
    if (args->words.size() != 1) return usage_error("serve takes no arguments");
    set_up_logging(config->log_level);
    return serve(*config);
  }
  if (command == "apps" && sub == "create" && args->words.size() == 2) {
    if (!options.own.contains("name")) return usage_error("apps create needs --name");
    nlohmann::json body = {{"name", options.own["name"]}};
    if (options.own.contains("scheme")) body["signature_scheme"] = options.own["scheme"];
    return call_and_print(*config, "POST", "/v1/apps", body.dump());
  }
  if (command == "apps" && sub == "rotate-secret" && args->words.size() == 3) {
    return call_and_print(*config, "POST",
                          "/v1/apps/" + url_encode(args->words[2]) + "/rotate-secret");
  }
  if (command == "send") {
    std::optional<std::string> body = read_input(args->words, 1, error);
    if (!body) return usage_error("send: " + error);
    return call_and_print(*config, "POST", "/v1/callbacks", *body);
  }
  if (command == "deliveries" && sub == "list" && args->words.size() == 2) {
    std::string query;
    for (const auto& [name, value] : options.own) {
      std::string key = name;
      for (char& c : key) c = c == '-' ? '_' : c;
      query += (query.empty() ? "?" : "&") + key + "=" + url_encode(value);
    }
    return call_and_print(*config, "GET", "/v1/callbacks" + query);
  }
  if (command == "deliveries" && sub == "show" && args->words.size() == 3) {
    return call_and_print(*config, "GET", "/v1/callbacks/" + url_encode(args->words[2]));
  }
  if (command == "deliveries" && sub == "redeliver" && args->words.size() == 3) {
    return call_and_print(*config, "POST",
                          "/v1/callbacks/" + url_encode(args->words[2]) + "/redeliver");
  }
  if (command == "deliveries" && sub == "redeliver" && args->words.size() == 2) {
    return redeliver_matching(*config, options.own);
  }
  if (command == "store" && sub == "copy" && args->words.size() == 2) return copy_store(*config);
  if (command == "probe" && (sub == "healthz" || sub == "readyz") && args->words.size() == 2) {
    Result<ApiReply> reply = call_api("GET", daemon_url(*config), "/" + sub, "");
    if (reply.ok() && reply->status == 200) return 0;
    std::cerr << "callbackd: " << sub << ": "
              << (reply.ok() ? "HTTP " + std::to_string(reply->status) : reply.status().message())
              << "\n";
    return 1;
  }
  return usage_error("unknown command: " + command + (sub.empty() ? "" : " " + sub));
}

}  // namespace callbackd
