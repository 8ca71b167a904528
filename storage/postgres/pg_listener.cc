#include "pg_listener.h"

#include <poll.h>
#include <pthread.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <system_error>

#include "pg_connection.h"

namespace callbackd::postgres {

namespace {

constexpr std::chrono::milliseconds kReconnectDelay{1000};

int new_stop_fd() {
  const int fd = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  // Without it a stop could wait out a whole bound; there is no sensible way on.
  if (fd < 0) throw std::system_error(errno, std::generic_category(), "eventfd");
  return fd;
}

}  // namespace

Listener::Listener(std::string conninfo, PostgresLinkBounds bounds, std::string channel,
                   std::string own_payload, Millis check_every)
    : conninfo_(std::move(conninfo)),
      bounds_(bounds),
      channel_(std::move(channel)),
      own_payload_(std::move(own_payload)),
      check_every_(check_every),
      stop_fd_(new_stop_fd()),
      thread_([this] { loop(); }) {}

Listener::~Listener() {
  {
    std::lock_guard lock(stop_mutex_);
    stopping_ = true;
  }
  stop_cv_.notify_all();
  const std::uint64_t one = 1;
  (void)!::write(stop_fd_, &one, sizeof one);  // an eventfd write of 8 bytes does not fail here
  thread_.join();
  ::close(stop_fd_);
}

void Listener::set_callback(std::function<void()> callback) {
  std::lock_guard lock(callback_mutex_);
  callback_ = std::move(callback);
}

std::uint64_t Listener::links_made() const {
  std::lock_guard lock(stop_mutex_);
  return links_made_;
}

bool Listener::wait_or_stop(std::chrono::milliseconds delay) {
  std::unique_lock lock(stop_mutex_);
  return !stop_cv_.wait_for(lock, delay, [&] { return stopping_; });
}

void Listener::loop() {
  pthread_setname_np(pthread_self(), "callbackd-pg");  // 15 characters at most
  std::unique_ptr<Connection> connection;
  std::uint64_t listening_session = 0;
  SteadyTime last_heard{};
  while (wait_or_stop(std::chrono::milliseconds(0))) {
    if (connection && !connection->healthy()) connection.reset();
    if (!connection) {
      auto opened = Connection::open(conninfo_, bounds_, stop_fd_);
      if (!opened.ok() || !(*opened)->exec("listen", "LISTEN " + channel_).ok()) {
        if (!wait_or_stop(kReconnectDelay)) return;
        continue;
      }
      connection = std::move(*opened);
      listening_session = connection->session();
      last_heard = std::chrono::steady_clock::now();
      std::lock_guard lock(stop_mutex_);
      ++links_made_;
    }
    const auto quiet_for = std::chrono::steady_clock::now() - last_heard;
    const auto until_check = std::chrono::ceil<Millis>(check_every_ - quiet_for);
    int arrived = 0;
    if (until_check > Millis(0)) {
      pollfd fds[2] = {{connection->socket(), POLLIN, 0}, {stop_fd_, POLLIN, 0}};
      const int ready = ::poll(fds, 2, static_cast<int>(until_check.count()));
      if (ready < 0 || fds[1].revents != 0) continue;  // EINTR, or stopping: the loop looks
      if (ready == 0) continue;                        // time for a check, next round
      arrived = connection->take_notifications(own_payload_);
    } else {
      // Quiet for check_every: a link that froze looks just like one with nothing to say, so
      // ask it something, under the statement bound. On the same session only: a reconnect
      // inside run() would have dropped the LISTEN.
      auto answered = connection->run("check the LISTEN link", "SELECT 1");
      arrived = answered.ok() && connection->session() == listening_session
                    ? connection->take_notifications(own_payload_)  // what came meanwhile
                    : -1;
    }
    if (arrived < 0) {
      connection.reset();  // rebuilt (and LISTENing again) on the next round
      continue;
    }
    last_heard = std::chrono::steady_clock::now();
    if (arrived > 0) {
      std::lock_guard lock(callback_mutex_);
      if (callback_) callback_();
    }
  }
}

}  // namespace callbackd::postgres
