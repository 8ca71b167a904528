#include "schema.h"

#include <string>

namespace callbackd::sqlite {

namespace {

constexpr const char* kSchema = R"sql(
CREATE TABLE settings (
  key TEXT PRIMARY KEY,
  value BLOB NOT NULL
) WITHOUT ROWID;

CREATE TABLE apps (
  id TEXT PRIMARY KEY,
  name TEXT NOT NULL,
  scheme INTEGER NOT NULL,
  secret BLOB NOT NULL,
  previous_secret BLOB NOT NULL,
  previous_until INTEGER,
  created_at INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TABLE deliveries (
  seq INTEGER PRIMARY KEY,
  id TEXT NOT NULL UNIQUE,
  app_id TEXT NOT NULL,
  task_id TEXT NOT NULL,
  callback_url TEXT NOT NULL,
  state INTEGER NOT NULL,
  due_at INTEGER NOT NULL,
  attempts_made INTEGER NOT NULL,
  budget_used INTEGER NOT NULL,
  created_at INTEGER NOT NULL,
  host_key TEXT NOT NULL,
  lease_owner INTEGER NOT NULL DEFAULT 0,
  lease_gen INTEGER NOT NULL DEFAULT 0,
  UNIQUE (app_id, task_id)
);
CREATE INDEX deliveries_by_state_due ON deliveries (state, due_at, host_key);
CREATE INDEX deliveries_by_host ON deliveries (host_key, state, due_at) WHERE state = 0;
CREATE INDEX deliveries_by_state_seq ON deliveries (state, seq) WHERE state <> 1;
CREATE INDEX deliveries_by_app_seq ON deliveries (app_id, seq);
CREATE INDEX deliveries_by_app_state_seq ON deliveries (app_id, state, seq) WHERE state <> 1;
CREATE INDEX deliveries_by_task ON deliveries (task_id, seq);

-- Apart from deliveries: written once at enqueue, read by claims, never rewritten.
CREATE TABLE delivery_bodies (
  seq INTEGER PRIMARY KEY,
  body BLOB NOT NULL
);

CREATE TABLE attempts (
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

// Upgrades, indexed by the version they start from.
constexpr const char* kUpgradeFrom1 = R"sql(
ALTER TABLE deliveries ADD COLUMN host_key TEXT NOT NULL DEFAULT '';
ALTER TABLE deliveries ADD COLUMN lease_owner INTEGER NOT NULL DEFAULT 0;
ALTER TABLE deliveries ADD COLUMN lease_gen INTEGER NOT NULL DEFAULT 0;
-- Rows from version 1 never had their endpoint parsed: their URL stands in for it, which only
-- makes claims skip them less often.
UPDATE deliveries SET host_key = callback_url;
DROP INDEX deliveries_by_state_due;
CREATE INDEX deliveries_by_state_due ON deliveries (state, due_at, host_key);
CREATE INDEX deliveries_by_host ON deliveries (host_key, state, due_at);
)sql";

// Listing pages by seq under any mix of filters: one index per combination (task_id alone
// narrows to a handful of rows, one per app).
constexpr const char* kUpgradeFrom2 = R"sql(
CREATE INDEX deliveries_by_state_seq ON deliveries (state, seq);
CREATE INDEX deliveries_by_app_seq ON deliveries (app_id, seq);
CREATE INDEX deliveries_by_app_state_seq ON deliveries (app_id, state, seq);
CREATE INDEX deliveries_by_task ON deliveries (task_id, seq);
)sql";

// The body moves out of the rows claims and records rewrite (DROP COLUMN rewrites the table).
constexpr const char* kUpgradeFrom3 = R"sql(
CREATE TABLE delivery_bodies (
  seq INTEGER PRIMARY KEY,
  body BLOB NOT NULL
);
INSERT INTO delivery_bodies (seq, body) SELECT seq, body FROM deliveries;
ALTER TABLE deliveries DROP COLUMN body;
)sql";

// Every claim and finish rewrites a row's state, and each index holding state had an entry
// removed and another added each time. Partial indexes leave out the states nobody searches them
// for (the host index serves pending rows only; the listing indexes skip the few, short-lived
// rows in flight), so a claim only removes an entry and a finish only adds one. Statements name
// the state literally (state = 0, state <> 1): only then does SQLite use a partial index.
constexpr const char* kUpgradeFrom4 = R"sql(
DROP INDEX deliveries_by_host;
DROP INDEX deliveries_by_state_seq;
DROP INDEX deliveries_by_app_state_seq;
CREATE INDEX deliveries_by_host ON deliveries (host_key, state, due_at) WHERE state = 0;
CREATE INDEX deliveries_by_state_seq ON deliveries (state, seq) WHERE state <> 1;
CREATE INDEX deliveries_by_app_state_seq ON deliveries (app_id, state, seq) WHERE state <> 1;
)sql";

Result<std::int64_t> user_version(Connection& connection) {
  auto version = connection.prepare("PRAGMA user_version");
  if (!version.ok()) return version.status();
  if ((*version)->step() != SQLITE_ROW) return connection.error("read user_version");
  return (*version)->int64(0);
}

Status upgrade(Connection& connection, std::int64_t found) {
  if (found == 0) {
    // A new file, or one that is not a callbackd store at all.
    auto tables = connection.prepare("SELECT count(*) FROM sqlite_master");
    if (!tables.ok()) return tables.status();
    if ((*tables)->step() != SQLITE_ROW) return connection.error("read sqlite_master");
    if ((*tables)->int64(0) != 0) {
      return Status::FailedPrecondition(
          "has tables but no callbackd schema version; not a "
          "callbackd store");
    }
    return connection.exec(kSchema);
  }
  if (found <= 1) {
    if (Status s = connection.exec(kUpgradeFrom1); !s.ok()) return s;
  }
  if (found <= 2) {
    if (Status s = connection.exec(kUpgradeFrom2); !s.ok()) return s;
  }
  if (found <= 3) {
    if (Status s = connection.exec(kUpgradeFrom3); !s.ok()) return s;
  }
  if (found <= 4) {
    if (Status s = connection.exec(kUpgradeFrom4); !s.ok()) return s;
  }
  return Status::Ok();
}

}  // namespace

Status configure_connection(Connection& connection) {
  if (sqlite3_busy_timeout(connection.handle(), 5000) != SQLITE_OK) {
    return connection.error("busy_timeout");
  }
  if (Status s = connection.exec("PRAGMA journal_mode=WAL"); !s.ok()) return s;
  return connection.exec("PRAGMA synchronous=FULL");
}

Status create_or_upgrade_schema(Connection& connection) {
  if (Status s = connection.exec("BEGIN IMMEDIATE"); !s.ok()) return s;
  Result<std::int64_t> found = user_version(connection);
  Status s = found.status();
  if (s.ok() && *found > kSchemaVersion) {
    s = Status::FailedPrecondition(
        "schema version " + std::to_string(*found) + " is newer than this callbackd understands (" +
        std::to_string(kSchemaVersion) + "); run the callbackd that wrote it, or a newer one");
  }
  if (s.ok() && *found < kSchemaVersion) {
    s = upgrade(connection, *found);
    if (s.ok()) s = connection.exec("PRAGMA user_version=" + std::to_string(kSchemaVersion));
  }
  if (s.ok()) return connection.exec("COMMIT");
  (void)connection.exec("ROLLBACK");
  return s;
}

}  // namespace callbackd::sqlite
