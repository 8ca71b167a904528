#include "intake/ids.h"

#include <openssl/rand.h>
#include <pthread.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <mutex>
#include <stdexcept>

#include "encoding.h"

namespace callbackd {
namespace {

// Bumped in a forked child: each thread's IdRandomness starts over there, so a child never
// hands out the ids its parent goes on to use.
std::atomic<std::uint64_t> forks_seen{0};

// The random part of ids, drawn from the CSPRNG 640 bytes (64 ids) at a time: one RAND_bytes
// call costs about 1 us (a lock and a fork check inside OpenSSL), as much as the rest of an id.
// Ids are not secrets; secrets and nonces still come from random_bytes() directly.
class IdRandomness {
 public:
  IdRandomness() {
    static std::once_flag registered;
    std::call_once(registered, [] { pthread_atfork(nullptr, nullptr, [] { ++forks_seen; }); });
  }
  void fill(std::span<unsigned char> out) {
    const std::uint64_t forks = forks_seen.load(std::memory_order_relaxed);
    if (used_ + out.size() > pool_.size() || forks != forks_) {
      random_bytes(pool_);
      used_ = 0;
      forks_ = forks;
    }
    std::copy_n(pool_.begin() + static_cast<std::ptrdiff_t>(used_), out.size(), out.begin());
    used_ += out.size();
  }

 private:
  std::array<unsigned char, 640> pool_{};
  std::size_t used_ = pool_.size();
  std::uint64_t forks_ = 0;
};

std::string time_ordered_id(std::string_view prefix, TimePoint now) {
  thread_local IdRandomness randomness;
  std::array<unsigned char, 16> bytes{};
  const auto ms = static_cast<std::uint64_t>(to_unix_ms(now));
  for (int i = 0; i < 6; ++i) bytes[i] = static_cast<unsigned char>(ms >> (8 * (5 - i)));
  randomness.fill(std::span(bytes).subspan(6));
  return std::string(prefix) + crockford_base32_encode(bytes);
}

}  // namespace

void random_bytes(std::span<unsigned char> out) {
  if (RAND_bytes(out.data(), static_cast<int>(out.size())) != 1) {
    throw std::runtime_error("OpenSSL RAND_bytes failed: the CSPRNG is not available");
  }
}

std::string new_delivery_id(TimePoint now) { return time_ordered_id("dlv_", now); }
std::string new_app_id(TimePoint now) { return time_ordered_id("app_", now); }

std::string new_hex_secret() {
  std::array<unsigned char, 32> key{};
  random_bytes(key);
  return hex_encode(key);
}

std::string new_standard_secret() {
  std::array<unsigned char, 24> key{};
  random_bytes(key);
  return "whsec_" + base64_encode(key);
}

}  // namespace callbackd
