// The apps the engine signs for, with their secrets, cached in memory after the first look-up.
#pragma once

#include <callbackd/app.h>
#include <callbackd/queue.h>
#include <callbackd/status.h>

#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

#include "secrets/secret_box.h"

namespace callbackd {

// An app and its secrets in the clear. Immutable once built: rotation makes a new AppKey.
struct AppKey {
  App app;
  std::string secret;
  std::string previous_secret;  // still signing until previous_until (Standard Webhooks)
  std::optional<TimePoint> previous_until;

  ~AppKey() {
    wipe_secret(secret);
    wipe_secret(previous_secret);
  }
};

// Thread-safe. Held by shared_ptr, with what it reads from: a load may still be running on a
// store thread that an engine stopped past its deadline has let go of.
class AppKeyring {
 public:
  AppKeyring(std::shared_ptr<Queue> queue, std::shared_ptr<const SecretBox> box)
      : queue_(std::move(queue)), box_(std::move(box)) {}

  // The app's key, loaded from the queue on the first call. kNotFound naming the app id.
  // A key loaded from the queue never replaces one put() meanwhile: a rotation that
  // committed while the load was reading the old row wins.
  Result<std::shared_ptr<const AppKey>> get(std::string_view app_id);
  // The app's key if it is in memory; kNotFound (never a store read) when it is not.
  Result<std::shared_ptr<const AppKey>> cached(std::string_view app_id);
  // Replaces the cached key (after creation or rotation). REQUIRES: `key` is what the queue
  // now holds for the app (callers put in the order they commit).
  void put(std::shared_ptr<const AppKey> key);

 private:
  const std::shared_ptr<Queue> queue_;
  const std::shared_ptr<const SecretBox> box_;
  std::mutex mutex_;
  // Transparent, so looking an app up by string_view allocates nothing (every attempt does).
  struct Hash {
    using is_transparent = void;
    std::size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };
  std::unordered_map<std::string, std::shared_ptr<const AppKey>, Hash, std::equal_to<>> keys_;
};

// The stored form of a key, secrets sealed under `box` and bound to the app id; and back.
StoredApp to_stored_app(const AppKey& key, const SecretBox& box);
Result<AppKey> from_stored_app(const StoredApp& stored, const SecretBox& box);

}  // namespace callbackd
