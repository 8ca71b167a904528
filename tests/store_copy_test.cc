// `callbackd store copy` reads every SQLite schema with bodies apart (version 4 on): later
// versions changed only indexes. An older store must be upgraded first, a newer one is refused.
#include "copy/store_copy.h"

#include <callbackd/postgres_store.h>
#include <callbackd/sqlite_store.h>
#include <gtest/gtest.h>
#include <sqlite3.h>

#include "postgres_cluster.h"
#include "sqlite/schema.h"
#include "temp_dir.h"

namespace callbackd {
namespace {

void set_user_version(const std::filesystem::path& db, int version) {
  sqlite3* raw = nullptr;
  ASSERT_EQ(sqlite3_open(db.c_str(), &raw), SQLITE_OK);
  const std::string sql = "PRAGMA user_version = " + std::to_string(version);
  EXPECT_EQ(sqlite3_exec(raw, sql.c_str(), nullptr, nullptr, nullptr), SQLITE_OK)
      << sqlite3_errmsg(raw);
  sqlite3_close(raw);
}

TEST(StoreCopyTest, CopiesAVersionFourStoreAndRefusesOlderAndNewerOnesNamingWhatToDo) {
  testing::TempDir dir;
  const auto db = dir / "callbackd.db";
  {
    auto queue = open_sqlite_queue({.path = db});
    ASSERT_TRUE(queue.ok()) << queue.status().to_string();
    StoredApp app;
    app.app.id = "app_1";
    app.app.name = "acme";
    app.sealed_secret = "sealed";
    ASSERT_TRUE((*queue)->insert_app(app).ok());
    for (const char* task : {"a", "b"}) {
      auto enqueued = (*queue)->enqueue(NewDelivery{
          std::string("dlv_") + task, "app_1", task, "https://a.example/", "https://a.example:443",
          std::make_shared<const std::string>("{}"), system_clock()->now(), std::nullopt});
      ASSERT_TRUE(enqueued.ok()) << enqueued.status().to_string();
    }
  }
  const std::string conninfo = testing::fresh_postgres_database();

  set_user_version(db, 3);
  auto old = copy_sqlite_store_to_postgres(db, conninfo);
  ASSERT_FALSE(old.ok());
  EXPECT_EQ(old.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(old.status().message().find("schema version 3"), std::string::npos);
  EXPECT_NE(old.status().message().find("callbackd serve"), std::string::npos)
      << old.status().message();

  set_user_version(db, sqlite::kSchemaVersion + 1);
  auto newer = copy_sqlite_store_to_postgres(db, conninfo);
  ASSERT_FALSE(newer.ok());
  EXPECT_EQ(newer.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(newer.status().message().find("the callbackd that wrote it"), std::string::npos)
      << newer.status().message();

  // Version 4 had the same tables (its host and state indexes were whole): copied as is.
  set_user_version(db, 4);
  auto copied = copy_sqlite_store_to_postgres(db, conninfo);
  ASSERT_TRUE(copied.ok()) << copied.status().to_string();
  EXPECT_EQ(copied->apps, 1u);
  EXPECT_EQ(copied->deliveries, 2u);
  auto queue = open_postgres_queue({.conninfo = conninfo});
  ASSERT_TRUE(queue.ok()) << queue.status().to_string();
  auto pending = (*queue)->list({.state = DeliveryState::kPending});
  ASSERT_TRUE(pending.ok()) << pending.status().to_string();
  EXPECT_EQ(pending->items.size(), 2u);
}

}  // namespace
}  // namespace callbackd
