#include "postgres_cluster.h"

#include <libpq-fe.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <mutex>
#include <stdexcept>

#include "daemon_process.h"
#include "temp_dir.h"

namespace callbackd::testing {

namespace {

std::string cluster_conninfo() {
  if (const char* shared = std::getenv("CALLBACKD_TEST_POSTGRES"); shared && *shared) {
    return shared;
  }
  static std::once_flag once;
  static std::unique_ptr<PostgresCluster> own;
  std::call_once(once, [] { own = std::make_unique<PostgresCluster>(); });
  return own->conninfo();
}

}  // namespace

PostgresCluster::PostgresCluster() {
  // The server may run as another user (postgres, when we are root): let it through.
  std::filesystem::permissions(dir_.path(), std::filesystem::perms::others_exec,
                               std::filesystem::perm_options::add);
  auto started = run_command("/bin/sh", {"-c", std::string(CALLBACKD_POSTGRES_CLUSTER) + " start " +
                                                   (dir_ / "pg").string()});
  if (started.exit_code != 0) {
    throw std::runtime_error("could not start a PostgreSQL cluster: " + started.output);
  }
  conninfo_ = started.output.substr(0, started.output.find('\n'));
}

PostgresCluster::~PostgresCluster() { run("stop"); }

void PostgresCluster::halt() { run("halt"); }

void PostgresCluster::resume() { run("resume"); }

void PostgresCluster::restart_immediately() { run("restart"); }

void PostgresCluster::run(const std::string& command) {
  auto done = run_command("/bin/sh", {"-c", std::string(CALLBACKD_POSTGRES_CLUSTER) + " " +
                                                command + " " + (dir_ / "pg").string()});
  if (done.exit_code != 0 && command != "stop") {
    throw std::runtime_error("postgres-cluster " + command + ": " + done.output);
  }
}

void run_postgres_sql(const std::string& conninfo, const std::string& sql) {
  PGconn* conn = PQconnectdb(conninfo.c_str());
  if (PQstatus(conn) != CONNECTION_OK) {
    const std::string message = PQerrorMessage(conn);
    PQfinish(conn);
    throw std::runtime_error("postgres: " + message);
  }
  PGresult* result = PQexec(conn, sql.c_str());
  const bool ok =
      PQresultStatus(result) == PGRES_COMMAND_OK || PQresultStatus(result) == PGRES_TUPLES_OK;
  const std::string message = ok ? "" : PQresultErrorMessage(result);
  PQclear(result);
  PQfinish(conn);
  if (!ok) throw std::runtime_error("postgres: " + sql + ": " + message);
}

std::string fresh_postgres_database() {
  static std::atomic<int> counter = 0;
  const std::string base = cluster_conninfo();
  const std::string name =
      "callbackd_test_" + std::to_string(getpid()) + "_" + std::to_string(counter++);
  run_postgres_sql(base, "CREATE DATABASE " + name);
  // A later dbname= in a keyword/value string wins over the earlier one.
  return base + " dbname=" + name;
}

}  // namespace callbackd::testing
