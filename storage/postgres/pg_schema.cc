#include "pg_schema.h"

#include <string>

namespace callbackd::postgres {

namespace {

// Any number that other applications on the database are unlikely to lock: "callbackd".
constexpr const char* kMigrationLock = "SELECT pg_advisory_xact_lock(7780)";

// An upgrade builds indexes on tables of any size, and a process may wait for another's: the
// schema's transaction gets this long per statement, not the link's statement bound.
constexpr Millis kSchemaStatementTimeout = std::chrono::minutes(10);

// Version 1 (later versions add to it below). Times are milliseconds since the epoch; due_at on the
// database's own clock.
constexpr const char* kSchema = R"sql(
CREATE TABLE apps (
  id text PRIMARY KEY,
  name text NOT NULL,
  scheme integer NOT NULL,
  secret bytea NOT NULL,
  previous_secret bytea NOT NULL,
  previous_until bigint,
  created_at bigint NOT NULL
);
CREATE TABLE settings (
  key text PRIMARY KEY,
  value bytea NOT NULL
);
CREATE TABLE deliveries (
  seq bigserial PRIMARY KEY,
  id text NOT NULL UNIQUE,
  app_id text NOT NULL REFERENCES apps (id),
  task_id text NOT NULL,
  callback_url text NOT NULL,
  body text NOT NULL,  -- serialized JSON, always UTF-8: no hex round trip on the hot path
  state smallint NOT NULL,
  due_at bigint NOT NULL,
  attempts_made integer NOT NULL DEFAULT 0,
  budget_used integer NOT NULL DEFAULT 0,
  created_at bigint NOT NULL,
  host_key text NOT NULL,
  lease_owner bigint NOT NULL DEFAULT 0,
  lease_gen bigint NOT NULL DEFAULT 0,
  UNIQUE (app_id, task_id)
);
CREATE INDEX deliveries_by_state_due ON deliveries (state, due_at);
CREATE INDEX deliveries_by_host ON deliveries (host_key, state, due_at);
CREATE TABLE attempts (
  delivery_seq bigint NOT NULL REFERENCES deliveries (seq) ON DELETE CASCADE,
  n integer NOT NULL,
  started_at bigint NOT NULL,
  duration_ms bigint NOT NULL,
  http_status integer NOT NULL,
  error text NOT NULL,
  error_detail text NOT NULL,
  response_head bytea NOT NULL,
  PRIMARY KEY (delivery_seq, n)
);
)sql";

// Version 2: listings page by seq under every mix of filters, each off its own index (task_id
// alone narrows to one row per app). On a large existing table the upgrade holds writes while
// the indexes build.
constexpr const char* kUpgradeTo2 = R"sql(
CREATE INDEX deliveries_by_state_seq ON deliveries (state, seq);
CREATE INDEX deliveries_by_app_seq ON deliveries (app_id, seq);
CREATE INDEX deliveries_by_app_state_seq ON deliveries (app_id, state, seq);
CREATE INDEX deliveries_by_task ON deliveries (task_id, seq);
)sql";

// Version 3: every claim and finish rewrites a row's state, and each index holding state had an
// entry removed and another added each time. Partial indexes leave out the states nobody searches
// them for (host: pending only; listings: not the few rows in flight), so a claim only removes an
// entry and a finish only adds one. Statements name the state literally (state = 0, state <> 1)
// so generic plans can use them. On a large table writes wait while the indexes build.
constexpr const char* kUpgradeTo3 = R"sql(
DROP INDEX deliveries_by_host, deliveries_by_state_seq, deliveries_by_app_state_seq;
CREATE INDEX deliveries_by_host ON deliveries (host_key, state, due_at) WHERE state = 0;
CREATE INDEX deliveries_by_state_seq ON deliveries (state, seq) WHERE state <> 1;
CREATE INDEX deliveries_by_app_state_seq ON deliveries (app_id, state, seq) WHERE state <> 1;
)sql";

Status upgrade(Connection& c, std::int64_t found) {
  if (found == 0) {
    if (Status s = c.exec("create schema", kSchema); !s.ok()) return s;
  }
  // One step per version after the first.
  if (found < 2) {
    if (Status s = c.exec("upgrade schema to version 2", kUpgradeTo2); !s.ok()) return s;
  }
  if (found < 3) {
    if (Status s = c.exec("upgrade schema to version 3", kUpgradeTo3); !s.ok()) return s;
  }
  return c.exec("record schema version",
                "DELETE FROM callbackd_schema; "
                "INSERT INTO callbackd_schema (version) VALUES (" +
                    std::to_string(kSchemaVersion) + ")");
}

}  // namespace

Status create_or_upgrade_schema(Connection& c) {
  if (Status s = c.exec("begin", "BEGIN"); !s.ok()) return s;
  const Millis link_bound = c.set_statement_timeout(kSchemaStatementTimeout);
  auto work = [&]() -> Status {
    // LOCAL: the session's own bound is back once the transaction ends, either way.
    if (Status s = c.exec(
            "raise the statement timeout",
            "SET LOCAL statement_timeout = " + std::to_string(kSchemaStatementTimeout.count()));
        !s.ok()) {
      return s;
    }
    if (Status s = c.exec("lock for upgrade", kMigrationLock); !s.ok()) return s;
    if (Status s = c.exec("create version table",
                          "CREATE TABLE IF NOT EXISTS callbackd_schema (version integer NOT NULL)");
        !s.ok()) {
      return s;
    }
    auto version = c.run("read schema version", "SELECT max(version) FROM callbackd_schema");
    if (!version.ok()) return version.status();
    const std::int64_t found = version->is_null(0, 0) ? 0 : version->int64(0, 0);
    if (found > kSchemaVersion) {
      return Status::FailedPrecondition("database schema version " + std::to_string(found) +
                                        " is newer than this callbackd knows (" +
                                        std::to_string(kSchemaVersion) +
                                        "); run the callbackd that wrote it, or a newer one");
    }
    return found < kSchemaVersion ? upgrade(c, found) : Status::Ok();
  };
  Status s = work();
  if (s.ok()) {
    s = c.exec("commit", "COMMIT");
  } else if (c.in_transaction()) {
    (void)c.exec("rollback", "ROLLBACK");
  }
  c.set_statement_timeout(link_bound);
  return s;
}

}  // namespace callbackd::postgres
