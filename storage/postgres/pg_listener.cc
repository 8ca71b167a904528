#include "pg_listener.h"

#include <poll.h>
#include <pthread.h>

#include "pg_connection.h"

namespace callbackd::postgres {

namespace {
// How often the loop looks up from the socket to see whether it should stop.
constexpr int kStopCheckMs = 200;
constexpr std::chrono::milliseconds kReconnectDelay{1000};
}  // namespace

Listener::Listener(std::string conninfo, std::string channel, std::string own_payload)
    : conninfo_(std::move(conninfo)),
      channel_(std::move(channel)),
      own_payload_(std::move(own_payload)),
      thread_([this] { loop(); }) {}

Listener::~Listener() {
  {
    std::lock_guard lock(stop_mutex_);
    stopping_ = true;
  }
  stop_cv_.notify_all();
  thread_.join();
}

void Listener::set_callback(std::function<void()> callback) {
  std::lock_guard lock(callback_mutex_);
  callback_ = std::move(callback);
}

bool Listener::wait_or_stop(std::chrono::milliseconds delay) {
  std::unique_lock lock(stop_mutex_);
  return !stop_cv_.wait_for(lock, delay, [&] { return stopping_; });
}

void Listener::loop() {
  pthread_setname_np(pthread_self(), "callbackd-pg");  // 15 characters at most
  std::unique_ptr<Connection> connection;
  while (wait_or_stop(std::chrono::milliseconds(0))) {
    if (!connection || !connection->healthy()) {
      connection.reset();
      auto opened = Connection::open(conninfo_);
      if (!opened.ok() || !(*opened)->exec("listen", "LISTEN " + channel_).ok()) {
        if (!wait_or_stop(kReconnectDelay)) return;
        continue;
      }
      connection = std::move(*opened);
    }
    pollfd fd{connection->socket(), POLLIN, 0};
    if (::poll(&fd, 1, kStopCheckMs) <= 0) continue;
    const int arrived = connection->take_notifications(own_payload_);
    if (arrived < 0) {
      connection.reset();
      continue;
    }
    if (arrived > 0) {
      std::lock_guard lock(callback_mutex_);
      if (callback_) callback_();
    }
  }
}

}  // namespace callbackd::postgres
