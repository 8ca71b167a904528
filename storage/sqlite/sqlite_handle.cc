#include "sqlite_handle.h"

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
    return Status::Internal("sqlite: " + why + " (in: " + text.substr(0, 60) + ")");
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
  const int code = sqlite3_extended_errcode(db_);
  std::string message = std::string(what) + ": " + sqlite3_errmsg(db_);
  // A full disk or an I/O failure is the operator's to fix; the rest is ours.
  if ((code & 0xff) == SQLITE_FULL || (code & 0xff) == SQLITE_IOERR ||
      (code & 0xff) == SQLITE_BUSY || (code & 0xff) == SQLITE_READONLY) {
    return Status::Unavailable("storage: " + message);
  }
  return Status::Internal("storage: " + message);
}

}  // namespace callbackd::sqlite
