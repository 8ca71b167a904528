#include "ids.h"

#include <openssl/rand.h>

#include <array>
#include <stdexcept>

#include "encoding.h"

namespace callbackd {
namespace {

std::string time_ordered_id(std::string_view prefix, TimePoint now) {
  std::array<unsigned char, 16> bytes{};
  const auto ms = static_cast<std::uint64_t>(to_unix_ms(now));
  for (int i = 0; i < 6; ++i) bytes[i] = static_cast<unsigned char>(ms >> (8 * (5 - i)));
  random_bytes(std::span(bytes).subspan(6));
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
