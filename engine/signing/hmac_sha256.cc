#include "signing/hmac_sha256.h"

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/params.h>

#include <new>

namespace callbackd {
namespace {

EVP_MAC* hmac_algorithm() {
  // Fetched once: fetching per context costs a provider lookup.
  static EVP_MAC* const mac = EVP_MAC_fetch(nullptr, "HMAC", nullptr);
  if (mac == nullptr) throw std::bad_alloc();
  return mac;
}

}  // namespace

HmacSha256::HmacSha256(std::span<const unsigned char> key)
    : ctx_(EVP_MAC_CTX_new(hmac_algorithm())) {
  if (ctx_ == nullptr) throw std::bad_alloc();
  char digest[] = "SHA256";
  const OSSL_PARAM params[] = {
      OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0),
      OSSL_PARAM_construct_end(),
  };
  // OpenSSL rejects a null key pointer even for an empty key.
  static const unsigned char kEmpty = 0;
  if (EVP_MAC_init(ctx_, key.empty() ? &kEmpty : key.data(), key.size(), params) != 1) {
    EVP_MAC_CTX_free(ctx_);
    throw std::bad_alloc();
  }
}

HmacSha256::HmacSha256(const HmacSha256& other) : ctx_(EVP_MAC_CTX_dup(other.ctx_)) {
  if (ctx_ == nullptr) throw std::bad_alloc();
}

HmacSha256::~HmacSha256() { EVP_MAC_CTX_free(ctx_); }

HmacSha256::Digest HmacSha256::mac(std::initializer_list<std::string_view> parts) {
  // Re-initialising with no key restores the keyed state computed in the constructor, the
  // same way `openssl speed -hmac` does, so no per-call key schedule or allocation.
  Digest digest{};
  std::size_t length = 0;
  bool ok = EVP_MAC_init(ctx_, nullptr, 0, nullptr) == 1;
  for (std::string_view part : parts) {
    ok = ok && EVP_MAC_update(ctx_, reinterpret_cast<const unsigned char*>(part.data()),
                              part.size()) == 1;
  }
  ok = ok && EVP_MAC_final(ctx_, digest.data(), &length, digest.size()) == 1;
  if (!ok || length != digest.size()) throw std::bad_alloc();
  return digest;
}

}  // namespace callbackd
