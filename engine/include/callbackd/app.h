// An app: one customer key with its own signing secret.
#pragma once

#include <callbackd/clock.h>

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace callbackd {

enum class SignatureScheme {
  kHex,       // X-Signature: lowercase hex HMAC-SHA256(body, secret) — the seed's contract
  kStandard,  // Standard Webhooks: webhook-id / webhook-timestamp / webhook-signature
};

constexpr std::string_view to_string(SignatureScheme scheme) {
  return scheme == SignatureScheme::kHex ? "hex" : "standard";
}

constexpr std::optional<SignatureScheme> parse_signature_scheme(std::string_view text) {
  if (text == "hex") return SignatureScheme::kHex;
  if (text == "standard") return SignatureScheme::kStandard;
  return std::nullopt;
}

struct App {
  std::string id;  // "app_…"
  std::string name;
  SignatureScheme scheme = SignatureScheme::kHex;
  TimePoint created_at;
};

// One page of apps, by id; never a secret.
struct AppPage {
  std::vector<App> items;
  std::string next_cursor;  // the last id of a full page; empty on the last page
};

// Returned once, at creation or rotation: the only time the secret leaves callbackd.
struct AppWithSecret {
  App app;
  std::string signing_secret;
};

}  // namespace callbackd
