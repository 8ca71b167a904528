// The dispatcher's calls to the store. Every Queue call blocks, so they run on lanes of their
// own (StoreLane) and their answers come back to the io thread; the io thread never waits on
// disk or network. What it promises:
// - Every call ends in exactly one answer to the listener, once the store has answered it.
// - A write that failed (record, release, renewal) is kept and sent again on the worker's own
//   timer, sooner at first, then at most every couple of seconds, also while stopping, until
//   the store takes it (the writes are idempotent: see queue.h) or the worker is abandoned.
// - Renewals have a lane of their own: they never wait behind a claim or a batch of records.
// - Writes of one kind that pile up while one runs go together in the next call (one
//   transaction for a batch of records, one statement for a batch of renewals).
// - Claims bring the keys of their apps into memory on the store's lane, so starting an
//   attempt never reads the store on the io thread.
//
// Everything but abandon() and the destructor runs on the io thread, listener calls too.
#pragma once

#include <callbackd/queue.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "dispatch/backlog_deferral.h"
#include "dispatch/store_lane.h"
#include "secrets/app_keyring.h"

namespace callbackd {

class StoreWorker {
 public:
  // An endpoint's backlog is moved this many rows per transaction: every enqueue commit waits
  // for SQLite's one write transaction, and a move of 100 rows holds it about a millisecond.
  static constexpr std::size_t kDeferBatch = 100;

  class Listener {
   public:
    virtual ~Listener() = default;
    // `sent_at`: when the claim was sent, the earliest its leases can have started.
    virtual void on_claimed(Result<std::vector<ClaimedDelivery>> claimed,
                            std::optional<Millis> next_due, SteadyTime sent_at) = 0;
    // Records stored, and the stale ones among them (refused, never stored).
    virtual void on_recorded(const std::vector<AttemptRecord>& records,
                             const StaleTokens& stale) = 0;
    virtual void on_released(const StaleTokens& stale) = 0;
    // `sent_at`: when the renewal that succeeded was sent; each renewed lease lasts from then.
    virtual void on_renewed(const std::vector<LeaseToken>& renewed, const StaleTokens& stale,
                            SteadyTime sent_at) = 0;
    // A prune deleted a full batch: there is more to prune.
    virtual void on_maintained(bool more_to_prune) = 0;
    // A deferral call ended (whatever came of it): the worker may be idle now.
    virtual void on_deferred() = 0;
  };

  StoreWorker(boost::asio::io_context& io, std::shared_ptr<Queue> queue,
              std::shared_ptr<AppKeyring> keys, std::shared_ptr<const Clock> clock,
              Listener& listener);
  ~StoreWorker();  // abandon()s

  // One claim at a time; claiming() says whether one is out.
  void claim(ClaimRequest request);
  bool claiming() const { return claiming_; }
  // Stored in order, batched. `started`: when the attempt started, so the store can date it.
  void record(AttemptRecord record, SteadyTime started);
  // Back to pending `delay` from now, batched per delay.
  void release(LeaseToken token, Millis delay);
  // Extends these leases by `lease`; one renewal at a time, the next one batches the rest.
  void renew(std::vector<LeaseToken> tokens, Millis lease);
  // Moves an endpoint's backlog later (see BacklogDeferral), in batches that leave room for
  // other calls between them. A later call for the same endpoint replaces one still waiting
  // (the later time, the fewer rows kept). It runs after the records queued before it, so the
  // retries they schedule move too.
  void defer(BacklogDeferral deferral);
  // Forgets the deferrals still waiting and stops the running one after its batch: they only
  // spare claims some walking, and must not hold up a stop.
  void drop_deferrals();
  // Lease recovery (when given) and pruning of delivered rows older than `retention`.
  void maintain(std::optional<LeaseRecovery> recovery, bool prune, Millis retention);

  // Nothing waiting or running: every write is stored.
  bool idle() const;
  // Whether every store call since `now - span` succeeded (the store has been reachable
  // throughout): only then may other processes' leases be recovered.
  bool settled_for(Millis span, SteadyTime now) const;
  // How long the longest store call running now has been waiting for its answer. Thread-safe.
  Millis call_running_for() const;
  // Writes not stored yet (waiting, running or failed), for a stop's log line.
  std::size_t writes_waiting() const;
  // Deliveries whose release is on its way: still this process's until it lands, so lease
  // recovery must leave them (or it could claim one again before the release, which then
  // fails as stale).
  void add_releasing(std::vector<std::int64_t>& seqs) const;
  // Stops every answer and retry at once, for a stop past its deadline: what is not stored is
  // left to recovery. A lane stuck in a call lets go of it.
  void abandon();

 private:
  struct PendingRecord {
    AttemptRecord record;
    SteadyTime started;
  };
  struct PendingDeferral {
    BacklogDeferral want;
    std::optional<TimePoint> store_until;  // `until` as the store's first batch answered it
    std::uint64_t after_records = 0;       // waits until this many records are stored
    std::size_t moved = 0;                 // by earlier batches
  };

  void flush_records();
  void flush_releases();
  void flush_renewals();
  void flush_deferrals();
  // After a failed write: send what is waiting again a little later.
  void retry_later();
  void note(bool succeeded);

  boost::asio::io_context& io_;
  const std::shared_ptr<Queue> queue_;
  const std::shared_ptr<AppKeyring> keys_;
  const std::shared_ptr<const Clock> clock_;
  Listener& listener_;
  bool abandoned_ = false;

  bool claiming_ = false;
  std::vector<PendingRecord> records_;
  bool recording_ = false;
  std::uint64_t records_queued_ = 0;                    // ever
  std::uint64_t records_stored_ = 0;                    // ever
  std::size_t records_out_ = 0;                         // in the batch on its way
  std::map<Millis, std::vector<LeaseToken>> releases_;  // by delay
  bool releasing_ = false;
  std::shared_ptr<const std::vector<LeaseToken>> releases_out_;  // the batch on its way
  std::unordered_map<std::int64_t, LeaseToken> renewals_;        // by seq: the newest token asked
  Millis renewal_lease_{0};
  bool renewing_ = false;
  bool maintaining_ = false;
  std::map<std::string, PendingDeferral, std::less<>> deferrals_;  // by endpoint
  bool deferring_ = false;
  std::uint64_t deferrals_dropped_ = 0;  // drop_deferrals() calls, ever

  boost::asio::steady_timer retry_timer_;
  bool retry_armed_ = false;
  Millis retry_delay_;
  std::optional<SteadyTime> failing_since_;  // the first failure since the last success
  SteadyTime settled_since_;                 // the first success after the last failure

  // Last: their threads stop first on destruction.
  StoreLane lease_lane_;
  StoreLane lane_;
};

}  // namespace callbackd
