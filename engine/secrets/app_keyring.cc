#include "secrets/app_keyring.h"

namespace callbackd {

Result<std::shared_ptr<const AppKey>> AppKeyring::get(std::string_view app_id) {
  {
    std::lock_guard lock(mutex_);
    if (auto it = keys_.find(app_id); it != keys_.end()) return it->second;
  }
  Result<StoredApp> stored = queue_->find_app(app_id);
  if (!stored.ok()) return stored.status();
  Result<AppKey> opened = from_stored_app(*stored, *box_);
  if (!opened.ok()) return opened.status();
  auto key = std::make_shared<const AppKey>(std::move(*opened));
  std::lock_guard lock(mutex_);
  // Only fill a gap: an entry here now was put by a creation or rotation after our read.
  return keys_.try_emplace(std::string(app_id), std::move(key)).first->second;
}

Result<std::shared_ptr<const AppKey>> AppKeyring::cached(std::string_view app_id) {
  std::lock_guard lock(mutex_);
  if (auto it = keys_.find(app_id); it != keys_.end()) return it->second;
  return Status::NotFound("app \"" + std::string(app_id) + "\" is not in memory");
}

void AppKeyring::put(std::shared_ptr<const AppKey> key) {
  std::lock_guard lock(mutex_);
  keys_[key->app.id] = std::move(key);
}

StoredApp to_stored_app(const AppKey& key, const SecretBox& box) {
  StoredApp stored{key.app, box.seal(key.secret, key.app.id), "", key.previous_until};
  if (!key.previous_secret.empty()) {
    stored.sealed_previous_secret = box.seal(key.previous_secret, key.app.id);
  }
  return stored;
}

Result<AppKey> from_stored_app(const StoredApp& stored, const SecretBox& box) {
  AppKey key{stored.app, "", "", stored.previous_secret_until};
  Result<std::string> secret = box.open(stored.sealed_secret, stored.app.id);
  if (!secret.ok()) return secret.status();
  key.secret = std::move(*secret);
  if (!stored.sealed_previous_secret.empty()) {
    Result<std::string> previous = box.open(stored.sealed_previous_secret, stored.app.id);
    if (!previous.ok()) return previous.status();
    key.previous_secret = std::move(*previous);
  }
  return key;
}

}  // namespace callbackd
