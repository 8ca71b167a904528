#include "signing/signer.h"

#include "encoding.h"

namespace callbackd {

namespace {
constexpr std::string_view kStandardPrefix = "whsec_";
}

std::string signing_key(SignatureScheme scheme, std::string_view secret) {
  if (scheme == SignatureScheme::kStandard &&
      secret.substr(0, kStandardPrefix.size()) == kStandardPrefix) {
    if (auto key = base64_decode(secret.substr(kStandardPrefix.size()))) return *key;
  }
  return std::string(secret);
}

Signer::Signer(const AppKey& key)
    : scheme_(key.app.scheme), current_(signing_key(key.app.scheme, key.secret)) {
  if (scheme_ == SignatureScheme::kStandard && !key.previous_secret.empty() && key.previous_until) {
    previous_.emplace(signing_key(scheme_, key.previous_secret));
    previous_until_ = *key.previous_until;
  }
}

void Signer::add_headers(std::string_view delivery_id, TimePoint now, std::string_view body,
                         std::vector<std::string>& headers) {
  if (scheme_ == SignatureScheme::kHex) {
    headers.push_back("X-Signature: " + hex_encode(current_.mac(body)));
    return;
  }
  const std::string timestamp = std::to_string(to_unix_ms(now) / 1000);
  auto sign = [&](HmacSha256& hmac) {
    return "v1," + base64_encode(hmac.mac({delivery_id, ".", timestamp, ".", body}));
  };
  std::string signatures = sign(current_);
  if (previous_ && now < previous_until_) signatures += " " + sign(*previous_);
  headers.push_back("webhook-id: " + std::string(delivery_id));
  headers.push_back("webhook-timestamp: " + timestamp);
  headers.push_back("webhook-signature: " + signatures);
}

}  // namespace callbackd
