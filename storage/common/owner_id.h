// Who holds a lease: each queue instance (process) draws an owner id of its own at open.
#pragma once

#include <cstdint>
#include <random>

namespace callbackd {

// A random owner id for a queue instance's leases: positive, never 0 ("nobody").
inline std::int64_t new_owner_id() {
  std::random_device random;
  const std::uint64_t high = random();
  const std::uint64_t low = random();
  return static_cast<std::int64_t>(((high << 32) | low) >> 1) | 1;
}

}  // namespace callbackd
