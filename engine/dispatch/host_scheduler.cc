#include "dispatch/host_scheduler.h"

#include <algorithm>

namespace callbackd {

namespace {

// Jobs a host may have waiting per unit of its limit: enough to refill its slots between two
// claims, few enough that a host that is not keeping up leaves its backlog in the store.
constexpr std::size_t kLinePerSlot = 4;
constexpr std::size_t kMinLine = 4;
// Waiting room of a pool at the least, so small caps still leave room for several hosts.
constexpr std::size_t kMinPoolWaiting = 64;
// How long after its fresh callback arrived a host may use the unproven pool's fresh lane.
constexpr Millis kFreshFor{250};
// Weight of the newest duration in a host's moving average.
constexpr double kAverageWeight = 0.5;

constexpr std::size_t index(HostPool pool) { return static_cast<std::size_t>(pool); }

}  // namespace

HostScheduler::HostScheduler(HostSchedulerOptions options) : options_(options) {
  const std::size_t max = std::max<std::size_t>(1, options_.max_in_flight);
  pools_[index(HostPool::kQuick)].max_running = max;
  pools_[index(HostPool::kUnproven)].max_running = std::max<std::size_t>(1, max / 2);
  pools_[index(HostPool::kSlow)].max_running = std::max<std::size_t>(1, max / 4);
  fresh_lane_ = pools_[index(HostPool::kUnproven)].max_running / 8;
  if (fresh_lane_ > 0) {
    fresh_lane_spacing_ = options_.attempt_timeout / static_cast<std::int64_t>(fresh_lane_);
  }
  // Held jobs in all stay under twice the global cap (at the default caps), most of them for
  // quick hosts, which turn them over fastest.
  pools_[index(HostPool::kQuick)].max_waiting = std::max(kMinPoolWaiting, max);
  pools_[index(HostPool::kUnproven)].max_waiting = std::max(kMinPoolWaiting, max / 2);
  pools_[index(HostPool::kSlow)].max_waiting = std::max(kMinPoolWaiting, max / 4);
  for (const Pool& pool : pools_) max_waiting_ += pool.max_waiting;
}

// ---------------------------------------------------------------- lookup

HostScheduler::Host* HostScheduler::find(std::string_view host) {
  auto it = slot_by_key_.find(host);
  return it == slot_by_key_.end() ? nullptr : &slots_[it->second];
}

const HostScheduler::Host* HostScheduler::find(std::string_view host) const {
  auto it = slot_by_key_.find(host);
  return it == slot_by_key_.end() ? nullptr : &slots_[it->second];
}

HostScheduler::Host& HostScheduler::find_or_add(std::string_view key) {
  if (Host* host = find(key)) return *host;
  std::size_t slot;
  if (!free_slots_.empty()) {
    slot = free_slots_.back();
    free_slots_.pop_back();
  } else {
    slot = slots_.size();
    slots_.emplace_back();
  }
  Host& host = slots_[slot];
  const std::uint64_t ticket = host.ticket + 1;  // entries of the slot's last host go stale
  host = Host{};
  host.key = std::string(key);
  host.ticket = ticket;
  host.limit = std::clamp<std::size_t>(options_.initial_per_host, 1,
                                       std::max<std::size_t>(1, options_.max_per_host));
  slot_by_key_.emplace(host.key, slot);
  return host;
}

// ---------------------------------------------------------------- admission

std::size_t HostScheduler::line_limit(const Host& host) const {
  // No host takes more than half its pool's waiting room.
  return std::min(std::max(kMinLine, kLinePerSlot * host.limit), pool_of(host).max_waiting / 2);
}

std::size_t HostScheduler::room(const Host& host) const {
  const Pool& pool = pool_of(host);
  const std::size_t held = host.line.size() + host.reserved;
  const std::size_t line_room = line_limit(host) - std::min(line_limit(host), held);
  return std::min(line_room, pool.max_waiting - std::min(pool.max_waiting, pool.waiting));
}

bool HostScheduler::try_reserve(std::string_view key, std::optional<Evicted>& evicted) {
  Host& host = find_or_add(key);
  const Pool& pool = pool_of(host);
  const bool line_has_room = host.line.size() + host.reserved < line_limit(host);
  if (host.pool == HostPool::kUnproven && line_has_room && pool.waiting >= pool.max_waiting) {
    evicted = evict_for(slot_by_key_.find(host.key)->second);
  }
  if (!has_room(host)) return false;
  ++host.reserved;
  ++pool_of(host).waiting;
  ++waiting_;
  host.idle_since.reset();
  return true;
}

void HostScheduler::cancel_reservation(std::string_view key) {
  Host* host = find(key);
  if (host == nullptr || host->reserved == 0) return;
  --host->reserved;
  --pool_of(*host).waiting;
  --waiting_;
}

bool HostScheduler::add(std::string_view key, JobId job, bool reserved, SteadyTime now) {
  Host& host = find_or_add(key);
  if (reserved) host.fresh_until = now + kFreshFor;
  if (reserved && host.reserved > 0) {
    --host.reserved;  // the reservation's place in the counts becomes the job's
  } else {
    if (!has_room(host)) return false;
    ++pool_of(host).waiting;
    ++waiting_;
  }
  host.line.push_back(job);
  host.idle_since.reset();
  const std::size_t slot = slot_by_key_.find(host.key)->second;
  rotate_in(slot, /*backlog=*/!reserved);
  list_waiting(slot);
  return true;
}

bool HostScheduler::remove(std::string_view key, JobId job) {
  Host* host = find(key);
  if (host == nullptr) return false;
  auto it = std::find(host->line.begin(), host->line.end(), job);
  if (it == host->line.end()) return false;
  host->line.erase(it);
  --pool_of(*host).waiting;
  --waiting_;
  return true;
}

void HostScheduler::list_waiting(std::size_t slot) {
  Host& host = slots_[slot];
  if (host.in_waiting_list || host.line.empty()) return;
  host.in_waiting_list = true;
  pool_of(host).waiting_hosts.push_back(Entry{slot, host.ticket});
}

std::optional<HostScheduler::Evicted> HostScheduler::evict_for(std::size_t taker) {
  Pool& pool = pool_of(slots_[taker]);
  // Each listed host is looked at once at most; the taker never gives to itself.
  for (std::size_t looked = pool.waiting_hosts.size(); looked > 0; --looked) {
    const Entry entry = pool.waiting_hosts.front();
    pool.waiting_hosts.pop_front();
    Host& host = slots_[entry.slot];
    if (host.ticket != entry.ticket || !host.in_waiting_list) continue;  // stale
    host.in_waiting_list = false;
    if (host.line.empty()) continue;
    if (entry.slot == taker) {
      list_waiting(entry.slot);
      continue;
    }
    Evicted evicted{host.key, host.line.back()};
    host.line.pop_back();
    --pool.waiting;
    --waiting_;
    list_waiting(entry.slot);  // back of the list: the next eviction takes from another host
    return evicted;
  }
  return std::nullopt;
}

// ---------------------------------------------------------------- spilled hosts

void HostScheduler::note_spilled(std::string_view key) {
  auto it = slot_by_key_.find(key);
  if (it == slot_by_key_.end()) return;
  slots_[it->second].spilled = true;
  list_spilled(it->second);
}

void HostScheduler::list_spilled(std::size_t slot) {
  Host& host = slots_[slot];
  if (!host.spilled || host.in_spilled_list || host.pool != HostPool::kQuick) return;
  host.in_spilled_list = true;
  spilled_quick_.push_back(Entry{slot, host.ticket});
}

std::optional<HostScheduler::SpilledHost> HostScheduler::take_spilled() {
  // Hosts without room go to the back; each is looked at once per call at most.
  for (std::size_t looked = spilled_quick_.size(); looked > 0; --looked) {
    const Entry entry = spilled_quick_.front();
    spilled_quick_.pop_front();
    Host& host = slots_[entry.slot];
    if (host.ticket != entry.ticket || !host.in_spilled_list) continue;  // stale
    if (host.pool != HostPool::kQuick) {
      host.in_spilled_list = false;  // listed again if it becomes quick
      continue;
    }
    const std::size_t free = room(host);
    if (free == 0) {
      spilled_quick_.push_back(entry);
      continue;
    }
    host.in_spilled_list = false;
    host.spilled = false;
    return SpilledHost{host.key, free};
  }
  return std::nullopt;
}

// ---------------------------------------------------------------- picking

void HostScheduler::rotate_in(std::size_t slot, bool backlog) {
  Host& host = slots_[slot];
  if (host.in_rotation || host.line.empty() || host.running >= host.limit) return;
  host.in_rotation = true;
  Pool& pool = pool_of(host);
  if (backlog && host.pool == HostPool::kUnproven) {
    pool.rotation.push_front(Entry{slot, host.ticket});
  } else {
    pool.rotation.push_back(Entry{slot, host.ticket});
  }
}

HostScheduler::Pick HostScheduler::start(Pool& pool, std::size_t slot) {
  Host& host = slots_[slot];
  host.in_rotation = false;
  Pick pick{host.key, host.line.front()};
  host.line.pop_front();
  --pool.waiting;
  --waiting_;
  ++host.running;
  ++pool.running;
  ++running_;
  rotate_in(slot);  // back of the rotation: one start per host per turn
  return pick;
}

std::optional<HostScheduler::Pick> HostScheduler::take_from(Pool& pool, bool newest) {
  while (!pool.rotation.empty()) {
    const Entry entry = newest ? pool.rotation.back() : pool.rotation.front();
    if (newest) {
      pool.rotation.pop_back();
    } else {
      pool.rotation.pop_front();
    }
    Host& host = slots_[entry.slot];
    if (host.ticket != entry.ticket || !host.in_rotation) continue;  // stale entry
    host.in_rotation = false;
    if (host.line.empty() || host.running >= host.limit) continue;
    return start(pool, entry.slot);
  }
  return std::nullopt;
}

std::optional<HostScheduler::Pick> HostScheduler::take_fresh(Pool& pool, SteadyTime now) {
  while (!pool.rotation.empty()) {
    const Entry entry = pool.rotation.back();
    Host& host = slots_[entry.slot];
    const bool current = host.ticket == entry.ticket && host.in_rotation;
    if (current && !host.line.empty() && host.running < host.limit) {
      if (now >= host.fresh_until) return std::nullopt;  // the newest is not fresh: none is
      pool.rotation.pop_back();
      return start(pool, entry.slot);
    }
    pool.rotation.pop_back();
    if (current) host.in_rotation = false;
  }
  return std::nullopt;
}

std::optional<HostScheduler::Pick> HostScheduler::next(SteadyTime now) {
  if (running_ >= options_.max_in_flight) return std::nullopt;
  // Round-robin over the pools, skipping one that is empty or at its share.
  static constexpr HostPool kOrder[] = {HostPool::kQuick, HostPool::kUnproven, HostPool::kSlow};
  for (std::size_t tried = 0; tried < 3; ++tried) {
    const HostPool which = kOrder[next_pool_];
    next_pool_ = (next_pool_ + 1) % 3;
    Pool& pool = pools_[index(which)];
    if (pool.running >= pool.max_running || pool.rotation.empty()) continue;
    std::optional<Pick> pick;
    if (which != HostPool::kUnproven) {
      pick = take_from(pool, /*newest=*/false);
    } else if (pool.running >= pool.max_running - fresh_lane_) {
      if (now >= fresh_lane_opens_) pick = take_fresh(pool, now);
      if (pick) fresh_lane_opens_ = now + fresh_lane_spacing_;
    } else {
      pick = take_from(pool, unproven_newest_next_);
      unproven_newest_next_ = !unproven_newest_next_;
    }
    if (pick) return pick;
  }
  return std::nullopt;
}

// ---------------------------------------------------------------- learning

void HostScheduler::move_to_pool(Host& host, std::size_t slot, HostPool to) {
  if (host.pool == to) return;
  Pool& from = pool_of(host);
  Pool& into = pools_[index(to)];
  const std::size_t waiting = host.line.size() + host.reserved;
  from.running -= host.running;
  from.waiting -= waiting;
  into.running += host.running;
  into.waiting += waiting;
  host.pool = to;
  // Its entries in the old pool's lists are stale now; join the new pool's.
  ++host.ticket;
  host.in_rotation = false;
  host.in_waiting_list = false;
  host.in_spilled_list = false;
  rotate_in(slot);
  list_waiting(slot);
  list_spilled(slot);
}

void HostScheduler::finished(std::string_view key, std::optional<AttemptOutcome> outcome,
                             SteadyTime now) {
  auto it = slot_by_key_.find(key);
  if (it == slot_by_key_.end()) return;
  const std::size_t slot = it->second;
  Host& host = slots_[slot];
  if (host.running == 0) return;
  --host.running;
  --pool_of(host).running;
  --running_;

  if (outcome) {
    const double ms = static_cast<double>(outcome->duration.count());
    host.typical_ms =
        host.has_outcome ? (1 - kAverageWeight) * host.typical_ms + kAverageWeight * ms : ms;
    host.has_outcome = true;
    if (!outcome->answered) {
      host.limit = std::max<std::size_t>(1, host.limit / 2);
    } else {
      host.limit = std::min(std::max<std::size_t>(1, options_.max_per_host), host.limit + 1);
    }
    const bool typically_slow =
        host.typical_ms >= static_cast<double>(options_.slow_attempt.count());
    move_to_pool(host, slot, typically_slow ? HostPool::kSlow : HostPool::kQuick);
  }
  rotate_in(slot);
  mark_idle_or_busy(host, now);
}

void HostScheduler::mark_idle_or_busy(Host& host, SteadyTime now) {
  const bool idle = host.line.empty() && host.reserved == 0 && host.running == 0;
  if (!idle) {
    host.idle_since.reset();
  } else if (!host.idle_since) {
    host.idle_since = now;
  }
}

void HostScheduler::forget_idle(SteadyTime now) {
  for (std::size_t slot = 0; slot < slots_.size(); ++slot) {
    Host& host = slots_[slot];
    if (host.key.empty()) continue;  // a free slot
    const bool idle = host.line.empty() && host.reserved == 0 && host.running == 0;
    if (!idle) continue;
    if (!host.idle_since) host.idle_since = now;
    if (now - *host.idle_since < options_.forget_after) continue;
    slot_by_key_.erase(host.key);
    const std::uint64_t ticket = host.ticket + 1;
    host = Host{};
    host.ticket = ticket;
    free_slots_.push_back(slot);
  }
}

// ---------------------------------------------------------------- views

std::vector<std::string> HostScheduler::full_hosts(std::size_t max) const {
  std::vector<std::string> full;
  for (const Host& host : slots_) {
    if (full.size() >= max) break;
    if (host.key.empty()) continue;
    const bool line_full = host.line.size() + host.reserved >= line_limit(host);
    const Pool& pool = pool_of(host);
    if (line_full || pool.waiting >= pool.max_waiting) full.push_back(host.key);
  }
  return full;
}

std::size_t HostScheduler::waiting_room() const {
  return max_waiting_ - std::min(max_waiting_, waiting_);
}

HostView HostScheduler::view_of(const Host& host) const {
  return HostView{host.key,
                  host.pool,
                  host.limit,
                  host.running,
                  host.line.size() + host.reserved,
                  Millis(static_cast<std::int64_t>(host.typical_ms))};
}

std::optional<HostView> HostScheduler::view(std::string_view key) const {
  const Host* host = find(key);
  if (host == nullptr) return std::nullopt;
  return view_of(*host);
}

std::vector<HostView> HostScheduler::views() const {
  std::vector<HostView> all;
  for (const Host& host : slots_) {
    if (!host.key.empty()) all.push_back(view_of(host));
  }
  return all;
}

}  // namespace callbackd
