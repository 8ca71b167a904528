#include "daemon.h"

#include <callbackd/postgres_store.h>
#include <callbackd/sqlite_store.h>
#include <malloc.h>
#include <openssl/crypto.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string_view>
#include <thread>

#include "api.h"
#include "build_info.h"
#include "http_server.h"
#include "metrics.h"

namespace callbackd {

namespace asio = boost::asio;

namespace {
// What the shutdown may take past shutdown_timeout for the engine's own cut-short to be said.
constexpr Millis kShutdownGrace{500};
}  // namespace

Result<std::shared_ptr<Queue>> open_store(const Config& config) {
  PostgresLinkBounds bounds;
  bounds.connect_timeout = config.postgres_connect_timeout;
  bounds.statement_timeout = config.postgres_statement_timeout;
  bounds.keepalive_idle = config.postgres_keepalive_idle;
  bounds.keepalive_interval = config.postgres_keepalive_interval;
  bounds.keepalive_count = static_cast<int>(config.postgres_keepalive_count);
  bounds.tcp_user_timeout = config.postgres_tcp_user_timeout;
  Result<std::unique_ptr<Queue>> queue =
      config.store.empty()
          ? open_sqlite_queue({.path = config.database_path()})
          : open_postgres_queue({.conninfo = config.store, .bounds = bounds});
  if (!queue.ok()) return queue.status();
  return std::shared_ptr<Queue>(std::move(*queue));
}

EngineOptions engine_options(const Config& config, std::shared_ptr<Queue> queue,
                             std::shared_ptr<EngineObserver> observer) {
  EngineOptions options;
  options.queue = std::move(queue);
  options.retry_schedule = config.retry_schedule;
  options.attempt_timeout = config.attempt_timeout;
  options.max_in_flight = config.max_in_flight;
  options.max_in_flight_per_host = config.max_in_flight_per_host;
  options.poll_interval = config.poll_interval;
  options.retention = config.retention;
  options.allow_networks = config.allow_networks;
  options.ca_bundle_path = config.ca_bundle;
  options.master_key_file = config.master_key_file.empty()
                                ? std::filesystem::path(config.database_path().string() + ".key")
                                : config.master_key_file;
  options.secret_overlap = config.secret_overlap;
  options.max_pending_per_app = config.max_pending_per_app;
  options.max_response_bytes = config.max_response_bytes;
  options.max_body_bytes = config.max_body_bytes;
  options.breaker.enabled = config.breaker_enabled;
  options.breaker.failure_rate = config.breaker_failure_rate;
  options.breaker.min_attempts = config.breaker_min_attempts;
  options.breaker.window = config.breaker_window;
  options.breaker.cooldown = config.breaker_cooldown;
  options.breaker.max_cooldown = config.breaker_max_cooldown;
  options.shutdown_timeout = config.shutdown_timeout;
  options.version = CALLBACKD_VERSION;  // User-Agent: callbackd/<the project's version>
  // The key itself only ever comes from the environment (or the key file), never a flag. Taken
  // out of the environment once read: children, /proc/<pid>/environ and core dumps never see it.
  static constexpr std::string_view kVariable = "CALLBACKD_MASTER_KEY";
  if (char* key = std::getenv(kVariable.data())) {
    options.master_key = key;
    // Out of environ first, then the whole "NAME=value" entry wiped (glibc keeps it as one
    // string and never frees it; the initial ones are what /proc/<pid>/environ shows).
    char* entry = key - kVariable.size() - 1;
    const std::size_t length = kVariable.size() + 1 + std::strlen(key);
    unsetenv(kVariable.data());
    OPENSSL_cleanse(entry, length);
  }
  options.observer = std::move(observer);
  return options;
}

// A key file inside data_dir travels with every copy of the directory, so a backup carries the
// key beside the ciphertext it protects.
void warn_if_key_beside_data(const Config& config, const EngineOptions& options) {
  if (!options.master_key.empty()) return;
  std::error_code ec;
  const auto key = std::filesystem::weakly_canonical(options.master_key_file, ec);
  const auto data = std::filesystem::weakly_canonical(config.data_dir, ec);
  if (ec) return;
  const auto [data_end, key_end] = std::mismatch(data.begin(), data.end(), key.begin(), key.end());
  if (data_end != data.end()) return;
  spdlog::warn(
      "event=master_key_in_data_dir path={} data_dir={} hint=\"a backup of data_dir carries the "
      "key with the secrets it seals; keep the key elsewhere (master_key_file outside data_dir, "
      "or CALLBACKD_MASTER_KEY)\"",
      key.string(), data.string());
}

void set_up_logging(const std::string& level) {
  auto logger = spdlog::stderr_logger_mt("callbackd");
  spdlog::set_default_logger(logger);
  spdlog::set_pattern("%Y-%m-%dT%H:%M:%S.%eZ level=%l %v", spdlog::pattern_time_type::utc);
  spdlog::set_level(spdlog::level::from_str(level));
  spdlog::flush_on(spdlog::level::info);
}

int serve(const Config& config) {
  // Request bodies (up to max_body_bytes) and their parse go straight to mmap and back to the
  // system when freed; glibc would otherwise raise this threshold after the first large free
  // and keep such buffers in per-thread arenas for good.
  mallopt(M_MMAP_THRESHOLD, 256 << 10);
  // Past a file size limit (RLIMIT_FSIZE) a write fails with EFBIG, answered like a full disk,
  // instead of SIGXFSZ killing the daemon.
  std::signal(SIGXFSZ, SIG_IGN);
  std::error_code ec;
  std::filesystem::create_directories(config.data_dir, ec);
  if (ec) {
    spdlog::critical("event=start_failed reason=\"data_dir {}: {}\"", config.data_dir.string(),
                     ec.message());
    return 1;
  }
  auto metrics = std::make_shared<Metrics>();
  Result<std::shared_ptr<Queue>> store = open_store(config);
  if (!store.ok()) {
    spdlog::critical("event=start_failed reason=\"{}\"", store.status().to_string());
    return 1;
  }
  const std::string store_name = (*store)->describe();
  EngineOptions options = engine_options(config, std::move(*store), metrics);
  warn_if_key_beside_data(config, options);
  Result<std::unique_ptr<Engine>> opened = Engine::open(std::move(options));
  if (!opened.ok()) {
    spdlog::critical("event=start_failed reason=\"{}\"", opened.status().to_string());
    return 1;
  }
  Engine& engine = **opened;
  engine.start();

  std::atomic<bool> ready{false};
  Api api(engine, *metrics, config, [&ready] { return ready.load(); });
  asio::io_context io;
  HttpServerOptions server_options;
  server_options.listen = config.listen;
  server_options.max_body_bytes = config.max_body_bytes;
  server_options.max_connections = config.max_connections;
  HttpServer server(
      io, server_options,
      [&api](const ApiRequest& r, Respond respond) { api.handle(r, std::move(respond)); },
      [&api](const ApiRequest& head) { return api.check_head(head); },
      [&api](const ApiRequest& r, const Respond& respond) {
        return api.handle_without_waiting(r, respond);
      });
  if (Status s = server.start(); !s.ok()) {
    spdlog::critical("event=start_failed reason=\"{}\"", s.to_string());
    engine.stop();
    return 1;
  }
  const auto endpoint = server.local_endpoint();
  spdlog::info("event=listening address={}:{} store={} auth={}", endpoint.address().to_string(),
               endpoint.port(), store_name, config.api_token.empty() ? "none" : "bearer");
  ready = true;

  asio::signal_set signals(io, SIGINT, SIGTERM);
  std::thread stopper;
  bool engine_stopped = false;
  bool server_stopped = false;
  std::atomic<bool> cut_short{false};
  // The whole shutdown's bound: the engine keeps to it by itself; this catches the rest (an
  // HTTP request that will not end).
  asio::steady_timer shutdown_deadline(io);
  const auto finish_when_both_stopped = [&] {
    if (!engine_stopped || !server_stopped) return;
    shutdown_deadline.cancel();
    signals.cancel();
    io.stop();
  };
  signals.async_wait([&](const boost::system::error_code& error, int signal) {
    if (error) return;
    spdlog::info("event=shutdown_started signal={}", signal);
    ready = false;
    // A second signal: leave now. Every acknowledged callback is already committed; attempts
    // cut short are retried after their lease runs out.
    signals.async_wait([](const boost::system::error_code& error, int signal) {
      if (error) return;
      spdlog::warn("event=shutdown_forced signal={}", signal);
      spdlog::default_logger()->flush();
      std::_Exit(1);
    });
    // Claiming stops at once, while the API drains and attempts in flight finish (each within
    // attempt_timeout). engine.stop() blocks, so it runs off the loop, which stays free for a
    // second signal. Callbacks accepted during the drain are stored pending for the next start.
    shutdown_deadline.expires_after(config.shutdown_timeout + kShutdownGrace);
    shutdown_deadline.async_wait([](const boost::system::error_code& error) {
      if (error) return;
      spdlog::warn("event=shutdown_cut_short reason=\"shutdown_timeout passed\"");
      spdlog::default_logger()->flush();
      std::_Exit(1);
    });
    stopper = std::thread([&] {
      if (!engine.stop()) cut_short = true;
      asio::post(io, [&] {
        engine_stopped = true;
        finish_when_both_stopped();
      });
    });
    server.shutdown([&] {
      server_stopped = true;
      finish_when_both_stopped();
    });
  });

  io.run();
  if (stopper.joinable()) stopper.join();
  if (cut_short) {
    // A store call that never came back may still hold the store: leave without destructors.
    spdlog::warn(
        "event=shutdown_cut_short reason=\"shutdown_timeout passed; unfinished leases "
        "are left to recovery\"");
    spdlog::default_logger()->flush();
    std::_Exit(1);
  }
  spdlog::info("event=shutdown_complete");
  return 0;
}

}  // namespace callbackd
