// The SQLite schema and the pragmas every connection runs with.
#pragma once

#include <callbackd/status.h>

#include "sqlite_handle.h"

namespace callbackd::sqlite {

inline constexpr int kSchemaVersion = 1;

// WAL, synchronous=FULL (a commit returns once it is on disk), a busy timeout.
Status configure_connection(Connection& connection);

// Creates the tables and indexes on a new file; refuses a file written by a newer callbackd.
//
// deliveries.due_at means, per state: pending — when the next attempt is due; in_flight — when
// the claim's lease ends; delivered and dead — when it finished. So one index on
// (state, due_at) serves claiming, lease recovery and pruning.
Status create_schema(Connection& connection);

}  // namespace callbackd::sqlite
