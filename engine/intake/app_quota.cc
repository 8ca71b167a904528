#include "intake/app_quota.h"

namespace callbackd {

AppQuota::AppQuota(std::size_t limit,
                   const std::vector<std::pair<std::string, std::size_t>>& unfinished)
    : limit_(limit) {
  for (const auto& [app, count] : unfinished) apps_[app].unfinished = count;
}

void AppQuota::forget_if_empty(std::unordered_map<std::string, App>::iterator it) {
  if (it->second.unfinished == 0 && it->second.committing == 0 &&
      it->second.recounted_at == SteadyTime{}) {
    apps_.erase(it);
  }
}

bool AppQuota::try_take(const std::string& app_id) {
  std::lock_guard lock(mutex_);
  App& app = apps_[app_id];
  if (app.unfinished >= limit_) return false;
  ++app.unfinished;
  ++app.committing;
  return true;
}

void AppQuota::committed(const std::string& app_id, bool stored) {
  std::lock_guard lock(mutex_);
  auto it = apps_.find(app_id);
  if (it == apps_.end()) return;
  if (it->second.committing > 0) --it->second.committing;
  if (!stored && it->second.unfinished > 0) --it->second.unfinished;
  forget_if_empty(it);
}

void AppQuota::take(const std::string& app_id) {
  std::lock_guard lock(mutex_);
  ++apps_[app_id].unfinished;
}

void AppQuota::give_back(const std::string& app_id) {
  std::lock_guard lock(mutex_);
  auto it = apps_.find(app_id);
  if (it == apps_.end()) return;
  if (it->second.unfinished > 0) --it->second.unfinished;
  forget_if_empty(it);
}

bool AppQuota::recount_due(const std::string& app_id, SteadyTime now, Millis interval) {
  std::lock_guard lock(mutex_);
  auto it = apps_.find(app_id);
  return it == apps_.end() || it->second.recounted_at == SteadyTime{} ||
         now - it->second.recounted_at >= interval;
}

void AppQuota::recount(const std::string& app_id, std::size_t stored, SteadyTime now) {
  std::lock_guard lock(mutex_);
  App& app = apps_[app_id];
  app.unfinished = stored + app.committing;
  app.recounted_at = now;
}

std::size_t AppQuota::count(const std::string& app_id) const {
  std::lock_guard lock(mutex_);
  auto it = apps_.find(app_id);
  return it == apps_.end() ? 0 : it->second.unfinished;
}

}  // namespace callbackd
