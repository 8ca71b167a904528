// Signing secrets at rest: sealed under a master key the database never holds; a missing or
// wrong key stops the engine from opening; Standard Webhooks apps sign with whsec_ secrets and
// keep the rotated-out one signing through its overlap.
#include <callbackd/engine.h>
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <fstream>
#include <sstream>

#include "encoding.h"
#include "manual_clock.h"
#include "receiver.h"
#include "sample_tasks.h"
#include "signing/hmac_sha256.h"
#include "sqlite_engine.h"
#include "temp_dir.h"
#include "wait.h"

namespace callbackd {
namespace {

using namespace std::chrono_literals;

std::string file_bytes(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

TaskResult task(std::string id) { return testing::failed_task(std::move(id), "e"); }

class SecretsTest : public ::testing::Test {
 protected:
  EngineOptions options() {
    EngineOptions o;
    o.poll_interval = 10ms;
    o.allow_networks = {"127.0.0.0/8"};
    return o;
  }
  testing::TempDir dir_;
};

TEST_F(SecretsTest, TheDatabaseFileHoldsNoSecret) {
  std::vector<std::string> secrets;
  {
    auto engine = *testing::open_sqlite_engine(dir_ / "callbackd.db", options());
    for (int i = 0; i < 5; ++i) secrets.push_back(engine->create_app("a")->signing_secret);
    auto standard = engine->create_app("s", SignatureScheme::kStandard);
    secrets.push_back(standard->signing_secret);
    secrets.push_back(engine->rotate_secret(standard->app.id)->signing_secret);
  }
  // Everything SQLite wrote: the database, and its WAL if one is left.
  std::string stored = file_bytes(dir_ / "callbackd.db");
  stored += file_bytes(dir_ / "callbackd.db-wal");
  ASSERT_GT(stored.size(), 4096u);
  for (const std::string& secret : secrets) {
    EXPECT_EQ(stored.find(secret), std::string::npos) << "secret stored in the clear";
    // Nor the key bytes a Standard Webhooks secret stands for.
    if (secret.rfind("whsec_", 0) == 0) {
      EXPECT_EQ(stored.find(*base64_decode(secret.substr(6))), std::string::npos);
    }
  }
  // The key file made for the new database is the owner's alone.
  struct stat info {};
  ASSERT_EQ(stat((dir_ / "callbackd.db.key").c_str(), &info), 0);
  EXPECT_EQ(info.st_mode & 0777, 0600u);
}

TEST_F(SecretsTest, SecretsSurviveReopenWithTheSameKey) {
  std::string app_id, secret;
  {
    auto engine = *testing::open_sqlite_engine(dir_ / "callbackd.db", options());
    auto app = engine->create_app("a");
    app_id = app->app.id;
    secret = app->signing_secret;
  }
  testing::Receiver receiver;
  auto engine = *testing::open_sqlite_engine(dir_ / "callbackd.db", options());
  engine->start();
  ASSERT_TRUE(engine->enqueue(app_id, receiver.url(), task("t")).ok());
  ASSERT_TRUE(receiver.wait_for_count(1, 10s));
  const auto request = receiver.requests()[0];
  EXPECT_EQ(request.headers.at("x-signature"), hex_encode(HmacSha256(secret).mac(request.body)));
}

TEST_F(SecretsTest, AWrongOrMissingKeyIsAStartUpError) {
  {
    auto engine = *testing::open_sqlite_engine(dir_ / "callbackd.db", options());
    (void)engine->create_app("a");
  }
  EngineOptions wrong = options();
  wrong.master_key = std::string(64, 'e');  // hex
  Result<std::unique_ptr<Engine>> opened =
      testing::open_sqlite_engine(dir_ / "callbackd.db", wrong);
  ASSERT_FALSE(opened.ok());
  EXPECT_EQ(opened.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(opened.status().message().find("not the key"), std::string::npos)
      << opened.status().message();

  std::filesystem::rename(dir_ / "callbackd.db.key", dir_ / "elsewhere.key");
  opened = testing::open_sqlite_engine(dir_ / "callbackd.db", options());
  ASSERT_FALSE(opened.ok()) << "a sealed database opened without its key";
  EXPECT_NE(opened.status().message().find("does not exist"), std::string::npos)
      << opened.status().message();
  EXPECT_FALSE(std::filesystem::exists(dir_ / "callbackd.db.key"))
      << "a new key must not be made for a database that has secrets";

  EngineOptions moved = options();
  moved.master_key_file = dir_ / "elsewhere.key";
  EXPECT_TRUE(testing::open_sqlite_engine(dir_ / "callbackd.db", moved).ok());

  EngineOptions short_key = options();
  short_key.master_key = "too short";
  EXPECT_EQ(testing::open_sqlite_engine(dir_ / "callbackd.db", short_key)
                .status()
                .message()
                .rfind("master_key: must be 32 bytes", 0),
            0u);
}

// A receiver verifying the Standard Webhooks way: base64 HMAC-SHA256 of "id.timestamp.body"
// keyed with the base64-decoded part of the whsec_ secret.
std::string standard_signature(const std::string& secret, const testing::ReceivedRequest& r) {
  HmacSha256 hmac(*base64_decode(secret.substr(6)));
  return "v1," + base64_encode(hmac.mac({r.headers.at("webhook-id"), ".",
                                         r.headers.at("webhook-timestamp"), ".", r.body}));
}

TEST_F(SecretsTest, StandardWebhooksSignaturesAndRotationOverlap) {
  auto clock = std::make_shared<testing::ManualClock>();
  EngineOptions o = options();
  o.clock = clock;
  o.secret_overlap = 1h;
  testing::Receiver receiver;
  auto engine = *testing::open_sqlite_engine(dir_ / "callbackd.db", o);
  auto app = engine->create_app("std", SignatureScheme::kStandard);
  ASSERT_TRUE(app.ok());
  EXPECT_EQ(app->signing_secret.rfind("whsec_", 0), 0u);
  EXPECT_EQ(base64_decode(app->signing_secret.substr(6))->size(), 24u);
  engine->start();

  auto first = engine->enqueue(app->app.id, receiver.url(), task("t1"));
  ASSERT_TRUE(receiver.wait_for_count(1, 10s));
  auto r1 = receiver.requests()[0];
  EXPECT_EQ(r1.headers.at("webhook-id"), first->delivery_id);
  EXPECT_EQ(r1.headers.at("webhook-timestamp"), std::to_string(to_unix_ms(clock->now()) / 1000));
  EXPECT_EQ(r1.headers.at("webhook-signature"), standard_signature(app->signing_secret, r1));
  EXPECT_FALSE(r1.headers.contains("x-signature"));

  // Rotated: the new secret and the old one both sign, until the overlap ends.
  auto rotated = engine->rotate_secret(app->app.id);
  ASSERT_TRUE(engine->enqueue(app->app.id, receiver.url(), task("t2")).ok());
  ASSERT_TRUE(receiver.wait_for_count(2, 10s));
  auto r2 = receiver.requests()[1];
  EXPECT_EQ(r2.headers.at("webhook-signature"), standard_signature(rotated->signing_secret, r2) +
                                                    " " +
                                                    standard_signature(app->signing_secret, r2));
  clock->advance(1h);
  ASSERT_TRUE(engine->enqueue(app->app.id, receiver.url(), task("t3")).ok());
  ASSERT_TRUE(receiver.wait_for_count(3, 10s));
  auto r3 = receiver.requests()[2];
  EXPECT_EQ(r3.headers.at("webhook-signature"), standard_signature(rotated->signing_secret, r3));
}

TEST_F(SecretsTest, HexRotationSwitchesAtOnce) {
  testing::Receiver receiver;
  auto engine = *testing::open_sqlite_engine(dir_ / "callbackd.db", options());
  auto app = engine->create_app("hex");
  auto rotated = engine->rotate_secret(app->app.id);
  ASSERT_NE(rotated->signing_secret, app->signing_secret);
  engine->start();
  ASSERT_TRUE(engine->enqueue(app->app.id, receiver.url(), task("t")).ok());
  ASSERT_TRUE(receiver.wait_for_count(1, 10s));
  const auto r = receiver.requests()[0];
  EXPECT_EQ(r.headers.at("x-signature"),
            hex_encode(HmacSha256(rotated->signing_secret).mac(r.body)));
}

TEST_F(SecretsTest, PerAppQuotaRefusesARunawayAppOnly) {
  testing::Receiver receiver([](const testing::ReceivedRequest&) {
    return testing::Reply{.status = 204, .delay = 300ms};
  });
  EngineOptions o = options();
  o.max_pending_per_app = 3;
  auto engine = *testing::open_sqlite_engine(dir_ / "callbackd.db", o);
  auto runaway = engine->create_app("runaway");
  auto calm = engine->create_app("calm");
  std::vector<std::string> ids;
  for (int i = 0; i < 3; ++i) {
    ids.push_back(engine->enqueue(runaway->app.id, receiver.url(), task("r" + std::to_string(i)))
                      ->delivery_id);
  }
  Result<EnqueueReceipt> over = engine->enqueue(runaway->app.id, receiver.url(), task("r3"));
  ASSERT_FALSE(over.ok());
  EXPECT_EQ(over.status().code(), StatusCode::kResourceExhausted);
  EXPECT_NE(over.status().message().find("max_pending_per_app"), std::string::npos);
  // A repeat of a stored task is still answered: it adds nothing.
  EXPECT_TRUE(engine->enqueue(runaway->app.id, receiver.url(), task("r0")).ok());
  EXPECT_TRUE(engine->enqueue(calm->app.id, receiver.url(), task("c0")).ok());

  engine->start();
  ASSERT_TRUE(testing::wait_until(
      [&] { return engine->delivery(ids[0])->state == DeliveryState::kDelivered; }, 10s));
  // The place is given back once the dispatcher has the record's answer, a moment after the
  // state is visible.
  EXPECT_TRUE(testing::wait_until(
      [&] { return engine->enqueue(runaway->app.id, receiver.url(), task("r4")).ok(); }, 5s))
      << "a finished delivery frees its place";
}

TEST_F(SecretsTest, OversizeBodyIsRefusedBeforeAnythingIsStored) {
  EngineOptions o = options();
  o.max_body_bytes = 100;
  auto engine = *testing::open_sqlite_engine(dir_ / "callbackd.db", o);
  auto app = engine->create_app("a");
  TaskResult big = task("big");
  big.error = std::string(200, 'e');
  Result<EnqueueReceipt> r = engine->enqueue(app->app.id, "https://example.com/x", big);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("over the 100-byte cap"), std::string::npos);
  EXPECT_TRUE(engine->list({})->items.empty());
}

}  // namespace
}  // namespace callbackd
