// A thread that runs blocking store calls one at a time, in order, and posts each answer back
// to an io_context. A call that hangs keeps only its lane: abandon() lets the owner go at once,
// and the thread, when the call returns at last, drops the answer and ends.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>

namespace callbackd {

class StoreLane {
 public:
  // `thread_name`: 15 characters at most, or the kernel refuses it.
  StoreLane(boost::asio::io_context& io, const char* thread_name);
  ~StoreLane();  // abandon()s; joins the thread unless a call is still running
  StoreLane(const StoreLane&) = delete;
  StoreLane& operator=(const StoreLane&) = delete;

  // Runs `call` on the lane's thread, then `then(result)` on the io thread, unless the lane was
  // abandoned meanwhile. Whatever `call` uses must outlive an abandoned lane: capture it by
  // shared_ptr, not by reference.
  template <class Call, class Then>
  void run(Call call, Then then) {
    push([shared = shared_, call = std::move(call), then = std::move(then)]() mutable {
      auto result = call();
      std::lock_guard lock(shared->mutex);
      if (shared->abandoned) return;
      boost::asio::post(*shared->io,
                        [then = std::move(then), result = std::move(result)]() mutable {
                          then(std::move(result));
                        });
    });
  }

  // From now on no answer is posted and no waiting call runs. Safe to call more than once.
  void abandon();
  // Whether a call is running now (for a stop that must not wait for it).
  bool busy() const;
  // How long the call running now has been running (zero when none): a store that stopped
  // answering shows here first. Thread-safe.
  std::chrono::steady_clock::duration running_for() const;

 private:
  struct Shared {
    boost::asio::io_context* io;
    mutable std::mutex mutex;
    std::condition_variable arrived;
    std::deque<std::function<void()>> calls;
    bool running = false;
    std::chrono::steady_clock::time_point running_since{};
    bool abandoned = false;
  };
  void push(std::function<void()> call);
  static void loop(const std::shared_ptr<Shared>& shared, const char* thread_name);

  std::shared_ptr<Shared> shared_;
  std::thread thread_;
};

}  // namespace callbackd
