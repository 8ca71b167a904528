#include "pg_connection.h"

#include <charconv>

namespace callbackd::postgres {

namespace {

// Errors that mean "the database is not there right now", not "this request is wrong":
// connection failures (08), insufficient resources such as a full disk (53), operator
// intervention such as a shutdown (57P), and a read-only standby (25006).
bool is_unavailable(std::string_view sqlstate) {
  return sqlstate.starts_with("08") || sqlstate.starts_with("53") || sqlstate.starts_with("57P") ||
         sqlstate == "25006";
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

Result<std::unique_ptr<Connection>> Connection::open(const std::string& conninfo) {
  PGconn* conn = PQconnectdb(conninfo.c_str());
  if (conn == nullptr) return Status::StorageUnavailable("postgres: out of memory connecting");
  if (PQstatus(conn) != CONNECTION_OK) {
    const std::string message = first_line(PQerrorMessage(conn));
    PQfinish(conn);
    return Status::StorageUnavailable("postgres: cannot connect: " + message);
  }
  std::unique_ptr<Connection> c(new Connection(conn));
  // Acknowledged means committed and flushed: never trade durability for speed here.
  if (Status s = c->exec("session settings",
                         "SET synchronous_commit = on; SET client_min_messages = warning");
      !s.ok()) {
    return s;
  }
  return c;
}

Connection::~Connection() { PQfinish(conn_); }

std::string Connection::describe() const {
  const char* host = PQhost(conn_);
  std::string where = host && *host ? host : "localhost";
  if (!where.empty() && where[0] == '/') where = "socket " + where;
  return where + ":" + PQport(conn_) + "/" + PQdb(conn_) + " as " + PQuser(conn_);
}

Status Connection::reconnect_if_broken() {
  if (healthy()) return Status::Ok();
  PQreset(conn_);
  ++session_;
  if (!healthy()) {
    return Status::StorageUnavailable("postgres: connection lost: " +
                                      first_line(PQerrorMessage(conn_)));
  }
  return exec("session settings", "SET synchronous_commit = on; SET client_min_messages = warning");
}

Result<Rows> Connection::run(std::string_view what, const std::string& sql, const Params& params) {
  if (Status s = reconnect_if_broken(); !s.ok()) return s;
  std::vector<const char*> values;
  values.reserve(params.size());
  for (const auto& p : params) values.push_back(p ? p->c_str() : nullptr);
  return checked(what, PQexecParams(conn_, sql.c_str(), static_cast<int>(values.size()), nullptr,
                                    values.data(), nullptr, nullptr, 0));
}

Status Connection::exec(std::string_view what, const std::string& sql) {
  if (Status s = reconnect_if_broken(); !s.ok()) return s;
  auto rows = checked(what, PQexec(conn_, sql.c_str()));  // may hold several statements
  return rows.ok() ? Status::Ok() : rows.status();
}

Result<Rows> Connection::checked(std::string_view what, PGresult* result) {
  Rows rows(result);
  const ExecStatusType status = result ? PQresultStatus(result) : PGRES_FATAL_ERROR;
  if (status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK) return rows;
  const char* state = result ? PQresultErrorField(result, PG_DIAG_SQLSTATE) : nullptr;
  const std::string sqlstate = state ? state : "";
  const std::string message =
      first_line(result ? PQresultErrorMessage(result) : PQerrorMessage(conn_));
  const std::string text = "postgres: " + std::string(what) + ": " + message;
  if (!healthy() || sqlstate.empty() || is_unavailable(sqlstate))
    return Status::StorageUnavailable(text);
  return Status::Internal(text + " (SQLSTATE " + sqlstate + ")");
}

Status Connection::copy_in(std::string_view what, const std::string& copy_sql,
                           std::string_view data) {
  if (Status s = reconnect_if_broken(); !s.ok()) return s;
  PGresult* started = PQexec(conn_, copy_sql.c_str());
  if (PQresultStatus(started) != PGRES_COPY_IN) {
    auto failed = checked(what, started);
    return failed.ok() ? Status::Internal("postgres: " + std::string(what) + ": not a COPY")
                       : failed.status();
  }
  PQclear(started);
  const bool sent = PQputCopyData(conn_, data.data(), static_cast<int>(data.size())) == 1;
  if (PQputCopyEnd(conn_, sent ? nullptr : "callbackd: sending the rows failed") != 1) {
    return Status::StorageUnavailable("postgres: " + std::string(what) + ": " +
                                      first_line(PQerrorMessage(conn_)));
  }
  Status s = Status::Ok();
  while (PGresult* result = PQgetResult(conn_)) {
    auto done = checked(what, result);
    if (!done.ok() && s.ok()) s = done.status();
  }
  return s;
}

int Connection::take_notifications(std::string_view ignored) {
  if (PQconsumeInput(conn_) == 0) return -1;
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
