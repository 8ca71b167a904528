// Signing secrets at rest: AES-256-GCM under a master key the database never holds, so a
// copied database file reveals no secret.
#pragma once

#include <callbackd/status.h>

#include <string>
#include <string_view>

namespace callbackd {

// Overwrites a secret's bytes (OPENSSL_cleanse: not optimized away) and empties it. For
// strings about to be freed: the allocator would leave the bytes where they were.
void wipe_secret(std::string& secret);

// A master key from its text form: 64 hex digits or standard base64 of 32 bytes.
// kInvalidArgument naming `what` (e.g. "CALLBACKD_MASTER_KEY") otherwise; never echoes the key.
Result<std::string> parse_master_key(std::string_view text, std::string_view what);

// Thread-safe (immutable). The key is wiped when the box goes; never copied.
class SecretBox {
 public:
  // REQUIRES: key.size() == 32.
  explicit SecretBox(std::string key) : key_(std::move(key)) {}
  ~SecretBox() { wipe_secret(key_); }
  SecretBox(SecretBox&& other) noexcept : key_(std::move(other.key_)) { other.key_.clear(); }
  SecretBox(const SecretBox&) = delete;
  SecretBox& operator=(const SecretBox&) = delete;
  SecretBox& operator=(SecretBox&&) = delete;

  // "v1" + 12-byte random nonce + ciphertext + 16-byte tag. `context` (the app id) is
  // authenticated, so a sealed secret moved to another app does not open.
  std::string seal(std::string_view plaintext, std::string_view context) const;
  // kFailedPrecondition when the key is wrong or the bytes were altered.
  Result<std::string> open(std::string_view sealed, std::string_view context) const;

  // A value stored beside the data that tells whether a later key is the same one, without
  // revealing the key: HMAC-SHA256(key, fixed label), hex.
  std::string key_check() const;

 private:
  std::string key_;
};

}  // namespace callbackd
