// A real queue that counts the claims the dispatcher makes through it: the positive signal
// that the dispatcher has looked for due work (after a clock step, say) and what it found.
#pragma once

#include <atomic>

#include "forwarding_queue.h"

namespace callbackd::testing {

class ClaimCountingQueue final : public ForwardingQueue {
 public:
  using ForwardingQueue::ForwardingQueue;

  Result<std::vector<ClaimedDelivery>> claim(const ClaimRequest& request) override {
    Result<std::vector<ClaimedDelivery>> claimed = ForwardingQueue::claim(request);
    if (claimed.ok()) rows_claimed_ += claimed->size();
    ++claims_finished_;
    return claimed;
  }

  std::size_t claims_finished() const { return claims_finished_.load(); }
  std::size_t rows_claimed() const { return rows_claimed_.load(); }

 private:
  std::atomic<std::size_t> claims_finished_{0};
  std::atomic<std::size_t> rows_claimed_{0};
};

}  // namespace callbackd::testing
