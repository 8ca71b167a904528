// The embedded store: a callbackd Queue in one SQLite file.
//
//   auto queue = callbackd::open_sqlite_queue({.path = "data/callbackd.db"});
//   auto engine = callbackd::Engine::open({.queue = std::move(*queue),
//                                          .master_key_file = "/etc/callbackd/master.key"});
#pragma once

#include <callbackd/clock.h>
#include <callbackd/queue.h>
#include <callbackd/status.h>

#include <filesystem>
#include <memory>
#include <string>

namespace callbackd {

struct SqliteQueueOptions {
  // The database file; it and its directory are created when missing. Beside it live the WAL
  // files and "<file>.lock".
  std::filesystem::path path = "callbackd.db";
  // Due times and leases are measured on its monotonic time (see callbackd/clock.h), continued
  // across restarts: a step of the wall clock between two runs brings no retry forward.
  std::shared_ptr<const Clock> clock = system_clock();
  // For tests: the boot this run's monotonic clock belongs to. Empty: this machine's
  // (/proc/sys/kernel/random/boot_id). A run in the same boot as the last continues its clock.
  std::string boot_id;
  // Read connections kept for the API's reads, find_delivery/list/count (WAL lets them run
  // beside the writer). The dispatcher has one of its own besides, so reads never delay it.
  std::size_t read_connections = 4;
};

// Opens or creates the store (WAL, synchronous=FULL: a callback is acknowledged once its
// commit is on disk) and upgrades an older schema in place. A damaged file (PRAGMA
// quick_check) does not open: kFailedPrecondition says what to do. One process per store: the file
// is locked while the queue is open, and a second opener gets kFailedPrecondition naming the
// holder's pid. Deliveries left in flight by a previous process are pending again at once.
Result<std::unique_ptr<Queue>> open_sqlite_queue(SqliteQueueOptions options);

}  // namespace callbackd
