#include "schema.h"

#include <string>

namespace callbackd::sqlite {

namespace {

constexpr const char* kSchema = R"sql(
CREATE TABLE IF NOT EXISTS settings (
  key TEXT PRIMARY KEY,
  value BLOB NOT NULL
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS apps (
  id TEXT PRIMARY KEY,
  name TEXT NOT NULL,
  scheme INTEGER NOT NULL,
  secret BLOB NOT NULL,
  previous_secret BLOB NOT NULL,
  previous_until INTEGER,
  created_at INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS deliveries (
  seq INTEGER PRIMARY KEY,
  id TEXT NOT NULL UNIQUE,
  app_id TEXT NOT NULL,
  task_id TEXT NOT NULL,
  callback_url TEXT NOT NULL,
  body BLOB NOT NULL,
  state INTEGER NOT NULL,
  due_at INTEGER NOT NULL,
  attempts_made INTEGER NOT NULL,
  budget_used INTEGER NOT NULL,
  created_at INTEGER NOT NULL,
  UNIQUE (app_id, task_id)
);
CREATE INDEX IF NOT EXISTS deliveries_by_state_due ON deliveries (state, due_at);

CREATE TABLE IF NOT EXISTS attempts (
  delivery_seq INTEGER NOT NULL,
  n INTEGER NOT NULL,
  started_at INTEGER NOT NULL,
  duration_ms INTEGER NOT NULL,
  http_status INTEGER NOT NULL,
  error TEXT NOT NULL,
  error_detail TEXT NOT NULL,
  response_head BLOB NOT NULL,
  PRIMARY KEY (delivery_seq, n)
) WITHOUT ROWID;
)sql";

}  // namespace

Status configure_connection(Connection& connection) {
  if (sqlite3_busy_timeout(connection.handle(), 5000) != SQLITE_OK) {
    return connection.error("busy_timeout");
  }
  if (Status s = connection.exec("PRAGMA journal_mode=WAL"); !s.ok()) return s;
  return connection.exec("PRAGMA synchronous=FULL");
}

Status create_schema(Connection& connection) {
  std::int64_t found = 0;
  {
    auto version = connection.prepare("PRAGMA user_version");
    if (!version.ok()) return version.status();
    if ((*version)->step() != SQLITE_ROW) return connection.error("read user_version");
    found = (*version)->int64(0);
  }
  if (found > kSchemaVersion) {
    return Status::FailedPrecondition("database schema version " + std::to_string(found) +
                                      " is newer than this callbackd understands (" +
                                      std::to_string(kSchemaVersion) + ")");
  }
  if (Status s = connection.exec("BEGIN IMMEDIATE"); !s.ok()) return s;
  Status s = connection.exec(kSchema);
  if (s.ok()) s = connection.exec("PRAGMA user_version=" + std::to_string(kSchemaVersion));
  if (s.ok()) return connection.exec("COMMIT");
  (void)connection.exec("ROLLBACK");
  return s;
}

}  // namespace callbackd::sqlite
