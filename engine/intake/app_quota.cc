#include "intake/app_quota.h"

namespace callbackd {

AppQuota::AppQuota(std::size_t limit,
                   const std::vector<std::pair<std::string, std::size_t>>& unfinished)
    : limit_(limit), unfinished_(unfinished.begin(), unfinished.end()) {}

bool AppQuota::try_take(const std::string& app_id) {
  std::lock_guard lock(mutex_);
  std::size_t& count = unfinished_[app_id];
  if (count >= limit_) return false;
  ++count;
  return true;
}

void AppQuota::take(const std::string& app_id) {
  std::lock_guard lock(mutex_);
  ++unfinished_[app_id];
}

void AppQuota::give_back(const std::string& app_id) {
  std::lock_guard lock(mutex_);
  auto it = unfinished_.find(app_id);
  if (it == unfinished_.end()) return;
  if (it->second <= 1) {
    unfinished_.erase(it);
  } else {
    --it->second;
  }
}

}  // namespace callbackd
