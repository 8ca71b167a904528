#include "app_keyring.h"

namespace callbackd {

Result<std::shared_ptr<const AppKey>> AppKeyring::get(std::string_view app_id) {
  {
    std::lock_guard lock(mutex_);
    if (auto it = keys_.find(std::string(app_id)); it != keys_.end()) return it->second;
  }
  Result<StoredApp> stored = queue_.find_app(app_id);
  if (!stored.ok()) return stored.status();
  auto key = std::make_shared<const AppKey>(from_stored_app(*stored));
  put(key);
  return key;
}

void AppKeyring::put(std::shared_ptr<const AppKey> key) {
  std::lock_guard lock(mutex_);
  keys_[key->app.id] = std::move(key);
}

StoredApp to_stored_app(const AppKey& key) {
  return StoredApp{key.app, key.secret, key.previous_secret, key.previous_until};
}

AppKey from_stored_app(const StoredApp& stored) {
  return AppKey{stored.app, stored.sealed_secret, stored.sealed_previous_secret,
                stored.previous_secret_until};
}

}  // namespace callbackd
