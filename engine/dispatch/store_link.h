// The dispatcher's round trips to the queue. Every Queue call blocks, so they run one at a
// time on a storage thread of their own and their results are posted back to the io thread;
// the io thread never waits on disk. Writes of one kind that pile up while another call runs
// go together in the next call (one transaction for a batch of records, one statement for a
// batch of renewals).
//
// Everything but the constructor and destructor runs on the io thread, listener calls too.
#pragma once

#include <callbackd/queue.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/thread_pool.hpp>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace callbackd {

class StoreLink {
 public:
  // An endpoint's backlog is moved this many rows per transaction. Each row moved rewrites its
  // index entries (4-18 us a row in the soak), and every enqueue commit waits for the one write
  // transaction: 10,000-row batches held it 40-190 ms (the soak's p99 spikes), 500-row ones
  // often over 8 ms; 100-row ones stay near a millisecond.
  static constexpr std::size_t kDeferBatch = 100;

  class Listener {
   public:
    virtual ~Listener() = default;
    // `sent_at`: when the claim was sent, the earliest its leases can have started.
    virtual void on_claimed(Result<std::vector<ClaimedDelivery>> claimed,
                            std::optional<Millis> next_due, SteadyTime sent_at) = 0;
    // Records not stored (failed write) are sent again with the next batch.
    virtual void on_recorded(const std::vector<AttemptRecord>& stored,
                             const StaleTokens& stale) = 0;
    virtual void on_released(const StaleTokens& stale) = 0;
    virtual void on_renewed(const std::vector<LeaseToken>& renewed, const StaleTokens& stale,
                            SteadyTime sent_at) = 0;
    // A prune deleted a full batch: there is more to prune.
    virtual void on_maintained(bool more_to_prune) = 0;
    // A deferral call ended (whatever came of it): the link may be idle now.
    virtual void on_deferred() = 0;
  };

  StoreLink(boost::asio::io_context& io, Queue& queue, std::shared_ptr<const Clock> clock,
            Listener& listener);
  ~StoreLink();  // waits for the storage thread's current call

  // One claim at a time; claiming() says whether one is out.
  void claim(ClaimRequest request);
  bool claiming() const { return claiming_; }
  // Stored in order, batched.
  void record(AttemptRecord record);
  // Back to pending `delay` from now, batched per delay.
  void release(LeaseToken token, Millis delay);
  // Extends these leases by `lease`; one renewal at a time, the next one batches the rest.
  void renew(std::vector<LeaseToken> tokens, Millis lease);
  // Moves the endpoint's pending deliveries due before `until` to `until`, in batches that leave
  // room for other calls between them (an open endpoint's backlog, out of the claims' way). A
  // later call for the same endpoint replaces an earlier one still waiting (the later time, the
  // fewer rows kept). It runs after the records queued before it, so the retries they schedule
  // move too. The `keep_oldest` oldest rows due before `until` stay where they are.
  // `announce`: say what moved in an info line (an endpoint that just opened); later moves of
  // the same backlog are debug lines.
  void defer_host(std::string host_key, SteadyTime until, std::size_t keep_oldest = 0,
                  bool announce = false);
  // Forgets the deferrals still waiting and stops the running one after its batch: they only
  // spare claims some walking, and must not hold up a stop.
  void drop_deferrals();
  // Lease recovery and pruning of delivered rows older than `retention`.
  void maintain(bool recover, bool prune, Millis retention);
  // Sends what is waiting again (after a failed write).
  void retry();

  // Nothing waiting or running: safe to stop.
  bool idle() const;

 private:
  template <class Work, class Then>
  void run(Work work, Then then);
  void flush_records();
  void flush_releases();
  void flush_renewals();
  void flush_deferrals();

  boost::asio::io_context& io_;
  Queue& queue_;
  const std::shared_ptr<const Clock> clock_;
  Listener& listener_;

  bool claiming_ = false;
  std::vector<AttemptRecord> records_;
  bool recording_ = false;
  std::uint64_t records_queued_ = 0;                    // ever
  std::uint64_t records_stored_ = 0;                    // ever
  std::map<Millis, std::vector<LeaseToken>> releases_;  // by delay
  bool releasing_ = false;
  std::vector<LeaseToken> renewals_;
  Millis renewal_lease_{0};
  bool renewing_ = false;
  bool maintaining_ = false;
  struct Deferral {
    SteadyTime until{};
    std::optional<TimePoint> store_until;  // `until` as the store's first batch answered it
    std::uint64_t after_records = 0;       // waits until this many records are stored
    std::size_t moved = 0;                 // by earlier batches
    std::size_t keep_oldest = 0;
    bool announce = false;
  };
  std::map<std::string, Deferral, std::less<>> deferrals_;  // by endpoint
  bool deferring_ = false;
  std::uint64_t deferrals_dropped_ = 0;  // drop_deferrals() calls, ever

  // Last member: its thread is joined first on destruction.
  boost::asio::thread_pool storage_thread_{1};
};

}  // namespace callbackd
