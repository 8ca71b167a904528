// Signatures as customers see them, for receivers, the CLI's `verify`, and tests.
#pragma once

#include <string>
#include <string_view>

namespace callbackd {

// The X-Signature value: lowercase hex of HMAC-SHA256(body, secret), where the key is the
// secret string's bytes exactly as shown to the customer.
std::string hex_signature(std::string_view secret, std::string_view body);

// True when `signature` (hex, either case) is the X-Signature of `body` under `secret`.
// Compares in constant time.
bool verify_hex_signature(std::string_view secret, std::string_view body,
                          std::string_view signature);

}  // namespace callbackd
