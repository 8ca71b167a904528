// The SQLite schema, its upgrades, and the pragmas every connection runs with.
#pragma once

#include <callbackd/status.h>

#include "sqlite_handle.h"

namespace callbackd::sqlite {

// Version 1: the first release. Version 2: deliveries carry their endpoint (host_key, which
// claims can skip) and their lease token (lease_owner, lease_gen). Version 3: indexes that
// page listings by seq under every filter combination (state, app, app + state, task).
// Version 4: bodies live in delivery_bodies (written once, read by claims), so the deliveries
// rows that every claim and record rewrites are a couple of hundred bytes, not the body.
// Version 5: the indexes only pending or settled rows are searched by are partial (host: state
// = 0; state and app + state listings: state <> 1), so claims and finishes touch fewer entries.
inline constexpr int kSchemaVersion = 5;

// WAL, synchronous=FULL (a commit returns once it is on disk), a busy timeout.
Status configure_connection(Connection& connection);

// Creates the tables and indexes on a new file and upgrades an older one in place, in one
// transaction; refuses a file written by a newer callbackd, naming both versions.
//
// deliveries.due_at means, per state: pending — when the next attempt is due; in_flight — when
// the claim's lease ends; delivered and dead — when it finished. So one index on
// (state, due_at, host_key) serves claiming (skipping busy endpoints inside the index), lease
// recovery and pruning.
Status create_or_upgrade_schema(Connection& connection);

}  // namespace callbackd::sqlite
