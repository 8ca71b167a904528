// One attempt at one delivery, from the moment this process holds it to the moment its record
// is stored. It owns the delivery as claimed, the lease that lets it be sent, and the facts of
// its transfer; its end is the record that moves the delivery on.
//
//   waiting    in its host's line; its lease is renewed; it may be given up unsent
//   sending    its POST is on the wire (started only with lease enough for the whole bound)
//   recording  its record is on its way to the store; its lease is renewed until it lands
//
// Not thread-safe: the dispatcher's io thread only.
#pragma once

#include <callbackd/queue.h>

#include <string>

#include "dispatch/lease.h"
#include "dispatch/retry_policy.h"
#include "signing/signer.h"
#include "transport/http_client.h"

namespace callbackd::dispatch {

class Attempt {
 public:
  enum class Stage { kWaiting, kSending, kRecording };

  Attempt(ClaimedDelivery delivery, Lease lease)
      : delivery_(std::move(delivery)), lease_(std::move(lease)) {}

  const ClaimedDelivery& delivery() const { return delivery_; }
  std::int64_t seq() const { return delivery_.lease.seq; }
  const std::string& host() const { return delivery_.host_key; }
  Stage stage() const { return stage_; }
  // Sent as its half-open endpoint's probe.
  bool probe() const { return probe_; }
  // Claimed from the store as its half-open endpoint's probe: the one attempt of that endpoint
  // that may start while it is half-open.
  bool claimed_as_probe() const { return claimed_as_probe_; }
  void mark_claimed_as_probe() { claimed_as_probe_ = true; }
  // The number it is sent and recorded under (X-Callback-Attempt, attempts[].n): counted over
  // the delivery's whole life, so a redelivered one goes on 7, 8, …
  int number() const { return delivery_.attempts_made + 1; }

  Lease& lease() { return lease_; }
  const Lease& lease() const { return lease_; }
  // The same delivery claimed again under a new token while it still waited here (its old
  // lease had run out): it goes on under the new one.
  void take_lease(Lease lease) { lease_ = std::move(lease); }

  // Starts sending: the request, signed, with the callback's headers. REQUIRES: waiting.
  HttpRequest start(Signer& signer, TimePoint wall_now, SteadyTime now, Millis timeout, bool probe);
  // The transfer ended: the record to store, with the state `next` moves the delivery to.
  // REQUIRES: sending.
  AttemptRecord finish(HttpResponse response, const NextStep& next);
  // When it started sending (steady time): a record's age is counted from it.
  SteadyTime started() const { return started_; }

 private:
  ClaimedDelivery delivery_;
  Lease lease_;
  Stage stage_ = Stage::kWaiting;
  bool probe_ = false;
  bool claimed_as_probe_ = false;
  TimePoint started_at_{};
  SteadyTime started_{};
};

}  // namespace callbackd::dispatch
