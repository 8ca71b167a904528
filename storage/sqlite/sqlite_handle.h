// Thin RAII over the SQLite C API: a connection that caches its prepared statements, and a
// statement use that binds, steps and resets.
#pragma once

#include <callbackd/status.h>
#include <sqlite3.h>

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>

namespace callbackd::sqlite {

class Connection;

// The Status for a failed SQLite call (its extended code and sqlite3_system_errno):
// kStorageUnavailable for a full disk (SQLITE_FULL) or an I/O error (SQLITE_IOERR_*),
// kUnavailable for a busy or read-only store, kInternal otherwise.
Status status_of(int extended_code, int system_errno, const std::string& detail);

// One execution of a cached statement; resets it (and clears bindings) when it goes away.
class Statement {
 public:
  Statement(Connection& connection, sqlite3_stmt* stmt) : connection_(connection), stmt_(stmt) {}
  ~Statement() {
    sqlite3_reset(stmt_);
    sqlite3_clear_bindings(stmt_);
  }
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;

  // Parameters are 1-based, as in SQLite.
  Statement& bind(int i, std::int64_t v) {
    sqlite3_bind_int64(stmt_, i, v);
    return *this;
  }
  Statement& bind(int i, std::string_view v) {
    sqlite3_bind_text(stmt_, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT);
    return *this;
  }
  Statement& bind_blob(int i, std::string_view v) {
    // A zero-length blob must not bind as NULL.
    sqlite3_bind_blob(stmt_, i, v.empty() ? "" : v.data(), static_cast<int>(v.size()),
                      SQLITE_TRANSIENT);
    return *this;
  }
  Statement& bind_null(int i) {
    sqlite3_bind_null(stmt_, i);
    return *this;
  }

  // SQLITE_ROW, SQLITE_DONE, or an error code.
  int step() { return sqlite3_step(stmt_); }
  // Steps to completion; the error names the statement's purpose.
  Status run(std::string_view what);

  std::int64_t int64(int column) const { return sqlite3_column_int64(stmt_, column); }
  bool is_null(int column) const { return sqlite3_column_type(stmt_, column) == SQLITE_NULL; }
  std::string text(int column) const {
    const auto* p = sqlite3_column_blob(stmt_, column);
    return std::string(static_cast<const char*>(p),
                       static_cast<std::size_t>(sqlite3_column_bytes(stmt_, column)));
  }
  // A BLOB column's bytes (read as text is: SQLite hands both over as they are stored).
  std::string bytes(int column) const { return text(column); }

 private:
  Connection& connection_;
  sqlite3_stmt* stmt_;
};

class Connection {
 public:
  // Opens (creating when `create`) with no SQLite-level mutex: callers serialize use.
  static Result<std::unique_ptr<Connection>> open(const std::string& path, bool create);
  ~Connection();
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  // Runs SQL with no results (pragmas, DDL, BEGIN/COMMIT).
  Status exec(std::string_view sql);
  // The cached prepared statement for `sql` (prepared on first use).
  Result<std::unique_ptr<Statement>> prepare(const char* sql);
  // "what: <SQLite's message>" as a Status (see status_of).
  Status error(std::string_view what) const;

  sqlite3* handle() const { return db_; }
  std::int64_t changes() const { return sqlite3_changes64(db_); }
  std::int64_t total_changes() const { return sqlite3_total_changes64(db_); }
  std::int64_t last_insert_rowid() const { return sqlite3_last_insert_rowid(db_); }
  bool in_transaction() const { return sqlite3_get_autocommit(db_) == 0; }

 private:
  explicit Connection(sqlite3* db) : db_(db) {}
  sqlite3* db_;
  std::unordered_map<const char*, sqlite3_stmt*> statements_;  // keyed by the SQL literal
};

}  // namespace callbackd::sqlite
