// The copy from a SQLite store into PostgreSQL (`callbackd store copy-to-postgres`): a tool
// beside the two backends, using both, part of neither.
#pragma once

#include <callbackd/status.h>

#include <cstddef>
#include <filesystem>
#include <string>

namespace callbackd {

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
