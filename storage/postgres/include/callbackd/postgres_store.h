// The shared store: a callbackd Queue in a PostgreSQL database, for several callbackd
// processes at once.
//
//   auto queue = callbackd::open_postgres_queue({.conninfo = "postgres://callbackd@db/callbackd"});
//   auto engine = callbackd::Engine::open({.queue = std::move(*queue),
//                                          .master_key_file = "/etc/callbackd/master.key"});
#pragma once

#include <callbackd/clock.h>
#include <callbackd/queue.h>
#include <callbackd/status.h>

#include <memory>
#include <string>

namespace callbackd {

// How long any one wait on the database may take, so a database that is gone, or a link that
// stays open but forwards nothing (a frozen TCP proxy), costs a bounded error instead of a hang.
// A zero leaves that bound out. The connection keywords go to libpq (connect_timeout,
// keepalives_*, tcp_user_timeout) unless the conninfo sets them itself: the user's value wins.
// Through a proxy the proxy's host acknowledges our packets, so keepalives and
// tcp_user_timeout only notice a dead peer host; the client-side deadlines on each wait notice
// the rest.
struct PostgresLinkBounds {
  // Connecting, from the first packet to the session being ready (libpq's connect_timeout, in
  // whole seconds, and a client-side deadline on every step of the handshake).
  Millis connect_timeout{5000};
  // One statement: the server cancels it after this long (SET statement_timeout), and the
  // client waits for its result this long plus a short margin (so the server's cancel, which
  // says the statement did not happen, arrives first when the server is slow rather than gone).
  // Past that the link is reset and the statement's outcome is unknown.
  Millis statement_timeout{5000};
  // TCP keepalives (whole seconds): probes start after this much silence...
  Millis keepalive_idle{5000};
  // ...follow each other this far apart...
  Millis keepalive_interval{2000};
  // ...and this many unanswered ones drop the link.
  int keepalive_count = 2;
  // Data we sent that the peer's host has not acknowledged for this long drops the link.
  Millis tcp_user_timeout{5000};
};

struct PostgresQueueOptions {
  // A libpq connection string or URI ("postgres://user@host:5432/db", "host=… dbname=…").
  // The password comes from it, PGPASSWORD or ~/.pgpass; it is never logged.
  std::string conninfo;
  // Connections by who uses them, so one never waits for another's: the dispatcher's claims,
  // records and releases; the API's reads and operator actions (a console listing pages never
  // delays a claim). Renewals, enqueues and LISTEN have one connection each besides.
  std::size_t dispatch_connections = 2;
  std::size_t api_connections = 2;
  // Bounds on every wait on the database. A caller that finds every connection of its kind busy
  // waits for one at most bounds.statement_timeout too.
  PostgresLinkBounds bounds;
};

// Connects, creates or upgrades the schema (one process at a time), and returns the queue.
// Every process on the database gets its own lease owner id: claims use FOR UPDATE SKIP
// LOCKED, leases and due times run on the database's clock (now()), and a process that dies
// leaves leases that the others recover once they end. kStorageUnavailable when the database
// cannot be reached (as every call while it is gone); kFailedPrecondition when its schema is newer
// than this build knows.
Result<std::unique_ptr<Queue>> open_postgres_queue(PostgresQueueOptions options);

}  // namespace callbackd
