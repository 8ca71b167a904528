// The keyring caches each app's secrets; a rotation must win over a load that read the row
// before the rotation committed.
#include "secrets/app_keyring.h"

#include <callbackd/sqlite_store.h>
#include <gtest/gtest.h>

#include <future>
#include <thread>

#include "forwarding_queue.h"
#include "temp_dir.h"

namespace callbackd {
namespace {

// Holds find_app's answer (already read from the real store) until the test lets it go.
class HeldReadQueue : public testing::ForwardingQueue {
 public:
  using ForwardingQueue::ForwardingQueue;
  Result<StoredApp> find_app(std::string_view app_id) override {
    Result<StoredApp> read = ForwardingQueue::find_app(app_id);
    if (hold_next_) {
      hold_next_ = false;
      read_done.set_value();
      release.get_future().wait();
    }
    return read;
  }
  bool hold_next_ = true;
  std::promise<void> read_done;
  std::promise<void> release;
};

TEST(AppKeyring, ALoadThatReadTheOldSecretNeverReplacesARotatedOne) {
  testing::TempDir dir;
  auto sqlite = open_sqlite_queue({.path = dir / "callbackd.db"});
  ASSERT_TRUE(sqlite.ok()) << sqlite.status().to_string();
  HeldReadQueue queue(std::move(*sqlite));
  const SecretBox box(std::string(32, 'k'));
  const App app{"app_1", "acme", SignatureScheme::kHex, {}};
  ASSERT_TRUE(queue.insert_app(to_stored_app(AppKey{app, "old secret", "", {}}, box)).ok());
  queue.hold_next_ = true;

  // The queue and the box live on this stack: shared without ownership.
  AppKeyring keyring(std::shared_ptr<Queue>(&queue, [](Queue*) {}),
                     std::shared_ptr<const SecretBox>(&box, [](const SecretBox*) {}));
  // A signer looks the app up for the first time and reads the row with the old secret...
  std::future<Result<std::shared_ptr<const AppKey>>> load =
      std::async(std::launch::async, [&] { return keyring.get("app_1"); });
  queue.read_done.get_future().wait();
  // ...while a rotation commits the new secret and hands it to the keyring.
  auto rotated = std::make_shared<const AppKey>(AppKey{app, "new secret", "", {}});
  ASSERT_TRUE(queue.update_app_secrets(to_stored_app(*rotated, box)).ok());
  keyring.put(rotated);
  queue.release.set_value();

  Result<std::shared_ptr<const AppKey>> loaded = load.get();
  ASSERT_TRUE(loaded.ok()) << loaded.status().to_string();
  EXPECT_EQ((*loaded)->secret, "new secret") << "the slow load answered with the old secret";
  Result<std::shared_ptr<const AppKey>> now = keyring.get("app_1");
  ASSERT_TRUE(now.ok());
  EXPECT_EQ((*now)->secret, "new secret") << "the slow load put the old secret back";
}

}  // namespace
}  // namespace callbackd
