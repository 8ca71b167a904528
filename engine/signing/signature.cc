#include <callbackd/signature.h>

#include <algorithm>
#include <cctype>

#include "encoding.h"
#include "signing/hmac_sha256.h"

namespace callbackd {

std::string hex_signature(std::string_view secret, std::string_view body) {
  return hex_encode(HmacSha256(secret).mac(body));
}

bool verify_hex_signature(std::string_view secret, std::string_view body,
                          std::string_view signature) {
  std::string received(signature);
  std::transform(received.begin(), received.end(), received.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return constant_time_equals(hex_signature(secret, body), received);
}

}  // namespace callbackd
