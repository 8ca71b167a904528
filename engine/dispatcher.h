// Moves deliveries from the queue to the network: claims due deliveries, takes fresh ones
// handed over by enqueue, runs attempts under a global and a per-host cap, and records each
// result with the state it leads to.
//
// Threads: everything but the three "any thread" methods runs on the io_context's thread.
// Blocking queue calls run on the dispatcher's own storage thread, one at a time, and post
// their results back, so the io thread never waits on disk.
#pragma once

#include <callbackd/engine.h>

#include <atomic>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/thread_pool.hpp>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "app_keyring.h"
#include "http_client.h"
#include "queue.h"
#include "retry_policy.h"
#include "signer.h"

namespace callbackd {

struct DispatcherOptions {
  std::size_t max_in_flight = 256;
  std::size_t max_in_flight_per_host = 32;
  Millis attempt_timeout{10000};
  Millis lease{21000};  // REQUIRES: longer than attempt_timeout
  Millis poll_interval{1000};
  Millis retention{7 * 24 * 3600 * 1000LL};
  std::size_t claim_batch = 128;
  std::string user_agent = "callbackd";
  std::size_t max_response_bytes = 1024;
  std::shared_ptr<EngineObserver> observer;                            // optional
  std::function<bool(const boost::asio::ip::address&)> allow_address;  // empty: all
  // Called (io thread) when an attempt leaves its delivery delivered or dead.
  std::function<void(const std::string& app_id)> on_finished;
  std::string ca_bundle_path;
};

class Dispatcher {
 public:
  Dispatcher(boost::asio::io_context& io, Queue& queue, AppKeyring& keys, RetryPolicy policy,
             DispatcherOptions options, std::shared_ptr<const Clock> clock);
  ~Dispatcher();

  // io thread. Starts claiming and accepting hand-offs.
  void start();
  // io thread. Stops claiming and accepting hand-offs, returns waiting deliveries to pending,
  // lets attempts in flight finish and records them; then calls `done` on the io thread.
  void stop(std::function<void()> done);

  // Any thread. Reserves room for one hand-off; false when the dispatcher is not running or
  // is full (the caller then stores the delivery pending and calls notify_pending()).
  bool try_reserve();
  // Any thread. Gives a reserved delivery, already stored in_flight under a lease, to the
  // dispatcher; or gives the reservation back when nothing was stored.
  void hand_off(ClaimedDelivery delivery);
  void cancel_reservation();
  // Any thread. Something became due now: claim soon instead of at the next poll.
  void notify_pending();
  // Any thread. Attempts running now.
  std::size_t in_flight() const { return in_flight_.load(std::memory_order_relaxed); }

 private:
  struct Job {
    ClaimedDelivery delivery;
    std::string host_key;
  };
  struct Host {
    std::deque<Job> ready;      // claimed, waiting for a slot of this host
    std::size_t in_flight = 0;  // attempts running now
    bool in_rotation = false;   // listed in rotation_ (ready jobs and a free slot)
  };

  void accept(std::vector<ClaimedDelivery> deliveries);
  // "host:port" of a callback URL, the unit of the per-host cap.
  const std::string& host_key_for(const std::string& url);
  void enqueue_ready(Job job);
  // Deliveries one host may have waiting for a slot: enough to keep its slots busy between
  // claims, little enough that a slow host cannot hold the room other hosts need.
  std::size_t waiting_line_limit() const { return 4 * options_.max_in_flight_per_host; }
  void update_rotation(const std::string& host_key, Host& host);
  void pump();
  void start_attempt(Job job);
  void on_attempt_done(const Job& job, TimePoint started_at, HttpResponse response);
  // Frees the slot and the hold of a job that ran or will not run.
  void finish_job(const Job& job);
  Signer& signer_for(const std::shared_ptr<const AppKey>& key);

  void maybe_claim();
  void on_claimed(Result<std::vector<ClaimedDelivery>> claimed, std::size_t limit,
                  std::optional<TimePoint> next_due);
  void flush_records();
  void release_later(std::int64_t seq);
  void flush_releases();
  void arm_timer(TimePoint at);
  void on_tick();
  void maybe_finish_stop();

  boost::asio::io_context& io_;
  Queue& queue_;
  AppKeyring& keys_;
  const RetryPolicy policy_;
  const DispatcherOptions options_;
  const std::shared_ptr<const Clock> clock_;
  const std::size_t capacity_;  // deliveries held at once: running plus waiting for a slot

  HttpClient client_;
  boost::asio::steady_timer timer_;
  std::uint64_t timer_generation_ = 0;
  std::optional<TimePoint> timer_at_;
  TimePoint next_prune_;
  std::chrono::steady_clock::time_point next_probe_;  // earliest small claim past a full host

  // io thread state
  std::unordered_map<std::string, Host> hosts_;
  std::unordered_map<std::string, std::string> host_keys_;  // callback URL -> host key
  std::deque<std::string> rotation_;        // hosts with a ready job and a free slot
  std::unordered_set<std::int64_t> held_;   // seqs waiting or running here
  std::atomic<std::size_t> in_flight_ = 0;  // written on the io thread only
  std::unordered_map<std::string, std::pair<std::shared_ptr<const AppKey>, Signer>> signers_;
  std::vector<AttemptRecord> records_;  // finished attempts not yet handed to storage
  std::vector<std::int64_t> releases_;  // claimed deliveries to give back
  bool running_ = false;
  bool stopping_ = false;
  bool claim_wanted_ = true;
  bool claiming_ = false;
  bool recording_ = false;
  bool releasing_ = false;
  bool recover_leases_ = true;
  std::function<void()> stop_done_;

  // shared with enqueue threads
  std::atomic<bool> notice_posted_ = false;  // a notify_pending() is waiting in the loop
  std::mutex reserve_mutex_;
  bool accepting_ = false;
  std::size_t load_ = 0;          // held_ plus outstanding reservations
  std::size_t reservations_ = 0;  // reserved, not yet handed off or cancelled

  // Last member: its threads are joined first on destruction.
  boost::asio::thread_pool storage_thread_{1};
};

}  // namespace callbackd
