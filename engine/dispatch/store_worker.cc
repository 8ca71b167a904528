#include "dispatch/store_worker.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <unordered_set>

namespace callbackd {

namespace {

// Delivered rows past retention are deleted in batches this size, so one prune never holds
// the store's lane (and the claims queued behind it) for long.
constexpr std::size_t kPruneBatch = 1000;

// A failed write is sent again after this, doubled after each failure in a row, up to the
// most: a store that is back is heard from within a couple of seconds.
constexpr Millis kFirstRetry{50};
constexpr Millis kMostRetry{2000};

}  // namespace

StoreWorker::StoreWorker(boost::asio::io_context& io, std::shared_ptr<Queue> queue,
                         std::shared_ptr<AppKeyring> keys, std::shared_ptr<const Clock> clock,
                         Listener& listener)
    : io_(io),
      queue_(std::move(queue)),
      keys_(std::move(keys)),
      clock_(std::move(clock)),
      listener_(listener),
      retry_timer_(io),
      retry_delay_(kFirstRetry),
      settled_since_(clock_->steady_now()),
      lease_lane_(io, "callbackd-lease"),
      lane_(io, "callbackd-store") {}

StoreWorker::~StoreWorker() { abandon(); }

void StoreWorker::abandon() {
  abandoned_ = true;
  retry_timer_.cancel();
  lease_lane_.abandon();
  lane_.abandon();
}

bool StoreWorker::idle() const {
  return !claiming_ && !recording_ && !releasing_ && !renewing_ && !maintaining_ && !deferring_ &&
         records_.empty() && releases_.empty() && renewals_.empty() && deferrals_.empty();
}

std::size_t StoreWorker::writes_waiting() const {
  std::size_t releases = releases_out_ ? releases_out_->size() : 0;
  for (const auto& [delay, tokens] : releases_) releases += tokens.size();
  return records_.size() + records_out_ + releases;
}

Millis StoreWorker::call_running_for() const {
  return std::chrono::duration_cast<Millis>(
      std::max(lane_.running_for(), lease_lane_.running_for()));
}

void StoreWorker::add_releasing(std::vector<std::int64_t>& seqs) const {
  if (releases_out_) {
    for (const LeaseToken& t : *releases_out_) seqs.push_back(t.seq);
  }
  for (const auto& [delay, tokens] : releases_) {
    for (const LeaseToken& t : tokens) seqs.push_back(t.seq);
  }
}

bool StoreWorker::settled_for(Millis span, SteadyTime now) const {
  return !failing_since_ && now - settled_since_ >= span;
}

void StoreWorker::note(bool succeeded) {
  const SteadyTime now = clock_->steady_now();
  if (succeeded) {
    if (failing_since_) settled_since_ = now;
    failing_since_.reset();
    retry_delay_ = kFirstRetry;
  } else if (!failing_since_) {
    failing_since_ = now;
  }
}

void StoreWorker::retry_later() {
  if (retry_armed_ || abandoned_) return;
  retry_armed_ = true;
  retry_timer_.expires_after(retry_delay_);
  retry_delay_ = std::min(retry_delay_ * 2, kMostRetry);
  retry_timer_.async_wait([this](const boost::system::error_code& ec) {
    retry_armed_ = false;
    if (ec || abandoned_) return;
    flush_records();
    flush_releases();
    flush_renewals();
  });
}

// ---------------------------------------------------------------- claims

void StoreWorker::claim(ClaimRequest request) {
  claiming_ = true;
  const SteadyTime sent_at = clock_->steady_now();
  struct Claimed {
    Result<std::vector<ClaimedDelivery>> rows;
    std::optional<Millis> next_due;
  };
  lane_.run(
      [queue = queue_, keys = keys_, request = std::move(request)] {
        Claimed out{queue->claim(request), std::nullopt};
        if (!out.rows.ok()) return out;
        // The keys their attempts are signed with, read here rather than on the io thread.
        std::unordered_set<std::string> apps;
        for (const ClaimedDelivery& d : *out.rows) {
          if (apps.insert(d.app_id).second) (void)keys->get(d.app_id);
        }
        // Fewer than asked: nothing else is due now; say when something will be. (A claim for
        // one host says nothing about the others.)
        SchedulingHints* hints = queue->scheduling_hints();
        if (hints != nullptr && !request.only_host && out.rows->size() < request.limit) {
          if (auto due = hints->next_due_in(request.skip_hosts); due.ok()) out.next_due = *due;
        }
        return out;
      },
      [this, sent_at](Claimed out) {
        claiming_ = false;
        note(out.rows.ok());
        listener_.on_claimed(std::move(out.rows), out.next_due, sent_at);
      });
}

// ---------------------------------------------------------------- records

void StoreWorker::record(AttemptRecord record, SteadyTime started) {
  records_.push_back(PendingRecord{std::move(record), started});
  ++records_queued_;
  flush_records();
}

void StoreWorker::flush_records() {
  if (recording_ || records_.empty() || abandoned_) return;
  recording_ = true;
  auto batch = std::make_shared<std::vector<PendingRecord>>(std::exchange(records_, {}));
  records_out_ = batch->size();
  // Dated as they are sent: a record sent again after a failure is older by then.
  const SteadyTime now = clock_->steady_now();
  auto records = std::make_shared<std::vector<AttemptRecord>>();
  records->reserve(batch->size());
  for (const PendingRecord& p : *batch) {
    records->push_back(p.record);
    AttemptRecord& r = records->back();
    r.started_ago = std::max(Millis(0), std::chrono::duration_cast<Millis>(now - p.started));
    r.ended_ago = std::max(Millis(0), r.started_ago - r.attempt.duration);
  }
  lane_.run([queue = queue_, records] { return queue->record(*records); },
            [this, batch, records](Result<StaleTokens> result) {
              recording_ = false;
              records_out_ = 0;
              note(result.ok());
              if (!result.ok()) {
                // Nothing of the batch was stored (or its answer was lost: a repeat is
                // answered as stored). Its leases are still held and renewed meanwhile.
                spdlog::error("event=record_failed count={} error=\"{}\"", batch->size(),
                              result.status().to_string());
                records_.insert(records_.begin(), std::make_move_iterator(batch->begin()),
                                std::make_move_iterator(batch->end()));
                retry_later();
                return;
              }
              records_stored_ += batch->size();
              listener_.on_recorded(*records, *result);
              flush_deferrals();
              flush_records();
            });
}

// ---------------------------------------------------------------- releases

void StoreWorker::release(LeaseToken token, Millis delay) {
  releases_[delay].push_back(token);
  flush_releases();
}

void StoreWorker::flush_releases() {
  if (releasing_ || releases_.empty() || abandoned_) return;
  releasing_ = true;
  auto first = releases_.begin();
  const Millis delay = first->first;
  auto batch = std::make_shared<std::vector<LeaseToken>>(std::move(first->second));
  releases_.erase(first);
  releases_out_ = batch;
  lane_.run([queue = queue_, batch, delay] { return queue->release(*batch, delay); },
            [this, batch, delay](Result<StaleTokens> result) {
              releasing_ = false;
              releases_out_.reset();
              note(result.ok());
              if (!result.ok()) {
                spdlog::error("event=release_failed count={} error=\"{}\"", batch->size(),
                              result.status().to_string());
                auto& again = releases_[delay];
                again.insert(again.end(), batch->begin(), batch->end());
                retry_later();
                return;
              }
              listener_.on_released(*result);
              flush_releases();
            });
}

// ---------------------------------------------------------------- renewals

void StoreWorker::renew(std::vector<LeaseToken> tokens, Millis lease) {
  for (const LeaseToken& t : tokens) renewals_.insert_or_assign(t.seq, t);
  renewal_lease_ = lease;
  flush_renewals();
}

void StoreWorker::flush_renewals() {
  if (renewing_ || renewals_.empty() || abandoned_) return;
  renewing_ = true;
  auto batch = std::make_shared<std::vector<LeaseToken>>();
  batch->reserve(renewals_.size());
  for (const auto& [seq, token] : renewals_) batch->push_back(token);
  renewals_.clear();
  const Millis lease = renewal_lease_;
  const SteadyTime sent_at = clock_->steady_now();
  lease_lane_.run([queue = queue_, batch, lease] { return queue->renew(*batch, lease); },
                  [this, batch, sent_at](Result<StaleTokens> result) {
                    renewing_ = false;
                    note(result.ok());
                    if (!result.ok()) {
                      // Sent again soon, with whatever was asked meanwhile (a newer token wins).
                      spdlog::error("event=renew_failed count={} error=\"{}\"", batch->size(),
                                    result.status().to_string());
                      for (const LeaseToken& t : *batch) renewals_.try_emplace(t.seq, t);
                      retry_later();
                      return;
                    }
                    std::vector<LeaseToken> renewed;
                    renewed.reserve(batch->size());
                    for (const LeaseToken& t : *batch) {
                      if (std::find(result->begin(), result->end(), t) == result->end())
                        renewed.push_back(t);
                    }
                    listener_.on_renewed(renewed, *result, sent_at);
                    flush_renewals();
                  });
}

// ---------------------------------------------------------------- deferrals

void StoreWorker::defer(BacklogDeferral want) {
  auto [it, fresh] = deferrals_.try_emplace(want.host);
  PendingDeferral& pending = it->second;
  if (fresh || want.until > pending.want.until || want.keep_oldest < pending.want.keep_oldest) {
    const bool announce = want.announce || (!fresh && pending.want.announce);
    if (!fresh) {
      want.until = std::max(want.until, pending.want.until);
      want.keep_oldest = std::min(want.keep_oldest, pending.want.keep_oldest);
    }
    want.announce = announce;
    pending = PendingDeferral{std::move(want), std::nullopt, records_queued_, pending.moved};
  } else {
    pending.want.announce = pending.want.announce || want.announce;
  }
  flush_deferrals();
}

void StoreWorker::flush_deferrals() {
  if (deferring_ || abandoned_) return;
  // A store without scheduling hints has its skipped rows walked past by claims instead.
  if (queue_->scheduling_hints() == nullptr) deferrals_.clear();
  // Records queued before the call go first: a retry they schedule is deferred with the rest.
  auto next = std::find_if(deferrals_.begin(), deferrals_.end(), [&](const auto& d) {
    return d.second.after_records <= records_stored_;
  });
  if (next == deferrals_.end()) return;
  deferring_ = true;
  auto node = deferrals_.extract(next);
  const PendingDeferral d = std::move(node.mapped());
  const std::uint64_t dropped_before = deferrals_dropped_;
  lane_.run(
      [queue = queue_, clock = clock_, d] {
        HostDeferral request{d.want.host, Millis(0), d.store_until, kDeferBatch,
                             d.want.keep_oldest};
        // The first batch takes its delay here, as it runs, so time spent queued behind other
        // calls does not push the rows past `until`; rounded up, as held deliveries are. Later
        // batches use the store time it answered.
        if (!d.store_until) {
          request.delay =
              std::max(std::chrono::ceil<Millis>(d.want.until - clock->steady_now()), Millis(0));
        }
        return queue->scheduling_hints()->defer_host(request);
      },
      [this, d, dropped_before](Result<Deferred> deferred) {
        deferring_ = false;
        const std::string& host = d.want.host;
        if (deferrals_dropped_ != dropped_before) {
          // Dropped while it ran: no next batch.
        } else if (!deferred.ok()) {
          // Only a shortcut: claims still skip the endpoint's rows while it is unhealthy.
          spdlog::error("event=defer_failed endpoint={} error=\"{}\"", host,
                        deferred.status().to_string());
        } else if (deferred->moved == kDeferBatch) {
          auto [it, fresh] = deferrals_.try_emplace(host);
          // Unless a later call for the endpoint is waiting (it starts over), the next batch.
          if (fresh || it->second.want.until <= d.want.until) {
            it->second = PendingDeferral{d.want, deferred->until, 0, d.moved + deferred->moved};
          }
        } else if (d.moved + deferred->moved > 0 && d.want.announce) {
          spdlog::info("event=breaker_deferred endpoint={} count={}", host,
                       d.moved + deferred->moved);
        } else if (d.moved + deferred->moved > 0) {
          // Later moves of a skipped backlog (its new rows, about once a second): debug only.
          spdlog::debug("event=backlog_deferred endpoint={} count={} kept={}", host,
                        d.moved + deferred->moved, d.want.keep_oldest);
        }
        flush_deferrals();
        listener_.on_deferred();
      });
}

void StoreWorker::drop_deferrals() {
  deferrals_.clear();
  ++deferrals_dropped_;
}

// ---------------------------------------------------------------- maintenance

void StoreWorker::maintain(std::optional<LeaseRecovery> recovery, bool prune, Millis retention) {
  if (maintaining_ || abandoned_ || (!recovery && !prune)) return;
  maintaining_ = true;
  lane_.run(
      [queue = queue_, recovery = std::move(recovery), prune, retention] {
        if (recovery) {
          if (auto n = queue->recover_expired_leases(*recovery); !n.ok()) {
            spdlog::error("event=lease_recovery_failed error=\"{}\"", n.status().to_string());
          } else if (*n > 0) {
            spdlog::warn("event=leases_recovered count={}", *n);
          }
        }
        if (!prune) return false;
        auto n = queue->prune_delivered(retention, kPruneBatch);
        if (!n.ok()) spdlog::error("event=prune_failed error=\"{}\"", n.status().to_string());
        return n.ok() && *n == kPruneBatch;
      },
      [this](bool more_to_prune) {
        maintaining_ = false;
        listener_.on_maintained(more_to_prune);
      });
}

}  // namespace callbackd
