// LISTENs on a channel on a connection of its own and calls back when another process NOTIFYs
// it, so work stored elsewhere is claimed at once rather than at the next poll. Reconnects
// after a lost link (the poll still covers the gap). A quiet link is checked every so often
// with a trivial statement under the statement bound, so one that froze (a proxy that keeps it
// open and forwards nothing) is noticed and rebuilt rather than listened to for good.
#pragma once

#include <callbackd/clock.h>
#include <callbackd/postgres_store.h>

#include <condition_variable>
#include <functional>
#include <mutex>
#include <string>
#include <thread>

namespace callbackd::postgres {

class Listener {
 public:
  // Notifications whose payload is `own_payload` (this process's) are ignored. Every connect and
  // statement has `bounds`; `check_every` is how long the link may stay quiet before a check.
  Listener(std::string conninfo, PostgresLinkBounds bounds, std::string channel,
           std::string own_payload, Millis check_every = Millis(5000));
  // Returns at once, whatever the link does (a wait in progress is cut short).
  ~Listener();
  Listener(const Listener&) = delete;
  Listener& operator=(const Listener&) = delete;

  // nullptr stops the calls; no call runs after this returns.
  void set_callback(std::function<void()> callback);
  // How many times a LISTEN link was set up (1 once the first is up): for tests and logs.
  std::uint64_t links_made() const;

 private:
  void loop();
  bool wait_or_stop(std::chrono::milliseconds delay);  // false when stopping

  const std::string conninfo_;
  const PostgresLinkBounds bounds_;
  const std::string channel_;
  const std::string own_payload_;
  const Millis check_every_;
  // Readable once stopping: ends the connection's waits (poll) at once.
  const int stop_fd_;
  std::mutex callback_mutex_;
  std::function<void()> callback_;
  mutable std::mutex stop_mutex_;
  std::condition_variable stop_cv_;
  bool stopping_ = false;
  std::uint64_t links_made_ = 0;  // under stop_mutex_
  std::thread thread_;            // last: started once everything above exists
};

}  // namespace callbackd::postgres
