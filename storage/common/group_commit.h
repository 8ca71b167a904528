// Group commit: callers on many threads hand in work; one thread takes everything waiting and
// runs it as one batch (one transaction, one durable commit), then tells each caller. Under
// load a batch is as large as the work that arrived during the previous commit.
#pragma once

#include <pthread.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>
#include <utility>
#include <vector>

namespace callbackd {

template <class Item>
class GroupCommit {
 public:
  // `run_batch` handles a batch (it may move from the items) and must call each item's
  // completion itself; it runs on the group-commit thread only.
  using RunBatch = std::function<void(std::vector<Item>&)>;

  // `thread_name`: 15 characters at most, or the kernel refuses it.
  GroupCommit(const char* thread_name, std::size_t max_batch, RunBatch run_batch)
      : max_batch_(max_batch), run_batch_(std::move(run_batch)) {
    thread_ = std::thread([this, thread_name] {
      pthread_setname_np(pthread_self(), thread_name);
      loop();
    });
  }
  ~GroupCommit() {
    {
      std::lock_guard lock(mutex_);
      stopping_ = true;
    }
    arrived_.notify_one();
    thread_.join();
  }
  GroupCommit(const GroupCommit&) = delete;
  GroupCommit& operator=(const GroupCommit&) = delete;

  void submit(Item item) {
    {
      std::lock_guard lock(mutex_);
      waiting_.push_back(std::move(item));
      ++accepted_;
    }
    arrived_.notify_one();
  }

  // From inside run_batch: takes every item waiting now, for a batch that failed for a reason
  // they would fail for too (the store is gone), so they are answered at once rather than each
  // after a bound of its own. The caller must complete every item taken.
  std::vector<Item> take_waiting() {
    std::lock_guard lock(mutex_);
    std::vector<Item> items = std::move(waiting_);
    waiting_.clear();
    taken_ += items.size();
    return items;
  }

  // Returns once every item submitted before the call has been run.
  void drain() {
    std::unique_lock lock(mutex_);
    const std::uint64_t accepted = accepted_;
    finished_cv_.wait(lock, [&] { return finished_ >= accepted; });
  }

 private:
  // How long a batch waits for the callers of the previous one to come back: small next to a
  // commit, and only spent while the load is falling.
  static constexpr std::chrono::microseconds kGatherTime{200};

  void loop() {
    std::vector<Item> batch;
    std::unique_lock lock(mutex_);
    for (;;) {
      arrived_.wait(lock, [&] { return stopping_ || !waiting_.empty(); });
      if (waiting_.empty()) return;  // stopping, nothing left
      arrived_.wait_for(lock, kGatherTime,
                        [&] { return stopping_ || waiting_.size() >= last_batch_size_; });
      const std::size_t take = std::min(waiting_.size(), max_batch_);
      batch.assign(std::make_move_iterator(waiting_.begin()),
                   std::make_move_iterator(waiting_.begin() + static_cast<std::ptrdiff_t>(take)));
      waiting_.erase(waiting_.begin(), waiting_.begin() + static_cast<std::ptrdiff_t>(take));
      last_batch_size_ = take;
      lock.unlock();
      run_batch_(batch);
      lock.lock();
      finished_ += batch.size() + std::exchange(taken_, 0);
      batch.clear();
      finished_cv_.notify_all();
    }
  }

  const std::size_t max_batch_;
  const RunBatch run_batch_;
  std::mutex mutex_;
  std::condition_variable arrived_;
  std::condition_variable finished_cv_;
  std::vector<Item> waiting_;
  std::size_t last_batch_size_ = 1;
  std::uint64_t accepted_ = 0;
  std::uint64_t finished_ = 0;
  std::size_t taken_ = 0;  // by take_waiting() during the batch now running
  bool stopping_ = false;
  std::thread thread_;  // last: started once everything above exists
};

}  // namespace callbackd
