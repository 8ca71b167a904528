// Copies a SQLite store into an empty PostgreSQL database, keeping every delivery, its
// attempts and its ids, so a user who outgrows one box loses nothing.
#include <nlohmann/json.hpp>
#include <string>

#include "postgres/pg_connection.h"
#include "postgres/pg_schema.h"
#include "sqlite/file_lock.h"
#include "sqlite/schema.h"
#include "sqlite/sqlite_handle.h"
#include "store_copy.h"

namespace callbackd {

namespace {

// Rows per INSERT, so no statement grows without bound on a large store.
constexpr int kChunk = 500;
// The SQLite schemas this copy reads (storage/sqlite/schema.h): from version 4, bodies are in
// delivery_bodies; later versions changed only indexes, not what is copied.
constexpr int kOldestSqliteSchemaVersion = 4;

constexpr const char* kSqliteVersion = "PRAGMA user_version";
constexpr const char* kSqliteApps =
    "SELECT id, name, scheme, secret, previous_secret, previous_until, created_at FROM apps";
constexpr const char* kSqliteSettings = "SELECT key, value FROM settings";
constexpr const char* kSqliteDeliveries =
    "SELECT d.seq, id, app_id, task_id, callback_url, b.body, state, due_at, attempts_made, "
    "budget_used, created_at, host_key, lease_gen "
    "FROM deliveries AS d JOIN delivery_bodies AS b ON b.seq = d.seq WHERE d.seq > ?1 "
    "ORDER BY d.seq LIMIT ?2";
constexpr const char* kSqliteAttempts =
    "SELECT delivery_seq, n, started_at, duration_ms, http_status, error, error_detail, "
    "response_head FROM attempts WHERE delivery_seq > ?1 OR (delivery_seq = ?1 AND n > ?2) "
    "ORDER BY delivery_seq, n LIMIT ?3";

// Deliveries in flight belong to no process after a copy: they are pending again.
const std::string kPgDeliveries =
    "INSERT INTO deliveries (seq, id, app_id, task_id, callback_url, body, state, due_at, "
    "  attempts_made, budget_used, created_at, host_key, lease_owner, lease_gen) "
    "SELECT seq, id, app_id, task_id, callback_url, body, "
    "  CASE WHEN state = 1 THEN 0 ELSE state END, due_at, attempts_made, budget_used, "
    "  created_at, host_key, 0, lease_gen "
    "FROM json_to_recordset($1::json) AS r(seq bigint, id text, app_id text, task_id text, "
    "  callback_url text, body text, state smallint, due_at bigint, attempts_made integer, "
    "  budget_used integer, created_at bigint, host_key text, lease_gen bigint)";
const std::string kPgAttempts =
    "INSERT INTO attempts (delivery_seq, n, started_at, duration_ms, http_status, error, "
    "  error_detail, response_head) "
    "SELECT delivery_seq, n, started_at, duration_ms, http_status, error, error_detail, "
    "  decode(response_head, 'hex') "
    "FROM json_to_recordset($1::json) AS r(delivery_seq bigint, n integer, started_at bigint, "
    "  duration_ms bigint, http_status integer, error text, error_detail text, "
    "  response_head text)";

std::string hex(std::string_view bytes) { return postgres::bytea_param(bytes).substr(2); }

// JSON text of a chunk; strings that are not UTF-8 cannot go into PostgreSQL text columns.
Result<std::string> dump(const nlohmann::json& rows) {
  try {
    return rows.dump();
  } catch (const nlohmann::json::exception&) {
    return Status::InvalidArgument("a delivery holds text that is not UTF-8; it cannot be copied");
  }
}

class Copier {
 public:
  Copier(sqlite::Connection& from, postgres::Connection& to) : from_(from), to_(to) {}

  Status apps() {
    auto rows = from_.prepare(kSqliteApps);
    if (!rows.ok()) return rows.status();
    int rc;
    while ((rc = (*rows)->step()) == SQLITE_ROW) {
      const auto& r = **rows;
      auto inserted =
          to_.run("copy app",
                  "INSERT INTO apps (id, name, scheme, secret, previous_secret, previous_until, "
                  "created_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
                  {r.text(0), r.text(1), std::to_string(r.int64(2)),
                   postgres::bytea_param(r.text(3)), postgres::bytea_param(r.text(4)),
                   r.is_null(5) ? std::nullopt : std::optional(std::to_string(r.int64(5))),
                   std::to_string(r.int64(6))});
      if (!inserted.ok()) return inserted.status();
      ++report_.apps;
    }
    return rc == SQLITE_DONE ? Status::Ok() : from_.error("read apps");
  }

  Status settings() {
    auto rows = from_.prepare(kSqliteSettings);
    if (!rows.ok()) return rows.status();
    int rc;
    while ((rc = (*rows)->step()) == SQLITE_ROW) {
      auto inserted = to_.run("copy setting", "INSERT INTO settings (key, value) VALUES ($1, $2)",
                              {(*rows)->text(0), postgres::bytea_param((*rows)->text(1))});
      if (!inserted.ok()) return inserted.status();
      ++report_.settings;
    }
    return rc == SQLITE_DONE ? Status::Ok() : from_.error("read settings");
  }

