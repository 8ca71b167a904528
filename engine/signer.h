// Signs one app's attempts: the headers a receiver checks, per the app's signature scheme.
#pragma once

#include <callbackd/clock.h>

#include <string>
#include <string_view>
#include <vector>

#include "app_keyring.h"
#include "hmac_sha256.h"

namespace callbackd {

// Not thread-safe (keeps keyed HMAC state); the dispatcher keeps one per app on its thread.
class Signer {
 public:
  explicit Signer(const AppKey& key);

  // Appends the signature header(s) for one attempt of `delivery_id` carrying `body`:
  // hex scheme: "X-Signature: <lowercase hex HMAC-SHA256(body)>".
  void add_headers(std::string_view delivery_id, TimePoint now, std::string_view body,
                   std::vector<std::string>& headers);

 private:
  HmacSha256 current_;
};

}  // namespace callbackd
