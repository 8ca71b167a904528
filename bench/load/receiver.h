// The load tool's own callback receiver: one HTTP listener per kind of customer (good, and the
// hostile ones: silent, slow, failing), on its own thread. Every request's X-Signature is
// checked against the secret of its kind's app; good deliveries are deduplicated by task and timed
// from their scheduled send.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "histogram.h"
#include "task_id.h"

namespace callbackd::load {

struct ReceiverOptions {
  std::string bind = "127.0.0.1";
  std::array<std::string, kKinds> secrets;  // each kind's app's signing secret (hex scheme)
  double slow_seconds = 3;                  // how long the slow kind waits before its 204
  bool hostile = false;                     // also listen for the silent, slow and failing kinds
};

struct ReceiverCounts {
  std::uint64_t delivered = 0;                   // distinct good deliveries
  std::uint64_t duplicates = 0;                  // good deliveries seen before
  std::uint64_t bad_signature = 0;               // any kind
  std::uint64_t unparsable = 0;                  // no task id of this run in the body
  std::array<std::uint64_t, kKinds> requests{};  // every request, by kind
  std::int64_t last_delivery_us = 0;
};

class Receiver {
 public:
  explicit Receiver(ReceiverOptions options);
  ~Receiver();
  Receiver(const Receiver&) = delete;
  Receiver& operator=(const Receiver&) = delete;

  std::string url(Kind kind) const;  // http://<bind>:<port>/<kind>
  ReceiverCounts counts() const;
  // Latencies of good deliveries since the previous call.
  Histogram take_recent();
  // Which indexes have arrived (good kind only).
  std::vector<std::uint8_t> seen() const;
  void stop();

  class Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace callbackd::load