  Status deliveries() {
    std::int64_t after = 0;
    for (;;) {
      auto rows = from_.prepare(kSqliteDeliveries);
      if (!rows.ok()) return rows.status();
      (*rows)->bind(1, after).bind(2, std::int64_t{kChunk});
      nlohmann::json chunk = nlohmann::json::array();
      int rc;
      while ((rc = (*rows)->step()) == SQLITE_ROW) {
        const auto& r = **rows;
        after = r.int64(0);
        chunk.push_back({{"seq", after},
                         {"id", r.text(1)},
                         {"app_id", r.text(2)},
                         {"task_id", r.text(3)},
                         {"callback_url", r.text(4)},
                         {"body", r.text(5)},
                         {"state", r.int64(6)},
                         {"due_at", r.int64(7)},
                         {"attempts_made", r.int64(8)},
                         {"budget_used", r.int64(9)},
                         {"created_at", r.int64(10)},
                         {"host_key", r.text(11)},
                         {"lease_gen", r.int64(12)}});
      }
      if (rc != SQLITE_DONE) return from_.error("read deliveries");
      if (chunk.empty()) return Status::Ok();
      if (Status s = insert("copy deliveries", kPgDeliveries, chunk); !s.ok()) return s;
      report_.deliveries += chunk.size();
    }
  }

  Status attempts() {
    std::int64_t after_seq = 0, after_n = 0;
    for (;;) {
      auto rows = from_.prepare(kSqliteAttempts);
      if (!rows.ok()) return rows.status();
      (*rows)->bind(1, after_seq).bind(2, after_n).bind(3, std::int64_t{kChunk});
      nlohmann::json chunk = nlohmann::json::array();
      int rc;
      while ((rc = (*rows)->step()) == SQLITE_ROW) {
        const auto& r = **rows;
        after_seq = r.int64(0);
        after_n = r.int64(1);
        chunk.push_back({{"delivery_seq", after_seq},
                         {"n", after_n},
                         {"started_at", r.int64(2)},
                         {"duration_ms", r.int64(3)},
                         {"http_status", r.int64(4)},
                         {"error", r.text(5)},
                         {"error_detail", r.text(6)},
                         {"response_head", hex(r.text(7))}});
      }
      if (rc != SQLITE_DONE) return from_.error("read attempts");
      if (chunk.empty()) return Status::Ok();
      if (Status s = insert("copy attempts", kPgAttempts, chunk); !s.ok()) return s;
      report_.attempts += chunk.size();
    }
  }

  const StoreCopyReport& report() const { return report_; }

 private:
  Status insert(std::string_view what, const std::string& sql, const nlohmann::json& chunk) {
    Result<std::string> text = dump(chunk);
    if (!text.ok()) return text.status();
    auto inserted = to_.run(what, sql, {*text});
    return inserted.ok() ? Status::Ok() : inserted.status();
  }

  sqlite::Connection& from_;
  postgres::Connection& to_;
  StoreCopyReport report_;
};

Status check_sqlite_version(sqlite::Connection& c) {
  auto version = c.prepare(kSqliteVersion);
  if (!version.ok()) return version.status();
  if ((*version)->step() != SQLITE_ROW) return c.error("read schema version");
  const std::int64_t found = (*version)->int64(0);
  if (found < kOldestSqliteSchemaVersion || found > sqlite::kSchemaVersion) {
    return Status::FailedPrecondition(
        "the SQLite store has schema version " + std::to_string(found) + ", this copy reads " +
        std::to_string(kOldestSqliteSchemaVersion) + " to " +
        std::to_string(sqlite::kSchemaVersion) +
        (found > sqlite::kSchemaVersion
             ? ": copy it with the callbackd that wrote it, or a newer one"
             : ": start `callbackd serve` on it once to upgrade"));
  }
  return Status::Ok();
}

Status check_empty(postgres::Connection& c) {
  auto rows = c.run("check target",
                    "SELECT (SELECT count(*) FROM apps) + (SELECT count(*) FROM deliveries) + "
                    "(SELECT count(*) FROM settings)");
  if (!rows.ok()) return rows.status();
  if (rows->int64(0, 0) != 0) {
    return Status::FailedPrecondition(
        "the PostgreSQL database already holds callbackd data; copy into an empty one");
  }
  return Status::Ok();
}

}  // namespace

Result<StoreCopyReport> copy_sqlite_store_to_postgres(const std::filesystem::path& sqlite_path,
                                                      const std::string& conninfo) {
  if (!std::filesystem::exists(sqlite_path)) {
    return Status::NotFound("no SQLite store at \"" + sqlite_path.string() + "\"");
  }
  // The daemon must be stopped: its lock says whether it is.
  auto lock = sqlite::FileLock::acquire(sqlite_path.string() + ".lock");
  if (!lock.ok()) return lock.status();
  auto from = sqlite::Connection::open(sqlite_path.string(), /*create=*/false);
  if (!from.ok()) return from.status();
  if (Status s = check_sqlite_version(**from); !s.ok()) return s;

  auto to = postgres::Connection::open(conninfo);
  if (!to.ok()) return to.status();
  if (Status s = postgres::create_or_upgrade_schema(**to); !s.ok()) return s;
  // One transaction: a copy that fails half-way leaves the target empty.
  if (Status s = (*to)->exec("begin", "BEGIN"); !s.ok()) return s;
  Copier copier(**from, **to);
  Status s = check_empty(**to);
  if (s.ok()) s = copier.apps();
  if (s.ok()) s = copier.settings();
  if (s.ok()) s = copier.deliveries();
  if (s.ok()) s = copier.attempts();
  if (s.ok()) {
    auto sequence = (*to)->run("advance the delivery sequence",
                               "SELECT setval(pg_get_serial_sequence('deliveries', 'seq'), "
                               "(SELECT coalesce(max(seq), 0) + 1 FROM deliveries), false)");
    if (!sequence.ok()) s = sequence.status();
  }
  if (s.ok()) s = (*to)->exec("commit", "COMMIT");
  if (!s.ok()) {
    (void)(*to)->exec("rollback", "ROLLBACK");
    return s;
  }
  return copier.report();
}

}  // namespace callbackd
