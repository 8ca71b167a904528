// The SQL the PostgreSQL queue runs. Due times and leases are on the database's clock: NOW_MS
// is the transaction's now() in milliseconds since the epoch, the same for every process.
#pragma once

#include <array>
#include <string>

namespace callbackd::postgres::statements {

#define CALLBACKD_NOW_MS "(extract(epoch from now()) * 1000)::bigint"

inline const std::string kInsertApp =
    "INSERT INTO apps (id, name, scheme, secret, previous_secret, previous_until, created_at) "
    "VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (id) DO NOTHING";
inline const std::string kFindApp =
    "SELECT id, name, scheme, secret, previous_secret, previous_until, created_at "
    "FROM apps WHERE id = $1";
inline const std::string kListApps =
    "SELECT id, name, scheme, created_at FROM apps WHERE id > $1 ORDER BY id LIMIT $2";
inline const std::string kUpdateAppSecrets =
    "UPDATE apps SET secret = $2, previous_secret = $3, previous_until = $4 WHERE id = $1";
inline const std::string kKnownApps = "SELECT id FROM apps WHERE id = ANY($1::text[])";

// A batch of new deliveries is COPYed into this session's staging table (emptied at each
// commit), then inserted; rows whose (app_id, task_id) exists are skipped and looked up
// afterwards.
inline const std::string kCreateStaging =
    "CREATE TEMP TABLE IF NOT EXISTS enqueue_staging (i integer, id text, app_id text, "
    "task_id text, callback_url text, body text, host_key text, "
    "lease bigint) ON COMMIT DELETE ROWS";
inline const std::string kCopyStaging = "COPY enqueue_staging FROM STDIN";
inline const std::string kInsertDeliveries =
    "INSERT INTO deliveries (id, app_id, task_id, callback_url, body, state, due_at, "
    "  created_at, host_key, lease_owner, lease_gen) "
    "SELECT r.id, r.app_id, r.task_id, r.callback_url, r.body, "
    "  CASE WHEN r.lease IS NULL THEN 0 ELSE 1 END, " CALLBACKD_NOW_MS
    " + coalesce(r.lease, 0), " CALLBACKD_NOW_MS
    ", r.host_key, CASE WHEN r.lease IS NULL THEN 0 ELSE $1::bigint END, "
    "  CASE WHEN r.lease IS NULL THEN 0 ELSE 1 END "
    "FROM enqueue_staging AS r ORDER BY r.i "
    "ON CONFLICT (app_id, task_id) DO NOTHING RETURNING id, seq";
inline const std::string kFindByTasks =
    "SELECT d.app_id, d.task_id, d.id, d.state FROM deliveries d "
    "JOIN unnest($1::text[], $2::text[]) AS t(app_id, task_id) "
    "  ON d.app_id = t.app_id AND d.task_id = t.task_id";
inline const std::string kDeliveriesById = "SELECT id FROM deliveries WHERE id = ANY($1::text[])";
inline const std::string kFindByTask =
    "SELECT id, state FROM deliveries WHERE app_id = $1 AND task_id = $2";

// Claims: the due rows, oldest first, locked without waiting for other processes' claims.
#define CALLBACKD_CLAIM(WHERE, ORDER)                                                         \
  "WITH picked AS (SELECT seq, due_at AS was_due FROM deliveries "                            \
  "  WHERE " WHERE " AND state = 0 AND due_at <= " CALLBACKD_NOW_MS "  ORDER BY " ORDER       \
  " LIMIT $1 FOR UPDATE SKIP LOCKED), "                                                       \
  "claimed AS (UPDATE deliveries d SET state = 1, due_at = " CALLBACKD_NOW_MS                 \
  " + $2, "                                                                                   \
  "  lease_owner = $3, lease_gen = d.lease_gen + 1 FROM picked WHERE d.seq = picked.seq "     \
  "  RETURNING d.seq, d.lease_gen, d.id, d.app_id, d.task_id, d.callback_url, d.host_key, "   \
  "  d.body, d.attempts_made, d.budget_used, picked.was_due) "                                \
  "SELECT seq, lease_gen, id, app_id, task_id, callback_url, host_key, body, attempts_made, " \
  "  budget_used FROM claimed ORDER BY was_due, seq"
inline const std::string kClaim = CALLBACKD_CLAIM("host_key <> ALL($4::text[])", "due_at");
inline const std::string kClaimForHost = CALLBACKD_CLAIM("host_key = $4", "due_at");
// A half-open endpoint's probe: the due delivery handed over first, whatever keeps arriving.
inline const std::string kClaimFirstHandedOver = CALLBACKD_CLAIM("host_key = $4", "seq");
#undef CALLBACKD_CLAIM

// Fenced writes: each names its token (seq, owner, generation).
inline const std::string kRenew =
    "UPDATE deliveries d SET due_at = " CALLBACKD_NOW_MS
    " + $1 "
    "FROM unnest($2::bigint[], $3::bigint[]) AS t(seq, gen) "
    "WHERE d.seq = t.seq AND d.lease_gen = t.gen AND d.state = 1 AND d.lease_owner = $4 "
    "RETURNING d.seq";
// A batch of attempt records in one statement: each delivery moves on under its token and its
// attempt is stored (dated on the database's clock: now() minus how long ago it started); a
// record already stored under its token (a repeat after a lost answer) is answered "already".
// Answers the seqs stored and already stored; the rest of the batch is stale.
inline const std::string kRecordBatch =
    "WITH r AS (SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::bigint[], $4::smallint[], "
    "    $5::bigint[], $6::integer[], $7::bigint[], $8::bigint[], $9::integer[], $10::text[], "
    "    $11::text[], $12::text[]) "
    "  AS r(seq, owner, gen, next_state, after_ms, n, started_ago, duration_ms, http_status, "
    "    error, error_detail, head_hex)), "
    "finished AS (UPDATE deliveries d SET state = r.next_state, due_at = " CALLBACKD_NOW_MS
    " + r.after_ms, attempts_made = r.n, budget_used = d.budget_used + 1 FROM r "
    "  WHERE d.seq = r.seq AND d.state = 1 AND d.lease_owner = r.owner AND d.lease_gen = r.gen "
    "  RETURNING d.seq), "
    "stored AS (INSERT INTO attempts (delivery_seq, n, started_at, duration_ms, http_status, "
    "    error, error_detail, response_head) "
    "  SELECT r.seq, r.n, " CALLBACKD_NOW_MS
    " - r.started_ago, r.duration_ms, r.http_status, r.error, "
    "    r.error_detail, decode(r.head_hex, 'hex') FROM r JOIN finished f ON f.seq = r.seq "
    "  ON CONFLICT (delivery_seq, n) DO UPDATE SET started_at = excluded.started_at, "
    "    duration_ms = excluded.duration_ms, http_status = excluded.http_status, "
    "    error = excluded.error, error_detail = excluded.error_detail, "
    "    response_head = excluded.response_head "
    "  RETURNING delivery_seq) "
    "SELECT delivery_seq FROM stored "
    "UNION ALL SELECT d.seq FROM deliveries d JOIN r ON d.seq = r.seq "
    "  WHERE d.lease_owner = r.owner AND d.lease_gen = r.gen AND d.state <> 1 "
    "    AND d.attempts_made >= r.n";
// Answers the seqs released now and those back to pending already under the same token (a
// repeat after a lost answer, or a recovery that came first); the rest are stale. The second
// part reads the rows as they were before this statement, so it never counts the first's.
inline const std::string kRelease =
    "WITH t AS (SELECT * FROM unnest($2::bigint[], $3::bigint[], $4::bigint[]) "
    "  AS t(seq, owner, gen)), "
    "released AS (UPDATE deliveries d SET state = 0, due_at = " CALLBACKD_NOW_MS
    " + $1 FROM t "
    "  WHERE d.seq = t.seq AND d.state = 1 AND d.lease_owner = t.owner AND d.lease_gen = t.gen "
    "  RETURNING d.seq) "
    "SELECT seq FROM released "
    "UNION ALL SELECT d.seq FROM deliveries d JOIN t ON d.seq = t.seq "
    "  WHERE d.state = 0 AND d.lease_owner = t.owner AND d.lease_gen = t.gen";
// One endpoint's pending rows due before $2 move to $2, a batch at a time, oldest first after
// the $4 oldest, off the partial (host_key, state, due_at) index of pending rows. The outer test is
// checked again on rows another process claimed meanwhile, so an in-flight row is never touched.
inline const std::string kDeferHost =
    "UPDATE deliveries SET due_at = $2 "
    "WHERE seq IN (SELECT seq FROM deliveries WHERE host_key = $1 AND state = 0 AND due_at < $2 "
    "  ORDER BY due_at LIMIT $3 OFFSET $4) "
    "AND state = 0 AND due_at < $2";
inline const std::string kDueIn = "SELECT " CALLBACKD_NOW_MS " + $1";
// Ended leases: this process's own but those it still holds ($2), and other processes' once
// they ended at least $3 ms ago (the holder, if alive, renews first after an outage; NULL: not
// this time).
inline const std::string kRecover =
    "UPDATE deliveries SET state = 0, due_at = " CALLBACKD_NOW_MS
    " WHERE state = 1 AND ((lease_owner = $1 AND due_at <= " CALLBACKD_NOW_MS
    "    AND seq <> ALL($2::bigint[])) "
    "  OR (lease_owner <> $1 AND due_at <= " CALLBACKD_NOW_MS " - $3::bigint))";
// The claim's walk, skipping the same endpoints, stopping at the first.
inline const std::string kNextDue = "SELECT greatest(0, due_at - " CALLBACKD_NOW_MS
                                    ") FROM deliveries WHERE state = 0 "
                                    "AND host_key <> ALL($1::text[]) ORDER BY due_at LIMIT 1";
inline const std::string kPruneDelivered =
    "DELETE FROM deliveries WHERE seq IN (SELECT seq FROM deliveries "
    "  WHERE state = 2 AND due_at < " CALLBACKD_NOW_MS " - $1 ORDER BY due_at LIMIT $2)";

// Wakes the other processes (their Listener); the payload names the sender, which ignores it.
inline const std::string kNotifyDue = "SELECT pg_notify('callbackd_due', $1)";

inline const std::string kGetSetting = "SELECT value FROM settings WHERE key = $1";
inline const std::string kPutSetting =
    "INSERT INTO settings (key, value) VALUES ($1, $2) "
    "ON CONFLICT (key) DO UPDATE SET value = excluded.value";

// due_at is on the database's clock; reads turn it into wall time on the same clock.
#define CALLBACKD_DELIVERY_COLUMNS \
  "seq, id, app_id, task_id, callback_url, state, due_at, created_at"
inline const std::string kDeliveryById =
    "SELECT " CALLBACKD_DELIVERY_COLUMNS " FROM deliveries WHERE id = $1";
// Listings page by seq; each mix of filters has its own text so the planner uses the index made
// for it ((state, seq), (app_id, seq), (app_id, state, seq), (task_id, seq)) rather than one
// generic plan. $1 the cursor (last seq shown), $2 the limit, then state, app_id and task_id,
// numbered on in that order for those given. The state indexes leave out in-flight rows, so a
// listing of any other state says state <> 1 literally (a generic plan cannot prove it from
// $3); in flight, the few rows held under lease come off the (state, due_at) index.
inline const std::string& list_statement(bool state, bool app_id, bool task_id,
                                         bool in_flight = false) {
  static const auto texts = [] {
    std::array<std::string, 16> all;
    for (int i = 0; i < 16; ++i) {
      std::string where = "seq > $1";
      int n = 2;
      if (i & 1) where += " AND state = $" + std::to_string(++n) + "::smallint";
      if ((i & 1) && !(i & 8)) where += " AND state <> 1";
      if (i & 2) where += " AND app_id = $" + std::to_string(++n);
      if (i & 4) where += " AND task_id = $" + std::to_string(++n);
      all[i] = "SELECT " CALLBACKD_DELIVERY_COLUMNS " FROM deliveries WHERE " + where +
               " ORDER BY seq LIMIT $2";
    }
    return all;
  }();
  return texts[(state ? 1 : 0) | (app_id ? 2 : 0) | (task_id ? 4 : 0) |
               (state && in_flight ? 8 : 0)];
}
#undef CALLBACKD_DELIVERY_COLUMNS
inline const std::string kAttempts =
    "SELECT n, started_at, duration_ms, http_status, error, error_detail, response_head "
    "FROM attempts WHERE delivery_seq = $1 ORDER BY n";
// The attempts of a page of deliveries in one query.
inline const std::string kAttemptsOfMany =
    "SELECT n, started_at, duration_ms, http_status, error, error_detail, response_head, "
    "delivery_seq FROM attempts WHERE delivery_seq = ANY($1::bigint[]) ORDER BY delivery_seq, n";
inline const std::string kPendingForHost =
    "SELECT count(*) FROM deliveries WHERE host_key = $1 AND state = 0";
inline const std::string kCountByState = "SELECT state, count(*) FROM deliveries GROUP BY state";
inline const std::string kUnfinishedOfApp =
    "SELECT count(*) FROM (SELECT 1 FROM deliveries WHERE app_id = $1 AND state = 0 "
    "  AND state <> 1 LIMIT $2) AS pending "
    "UNION ALL SELECT count(*) FROM deliveries WHERE state = 1 AND app_id = $1";
inline const std::string kUnfinishedByApp =
    "SELECT app_id, count(*) FROM deliveries WHERE state IN (0, 1) GROUP BY app_id";
// Bulk redelivery: finished rows of one state whose finish time (due_at) is in [$2, $3), oldest
// first off the (state, due_at) index, back to pending exactly as kRedeliver does; $1 the state,
// $4 the limit, $5 app_id when named. Rows another transaction holds are left for a later call.
#define CALLBACKD_MATCHING(WHERE) \
  "FROM deliveries WHERE state = $1 AND due_at >= $2 AND due_at < $3" WHERE
#define CALLBACKD_REDELIVER_MATCHING(WHERE) \
  "UPDATE deliveries SET state = 0, due_at = " CALLBACKD_NOW_MS                                 \
  ", budget_used = 0 WHERE seq IN (SELECT seq " CALLBACKD_MATCHING(WHERE) " ORDER BY due_at " \
  "LIMIT $4 FOR UPDATE SKIP LOCKED) AND state = $1 RETURNING app_id"
inline const std::string kRedeliverMatching[2] = {CALLBACKD_REDELIVER_MATCHING(""),
                                                  CALLBACKD_REDELIVER_MATCHING(" AND app_id = $5")};
#undef CALLBACKD_REDELIVER_MATCHING
// Whether any match is left after a batch; $4 is unused but typed so the parameters are the same.
inline const std::string kMatchingLeft[2] = {
    "SELECT $4::bigint " CALLBACKD_MATCHING("") " LIMIT 1",
    "SELECT $4::bigint " CALLBACKD_MATCHING(" AND app_id = $5") " LIMIT 1"};
#undef CALLBACKD_MATCHING
inline const std::string kNowMs = "SELECT " CALLBACKD_NOW_MS;
inline const std::string kRedeliver = "UPDATE deliveries SET state = 0, due_at = " CALLBACKD_NOW_MS
                                      ", budget_used = 0 "
                                      "WHERE id = $1 AND state IN (2, 3)";

#undef CALLBACKD_NOW_MS

}  // namespace callbackd::postgres::statements
