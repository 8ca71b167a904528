// LISTENs on a channel on a connection of its own and calls back when another process NOTIFYs
// it, so work stored elsewhere is claimed at once rather than at the next poll. Reconnects
// after a lost link (the poll still covers the gap).
#pragma once

#include <condition_variable>
#include <functional>
#include <mutex>
#include <string>
#include <thread>

namespace callbackd::postgres {

class Listener {
 public:
  // Notifications whose payload is `own_payload` (this process's) are ignored.
  Listener(std::string conninfo, std::string channel, std::string own_payload);
  ~Listener();
  Listener(const Listener&) = delete;
  Listener& operator=(const Listener&) = delete;

  // nullptr stops the calls; no call runs after this returns.
  void set_callback(std::function<void()> callback);

 private:
  void loop();
  bool wait_or_stop(std::chrono::milliseconds delay);  // false when stopping

  const std::string conninfo_;
  const std::string channel_;
  const std::string own_payload_;
  std::mutex callback_mutex_;
  std::function<void()> callback_;
  std::mutex stop_mutex_;
  std::condition_variable stop_cv_;
  bool stopping_ = false;
  std::thread thread_;  // last: started once everything above exists
};

}  // namespace callbackd::postgres
