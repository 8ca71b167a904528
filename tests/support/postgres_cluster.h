// PostgreSQL for tests: the cluster named by $CALLBACKD_TEST_POSTGRES (scripts/test starts
// one for the whole run), or else one this process starts on first use and stops at exit.
// Each test takes a fresh database on it, so tests never see each other's rows.
#pragma once

#include <string>

namespace callbackd::testing {

// The connection string of a new, empty database; throws when no cluster can be had.
std::string fresh_postgres_database();

// Runs one SQL statement on that database as the cluster's superuser (e.g. to break things).
void run_postgres_sql(const std::string& conninfo, const std::string& sql);

}  // namespace callbackd::testing
