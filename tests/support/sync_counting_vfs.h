// A SQLite VFS over the default one that counts xSync calls on WAL files: the way to see, from
// outside, whether a commit was made durable (synchronous=FULL syncs the WAL at every commit,
// NORMAL does not). It also counts the temporary files SQLite opens (statement journals that
// outgrew memory, temporary tables), each a file created and deleted on disk.
#pragma once

#include <atomic>
#include <cstdint>

namespace callbackd::testing {

class SyncCountingVfs {
 public:
  // Registers the VFS as SQLite's default, so connections opened afterwards use it.
  SyncCountingVfs();
  // Puts the previous default back. REQUIRES: no connection opened through it is still open.
  ~SyncCountingVfs();
  SyncCountingVfs(const SyncCountingVfs&) = delete;
  SyncCountingVfs& operator=(const SyncCountingVfs&) = delete;

  // fsyncs of "-wal" files so far, by every connection.
  std::uint64_t wal_syncs() const;
  // Temporary files opened so far, by every connection.
  std::uint64_t temp_files_opened() const;
};

}  // namespace callbackd::testing
