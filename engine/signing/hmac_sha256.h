// HMAC-SHA256 with the key schedule done once, for signing many bodies with one app's secret.
#pragma once

#include <openssl/types.h>

#include <array>
#include <initializer_list>
#include <span>
#include <string_view>

namespace callbackd {

// Not thread-safe: mac() reuses one OpenSSL context. Copying makes an independent context.
class HmacSha256 {
 public:
  using Digest = std::array<unsigned char, 32>;

  // The key is the secret's bytes exactly as given. Throws std::bad_alloc if OpenSSL cannot
  // allocate the context.
  explicit HmacSha256(std::span<const unsigned char> key);
  explicit HmacSha256(std::string_view key)
      : HmacSha256(std::span(reinterpret_cast<const unsigned char*>(key.data()), key.size())) {}
  ~HmacSha256();
  HmacSha256(const HmacSha256& other);
  HmacSha256& operator=(const HmacSha256&) = delete;

  // HMAC of the concatenation of `parts` (no separator is added).
  Digest mac(std::initializer_list<std::string_view> parts);
  Digest mac(std::string_view data) { return mac({data}); }

 private:
  EVP_MAC_CTX* ctx_;
};

}  // namespace callbackd
