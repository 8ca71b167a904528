// Unfinished deliveries per app, counted in memory (seeded from the store at open), so that
// enqueue can refuse an app past its quota without a query: one runaway app cannot fill the
// disk for everyone. Thread-safe.
#pragma once

#include <mutex>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

namespace callbackd {

class AppQuota {
 public:
  AppQuota(std::size_t limit, const std::vector<std::pair<std::string, std::size_t>>& unfinished);

  // Counts one more unfinished delivery for the app; false (and nothing counted) at the limit.
  bool try_take(const std::string& app_id);
  // Counts one more even past the limit (an operator's redelivery).
  void take(const std::string& app_id);
  // One of the app's deliveries finished, or was not stored after all.
  void give_back(const std::string& app_id);
  std::size_t limit() const { return limit_; }

 private:
  const std::size_t limit_;
  std::mutex mutex_;
  std::unordered_map<std::string, std::size_t> unfinished_;
};

}  // namespace callbackd
