// Unfinished deliveries per app, counted in memory (seeded from the store at open), so that
// enqueue can refuse an app past its quota without a query: one runaway app cannot fill the
// disk for everyone.
//
// Several processes on one store each count only what they see (one enqueues, another
// finishes), so the count drifts; before refusing, the engine recounts the app in the store
// (recount()), and a refusal is only ever given on a fresh count. Thread-safe.
#pragma once

#include <callbackd/clock.h>

#include <mutex>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

namespace callbackd {

class AppQuota {
 public:
  AppQuota(std::size_t limit, const std::vector<std::pair<std::string, std::size_t>>& unfinished);

  // Counts one more unfinished delivery for the app, whose commit is on its way; false (and
  // nothing counted) at the limit.
  bool try_take(const std::string& app_id);
  // The commit of a try_take() came back: `stored` a new delivery, or nothing (a failure, a
  // task stored before), and then its count goes back.
  void committed(const std::string& app_id, bool stored);
  // Counts one more even past the limit (an operator's redelivery).
  void take(const std::string& app_id);
  // One of the app's deliveries finished.
  void give_back(const std::string& app_id);

  // Whether the app's count is due a recount before a refusal: not recounted within
  // `interval` (a refused app that keeps sending is recounted at most that often).
  bool recount_due(const std::string& app_id, SteadyTime now, Millis interval);
  // The store counted `stored` unfinished deliveries of the app just now: that, plus its
  // commits still on their way, is its count.
  void recount(const std::string& app_id, std::size_t stored, SteadyTime now);

  std::size_t limit() const { return limit_; }
  std::size_t count(const std::string& app_id) const;

 private:
  struct App {
    std::size_t unfinished = 0;
    std::size_t committing = 0;  // taken, commit not back yet
    SteadyTime recounted_at{};
  };
  void forget_if_empty(std::unordered_map<std::string, App>::iterator it);

  const std::size_t limit_;
  mutable std::mutex mutex_;
  std::unordered_map<std::string, App> apps_;
};

}  // namespace callbackd
