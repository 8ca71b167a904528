// The PostgreSQL schema and its upgrades. Several processes may start at once: the upgrade
// runs under an advisory lock, so exactly one of them applies it.
#pragma once

#include <callbackd/status.h>

#include "pg_connection.h"

namespace callbackd::postgres {

// Version 2: listing indexes. Version 3: the host and state listing indexes are partial (state
// = 0; state <> 1), so claims and finishes touch fewer index entries.
inline constexpr int kSchemaVersion = 3;

// Creates the tables on an empty database (or schema on the search_path) and upgrades an
// older one in place. kFailedPrecondition when the database was written by a newer callbackd.
Status create_or_upgrade_schema(Connection& connection);

}  // namespace callbackd::postgres
