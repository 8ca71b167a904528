#include "pg_connection.h"

#include <poll.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstdlib>
#include <cstring>
#include <map>

namespace callbackd::postgres {

namespace {

// Errors that mean "the database is not there right now", not "this request is wrong":
// connection failures (08), insufficient resources such as a full disk (53), operator
// intervention such as a shutdown (57P), a statement cancelled (57014: our statement_timeout on
// a server too slow or stuck behind a lock, or an operator's pg_cancel_backend), and a
// read-only standby (25006).
bool is_unavailable(std::string_view sqlstate) {
  return sqlstate.starts_with("08") || sqlstate.starts_with("53") || sqlstate.starts_with("57P") ||
         sqlstate == "57014" || sqlstate == "25006";
}

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

std::string first_line(const char* message) {
  std::string text = message ? message : "";
  if (auto end = text.find('\n'); end != std::string::npos) text.resize(end);
  return text;
}

// How much longer than the server's statement_timeout the client waits for a result: when the
// server is slow rather than gone, its cancel (which says the statement did not happen) comes
// first.
constexpr Millis kStatementMargin{500};

// "5 s", "1500 ms": a bound in an error message, as it was configured.
std::string shown(Millis bound) {
  if (bound.count() % 1000 == 0) return std::to_string(bound.count() / 1000) + " s";
  return std::to_string(bound.count()) + " ms";
}

// libpq's keepalive and connect keywords take whole seconds: rounded up, at least 1.
std::string whole_seconds(Millis bound) {
  return std::to_string(std::max<std::int64_t>(1, (bound.count() + 999) / 1000));
}

SteadyTime deadline_after(Millis bound) {
  if (bound <= Millis(0)) return SteadyTime::max();
  return std::chrono::steady_clock::now() + bound;
}

const char* or_empty(const char* text) { return text ? text : ""; }

// "host:port/db as user", or "socket /dir:port/db as user": no secret.
std::string describe_link(const PGconn* conn) {
  std::string where = or_empty(PQhost(conn));
  if (where.empty()) where = "localhost";
  if (where[0] == '/') where = "socket " + where;
  return where + ":" + or_empty(PQport(conn)) + "/" + or_empty(PQdb(conn)) + " as " +
         or_empty(PQuser(conn));
}

// The keywords the user's conninfo sets itself. Empty when it is no connection string (a bare
// database name) or a malformed one (libpq then says what is wrong when connecting).
std::map<std::string, std::string> user_keywords(const std::string& conninfo) {
  std::map<std::string, std::string> keywords;
  char* error = nullptr;
  PQconninfoOption* options = PQconninfoParse(conninfo.c_str(), &error);
  if (error != nullptr) PQfreemem(error);  // it may quote the string, password and all
  if (options == nullptr) return keywords;
  for (const PQconninfoOption* o = options; o->keyword != nullptr; ++o) {
    if (o->val != nullptr) keywords.emplace(o->keyword, o->val);
  }
  PQconninfoFree(options);
  return keywords;
}

enum class Waited { kReady, kTimedOut, kStopping, kFailed };

// poll() on `fd` for `events` until `deadline`; a readable `stop_fd` (if >= 0) ends it first.
// kFailed leaves poll's errno.
Waited wait_for_socket(int fd, short events, int stop_fd, SteadyTime deadline) {
  for (;;) {
    int timeout_ms = -1;
    if (deadline != SteadyTime::max()) {
      const auto left = deadline - std::chrono::steady_clock::now();
      if (left <= std::chrono::steady_clock::duration::zero()) return Waited::kTimedOut;
      const auto ms = std::chrono::ceil<Millis>(left).count();
      timeout_ms = static_cast<int>(std::min<std::int64_t>(ms, 60'000));
    }
    pollfd fds[2] = {{fd, events, 0}, {stop_fd, POLLIN, 0}};
    const int n = ::poll(fds, stop_fd >= 0 ? 2 : 1, timeout_ms);
    if (n < 0) {
      if (errno == EINTR) continue;
      return Waited::kFailed;
    }
    if (stop_fd >= 0 && fds[1].revents != 0) return Waited::kStopping;
    // An error or hang-up counts as ready too: libpq reads it and says what happened.
    if (n > 0 && fds[0].revents != 0) return Waited::kReady;
  }
}

}  // namespace

std::int64_t Rows::int64(int row, int column) const {
  const char* value = PQgetvalue(result_.get(), row, column);
  std::int64_t n = 0;
  std::from_chars(value, value + PQgetlength(result_.get(), row, column), n);
  return n;
}

std::string Rows::bytes(int row, int column) const {
  const char* value = PQgetvalue(result_.get(), row, column);
  const std::size_t length = static_cast<std::size_t>(PQgetlength(result_.get(), row, column));
  std::string out;
  if (length < 2 || value[0] != '\\' || value[1] != 'x') return std::string(value, length);
  out.reserve((length - 2) / 2);
  for (std::size_t i = 2; i + 1 < length; i += 2) {
    out.push_back(static_cast<char>(hex_value(value[i]) * 16 + hex_value(value[i + 1])));
  }
  return out;
}

std::int64_t Rows::affected() const {
  const char* tuples = PQcmdTuples(result_.get());
  std::int64_t n = 0;
  std::from_chars(tuples, tuples + std::char_traits<char>::length(tuples), n);
  return n;
}

Connection::Connection(std::string conninfo, const PostgresLinkBounds& bounds, int stop_fd)
    : conninfo_(std::move(conninfo)),
      bounds_(bounds),
      stop_fd_(stop_fd),
      statement_timeout_(bounds.statement_timeout) {}

Result<std::unique_ptr<Connection>> Connection::open(const std::string& conninfo,
                                                     const PostgresLinkBounds& bounds,
                                                     int stop_fd) {
  std::unique_ptr<Connection> c(new Connection(conninfo, bounds, stop_fd));
  if (Status s = c->connect(); !s.ok()) return s;
  return c;
}

Connection::~Connection() {
  // Nonblocking, so even the goodbye on a frozen link returns at once.
  if (conn_ != nullptr) PQfinish(conn_);
}

Status Connection::connect() {
  if (conn_ != nullptr) PQfinish(conn_);
  conn_ = nullptr;
  // The user's conninfo comes first and is expanded (expand_dbname); our keywords follow, so
  // they would win over it: those it sets itself are left out.
  const std::map<std::string, std::string> theirs = user_keywords(conninfo_);
  std::vector<std::pair<std::string, std::string>> ours;
  auto add = [&](const char* keyword, std::string value) {
    if (!theirs.contains(keyword)) ours.emplace_back(keyword, std::move(value));
  };
  Millis connect_bound = bounds_.connect_timeout;
  if (auto it = theirs.find("connect_timeout"); it != theirs.end()) {
    // Theirs bounds the whole handshake too (libpq's own only covers its blocking calls).
    connect_bound = Millis(std::max(0L, std::atol(it->second.c_str())) * 1000);
  } else if (bounds_.connect_timeout > Millis(0)) {
    add("connect_timeout", whole_seconds(bounds_.connect_timeout));
  }
  add("keepalives", "1");
  if (bounds_.keepalive_idle > Millis(0))
    add("keepalives_idle", whole_seconds(bounds_.keepalive_idle));
  if (bounds_.keepalive_interval > Millis(0))
    add("keepalives_interval", whole_seconds(bounds_.keepalive_interval));
  if (bounds_.keepalive_count > 0) add("keepalives_count", std::to_string(bounds_.keepalive_count));
  if (bounds_.tcp_user_timeout > Millis(0))
    add("tcp_user_timeout", std::to_string(bounds_.tcp_user_timeout.count()));
  std::vector<const char*> keywords{"dbname"};
  std::vector<const char*> values{conninfo_.c_str()};
  for (const auto& [keyword, value] : ours) {
    keywords.push_back(keyword.c_str());
    values.push_back(value.c_str());
  }
  keywords.push_back(nullptr);
  values.push_back(nullptr);

  // Step by step (PQconnectStartParams, PQconnectPoll) so that every wait has the deadline: a
  // proxy that accepts and then forwards nothing stalls libpq's blocking connect for good.
  PGconn* conn = PQconnectStartParams(keywords.data(), values.data(), /*expand_dbname=*/1);
  if (conn == nullptr) return Status::StorageUnavailable("postgres: out of memory connecting");
  const SteadyTime deadline = deadline_after(connect_bound);
  PostgresPollingStatusType polled =
      PQstatus(conn) == CONNECTION_BAD ? PGRES_POLLING_FAILED : PGRES_POLLING_WRITING;
  while (polled != PGRES_POLLING_OK && polled != PGRES_POLLING_FAILED) {
    const short events = polled == PGRES_POLLING_READING ? POLLIN : POLLOUT;
    const Waited waited = wait_for_socket(PQsocket(conn), events, stop_fd_, deadline);
    const int poll_error = errno;
    if (waited != Waited::kReady) {
      const std::string where = describe_link(conn);
      PQfinish(conn);
      if (waited == Waited::kStopping) {
        return Status::Unavailable("postgres: connecting to " + where + ": stopping");
      }
      if (waited == Waited::kFailed) {
        return Status::StorageUnavailable("postgres: cannot connect to " + where +
                                          ": poll: " + std::strerror(poll_error));
      }
      return Status::StorageUnavailable("postgres: cannot connect to " + where +
                                        ": no answer within " + shown(connect_bound) +
                                        " (connect_timeout)");
    }
    polled = PQconnectPoll(conn);
  }
  if (polled == PGRES_POLLING_FAILED) {
    const std::string message = first_line(PQerrorMessage(conn));
    PQfinish(conn);
    return Status::StorageUnavailable("postgres: cannot connect: " + message);
  }
  // Nonblocking: sending never waits on a full socket buffer (a frozen link fills it); every
  // wait is ours, with a deadline.
  if (PQsetnonblocking(conn, 1) != 0) {
    const std::string message = first_line(PQerrorMessage(conn));
    PQfinish(conn);
    return Status::StorageUnavailable("postgres: cannot connect: " + message);
  }
  conn_ = conn;
  description_ = describe_link(conn_);
  ++session_;
  // Acknowledged means committed and flushed: never trade durability for speed here.
  std::string settings = "SET synchronous_commit = on; SET client_min_messages = warning";
  if (bounds_.statement_timeout > Millis(0)) {
    settings += "; SET statement_timeout = " + std::to_string(bounds_.statement_timeout.count());
  }
  if (Status s = exec("session settings", settings); !s.ok()) {
    // A session without its settings is never used: the next call starts over.
    if (conn_ != nullptr) PQfinish(conn_);
    conn_ = nullptr;
    return s;
  }
  return Status::Ok();
}

Status Connection::reconnect_if_broken() {
  if (healthy()) return Status::Ok();
  return connect();  // bounded like the first one
}

Millis Connection::set_statement_timeout(Millis bound) {
  return std::exchange(statement_timeout_, bound);
}

SteadyTime Connection::statement_deadline() const {
  if (statement_timeout_ <= Millis(0)) return SteadyTime::max();
  return deadline_after(statement_timeout_ + kStatementMargin);
}

std::optional<std::string> Connection::keyword_value(std::string_view keyword) const {
  if (conn_ == nullptr || keyword == "password") return std::nullopt;
  PQconninfoOption* options = PQconninfo(conn_);
  if (options == nullptr) return std::nullopt;
  std::optional<std::string> value;
  for (const PQconninfoOption* o = options; o->keyword != nullptr; ++o) {
    if (keyword == o->keyword && o->val != nullptr) value = o->val;
  }
  PQconninfoFree(options);
  return value;
}

Result<Rows> Connection::run(std::string_view what, const std::string& sql, const Params& params) {
  outcome_unknown_ = false;
  if (Status s = reconnect_if_broken(); !s.ok()) {
    outcome_unknown_ = false;  // ours never went out
    return s;
  }
  const SteadyTime deadline = statement_deadline();
  std::vector<const char*> values;
  values.reserve(params.size());
  for (const auto& p : params) values.push_back(p ? p->c_str() : nullptr);
  if (PQsendQueryParams(conn_, sql.c_str(), static_cast<int>(values.size()), nullptr, values.data(),
                        nullptr, nullptr, 0) != 1) {
    return send_failed(what);
  }
  return finish(what, deadline);
}

Status Connection::exec(std::string_view what, const std::string& sql) {
  outcome_unknown_ = false;
  if (Status s = reconnect_if_broken(); !s.ok()) {
    outcome_unknown_ = false;
    return s;
  }
  const SteadyTime deadline = statement_deadline();
  // The simple protocol: `sql` may hold several statements.
  if (PQsendQuery(conn_, sql.c_str()) != 1) return send_failed(what);
  auto rows = finish(what, deadline);
  return rows.ok() ? Status::Ok() : rows.status();
}

Status Connection::copy_in(std::string_view what, const std::string& copy_sql,
                           std::string_view data) {
  outcome_unknown_ = false;
  if (Status s = reconnect_if_broken(); !s.ok()) {
    outcome_unknown_ = false;
    return s;
  }
  // One deadline for the whole COPY, as the server's statement_timeout has.
  const SteadyTime deadline = statement_deadline();
  if (PQsendQuery(conn_, copy_sql.c_str()) != 1) return send_failed(what);
  bool copying = false;
  auto started = finish(what, deadline, &copying);
  if (!started.ok()) return started.status();
  if (!copying) return Status::Internal("postgres: " + std::string(what) + ": not a COPY");
  // Nonblocking, libpq queues what it cannot send yet (0: no room now; wait and try again).
  int sent;
  while ((sent = PQputCopyData(conn_, data.data(), static_cast<int>(data.size()))) == 0) {
    if (Status s = wait(what, /*write=*/true, deadline); !s.ok()) return s;
  }
  if (sent < 0 && !healthy()) return broken_mid_statement(what);
  int ended;
  while ((ended = PQputCopyEnd(conn_,
                               sent == 1 ? nullptr : "callbackd: sending the rows failed")) == 0) {
    if (Status s = wait(what, /*write=*/true, deadline); !s.ok()) return s;
  }
  if (ended < 0) return broken_mid_statement(what);
  auto done = finish(what, deadline);
  return done.ok() ? Status::Ok() : done.status();
}

Result<Rows> Connection::finish(std::string_view what, SteadyTime deadline, bool* copying) {
  if (Status s = flush(what, deadline); !s.ok()) return s;
  // Every result is read, so the link is ready for the next statement; the first error is the
  // answer (the server runs nothing after it), else the last result.
  std::optional<Rows> last;
  std::optional<Status> error;
  for (;;) {
    auto next = next_result(what, deadline);
    if (!next.ok()) return next.status();
    PGresult* result = *next;
    if (result == nullptr) break;
    const ExecStatusType status = PQresultStatus(result);
    if (status == PGRES_COPY_IN || status == PGRES_COPY_OUT || status == PGRES_COPY_BOTH) {
      if (copying != nullptr && status == PGRES_COPY_IN) {
        *copying = true;
        return Rows(result);
      }
      // A COPY nobody streams would hold the link for good.
      PQclear(result);
      return drop_link(Status::Internal("postgres: " + std::string(what) +
                                        ": unexpected COPY; the link is reset"));
    }
    auto rows = checked(what, result);
    if (!rows.ok()) {
      if (!error) error = rows.status();
      continue;
    }
    last.emplace(std::move(*rows));
  }
  if (error) return *error;
  if (!last) return Status::Internal("postgres: " + std::string(what) + ": no result");
  return std::move(*last);
}

Status Connection::flush(std::string_view what, SteadyTime deadline) {
  for (;;) {
    const int flushed = PQflush(conn_);
    if (flushed == 0) return Status::Ok();
    if (flushed < 0) return broken_mid_statement(what);
    // More to send: wait for room, and read what the server sends meanwhile (it may wait for
    // us to read before it reads on).
    if (Status s = wait(what, /*write=*/true, deadline); !s.ok()) return s;
    if (PQconsumeInput(conn_) == 0) return broken_mid_statement(what);
  }
}

Result<PGresult*> Connection::next_result(std::string_view what, SteadyTime deadline) {
  while (PQisBusy(conn_)) {
    if (Status s = wait(what, /*write=*/false, deadline); !s.ok()) return s;
    if (PQconsumeInput(conn_) == 0) return broken_mid_statement(what);
  }
  return PQgetResult(conn_);  // not busy: returns at once
}

Status Connection::wait(std::string_view what, bool write, SteadyTime deadline) {
  const short events = write ? POLLIN | POLLOUT : POLLIN;
  const Waited waited = wait_for_socket(PQsocket(conn_), events, stop_fd_, deadline);
  const int poll_error = errno;
  const std::string step = "postgres: " + std::string(what) + ": ";
  switch (waited) {
    case Waited::kReady:
      return Status::Ok();
    case Waited::kTimedOut:
      return drop_link(Status::StorageUnavailable(step + "no answer within " +
                                                  shown(statement_timeout_) +
                                                  " (statement_timeout); the link is reset"));
    case Waited::kStopping:
      return drop_link(Status::Unavailable(step + "stopping; the link is reset"));
    case Waited::kFailed:
      break;
  }
  return drop_link(Status::StorageUnavailable(step + "poll: " + std::strerror(poll_error) +
                                              "; the link is reset"));
}

Status Connection::send_failed(std::string_view what) {
  const std::string text =
      "postgres: " + std::string(what) + ": " + first_line(PQerrorMessage(conn_));
  if (healthy()) return Status::Internal(text);  // e.g. a statement already in progress: a bug
  PQfinish(conn_);
  conn_ = nullptr;
  return Status::StorageUnavailable(text);
}

Status Connection::broken_mid_statement(std::string_view what) {
  // Once libpq dropped the socket (CONNECTION_BAD) PQgetResult cannot block: it hands out what
  // the server said before it went (an administrator's shutdown, say) and then nothing.
  std::optional<Status> said;
  if (PQstatus(conn_) == CONNECTION_BAD) {
    while (PGresult* result = PQgetResult(conn_)) {
      const char* state = PQresultErrorField(result, PG_DIAG_SQLSTATE);
      if (!said && state != nullptr && *state != '\0') {
        auto rows = checked(what, result);  // takes the result
        if (!rows.ok()) said = rows.status();
      } else {
        PQclear(result);
      }
    }
  }
  Status why = said ? *said
                    : Status::StorageUnavailable("postgres: " + std::string(what) + ": " +
                                                 first_line(PQerrorMessage(conn_)));
  Status dropped = drop_link(std::move(why));
  if (said) outcome_unknown_ = false;  // the server's error: the statement did not happen
  return dropped;
}

Status Connection::drop_link(Status why) {
  PQfinish(conn_);  // nonblocking: returns at once, even on a frozen link
  conn_ = nullptr;
  outcome_unknown_ = true;
  return why;
}

Result<Rows> Connection::checked(std::string_view what, PGresult* result) {
  Rows rows(result);
  const ExecStatusType status = PQresultStatus(result);
  if (status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK) return rows;
  const char* state = PQresultErrorField(result, PG_DIAG_SQLSTATE);
  const std::string sqlstate = state ? state : "";
  const std::string message = first_line(PQresultErrorMessage(result));
  const std::string text = "postgres: " + std::string(what) + ": " + message;
  if (!healthy() || sqlstate.empty() || is_unavailable(sqlstate))
    return Status::StorageUnavailable(text);
  return Status::Internal(text + " (SQLSTATE " + sqlstate + ")");
}

int Connection::take_notifications(std::string_view ignored) {
  if (conn_ == nullptr || PQconsumeInput(conn_) == 0) return -1;
  int count = 0;
  while (PGnotify* notification = PQnotifies(conn_)) {
    if (ignored != notification->extra) ++count;
    PQfreemem(notification);
  }
  return count;
}

void append_copy_field(std::string& row, std::string_view value) {
  for (char c : value) {
    switch (c) {
      case '\\':
        row += "\\\\";
        break;
      case '\t':
        row += "\\t";
        break;
      case '\n':
        row += "\\n";
        break;
      case '\r':
        row += "\\r";
        break;
      default:
        row += c;
    }
  }
}

bool is_utf8(std::string_view text) {
  std::size_t i = 0;
  while (i < text.size()) {
    const auto c = static_cast<unsigned char>(text[i]);
    std::size_t extra = 0;
    if (c == 0) return false;  // text columns hold no NUL either
    if (c < 0x80) {
      ++i;
      continue;
    } else if ((c & 0xE0) == 0xC0 && c >= 0xC2) {
      extra = 1;
    } else if ((c & 0xF0) == 0xE0) {
      extra = 2;
    } else if ((c & 0xF8) == 0xF0 && c <= 0xF4) {
      extra = 3;
    } else {
      return false;
    }
    for (std::size_t k = 1; k <= extra; ++k) {
      if (i + k >= text.size()) return false;
      if ((static_cast<unsigned char>(text[i + k]) & 0xC0) != 0x80) return false;
    }
    const auto c1 = static_cast<unsigned char>(text[i + 1]);
    if (c == 0xE0 && c1 < 0xA0) return false;   // overlong
    if (c == 0xED && c1 >= 0xA0) return false;  // surrogates
    if (c == 0xF0 && c1 < 0x90) return false;   // overlong
    if (c == 0xF4 && c1 >= 0x90) return false;  // past U+10FFFF
    i += extra + 1;
  }
  return true;
}

std::string hex(std::string_view bytes) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(bytes.size() * 2);
  for (unsigned char c : bytes) {
    out.push_back(kHex[c >> 4]);
    out.push_back(kHex[c & 15]);
  }
  return out;
}

std::string bytea_param(std::string_view bytes) { return "\\x" + hex(bytes); }

std::string array_param(const std::vector<std::string>& items) {
  std::string out = "{";
  for (const std::string& item : items) {
    if (out.size() > 1) out += ',';
    out += '"';
    for (char c : item) {
      if (c == '"' || c == '\\') out += '\\';
      out += c;
    }
    out += '"';
  }
  return out + '}';
}

std::string array_param(const std::vector<std::int64_t>& items) {
  std::string out = "{";
  for (std::int64_t item : items) {
    if (out.size() > 1) out += ',';
    out += std::to_string(item);
  }
  return out + '}';
}

}  // namespace callbackd::postgres
