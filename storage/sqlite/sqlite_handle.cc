#include "sqlite_handle.h"

#include <cerrno>
#include <string>

namespace callbackd::sqlite {

Status Statement::run(std::string_view what) {
  int rc;
  while ((rc = step()) == SQLITE_ROW) {
  }
  if (rc != SQLITE_DONE) return connection_.error(what);
  return Status::Ok();
}

Result<std::unique_ptr<Connection>> Connection::open(const std::string& path, bool create) {
  sqlite3* db = nullptr;
  const int flags = SQLITE_OPEN_READWRITE | (create ? SQLITE_OPEN_CREATE : 0) | SQLITE_OPEN_NOMUTEX;
  const int rc = sqlite3_open_v2(path.c_str(), &db, flags, nullptr);
  if (rc != SQLITE_OK) {
    std::string message = db ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
    sqlite3_close_v2(db);
    return Status::Unavailable("open \"" + path + "\": " + message);
  }
  sqlite3_extended_result_codes(db, 1);
  return std::unique_ptr<Connection>(new Connection(db));
}

Connection::~Connection() {
  for (auto& [sql, stmt] : statements_) sqlite3_finalize(stmt);
  sqlite3_close_v2(db_);
}

Status Connection::exec(std::string_view sql) {
  char* message = nullptr;
  const std::string text(sql);
  if (sqlite3_exec(db_, text.c_str(), nullptr, nullptr, &message) != SQLITE_OK) {
    std::string why = message ? message : sqlite3_errmsg(db_);
    sqlite3_free(message);
    return status_of(sqlite3_extended_errcode(db_), sqlite3_system_errno(db_),
                     why + " (in: " + text.substr(0, 60) + ")");
  }
  return Status::Ok();
}

Result<std::unique_ptr<Statement>> Connection::prepare(const char* sql) {
  auto it = statements_.find(sql);
  if (it == statements_.end()) {
    sqlite3_stmt* stmt = nullptr;
    if (sqlite3_prepare_v3(db_, sql, -1, SQLITE_PREPARE_PERSISTENT, &stmt, nullptr) != SQLITE_OK) {
      return error("prepare");
    }
    it = statements_.emplace(sql, stmt).first;
  }
  return std::make_unique<Statement>(*this, it->second);
}

Status Connection::error(std::string_view what) const {
  return status_of(sqlite3_extended_errcode(db_), sqlite3_system_errno(db_),
                   std::string(what) + ": " + sqlite3_errmsg(db_));
}

namespace {

// Why a write failed, in the operator's words. SQLite reports a write that failed outright
// (not short) as an I/O error; the errno tells a full disk from a broken one.
std::string write_failure(int code, int system_errno) {
  if ((code & 0xff) == SQLITE_FULL || system_errno == ENOSPC) return "disk full";
  if (system_errno == EDQUOT) return "disk quota exceeded";
  if (system_errno == EFBIG) return "file size limit reached";
  return "I/O error";
}

}  // namespace

Status status_of(int code, int system_errno, const std::string& detail) {
  // A full disk or an I/O failure is the operator's to fix and passes once they have; callers
  // answer it as "retry later", never as a bug. The rest is ours.
  switch (code & 0xff) {
    case SQLITE_FULL:
    case SQLITE_IOERR:
      return Status::StorageUnavailable(
          "the store cannot write: " + write_failure(code, system_errno) + " (" + detail + ")");
    case SQLITE_BUSY:
    case SQLITE_READONLY:
      return Status::Unavailable("storage: " + detail);
    default:
      return Status::Internal("storage: " + detail);
  }
}

}  // namespace callbackd::sqlite
