#include "dispatcher.h"

#include <pthread.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <boost/asio/post.hpp>

#include "callback_url.h"

namespace callbackd {
namespace asio = boost::asio;

namespace {

// Delivered rows past retention are deleted in batches this size, so one prune never holds
// the storage thread for long; a full batch is followed by another on the next tick.
constexpr std::size_t kPruneBatch = 5000;
constexpr Millis kPruneInterval{60000};

constexpr std::size_t kHostKeyCacheSize = 10000;

// While some host's waiting line is (nearly) full, claims are probes of this many rows, at
// most one per interval, so other hosts keep moving without churning the full one.
constexpr std::size_t kProbeClaim = 16;
constexpr Millis kProbeInterval{20};

// How long a delivery whose host already has a full waiting line goes back to the queue.
Millis host_busy_delay(const DispatcherOptions& options) {
  return std::clamp(options.attempt_timeout / 100, Millis(10), Millis(100));
}

HttpClientOptions client_options(const DispatcherOptions& options) {
  HttpClientOptions client;
  client.max_response_bytes = options.max_response_bytes;
  client.connection_cache_size = options.max_in_flight;
  client.user_agent = options.user_agent;
  client.allow_address = options.allow_address;
  client.ca_bundle_path = options.ca_bundle_path;
  return client;
}

}  // namespace

Dispatcher::Dispatcher(asio::io_context& io, Queue& queue, AppKeyring& keys, RetryPolicy policy,
                       DispatcherOptions options, std::shared_ptr<const Clock> clock)
    : io_(io),
      queue_(queue),
      keys_(keys),
      policy_(std::move(policy)),
      options_(std::move(options)),
      clock_(std::move(clock)),
      capacity_(2 * options_.max_in_flight),
      client_(io, client_options(options_)),
      timer_(io),
      next_prune_(clock_->now()) {
  asio::post(storage_thread_, [] { pthread_setname_np(pthread_self(), "callbackd-store"); });
}

Dispatcher::~Dispatcher() { storage_thread_.join(); }

// ---------------------------------------------------------------- lifecycle

void Dispatcher::start() {
  if (running_) return;
  running_ = true;
  stopping_ = false;
  {
    std::lock_guard lock(reserve_mutex_);
    accepting_ = true;
  }
  claim_wanted_ = true;
  recover_leases_ = true;
  on_tick();
}

void Dispatcher::stop(std::function<void()> done) {
  if (!running_ || stopping_) {
    if (done) asio::post(io_, std::move(done));
    return;
  }
  stopping_ = true;
  stop_done_ = std::move(done);
  {
    std::lock_guard lock(reserve_mutex_);
    accepting_ = false;
  }
  ++timer_generation_;
  timer_.cancel();
  timer_at_.reset();
  // Deliveries waiting for a slot go back to the queue, due now, for whoever runs next.
  for (auto& [key, host] : hosts_) {
    for (Job& job : host.ready) {
      held_.erase(job.delivery.seq);
      release_later(job.delivery.seq);
    }
    {
      std::lock_guard lock(reserve_mutex_);
      load_ -= host.ready.size();
    }
    host.ready.clear();
    host.in_rotation = false;
  }
  rotation_.clear();
  flush_releases();
  maybe_finish_stop();
}

void Dispatcher::maybe_finish_stop() {
  if (!stopping_ || !stop_done_) return;
  bool reservations_out = false;
  {
    std::lock_guard lock(reserve_mutex_);
    reservations_out = reservations_ > 0;
  }
  if (in_flight_ > 0 || reservations_out || claiming_ || recording_ || releasing_ ||
      !records_.empty() || !releases_.empty()) {
    return;
  }
  running_ = false;
  auto done = std::move(stop_done_);
  stop_done_ = nullptr;
  done();
}

// ---------------------------------------------------------------- hand-off from enqueue

bool Dispatcher::try_reserve() {
  std::lock_guard lock(reserve_mutex_);
  if (!accepting_ || load_ >= capacity_) return false;
  ++load_;
  ++reservations_;
  return true;
}

void Dispatcher::cancel_reservation() {
  {
    std::lock_guard lock(reserve_mutex_);
    --load_;
    --reservations_;
  }
  asio::post(io_, [this] {
    maybe_finish_stop();
    maybe_claim();
  });
}

void Dispatcher::hand_off(ClaimedDelivery delivery) {
  asio::post(io_, [this, delivery = std::move(delivery)]() mutable {
    {
      std::lock_guard lock(reserve_mutex_);
      --reservations_;
      --load_;  // accept() counts it again as held
    }
    std::vector<ClaimedDelivery> one;
    one.push_back(std::move(delivery));
    accept(std::move(one));
  });
}

void Dispatcher::notify_pending() {
  // One notice in the loop's queue is enough, however many enqueues ask: while the
  // dispatcher is stopped nothing drains that queue, and a notice per enqueue would grow it
  // with the backlog.
  if (notice_posted_.exchange(true)) return;
  asio::post(io_, [this] {
    notice_posted_ = false;
    claim_wanted_ = true;
    maybe_claim();
  });
}

// ---------------------------------------------------------------- scheduling

void Dispatcher::accept(std::vector<ClaimedDelivery> deliveries) {
  for (ClaimedDelivery& delivery : deliveries) {
    if (stopping_) {
      release_later(delivery.seq);
      continue;
    }
    // A lease recovered while we still held the delivery comes back through a claim: keep
    // the copy we have, never run it twice.
    if (!held_.insert(delivery.seq).second) continue;
    {
      std::lock_guard lock(reserve_mutex_);
      ++load_;
    }
    std::string host_key = host_key_for(delivery.callback_url);
    enqueue_ready(Job{std::move(delivery), std::move(host_key)});
  }
  flush_releases();
  pump();
}

const std::string& Dispatcher::host_key_for(const std::string& url) {
  auto it = host_keys_.find(url);
  if (it != host_keys_.end()) return it->second;
  // Callback URLs repeat per customer: parse each once. Bounded, most are seen again soon.
  if (host_keys_.size() >= kHostKeyCacheSize) host_keys_.clear();
  Result<CallbackUrl> parsed = parse_callback_url(url);
  // Stored URLs were checked at enqueue; an unparsable one still gets an attempt, which
  // fails and is recorded, rather than being stuck in the queue.
  return host_keys_.emplace(url, parsed.ok() ? parsed->host_key() : url).first->second;
}

void Dispatcher::enqueue_ready(Job job) {
  Host& host = hosts_[job.host_key];
  // A host with a full waiting line gets no more: its deliveries go back to the queue for a
  // moment, so they do not take the room other hosts' deliveries need.
  if (host.ready.size() >= waiting_line_limit()) {
    held_.erase(job.delivery.seq);
    {
      std::lock_guard lock(reserve_mutex_);
      --load_;
    }
    release_later(job.delivery.seq);
    return;
  }
  const std::string key = job.host_key;
  host.ready.push_back(std::move(job));
  update_rotation(key, host);
}

void Dispatcher::update_rotation(const std::string& host_key, Host& host) {
  const bool eligible = !host.ready.empty() && host.in_flight < options_.max_in_flight_per_host;
  if (eligible && !host.in_rotation) {
    host.in_rotation = true;
    rotation_.push_back(host_key);
  }
}

void Dispatcher::pump() {
  // Round-robin over hosts, one attempt per host per turn, so a host with a long line cannot
  // take every free slot.
  while (in_flight_ < options_.max_in_flight && !rotation_.empty()) {
    std::string key = std::move(rotation_.front());
    rotation_.pop_front();
    auto it = hosts_.find(key);
    if (it == hosts_.end()) continue;
    Host& host = it->second;
    host.in_rotation = false;
    if (host.ready.empty() || host.in_flight >= options_.max_in_flight_per_host) continue;
    Job job = std::move(host.ready.front());
    host.ready.pop_front();
    ++host.in_flight;
    update_rotation(key, host);
    start_attempt(std::move(job));
  }
}

Signer& Dispatcher::signer_for(const std::shared_ptr<const AppKey>& key) {
  auto it = signers_.find(key->app.id);
  // A rotated secret arrives as a new AppKey: rebuild the signer from it.
  if (it == signers_.end() || it->second.first != key) {
    if (it != signers_.end()) signers_.erase(it);
    it = signers_.try_emplace(key->app.id, key, Signer(*key)).first;
  }
  return it->second.second;
}

void Dispatcher::start_attempt(Job job) {
  const ClaimedDelivery& d = job.delivery;
  // The keyring is warm (claims and enqueue looked the app up), so this reads no disk.
  Result<std::shared_ptr<const AppKey>> key = keys_.get(d.app_id);
  if (!key.ok()) {
    // Never send unsigned: give the delivery back and try again later.
    spdlog::error("event=app_key_unavailable delivery_id={} app_id={} error=\"{}\"", d.id, d.app_id,
                  key.status().to_string());
    finish_job(job);
    release_later(d.seq);
    flush_releases();
    return;
  }
  ++in_flight_;
  const TimePoint started_at = clock_->now();

  HttpRequest request;
  request.url = d.callback_url;
  request.body = d.body;
  request.timeout = options_.attempt_timeout;
  request.headers.reserve(4);
  request.headers.push_back("X-Callback-Id: " + d.id);
  request.headers.push_back("X-Callback-Attempt: " + std::to_string(d.budget_used + 1));
  signer_for(*key).add_headers(d.id, started_at, *d.body, request.headers);

  client_.post(std::move(request), [this, job = std::move(job), started_at](HttpResponse r) {
    on_attempt_done(job, started_at, std::move(r));
  });
}

void Dispatcher::on_attempt_done(const Job& job, TimePoint started_at, HttpResponse response) {
  --in_flight_;
  finish_job(job);

  const ClaimedDelivery& d = job.delivery;
  Attempt attempt;
  attempt.number = d.attempts_made + 1;
  attempt.started_at = started_at;
  attempt.duration = response.duration;
  attempt.http_status = response.http_status;
  attempt.error = response.error;
  attempt.error_detail = std::move(response.error_detail);
  attempt.response_head = std::move(response.body_head);

  const NextStep next = policy_.after_attempt(attempt.error, d.budget_used + 1, clock_->now());
  spdlog::debug("event=attempt delivery_id={} attempt={} status={} error={} next_state={}", d.id,
                attempt.number, attempt.http_status, to_string(attempt.error),
                to_string(next.state));
  if (options_.observer) options_.observer->on_attempt(attempt, next.state);
  if (options_.on_finished && next.state != DeliveryState::kPending) options_.on_finished(d.app_id);
  records_.push_back(AttemptRecord{d.seq, std::move(attempt), next.state, next.at});

  flush_records();
  pump();
  maybe_claim();
  maybe_finish_stop();
}

void Dispatcher::finish_job(const Job& job) {
  held_.erase(job.delivery.seq);
  {
    std::lock_guard lock(reserve_mutex_);
    --load_;
  }
  if (auto it = hosts_.find(job.host_key); it != hosts_.end()) {
    Host& host = it->second;
    --host.in_flight;
    if (host.ready.empty() && host.in_flight == 0) {
      if (!host.in_rotation) hosts_.erase(it);
    } else {
      update_rotation(job.host_key, host);
    }
  }
}

// ---------------------------------------------------------------- storage round trips

void Dispatcher::maybe_claim() {
  if (!running_ || stopping_ || claiming_ || !claim_wanted_) return;
  std::size_t room = 0;
  {
    std::lock_guard lock(reserve_mutex_);
    room = load_ < capacity_ ? capacity_ - load_ : 0;
  }
  if (room == 0) return;  // a finishing attempt calls back here
  // Claimed rows may all be for one host: claim no more than the fullest waiting line can
  // still take, so a busy host is not overflowed into release-and-retry churn. While some
  // host's line is (nearly) full — a slow host, or just a busy one — claim a few rows now and
  // then anyway, or every other host's due rows would wait behind it.
  std::size_t fullest = 0;
  for (const auto& [key, host] : hosts_) fullest = std::max(fullest, host.ready.size());
  const std::size_t fits = waiting_line_limit() - std::min(fullest, waiting_line_limit());
  std::size_t limit = std::min({room, options_.claim_batch, fits});
  if (fits < options_.max_in_flight_per_host) {
    const auto now_steady = std::chrono::steady_clock::now();
    if (now_steady < next_probe_) {
      // A finishing attempt usually calls back sooner; the timer makes sure of it.
      arm_timer(clock_->now() + kProbeInterval);
      return;
    }
    next_probe_ = now_steady + kProbeInterval;
    limit = std::min(room, kProbeClaim);
  }
  const TimePoint now = clock_->now();
  const bool recover = std::exchange(recover_leases_, false);
  const bool prune = now >= next_prune_;
  if (prune) next_prune_ = now + kPruneInterval;
  claiming_ = true;
  claim_wanted_ = false;

  asio::post(storage_thread_, [this, now, limit, recover, prune] {
    if (recover) {
      if (auto n = queue_.recover_expired_leases(now); !n.ok()) {
        spdlog::error("event=lease_recovery_failed error=\"{}\"", n.status().to_string());
      } else if (*n > 0) {
        spdlog::info("event=leases_recovered count={}", *n);
      }
    }
    bool prune_again = false;
    if (prune) {
      auto n = queue_.prune_delivered(now - options_.retention, kPruneBatch);
      if (!n.ok()) spdlog::error("event=prune_failed error=\"{}\"", n.status().to_string());
      prune_again = n.ok() && *n == kPruneBatch;
    }
    Result<std::vector<ClaimedDelivery>> claimed = queue_.claim(now, limit, now + options_.lease);
    std::optional<TimePoint> next_due;
    if (claimed.ok()) {
      // Warm the keyring here, on the storage thread, so the io thread never reads the disk.
      for (const ClaimedDelivery& d : *claimed) (void)keys_.get(d.app_id);
      if (claimed->size() < limit) {
        if (auto due = queue_.next_due_at(); due.ok()) next_due = *due;
      }
    }
    asio::post(io_, [this, claimed = std::move(claimed), limit, next_due, prune_again]() mutable {
      // A full prune batch means more is old enough: keep pruning on the next ticks.
      if (prune_again) next_prune_ = clock_->now();
      on_claimed(std::move(claimed), limit, next_due);
    });
  });
}

void Dispatcher::on_claimed(Result<std::vector<ClaimedDelivery>> claimed, std::size_t limit,
                            std::optional<TimePoint> next_due) {
  claiming_ = false;
  if (!claimed.ok()) {
    spdlog::error("event=claim_failed error=\"{}\"", claimed.status().to_string());
  } else {
    // A full batch means more may be due right now.
    if (claimed->size() == limit) claim_wanted_ = true;
    accept(std::move(*claimed));
  }
  if (next_due && !stopping_) arm_timer(*next_due);
  maybe_claim();
  maybe_finish_stop();
}

void Dispatcher::flush_records() {
  if (recording_ || records_.empty()) return;
  recording_ = true;
  asio::post(storage_thread_, [this, batch = std::exchange(records_, {})] {
    Status status = queue_.record(batch);
    std::optional<TimePoint> earliest_retry;
    for (const AttemptRecord& r : batch) {
      if (r.next_state == DeliveryState::kPending) {
        earliest_retry = earliest_retry ? std::min(*earliest_retry, r.next_due_at) : r.next_due_at;
      }
    }
    asio::post(io_, [this, status = std::move(status), earliest_retry] {
      recording_ = false;
      // Unrecorded attempts stay in_flight in the store; their leases expire and they are
      // tried again, so a failed write delays a delivery but never loses it.
      if (!status.ok()) spdlog::error("event=record_failed error=\"{}\"", status.to_string());
      // Retries are due once their record is committed, not before.
      if (earliest_retry && !stopping_) arm_timer(*earliest_retry);
      flush_records();
      maybe_finish_stop();
    });
  });
}

void Dispatcher::release_later(std::int64_t seq) { releases_.push_back(seq); }

void Dispatcher::flush_releases() {
  if (releasing_ || releases_.empty()) return;
  releasing_ = true;
  const TimePoint due = stopping_ ? clock_->now() : clock_->now() + host_busy_delay(options_);
  asio::post(storage_thread_, [this, batch = std::exchange(releases_, {}), due] {
    Status status = queue_.release(batch, due);
    asio::post(io_, [this, status = std::move(status), due] {
      releasing_ = false;
      if (!status.ok()) spdlog::error("event=release_failed error=\"{}\"", status.to_string());
      if (!stopping_) arm_timer(due);
      flush_releases();
      maybe_finish_stop();
    });
  });
}

void Dispatcher::arm_timer(TimePoint at) {
  if (timer_at_ && *timer_at_ <= at) return;
  timer_at_ = at;
  // The clock may be a test's manual clock, so never sleep past one poll interval.
  const Millis delay = std::clamp(at - clock_->now(), Millis(0), options_.poll_interval);
  const std::uint64_t generation = ++timer_generation_;
  timer_.expires_after(delay);
  timer_.async_wait([this, generation](const boost::system::error_code& ec) {
    if (ec || generation != timer_generation_) return;
    timer_at_.reset();
    on_tick();
  });
}

void Dispatcher::on_tick() {
  if (!running_ || stopping_) return;
  claim_wanted_ = true;
  recover_leases_ = true;
  maybe_claim();
  arm_timer(clock_->now() + options_.poll_interval);
}

}  // namespace callbackd
