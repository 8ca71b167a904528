// Thin RAII over libpq: a connection that runs parameterized statements (text parameters,
// text results) and turns PostgreSQL's errors into Status codes an operator can act on. Every
// wait on the server is bounded (PostgresLinkBounds): past its deadline the link is dropped and
// the call fails with kStorageUnavailable, so a frozen database never hangs a caller.
#pragma once

#include <callbackd/clock.h>
#include <callbackd/postgres_store.h>
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
  // kStorageUnavailable naming the server (never the password) when it cannot be reached
  // within bounds.connect_timeout. While `stop_fd` (an eventfd or pipe; -1: none) is readable,
  // every wait of this connection ends at once with kUnavailable: a stopping owner need not
  // wait out a bound.
  static Result<std::unique_ptr<Connection>> open(const std::string& conninfo,
                                                  const PostgresLinkBounds& bounds = {},
                                                  int stop_fd = -1);
  ~Connection();
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  // Runs `sql` with `params` ($1, $2…); `what` names the step in errors.
  Result<Rows> run(std::string_view what, const std::string& sql, const Params& params = {});
  // Runs `copy_sql` (COPY … FROM STDIN) and streams `data` (COPY text format) into it.
  Status copy_in(std::string_view what, const std::string& copy_sql, std::string_view data);
  // Runs statements without parameters or results (BEGIN, COMMIT, DDL); several may be given.
  Status exec(std::string_view what, const std::string& sql);

  // Whether the last run/exec/copy_in failed after its statement went out, without an answer
  // (its deadline passed, or the link broke): it may have been applied or not (a COMMIT may
  // have committed). The link is reset then. False after a call that succeeded, that got the
  // server's error, or that could not even send (nothing happened on the server).
  bool outcome_unknown() const { return outcome_unknown_; }

  // The client-side bound on one statement (statement_timeout; zero: none); the wait for its
  // result is this plus a short margin. Work that takes long on purpose (a schema upgrade)
  // raises it for a while, and the server's limit with it (SET LOCAL statement_timeout).
  // Returns the previous bound.
  Millis set_statement_timeout(Millis bound);

  // Whether the link to the server is up; a broken one is reset on the next use.
  bool healthy() const { return conn_ != nullptr && PQstatus(conn_) == CONNECTION_OK; }
  // A broken link has no transaction left: the server ended it when the link went.
  bool in_transaction() const { return healthy() && PQtransactionStatus(conn_) != PQTRANS_IDLE; }
  // Which server session this is: changes with every reconnect (temporary tables go with it).
  std::uint64_t session() const { return session_; }
  // "host:port/db as user": for logs; no secret.
  std::string describe() const { return description_; }
  // The value libpq connected with for a connection keyword (PQconninfo), e.g.
  // "keepalives_idle"; nullopt when unset, for the password, or with no link.
  std::optional<std::string> keyword_value(std::string_view keyword) const;

  // For a LISTENing connection: its socket to wait on (-1 with no link), and how many
  // notifications arrived whose payload is not `ignored` (reads what is there without
  // blocking; -1 when the link broke).
  int socket() const { return conn_ ? PQsocket(conn_) : -1; }
  int take_notifications(std::string_view ignored);

 private:
  Connection(std::string conninfo, const PostgresLinkBounds& bounds, int stop_fd);
  // A new link and session in place of the old link, if any; null conn_ when it fails.
  Status connect();
  Status reconnect_if_broken();
  // After a statement was sent: flushes it and collects its results until there are none (or,
  // with `copying`, until the server asks for COPY data, which sets it).
  Result<Rows> finish(std::string_view what, SteadyTime deadline, bool* copying = nullptr);
  Status flush(std::string_view what, SteadyTime deadline);
  // The next result, or nullptr once there are none.
  Result<PGresult*> next_result(std::string_view what, SteadyTime deadline);
  // Until the socket is readable (or writable, with `write`); else the link is dropped.
  Status wait(std::string_view what, bool write, SteadyTime deadline);
  // The statement could not be sent: nothing happened on the server.
  Status send_failed(std::string_view what);
  // The link broke while a statement was out: the server's last word if it said one, else
  // the outcome is unknown.
  Status broken_mid_statement(std::string_view what);
  // Closes the link without a word to the server (a PQcancel could hang on a frozen link):
  // what was sent has an unknown outcome.
  Status drop_link(Status why);
  SteadyTime statement_deadline() const;
  Result<Rows> checked(std::string_view what, PGresult* result);

  const std::string conninfo_;  // may hold a password: never in a message
  const PostgresLinkBounds bounds_;
  const int stop_fd_;
  Millis statement_timeout_;
  PGconn* conn_ = nullptr;  // null while the link is down
  std::string description_;
  std::uint64_t session_ = 0;
  bool outcome_unknown_ = false;
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
