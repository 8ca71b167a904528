// Decides which waiting delivery starts next, so that no endpoint (host) takes more than its
// share of the dispatcher: a slow, silent or down host can never fill the global cap, and a
// healthy host's fresh callbacks never wait behind a sick host's backlog.
//
// - Each host has a line of waiting jobs and a concurrency limit that adapts to what the host
//   sustains: it starts small, grows by one with every quick answer up to the per-host cap, and
//   halves with every failed attempt (timeout, refused, reset, DNS, TLS...).
// - Hosts sit in one of three pools by how long their attempts hold a slot: *unproven* (no
//   attempt finished yet), *quick* and *slow* (a moving average of attempt durations against a
//   threshold). Unproven hosts together hold at most half the global cap, slow hosts a quarter;
//   quick hosts, which give their slots back fast, may use all of it. Free slots go round-robin
//   across the pools, and round-robin across the hosts of a pool, so no pool or host starves.
// - Among unproven hosts every other pick is the newest host rather than the oldest, so a new
//   customer's first callback is not queued behind thousands of never-tried dead hosts.
// - Lines are bounded per host (a few times its limit) and per pool, so held memory stays small
//   and claims can be told which hosts to leave in the store.
//
// Pure logic: no sockets, no storage, no clock of its own. Not thread-safe.
#pragma once

#include <callbackd/clock.h>

#include <cstdint>
#include <deque>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "string_map.h"

namespace callbackd {

struct HostSchedulerOptions {
  std::size_t max_in_flight = 256;   // attempts running at once, all hosts together
  std::size_t max_per_host = 32;     // ceiling of a host's adaptive limit
  std::size_t initial_per_host = 4;  // a new host's limit (at most max_per_host)
  // An attempt that holds its slot longer than this (answer or not) counts as slow.
  Millis slow_attempt{1000};
  // A host with nothing waiting or running is forgotten after this long.
  Millis forget_after{600000};
};

enum class HostPool { kUnproven, kQuick, kSlow };
constexpr std::string_view to_string(HostPool pool) {
  switch (pool) {
    case HostPool::kUnproven:
      return "unproven";
    case HostPool::kQuick:
      return "quick";
    case HostPool::kSlow:
      return "slow";
  }
  return "unknown";
}

// How an attempt ended, as far as scheduling cares.
struct AttemptOutcome {
  bool answered = false;  // an HTTP response arrived (any status); false: a transport failure
  Millis duration{0};     // how long the attempt held its slot
};

// What the scheduler knows of one host, for metrics, the API and tests.
struct HostView {
  std::string host;
  HostPool pool = HostPool::kUnproven;
  std::size_t limit = 0;  // current adaptive concurrency limit
  std::size_t in_flight = 0;
  std::size_t waiting = 0;     // jobs in its line, reservations included
  Millis typical_duration{0};  // the moving average the pool is chosen by
};

class HostScheduler {
 public:
  using JobId = std::int64_t;
  struct Pick {
    std::string host;
    JobId job = 0;
  };

  explicit HostScheduler(HostSchedulerOptions options);

  // Holds a place in the host's line for a job that will be add()ed later (a fresh callback
  // handed over after its commit). false when the host's line or its pool's room is full.
  bool try_reserve(std::string_view host);
  void cancel_reservation(std::string_view host);
  // Puts a job in the host's line; with `reserved` it takes the place try_reserve() held and
  // is never refused. false (nothing added) when the line or the pool's room is full.
  bool add(std::string_view host, JobId job, bool reserved);
  // Takes a waiting job out of its line; false when it was not waiting there.
  bool remove(std::string_view host, JobId job);

  // The next job to start, counted as running until finished(); nullopt when nothing waits
  // or every host with waiting jobs is at its limit or its pool's share.
  std::optional<Pick> next();
  // A running job ended. `outcome` adapts the host's limit and pool; nullopt: the job never
  // ran (nothing is learned from it).
  void finished(std::string_view host, std::optional<AttemptOutcome> outcome, SteadyTime now);
  // Forgets hosts idle for longer than forget_after.
  void forget_idle(SteadyTime now);

  // Hosts with no room for more waiting jobs, at most `max` of them: claims leave their
  // deliveries in the store.
  std::vector<std::string> full_hosts(std::size_t max) const;
  // How many more jobs may wait, all hosts together (what a claim may take at most).
  std::size_t waiting_room() const;

  std::size_t running() const { return running_; }
  std::size_t waiting() const { return waiting_; }  // reservations included
  std::optional<HostView> view(std::string_view host) const;
  std::vector<HostView> views() const;

 private:
  struct Host {
    std::string key;
    std::deque<JobId> line;
    std::size_t reserved = 0;
    std::size_t running = 0;
    std::size_t limit = 1;
    bool has_outcome = false;
    double typical_ms = 0;  // moving average of attempt durations
    HostPool pool = HostPool::kUnproven;
    // Rotation entries carry the ticket they were issued with; a changed ticket marks older
    // entries stale (the host moved pool, left the rotation, or its slot was reused).
    std::uint64_t ticket = 0;
    bool in_rotation = false;
    std::optional<SteadyTime> idle_since;
  };
  struct Entry {
    std::size_t slot;
    std::uint64_t ticket;
  };
  struct Pool {
    std::deque<Entry> rotation;  // hosts with waiting jobs and room under their limit
    std::size_t running = 0;
    std::size_t waiting = 0;
    std::size_t max_running = 0;
    std::size_t max_waiting = 0;
  };

  Host* find(std::string_view host);
  const Host* find(std::string_view host) const;
  Host& find_or_add(std::string_view host);
  Pool& pool_of(const Host& host) { return pools_[static_cast<std::size_t>(host.pool)]; }
  const Pool& pool_of(const Host& host) const {
    return pools_[static_cast<std::size_t>(host.pool)];
  }
  std::size_t line_limit(const Host& host) const;
  bool has_room(const Host& host) const;
  void rotate_in(std::size_t slot);  // joins its pool's rotation if eligible
  std::optional<Pick> take_from(Pool& pool, bool newest);
  void move_to_pool(Host& host, std::size_t slot, HostPool pool);
  void mark_idle_or_busy(Host& host, SteadyTime now);
  HostView view_of(const Host& host) const;

  const HostSchedulerOptions options_;
  std::vector<Host> slots_;  // hosts by slot; a forgotten host's slot is reused
  std::vector<std::size_t> free_slots_;
  StringMap<std::size_t> slot_by_key_;
  Pool pools_[3];
  std::size_t next_pool_ = 0;         // where the round-robin over pools resumes
  bool unproven_newest_next_ = true;  // alternates newest / oldest among unproven hosts
  std::size_t running_ = 0;
  std::size_t waiting_ = 0;
  std::size_t max_waiting_ = 0;
};

}  // namespace callbackd
