// Identifiers and secrets, all from OpenSSL's CSPRNG.
#pragma once

#include <callbackd/clock.h>

#include <span>
#include <string>

namespace callbackd {

// "dlv_" + 26 Crockford base32 digits: 48 bits of milliseconds then 80 random bits (the ULID
// layout), so ids sort by creation time and new rows append to the id index.
std::string new_delivery_id(TimePoint now);
// "app_" + the same layout.
std::string new_app_id(TimePoint now);

// A signing secret for the hex scheme: 32 random bytes as 64 lowercase hex characters. The key
// is the string's bytes, exactly as the customer stores it.
std::string new_hex_secret();
// A Standard Webhooks secret: "whsec_" + base64 of 24 random bytes (the key is those bytes).
std::string new_standard_secret();

// Fills `out` with cryptographically strong random bytes. Throws std::runtime_error if the
// CSPRNG fails (it is not seeded), which no caller can recover from.
void random_bytes(std::span<unsigned char> out);

}  // namespace callbackd
