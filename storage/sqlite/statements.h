// The SQL the SQLite queue runs, in one place so tests can EXPLAIN the very statements used.
// Each text is a distinct literal: a connection caches its prepared form by address.
#pragma once

namespace callbackd::sqlite::statements {

inline constexpr const char* kInsertApp =
    "INSERT INTO apps (id, name, scheme, secret, previous_secret, previous_until, created_at) "
    "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)";
inline constexpr const char* kFindApp =
    "SELECT id, name, scheme, secret, previous_secret, previous_until, created_at "
    "FROM apps WHERE id = ?1";
inline constexpr const char* kUpdateAppSecrets =
    "UPDATE apps SET secret = ?2, previous_secret = ?3, previous_until = ?4 WHERE id = ?1";
inline constexpr const char* kListApps =
    "SELECT id, name, scheme, created_at FROM apps WHERE id > ?1 ORDER BY id LIMIT ?2";
inline constexpr const char* kAppExists = "SELECT 1 FROM apps WHERE id = ?1";
inline constexpr const char* kInsertDelivery =
    "INSERT INTO deliveries (id, app_id, task_id, callback_url, state, due_at, "
    "attempts_made, budget_used, created_at, host_key, lease_owner, lease_gen) "
    "VALUES (?1, ?2, ?3, ?4, ?5, ?6, 0, 0, ?7, ?8, ?9, ?10) "
    "ON CONFLICT (app_id, task_id) DO NOTHING";
inline constexpr const char* kInsertBody =
    "INSERT INTO delivery_bodies (seq, body) VALUES (?1, ?2)";
inline constexpr const char* kBody = "SELECT body FROM delivery_bodies WHERE seq = ?1";
inline constexpr const char* kFindByTask =
    "SELECT seq, id, state FROM deliveries WHERE app_id = ?1 AND task_id = ?2";
// The skip test reads host_key from the index, so skipped rows cost an index step, not a row;
// the skipped endpoints (?5, a JSON array) become a small index once per claim, so each step is
// one look-up in it (no string built per row).
inline constexpr const char* kClaim =
    "UPDATE deliveries SET state = 1, due_at = ?3, lease_owner = ?4, lease_gen = lease_gen + 1 "
    "WHERE seq IN (SELECT seq FROM deliveries WHERE state = 0 AND due_at <= ?1 "
    "  AND host_key NOT IN (SELECT value FROM json_each(?5)) ORDER BY due_at LIMIT ?2) "
    "RETURNING seq, lease_gen, id, app_id, task_id, callback_url, host_key, "
    "attempts_made, budget_used";
// One endpoint's due deliveries, oldest first, straight off the (host_key, state, due_at) index
// of pending rows (partial: the literal state = 0 lets the planner use it; the state column,
// always 0 there, keeps the planner from preferring (state, due_at) for want of statistics).
inline constexpr const char* kClaimForHost =
    "UPDATE deliveries SET state = 1, due_at = ?3, lease_owner = ?4, lease_gen = lease_gen + 1 "
    "WHERE seq IN (SELECT seq FROM deliveries WHERE host_key = ?5 AND state = 0 AND due_at <= ?1 "
    "  ORDER BY due_at LIMIT ?2) "
    "RETURNING seq, lease_gen, id, app_id, task_id, callback_url, host_key, "
    "attempts_made, budget_used";
// A half-open endpoint's probe: of its due deliveries, the one handed over first (by seq, not by
// due time), so callbacks that keep arriving never take the oldest one's place.
inline constexpr const char* kClaimFirstHandedOver =
    "UPDATE deliveries SET state = 1, due_at = ?3, lease_owner = ?4, lease_gen = lease_gen + 1 "
    "WHERE seq IN (SELECT seq FROM deliveries WHERE host_key = ?5 AND state = 0 AND due_at <= ?1 "
    "  ORDER BY seq LIMIT ?2) "
    "RETURNING seq, lease_gen, id, app_id, task_id, callback_url, host_key, "
    "attempts_made, budget_used";
// One statement renews every live lease of a batch; the rows it returns are the live ones.
// The unary + keeps the planner off the state index: each token is one primary-key look-up.
inline constexpr const char* kRenew =
    "UPDATE deliveries SET due_at = ?1 "
    "FROM (SELECT value ->> 0 AS s, value ->> 1 AS g FROM json_each(?3)) AS token "
    "WHERE deliveries.seq = token.s AND deliveries.lease_gen = token.g "
    "  AND +deliveries.state = 1 AND deliveries.lease_owner = ?2 "
    "RETURNING deliveries.seq";
inline constexpr const char* kFinishAttempt =
    "UPDATE deliveries SET state = ?2, due_at = ?3, attempts_made = ?4, "
    "budget_used = budget_used + 1 "
    "WHERE seq = ?1 AND state = 1 AND lease_owner = ?5 AND lease_gen = ?6";
// A record whose finish found no row in flight under its token may be a repeat of one already
// stored (its answer was lost): the delivery moved on under the same token, past this attempt.
inline constexpr const char* kRecordedAlready =
    "SELECT 1 FROM deliveries WHERE seq = ?1 AND lease_owner = ?2 AND lease_gen = ?3 "
    "  AND state <> 1 AND attempts_made >= ?4";
inline constexpr const char* kInsertAttempt =
    "INSERT OR REPLACE INTO attempts (delivery_seq, n, started_at, duration_ms, http_status, "
    "error, error_detail, response_head) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)";
inline constexpr const char* kRelease =
    "UPDATE deliveries SET state = 0, due_at = ?2 "
    "WHERE seq = ?1 AND state = 1 AND lease_owner = ?3 AND lease_gen = ?4";
// A release that found no row in flight under its token: back to pending already, and nobody
// claimed it since (a repeat, or a recovery got there first).
inline constexpr const char* kReleasedAlready =
    "SELECT 1 FROM deliveries WHERE seq = ?1 AND lease_owner = ?2 AND lease_gen = ?3 AND state = 0";
// One endpoint's pending rows due before ?2 move to ?2, a batch at a time, oldest first after
// the ?4 oldest, straight off the partial (host_key, state, due_at) index; moved rows leave the
// range, so the next batch starts fresh.
inline constexpr const char* kDeferHost =
    "UPDATE deliveries SET due_at = ?2 "
    "WHERE seq IN (SELECT seq FROM deliveries WHERE host_key = ?1 AND state = 0 AND due_at < ?2 "
    "  ORDER BY due_at LIMIT ?3 OFFSET ?4)";
// Other owners' leases that ended by ?2 (for them, some time ago).
inline constexpr const char* kRecoverOthers =
    "UPDATE deliveries SET state = 0, due_at = ?1 "
    "WHERE state = 1 AND due_at <= ?2 AND lease_owner != ?3";
// This owner's own ended leases, but for the ones its dispatcher still holds (?3, a JSON array
// of seqs): orphans of a lost answer or a lease given up.
inline constexpr const char* kRecoverOwn =
    "UPDATE deliveries SET state = 0, due_at = ?1 "
    "WHERE state = 1 AND due_at <= ?1 AND lease_owner = ?2 "
    "  AND seq NOT IN (SELECT value FROM json_each(?3))";
// The claim's walk (the (state, due_at) index, skipping the same endpoints), stopping at the first.
inline constexpr const char* kNextDue =
    "SELECT due_at FROM deliveries WHERE state = 0 "
    "  AND host_key NOT IN (SELECT value FROM json_each(?1)) ORDER BY due_at LIMIT 1";
inline constexpr const char* kOldDelivered =
    "SELECT seq FROM deliveries WHERE state = 2 AND due_at < ?1 ORDER BY due_at LIMIT ?2";
inline constexpr const char* kDeleteAttempts = "DELETE FROM attempts WHERE delivery_seq = ?1";
inline constexpr const char* kDeleteDelivery = "DELETE FROM deliveries WHERE seq = ?1";
inline constexpr const char* kDeleteBody = "DELETE FROM delivery_bodies WHERE seq = ?1";
inline constexpr const char* kGetSetting = "SELECT value FROM settings WHERE key = ?1";
inline constexpr const char* kPutSetting =
    "INSERT INTO settings (key, value) VALUES (?1, ?2) "
    "ON CONFLICT (key) DO UPDATE SET value = excluded.value";
// The latest finish stored (finished rows keep it in due_at), for the store's clock at open:
// one index step per finished state (max over an equality prefix of (state, due_at)).
inline constexpr const char* kLatestFinish =
    "SELECT max(m) FROM (SELECT max(due_at) AS m FROM deliveries WHERE state = 2 "
    "  UNION ALL SELECT max(due_at) FROM deliveries WHERE state = 3)";
inline constexpr const char* kDeliveryById =
    "SELECT seq, id, app_id, task_id, callback_url, state, due_at, created_at "
    "FROM deliveries WHERE id = ?1";
// Listings page by seq; each mix of filters has its own text so the planner picks the index
// made for it (state, seq), (app_id, seq), (app_id, state, seq) or (task_id, seq) instead of
// walking every row in seq order. ?1 the cursor (last seq shown), ?2 the limit, ?3 state,
// ?4 app_id, ?5 task_id. Indexed by list_index(). With a task, the unary + keeps the planner
// off the state indexes: a task_id matches a row per app at most, a state maybe millions.
// The state indexes leave out in-flight rows (claims and finishes would rewrite them twice per
// attempt), so a state listing says state <> 1 literally: only then does SQLite use a partial
// index. In flight, it takes the (state, due_at) index and sorts by seq: those rows are bounded
// by the leases held, and +app_id keeps it off an app's whole (app_id, seq) range.
#define CALLBACKD_LIST(WHERE)                                                                 \
  "SELECT seq, id, app_id, task_id, callback_url, state, due_at, created_at FROM deliveries " \
  "WHERE seq > ?1" WHERE " ORDER BY seq LIMIT ?2"
inline constexpr const char* kList[10] = {
    CALLBACKD_LIST(""),
    CALLBACKD_LIST(" AND state = ?3 AND state <> 1"),
    CALLBACKD_LIST(" AND app_id = ?4"),
    CALLBACKD_LIST(" AND app_id = ?4 AND state = ?3 AND state <> 1"),
    CALLBACKD_LIST(" AND task_id = ?5"),
    CALLBACKD_LIST(" AND task_id = ?5 AND +state = ?3"),
    CALLBACKD_LIST(" AND task_id = ?5 AND app_id = ?4"),
    CALLBACKD_LIST(" AND task_id = ?5 AND app_id = ?4 AND +state = ?3"),
    CALLBACKD_LIST(" AND state = ?3"),
    CALLBACKD_LIST(" AND +app_id = ?4 AND state = ?3"),
};
#undef CALLBACKD_LIST
// in_flight: the state asked is in_flight (only matters with a state and no task).
constexpr int list_index(bool state, bool app_id, bool task_id, bool in_flight = false) {
  if (state && in_flight && !task_id) return 8 + (app_id ? 1 : 0);
  return (state ? 1 : 0) | (app_id ? 2 : 0) | (task_id ? 4 : 0);
}
inline constexpr const char* kAttempts =
    "SELECT n, started_at, duration_ms, http_status, error, error_detail, response_head "
    "FROM attempts WHERE delivery_seq = ?1 ORDER BY n";
// The attempts of a page of deliveries (?1, a JSON array of seqs) in one query.
inline constexpr const char* kAttemptsOfMany =
    "SELECT n, started_at, duration_ms, http_status, error, error_detail, response_head, "
    "delivery_seq FROM attempts WHERE delivery_seq IN (SELECT value FROM json_each(?1)) "
    "ORDER BY delivery_seq, n";
// Off the partial (state, seq) index, the smallest holding state, plus the few rows in flight.
inline constexpr const char* kCountByState =
    "SELECT state, count(*) FROM deliveries WHERE state <> 1 GROUP BY state "
    "UNION ALL SELECT 1, count(*) FROM deliveries WHERE state = 1";
inline constexpr const char* kPendingForHost =
    "SELECT count(*) FROM deliveries WHERE host_key = ?1 AND state = 0";
// One app's pending deliveries (off its partial (app_id, state, seq) index, at most ?2 of them)
// and its few in flight (off the state index).
inline constexpr const char* kUnfinishedOfApp =
    "SELECT (SELECT count(*) FROM (SELECT 1 FROM deliveries "
    "  WHERE app_id = ?1 AND state = 0 AND state <> 1 LIMIT ?2)) "
    "+ (SELECT count(*) FROM deliveries WHERE state = 1 AND +app_id = ?1)";
inline constexpr const char* kUnfinishedByApp =
    "SELECT app_id, count(*) FROM deliveries WHERE state IN (0, 1) GROUP BY app_id";
// Bulk redelivery: finished rows of one state whose finish time (due_at) is in [?3, ?4), oldest
// first off the (state, due_at) index, back to pending exactly as kRedeliver does. ?1 now, ?2
// the state, ?5 the limit, ?6 app_id. Indexed by whether an app is named.
#define CALLBACKD_MATCHING(WHERE) \
  "FROM deliveries WHERE state = ?2 AND due_at >= ?3 AND due_at < ?4" WHERE
inline constexpr const char* kRedeliverMatching[2] = {
    "UPDATE deliveries SET state = 0, due_at = ?1, budget_used = 0 WHERE seq IN (SELECT "
    "seq " CALLBACKD_MATCHING("") " ORDER BY due_at LIMIT ?5) RETURNING app_id",
    "UPDATE deliveries SET state = 0, due_at = ?1, budget_used = 0 WHERE seq IN (SELECT "
    "seq " CALLBACKD_MATCHING(" AND app_id = ?6") " ORDER BY due_at LIMIT ?5) RETURNING app_id",
};
// Whether any match is left after a batch (same parameters).
inline constexpr const char* kMatchingLeft[2] = {
    "SELECT ?1, ?5, 1 " CALLBACKD_MATCHING("") " LIMIT 1",
    "SELECT ?1, ?5, 1 " CALLBACKD_MATCHING(" AND app_id = ?6") " LIMIT 1",
};
#undef CALLBACKD_MATCHING
inline constexpr const char* kRedeliver =
    "UPDATE deliveries SET state = 0, due_at = ?2, budget_used = 0 "
    "WHERE id = ?1 AND state IN (2, 3)";

}  // namespace callbackd::sqlite::statements
