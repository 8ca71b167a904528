// Signs one app's attempts: the headers a receiver checks, per the app's signature scheme.
#pragma once

#include <callbackd/app.h>
#include <callbackd/clock.h>

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "secrets/app_keyring.h"
#include "signing/hmac_sha256.h"

namespace callbackd {

// The HMAC key of a secret as shown to the customer: the string's bytes for the hex scheme;
// the base64-decoded part after "whsec_" for Standard Webhooks.
std::string signing_key(SignatureScheme scheme, std::string_view secret);

// Not thread-safe (keeps keyed HMAC state); the dispatcher keeps one per app on its thread.
class Signer {
 public:
  explicit Signer(const AppKey& key);

  // Appends the signature headers for one attempt of `delivery_id` carrying `body` at `now`:
  //   hex:      X-Signature: <lowercase hex HMAC-SHA256(body)>
  //   standard: webhook-id, webhook-timestamp (Unix seconds) and
  //             webhook-signature: v1,<base64 HMAC of "id.timestamp.body"> — followed by a
  //             second signature under the previous secret while its overlap lasts.
  void add_headers(std::string_view delivery_id, TimePoint now, std::string_view body,
                   std::vector<std::string>& headers);

 private:
  SignatureScheme scheme_;
  HmacSha256 current_;
  std::optional<HmacSha256> previous_;
  TimePoint previous_until_;
};

}  // namespace callbackd
