// PostgreSQL for tests: the cluster named by $CALLBACKD_TEST_POSTGRES (scripts/test starts
// one for the whole run), or else one this process starts on first use and stops at exit.
// Each test takes a fresh database on it, so tests never see each other's rows.
#pragma once

#include <string>

#include "temp_dir.h"

namespace callbackd::testing {

// The connection string of a new, empty database; throws when no cluster can be had.
std::string fresh_postgres_database();

// Runs one SQL statement on that database as the cluster's superuser (e.g. to break things).
void run_postgres_sql(const std::string& conninfo, const std::string& sql);

// A cluster of a test's own (tests/support/postgres-cluster), for outages that must not touch
// anyone else's: stopped and removed when destroyed.
class PostgresCluster {
 public:
  PostgresCluster();  // throws when it cannot start
  ~PostgresCluster();
  PostgresCluster(const PostgresCluster&) = delete;
  PostgresCluster& operator=(const PostgresCluster&) = delete;

  const std::string& conninfo() const { return conninfo_; }  // its "postgres" database
  void halt();                                               // the server stops; its data stays
  void resume();                                             // and starts again
  // pg_ctl restart -m immediate: every session is cut at once, with no shutdown checkpoint
  // (what a crash or a failover does to the clients), and the server is back.
  void restart_immediately();

 private:
  void run(const std::string& command);
  TempDir dir_;
  std::string conninfo_;
};

}  // namespace callbackd::testing
