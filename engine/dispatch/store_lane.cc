#include "dispatch/store_lane.h"

#include <pthread.h>

namespace callbackd {

StoreLane::StoreLane(boost::asio::io_context& io, const char* thread_name)
    : shared_(std::make_shared<Shared>()) {
  shared_->io = &io;
  thread_ = std::thread([shared = shared_, thread_name] { loop(shared, thread_name); });
}

StoreLane::~StoreLane() {
  abandon();
  // A call still running may never return (a hung store): the thread then ends on its own
  // once it does, holding its own reference to what it needs.
  if (busy()) {
    thread_.detach();
  } else {
    thread_.join();
  }
}

void StoreLane::push(std::function<void()> call) {
  {
    std::lock_guard lock(shared_->mutex);
    if (shared_->abandoned) return;
    shared_->calls.push_back(std::move(call));
  }
  shared_->arrived.notify_one();
}

void StoreLane::abandon() {
  {
    std::lock_guard lock(shared_->mutex);
    shared_->abandoned = true;
    shared_->calls.clear();
  }
  shared_->arrived.notify_one();
}

bool StoreLane::busy() const {
  std::lock_guard lock(shared_->mutex);
  return shared_->running;
}

std::chrono::steady_clock::duration StoreLane::running_for() const {
  std::lock_guard lock(shared_->mutex);
  if (!shared_->running) return {};
  return std::chrono::steady_clock::now() - shared_->running_since;
}

void StoreLane::loop(const std::shared_ptr<Shared>& shared, const char* thread_name) {
  pthread_setname_np(pthread_self(), thread_name);
  std::unique_lock lock(shared->mutex);
  for (;;) {
    shared->arrived.wait(lock, [&] { return shared->abandoned || !shared->calls.empty(); });
    if (shared->abandoned) return;
    std::function<void()> call = std::move(shared->calls.front());
    shared->calls.pop_front();
    shared->running = true;
    shared->running_since = std::chrono::steady_clock::now();
    lock.unlock();
    call();  // takes the lock itself to post its answer
    call = nullptr;
    lock.lock();
    shared->running = false;
  }
}

}  // namespace callbackd
