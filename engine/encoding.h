// Byte-to-text encodings used for signatures, secrets and ids.
#pragma once

#include <optional>
#include <span>
#include <string>
#include <string_view>

namespace callbackd {

// Lowercase hexadecimal.
std::string hex_encode(std::span<const unsigned char> bytes);
// Standard base64 with padding (RFC 4648 section 4).
std::string base64_encode(std::span<const unsigned char> bytes);
// nullopt when `text` is not padded standard base64.
std::optional<std::string> base64_decode(std::string_view text);
// Crockford base32 (0-9, A-Z without I, L, O, U), most significant bits first, no padding.
std::string crockford_base32_encode(std::span<const unsigned char> bytes);

// True when `text` is well-formed UTF-8 (no overlongs, surrogates or code points > U+10FFFF).
bool is_valid_utf8(std::string_view text);

// Compares in time that depends only on the lengths, not on where the bytes differ.
bool constant_time_equals(std::string_view a, std::string_view b);

inline std::span<const unsigned char> as_bytes(std::string_view text) {
  return {reinterpret_cast<const unsigned char*>(text.data()), text.size()};
}

}  // namespace callbackd
