// The shared store: a callbackd Queue in a PostgreSQL database, for several callbackd
// processes at once.
//
//   auto queue = callbackd::open_postgres_queue({.conninfo = "postgres://callbackd@db/callbackd"});
//   auto engine = callbackd::Engine::open({.queue = std::move(*queue),
//                                          .master_key_file = "/etc/callbackd/master.key"});
#pragma once

#include <callbackd/queue.h>
#include <callbackd/status.h>

#include <filesystem>
#include <memory>
#include <string>

namespace callbackd {

struct PostgresQueueOptions {
  // A libpq connection string or URI ("postgres://user@host:5432/db", "host=… dbname=…").
  // The password comes from it, PGPASSWORD or ~/.pgpass; it is never logged.
  std::string conninfo;
  // Connections for claims, records and reads; enqueues have one more of their own.
  std::size_t connections = 4;
};

// Connects, creates or upgrades the schema (one process at a time), and returns the queue.
// Every process on the database gets its own lease owner id: claims use FOR UPDATE SKIP
// LOCKED, leases and due times run on the database's clock (now()), and a process that dies
// leaves leases that the others recover once they end. kStorageUnavailable when the database
// cannot be reached (as every call while it is gone); kFailedPrecondition when its schema is newer
// than this build knows.
Result<std::unique_ptr<Queue>> open_postgres_queue(PostgresQueueOptions options);

// Copies a SQLite store into an empty PostgreSQL database (creating its schema): apps, sealed
// secrets, settings, every delivery with its id and state, and every attempt. In-flight
// deliveries become pending. The SQLite store's daemon must be stopped (its lock is taken);
// the same master key must then be used with the new store. All or nothing: one transaction.
struct StoreCopyReport {
  std::size_t apps = 0;
  std::size_t settings = 0;
  std::size_t deliveries = 0;
  std::size_t attempts = 0;
};
Result<StoreCopyReport> copy_sqlite_store_to_postgres(const std::filesystem::path& sqlite_path,
                                                      const std::string& conninfo);

}  // namespace callbackd
