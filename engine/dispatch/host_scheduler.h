// Decides which waiting delivery starts next, so that no endpoint (host) takes more than its
// share of the dispatcher: a slow, silent or down host can never fill the global cap, and a
// healthy host's fresh callbacks never wait behind a sick host's backlog.
//
// - Each host has a line of waiting jobs and a concurrency limit that adapts to what the host
//   sustains: it starts small, grows by one with every answer (any status, however slow) up to
//   the per-host cap, and halves with every failed attempt (timeout, refused, reset, DNS,
//   TLS...). A host that answers slowly but surely gets the concurrency its traffic needs; the
//   slow pool's share keeps it from crowding out others.
// - Hosts sit in one of three pools by how long their attempts hold a slot: *unproven* (no
//   attempt finished yet), *quick* and *slow* (a moving average of attempt durations against a
//   threshold). Unproven hosts together hold at most half the global cap, slow hosts a quarter;
//   quick hosts, which give their slots back fast, may use all of it. Free slots go round-robin
//   across the pools, and round-robin across the hosts of a pool, so no pool or host starves.
// - Among unproven hosts every other pick is the newest host rather than the oldest, and a fresh
//   callback to a host that holds nothing may push the oldest waiting unproven job back to the
//   store, so a new customer's first callback is not queued behind thousands of never-tried
//   dead hosts. A burst of such hosts fills the unproven pool at once and frees it only as their
//   attempts run out, so the pool's last eighth is a fresh lane: only a host whose fresh
//   callback arrived in the last 250 ms may start there, and its starts are spaced over one
//   attempt timeout, so that its slots also free one by one rather than all at once.
// - Lines are bounded per host (a few times its limit) and per pool, so held memory stays small
//   and claims can be told which hosts to leave in the store. A quick host whose deliveries
//   overflowed into the store is named by take_spilled() once its line has room again, so they
//   are claimed by host instead of waiting behind older rows of sick hosts.
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

#include "dispatch/string_map.h"

namespace callbackd {

struct HostSchedulerOptions {
  std::size_t max_in_flight = 256;   // attempts running at once, all hosts together
  std::size_t max_per_host = 32;     // ceiling of a host's adaptive limit
  std::size_t initial_per_host = 4;  // a new host's limit (at most max_per_host)
  // An attempt that holds its slot longer than this (answer or not) counts as slow.
  Millis slow_attempt{1000};
  // The bound on one attempt: the fresh lane spreads its starts over it.
  Millis attempt_timeout{10000};
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

  // A waiting job taken out of its line to make room; it goes back to the store.
  struct Evicted {
    std::string host;
    JobId job = 0;
  };
  // Holds a place in the host's line for a job that will be add()ed later (a fresh callback
  // handed over after its commit). false when the host's line or its pool's room is full. For
  // an unproven host, a full pool makes room by evicting another unproven host's waiting job
  // into `evicted` (the hosts that have waited longest give first, in turn).
  bool try_reserve(std::string_view host, std::optional<Evicted>& evicted);
  void cancel_reservation(std::string_view host);
  // Puts a job in the host's line; with `reserved` it takes the place try_reserve() held, is
  // never refused, and counts as fresh. false (nothing added) when the line or the pool's room
  // is full.
  bool add(std::string_view host, JobId job, bool reserved, SteadyTime now);
  // Takes a waiting job out of its line; false when it was not waiting there.
  bool remove(std::string_view host, JobId job);

  // The next job to start, counted as running until finished(); nullopt when nothing waits
  // or every host with waiting jobs is at its limit or its pool's share.
  std::optional<Pick> next(SteadyTime now);
  // A running job ended. `outcome` adapts the host's limit and pool; nullopt: the job never
  // ran (nothing is learned from it).
  void finished(std::string_view host, std::optional<AttemptOutcome> outcome, SteadyTime now);
  // Forgets hosts idle for longer than forget_after.
  void forget_idle(SteadyTime now);

  // The store holds deliveries of this host that its line did not take (a hand-off or a
  // claimed job was refused).
  void note_spilled(std::string_view host);
  // A quick host with deliveries in the store and room in its line, and how many more jobs it
  // may take; it is no longer counted as spilled (note_spilled() again if a claim for it comes
  // back full).
  struct SpilledHost {
    std::string host;
    std::size_t room = 0;
  };
  std::optional<SpilledHost> take_spilled();

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
    bool in_waiting_list = false;  // listed in its pool's waiting_hosts
    bool spilled = false;          // the store holds deliveries its line did not take
    bool in_spilled_list = false;  // listed in spilled_quick_
    std::optional<SteadyTime> idle_since;
    SteadyTime fresh_until{};  // a fresh callback arrived shortly before this
  };
  struct Entry {
    std::size_t slot;
    std::uint64_t ticket;
  };
  struct Pool {
    std::deque<Entry> rotation;       // hosts with waiting jobs and room under their limit
    std::deque<Entry> waiting_hosts;  // hosts with waiting jobs, in the order they got them
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
  std::size_t room(const Host& host) const;  // jobs the host's line and pool may still take
  bool has_room(const Host& host) const { return room(host) > 0; }
  void list_spilled(std::size_t slot);  // joins spilled_quick_ if spilled and quick
  // Joins its pool's rotation if eligible: at the back (the newest), or at the front for an
  // unproven host whose job came from the backlog rather than fresh from the pipeline.
  void rotate_in(std::size_t slot, bool backlog = false);
  void list_waiting(std::size_t slot);  // joins its pool's waiting_hosts if it has a line
  std::optional<Evicted> evict_for(std::size_t slot);
  std::optional<Pick> take_from(Pool& pool, bool newest);
  std::optional<Pick> take_fresh(Pool& pool, SteadyTime now);  // the newest, if it is fresh
  Pick start(Pool& pool, std::size_t slot);
  void move_to_pool(Host& host, std::size_t slot, HostPool pool);
  void mark_idle_or_busy(Host& host, SteadyTime now);
  HostView view_of(const Host& host) const;

  const HostSchedulerOptions options_;
  std::vector<Host> slots_;  // hosts by slot; a forgotten host's slot is reused
  std::vector<std::size_t> free_slots_;
  StringMap<std::size_t> slot_by_key_;
  Pool pools_[3];
  std::deque<Entry> spilled_quick_;   // quick hosts with deliveries left in the store
  std::size_t next_pool_ = 0;         // where the round-robin over pools resumes
  bool unproven_newest_next_ = true;  // alternates newest / oldest among unproven hosts
  std::size_t fresh_lane_ = 0;        // the unproven pool's last slots, for fresh hosts only
  Millis fresh_lane_spacing_{0};      // between two starts in the fresh lane
  SteadyTime fresh_lane_opens_{};     // the fresh lane's next start, at the earliest
  std::size_t running_ = 0;
  std::size_t waiting_ = 0;
  std::size_t max_waiting_ = 0;
};

}  // namespace callbackd
