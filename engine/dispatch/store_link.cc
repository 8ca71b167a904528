#include "dispatch/store_link.h"

#include <pthread.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <boost/asio/post.hpp>

namespace callbackd {
namespace asio = boost::asio;

namespace {

// Delivered rows past retention are deleted in batches this size, so one prune never holds
// the storage thread (and the renewals queued behind it) for long.
constexpr std::size_t kPruneBatch = 1000;

}  // namespace

StoreLink::StoreLink(asio::io_context& io, Queue& queue, std::shared_ptr<const Clock> clock,
                     Listener& listener)
    : io_(io), queue_(queue), clock_(std::move(clock)), listener_(listener) {
  asio::post(storage_thread_, [] { pthread_setname_np(pthread_self(), "callbackd-store"); });
}

StoreLink::~StoreLink() { storage_thread_.join(); }

template <class Work, class Then>
void StoreLink::run(Work work, Then then) {
  asio::post(storage_thread_, [this, work = std::move(work), then = std::move(then)]() mutable {
    auto result = work();
    asio::post(io_, [then = std::move(then), result = std::move(result)]() mutable {
      then(std::move(result));
    });
  });
}

bool StoreLink::idle() const {
  return !claiming_ && !recording_ && !releasing_ && !renewing_ && !maintaining_ && !deferring_ &&
         records_.empty() && releases_.empty() && renewals_.empty() && deferrals_.empty();
}

// ---------------------------------------------------------------- claims

void StoreLink::claim(ClaimRequest request) {
  claiming_ = true;
  const SteadyTime sent_at = clock_->steady_now();
  struct Claimed {
    Result<std::vector<ClaimedDelivery>> rows;
    std::optional<Millis> next_due;
  };
  run(
      [this, request = std::move(request)] {
        Claimed out{queue_.claim(request), std::nullopt};
        // Fewer than asked: nothing else is due now; say when something will be. (A claim for
        // one host says nothing about the others.)
        if (!request.only_host && out.rows.ok() && out.rows->size() < request.limit) {
          if (auto due = queue_.next_due_in(request.skip_hosts); due.ok()) out.next_due = *due;
        }
        return out;
      },
      [this, sent_at](Claimed out) {
        claiming_ = false;
        listener_.on_claimed(std::move(out.rows), out.next_due, sent_at);
      });
}

// ---------------------------------------------------------------- records

void StoreLink::record(AttemptRecord record) {
  records_.push_back(std::move(record));
  ++records_queued_;
  flush_records();
}

void StoreLink::flush_records() {
  if (recording_ || records_.empty()) return;
  recording_ = true;
  auto batch = std::make_shared<std::vector<AttemptRecord>>(std::exchange(records_, {}));
  run([this, batch] { return queue_.record(*batch); },
      [this, batch](Result<StaleTokens> result) {
        recording_ = false;
        if (!result.ok()) {
          // Nothing of the batch was stored; its leases are still held and renewed, so it is
          // written again later rather than lost or sent again.
          spdlog::error("event=record_failed count={} error=\"{}\"", batch->size(),
                        result.status().to_string());
          records_.insert(records_.begin(), std::make_move_iterator(batch->begin()),
                          std::make_move_iterator(batch->end()));
          return;
        }
        records_stored_ += batch->size();
        listener_.on_recorded(*batch, *result);
        flush_deferrals();
        flush_records();
      });
}

// ---------------------------------------------------------------- releases

void StoreLink::release(LeaseToken token, Millis delay) {
  releases_[delay].push_back(token);
  flush_releases();
}

void StoreLink::flush_releases() {
  if (releasing_ || releases_.empty()) return;
  releasing_ = true;
  auto first = releases_.begin();
  const Millis delay = first->first;
  auto batch = std::make_shared<std::vector<LeaseToken>>(std::move(first->second));
  releases_.erase(first);
  run([this, batch, delay] { return queue_.release(*batch, delay); },
      [this, batch, delay](Result<StaleTokens> result) {
        releasing_ = false;
        if (!result.ok()) {
          spdlog::error("event=release_failed count={} error=\"{}\"", batch->size(),
                        result.status().to_string());
          auto& again = releases_[delay];
          again.insert(again.end(), batch->begin(), batch->end());
          return;
        }
        listener_.on_released(*result);
        flush_releases();
      });
}

// ---------------------------------------------------------------- renewals

void StoreLink::renew(std::vector<LeaseToken> tokens, Millis lease) {
  renewals_.insert(renewals_.end(), tokens.begin(), tokens.end());
  renewal_lease_ = lease;
  flush_renewals();
}

void StoreLink::flush_renewals() {
  if (renewing_ || renewals_.empty()) return;
  renewing_ = true;
  auto batch = std::make_shared<std::vector<LeaseToken>>(std::exchange(renewals_, {}));
  const Millis lease = renewal_lease_;
  const SteadyTime sent_at = clock_->steady_now();
  run([this, batch, lease] { return queue_.renew(*batch, lease); },
      [this, batch, sent_at](Result<StaleTokens> result) {
        renewing_ = false;
        if (!result.ok()) {
          // The dispatcher asks again at its next tick, while the leases still run.
          spdlog::error("event=renew_failed count={} error=\"{}\"", batch->size(),
                        result.status().to_string());
          return;
        }
        std::vector<LeaseToken> renewed;
        renewed.reserve(batch->size());
        for (const LeaseToken& t : *batch) {
          if (std::find(result->begin(), result->end(), t) == result->end()) renewed.push_back(t);
        }
        listener_.on_renewed(renewed, *result, sent_at);
        flush_renewals();
      });
}

// ---------------------------------------------------------------- deferrals

void StoreLink::defer_host(std::string host_key, SteadyTime until, std::size_t keep_oldest,
                           bool announce) {
  auto [it, fresh] = deferrals_.try_emplace(std::move(host_key));
  if (fresh || until > it->second.until || keep_oldest < it->second.keep_oldest) {
    const std::size_t keep = fresh ? keep_oldest : std::min(keep_oldest, it->second.keep_oldest);
    it->second = Deferral{std::max(until, fresh ? until : it->second.until),
                          std::nullopt,
                          records_queued_,
                          it->second.moved,
                          keep,
                          announce || (!fresh && it->second.announce)};
  } else {
    it->second.announce = it->second.announce || announce;
  }
  flush_deferrals();
}

void StoreLink::flush_deferrals() {
  if (deferring_) return;
  // Records queued before the call go first: a retry they schedule is deferred with the rest.
  auto next = std::find_if(deferrals_.begin(), deferrals_.end(), [&](const auto& d) {
    return d.second.after_records <= records_stored_;
  });
  if (next == deferrals_.end()) return;
  deferring_ = true;
  auto node = deferrals_.extract(next);
  std::string host = std::move(node.key());
  const Deferral d = node.mapped();
  const std::uint64_t dropped_before = deferrals_dropped_;
  run(
      [this, host, d] {
        HostDeferral request{host, Millis(0), d.store_until, kDeferBatch, d.keep_oldest};
        // The first batch takes its delay here, as it runs, so time spent queued behind other
        // calls does not push the rows past `until`; rounded up, as held deliveries are. Later
        // batches use the store time it answered.
        if (!d.store_until) {
          request.delay =
              std::max(std::chrono::ceil<Millis>(d.until - clock_->steady_now()), Millis(0));
        }
        return queue_.defer_host(request);
      },
      [this, host, d, dropped_before](Result<Deferred> deferred) {
        deferring_ = false;
        if (deferrals_dropped_ != dropped_before) {
          // Dropped while it ran: no next batch.
        } else if (!deferred.ok()) {
          // Only a shortcut: claims still skip the endpoint's rows while it is open.
          spdlog::error("event=defer_failed endpoint={} error=\"{}\"", host,
                        deferred.status().to_string());
        } else if (deferred->moved == kDeferBatch) {
          auto [it, fresh] = deferrals_.try_emplace(host);
          // Unless a later call for the endpoint is waiting (it starts over), the next batch.
          if (fresh || it->second.until <= d.until) {
            it->second = Deferral{d.until,       deferred->until, 0, d.moved + deferred->moved,
                                  d.keep_oldest, d.announce};
          }
        } else if (d.moved + deferred->moved > 0 && d.announce) {
          spdlog::info("event=breaker_deferred endpoint={} count={}", host,
                       d.moved + deferred->moved);
        } else if (d.moved + deferred->moved > 0) {
          // Later moves of a skipped backlog (its new rows, about once a second): debug only.
          spdlog::debug("event=backlog_deferred endpoint={} count={} kept={}", host,
                        d.moved + deferred->moved, d.keep_oldest);
        }
        flush_deferrals();
        listener_.on_deferred();
      });
}

void StoreLink::drop_deferrals() {
  deferrals_.clear();
  ++deferrals_dropped_;
}

// ---------------------------------------------------------------- maintenance

void StoreLink::maintain(bool recover, bool prune, Millis retention) {
  // Renewals not yet sent go first: recovery must never take a lease that is being renewed.
  recover = recover && renewals_.empty();
  if (maintaining_ || (!recover && !prune)) return;
  maintaining_ = true;
  run(
      [this, recover, prune, retention] {
        if (recover) {
          if (auto n = queue_.recover_expired_leases(); !n.ok()) {
            spdlog::error("event=lease_recovery_failed error=\"{}\"", n.status().to_string());
          } else if (*n > 0) {
            spdlog::warn("event=leases_recovered count={}", *n);
          }
        }
        if (!prune) return false;
        auto n = queue_.prune_delivered(retention, kPruneBatch);
        if (!n.ok()) spdlog::error("event=prune_failed error=\"{}\"", n.status().to_string());
        return n.ok() && *n == kPruneBatch;
      },
      [this](bool more_to_prune) {
        maintaining_ = false;
        listener_.on_maintained(more_to_prune);
      });
}

void StoreLink::retry() {
  flush_records();
  flush_releases();
  flush_renewals();
}

}  // namespace callbackd
