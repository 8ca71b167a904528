// A real queue (SQLite or PostgreSQL) with faults injected at any call: it fails once or N
// times, applies the call and loses its answer (a commit whose reply never came back), or hangs
// before answering. The store underneath stays real; only its answers are disturbed.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>

#include "forwarding_queue.h"

namespace callbackd::testing {

enum class QueueCall {
  kEnqueue,
  kClaim,
  kRenew,
  kRecord,
  kRelease,
  kDefer,
  kRecover,
  kNextDue,
  kPrune,
  kFindApp,
  kCount,  // how many there are
};

inline std::string_view to_string(QueueCall call) {
  constexpr std::array<std::string_view, static_cast<std::size_t>(QueueCall::kCount)> names{
      "enqueue", "claim",   "renew",    "record", "release",
      "defer",   "recover", "next_due", "prune",  "find_app"};
  return names[static_cast<std::size_t>(call)];
}

struct QueueFault {
  enum class Kind {
    kFail,        // not applied; answered kStorageUnavailable
    kLoseAnswer,  // applied, but answered kStorageUnavailable
    kHang,        // answered (truly) only after `hang`
  };
  Kind kind = Kind::kFail;
  int times = 1;  // how many calls in a row it disturbs
  int skip = 0;   // calls let through untouched first
  std::chrono::milliseconds hang{0};
};

inline std::string_view to_string(QueueFault::Kind kind) {
  switch (kind) {
    case QueueFault::Kind::kFail:
      return "fail";
    case QueueFault::Kind::kLoseAnswer:
      return "lose_answer";
    case QueueFault::Kind::kHang:
      return "hang";
  }
  return "?";
}

class FaultyQueue final : public ForwardingQueue {
 public:
  using ForwardingQueue::ForwardingQueue;

  // Disturbs the next calls of one kind as `fault` says (replacing any fault set for it).
  void inject(QueueCall call, QueueFault fault) {
    std::lock_guard lock(mutex_);
    Plan& plan = plans_[index(call)];
    plan.fault = fault;
    plan.skip_left = fault.skip;
    plan.times_left = fault.times;
  }
  void clear() {
    std::lock_guard lock(mutex_);
    for (Plan& plan : plans_) plan.times_left = 0;
  }
  // Calls of this kind so far, and how many of them were disturbed.
  std::size_t calls(QueueCall call) const { return calls_[index(call)].load(); }
  std::size_t disturbed(QueueCall call) const { return disturbed_[index(call)].load(); }

  void enqueue_async(NewDelivery d, EnqueueDone done) override {
    const std::optional<QueueFault> fault = take(QueueCall::kEnqueue);
    if (!fault) return ForwardingQueue::enqueue_async(std::move(d), std::move(done));
    if (fault->kind == QueueFault::Kind::kFail) return done(failure("enqueue"));
    ForwardingQueue::enqueue_async(std::move(d),
                                   [fault = *fault, done = std::move(done)](Result<Enqueued> r) {
                                     if (fault.kind == QueueFault::Kind::kHang)
                                       std::this_thread::sleep_for(fault.hang);
                                     if (fault.kind == QueueFault::Kind::kLoseAnswer && r.ok())
                                       return done(failure("enqueue"));
                                     done(std::move(r));
                                   });
  }
  Result<std::vector<ClaimedDelivery>> claim(const ClaimRequest& request) override {
    return disturb(QueueCall::kClaim, [&] { return ForwardingQueue::claim(request); });
  }
  Result<StaleTokens> renew(std::span<const LeaseToken> tokens, Millis lease) override {
    return disturb(QueueCall::kRenew, [&] { return ForwardingQueue::renew(tokens, lease); });
  }
  Result<StaleTokens> record(std::span<const AttemptRecord> records) override {
    return disturb(QueueCall::kRecord, [&] { return ForwardingQueue::record(records); });
  }
  Result<StaleTokens> release(std::span<const LeaseToken> tokens, Millis delay) override {
    return disturb(QueueCall::kRelease, [&] { return ForwardingQueue::release(tokens, delay); });
  }
  Result<Deferred> defer_host(const HostDeferral& request) override {
    return disturb(QueueCall::kDefer, [&] { return ForwardingQueue::defer_host(request); });
  }
  Result<std::size_t> recover_expired_leases(const LeaseRecovery& recovery) override {
    return disturb(QueueCall::kRecover,
                   [&] { return ForwardingQueue::recover_expired_leases(recovery); });
  }
  Result<std::optional<Millis>> next_due_in(const std::vector<std::string>& skip_hosts) override {
    return disturb(QueueCall::kNextDue, [&] { return ForwardingQueue::next_due_in(skip_hosts); });
  }
  Result<std::size_t> prune_delivered(Millis age, std::size_t limit) override {
    return disturb(QueueCall::kPrune, [&] { return ForwardingQueue::prune_delivered(age, limit); });
  }
  Result<StoredApp> find_app(std::string_view app_id) override {
    return disturb(QueueCall::kFindApp, [&] { return ForwardingQueue::find_app(app_id); });
  }

 private:
  struct Plan {
    QueueFault fault;
    int skip_left = 0;
    int times_left = 0;
  };
  static std::size_t index(QueueCall call) { return static_cast<std::size_t>(call); }
  static Status failure(std::string_view what) {
    return Status::StorageUnavailable("injected fault: " + std::string(what));
  }

  // The fault this call gets, if any.
  std::optional<QueueFault> take(QueueCall call) {
    ++calls_[index(call)];
    std::lock_guard lock(mutex_);
    Plan& plan = plans_[index(call)];
    if (plan.times_left == 0) return std::nullopt;
    if (plan.skip_left > 0) {
      --plan.skip_left;
      return std::nullopt;
    }
    --plan.times_left;
    ++disturbed_[index(call)];
    return plan.fault;
  }

  template <class Forward>
  auto disturb(QueueCall call, Forward forward) -> decltype(forward()) {
    const std::optional<QueueFault> fault = take(call);
    if (!fault) return forward();
    switch (fault->kind) {
      case QueueFault::Kind::kFail:
        return failure(to_string(call));
      case QueueFault::Kind::kLoseAnswer: {
        auto applied = forward();
        (void)applied;
        return failure(to_string(call));
      }
      case QueueFault::Kind::kHang:
        std::this_thread::sleep_for(fault->hang);
        return forward();
    }
    return forward();
  }

  std::mutex mutex_;
  std::array<Plan, static_cast<std::size_t>(QueueCall::kCount)> plans_{};
  std::array<std::atomic<std::size_t>, static_cast<std::size_t>(QueueCall::kCount)> calls_{};
  std::array<std::atomic<std::size_t>, static_cast<std::size_t>(QueueCall::kCount)> disturbed_{};
};

}  // namespace callbackd::testing
