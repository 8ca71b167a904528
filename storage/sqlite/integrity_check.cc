#include "integrity_check.h"

namespace callbackd::sqlite {
namespace {

// Enough problems to see what is wrong; a badly damaged file can list thousands.
constexpr const char* kQuickCheck = "PRAGMA quick_check(3)";

Status damaged(const std::string& path, const std::string& problems) {
  return Status::FailedPrecondition(
      "damaged (" + problems +
      "); callbackd does not start on a damaged store. Stop anything using it, then restore "
      "the latest backup into place, or salvage what is readable: `sqlite3 " +
      path + " .recover | sqlite3 " + path +
      ".recovered`, move the damaged file and its -wal aside, "
      "and move the recovered file to \"" +
      path + "\"");
}

// SQLite's own word that the file is not a sound database, as opposed to a busy or full disk.
bool reports_damage(sqlite3* db) {
  const int code = sqlite3_errcode(db);
  return code == SQLITE_CORRUPT || code == SQLITE_NOTADB;
}

}  // namespace

Status check_integrity(Connection& connection, const std::string& path) {
  auto check = connection.prepare(kQuickCheck);
  if (!check.ok()) {
    return reports_damage(connection.handle()) ? damaged(path, check.status().message())
                                               : check.status();
  }
  std::string problems;
  int rc;
  while ((rc = (*check)->step()) == SQLITE_ROW) {
    const std::string line = (*check)->text(0);
    if (line == "ok") return Status::Ok();
    problems += (problems.empty() ? "" : "; ") + line;
  }
  if (rc != SQLITE_DONE) {
    return reports_damage(connection.handle()) ? damaged(path, sqlite3_errmsg(connection.handle()))
                                               : connection.error("quick_check");
  }
  return damaged(path, problems);
}

}  // namespace callbackd::sqlite
