// Thin RAII over libpq: a connection that runs parameterized statements (text parameters,
// text results) and turns PostgreSQL's errors into Status codes an operator can act on.
#pragma once

#include <callbackd/status.h>
#include <libpq-fe.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace callbackd::postgres {

// A statement's result rows; text format.
class Rows {
 public:
  explicit Rows(PGresult* result) : result_(result, &PQclear) {}
  int size() const { return PQntuples(result_.get()); }
  bool is_null(int row, int column) const { return PQgetisnull(result_.get(), row, column); }
  std::string text(int row, int column) const {
    return std::string(PQgetvalue(result_.get(), row, column),
                       static_cast<std::size_t>(PQgetlength(result_.get(), row, column)));
  }
  std::int64_t int64(int row, int column) const;
  // A bytea column (hex output format) as its bytes.
  std::string bytes(int row, int column) const;
  // Rows an UPDATE or DELETE without RETURNING touched.
  std::int64_t affected() const;

 private:
  std::unique_ptr<PGresult, void (*)(PGresult*)> result_;
};

// Parameters for one statement: nullopt is SQL NULL.
using Params = std::vector<std::optional<std::string>>;

class Connection {
 public:
  // kStorageUnavailable naming the server (never the password) when it cannot be reached.
  static Result<std::unique_ptr<Connection>> open(const std::string& conninfo);
  ~Connection();
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  // Runs `sql` with `params` ($1, $2…); `what` names the step in errors.
  Result<Rows> run(std::string_view what, const std::string& sql, const Params& params = {});
  // Runs `copy_sql` (COPY … FROM STDIN) and streams `data` (COPY text format) into it.
  Status copy_in(std::string_view what, const std::string& copy_sql, std::string_view data);
  // Runs statements without parameters or results (BEGIN, COMMIT, DDL); several may be given.
  Status exec(std::string_view what, const std::string& sql);

  // Whether the link to the server is up; a broken one is reset on the next use.
  bool healthy() const { return PQstatus(conn_) == CONNECTION_OK; }
  bool in_transaction() const { return PQtransactionStatus(conn_) != PQTRANS_IDLE; }
  // Which server session this is: changes with every reconnect (temporary tables go with it).
  std::uint64_t session() const { return session_; }
  // "host:port/db as user": for logs; no secret.
  std::string describe() const;

  // For a LISTENing connection: its socket to wait on, and how many notifications arrived
  // whose payload is not `ignored` (reads what is there without blocking; -1 when the link
  // broke).
  int socket() const { return PQsocket(conn_); }
  int take_notifications(std::string_view ignored);

 private:
  explicit Connection(PGconn* conn) : conn_(conn) {}
  Status reconnect_if_broken();
  Result<Rows> checked(std::string_view what, PGresult* result);
  PGconn* conn_;
  std::uint64_t session_ = 1;
};

// One field of a COPY text-format row: backslash, tab, newline and carriage return escaped.
void append_copy_field(std::string& row, std::string_view value);
// Whether `text` is UTF-8 (PostgreSQL text refuses anything else, and would fail a whole COPY).
bool is_utf8(std::string_view text);

// A bytea parameter in hex input format ("\\x…").
std::string bytea_param(std::string_view bytes);
// Lowercase hex of the bytes, for decode(…, 'hex').
std::string hex(std::string_view bytes);
// A text[] / bigint[] array literal ("{\"a\",\"b\"}") for `= ANY($n)` and unnest().
std::string array_param(const std::vector<std::string>& items);
std::string array_param(const std::vector<std::int64_t>& items);

}  // namespace callbackd::postgres
