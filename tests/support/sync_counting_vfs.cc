#include "sync_counting_vfs.h"

#include <sqlite3.h>

#include <cstring>
#include <stdexcept>
#include <string_view>

namespace callbackd::testing {
namespace {

std::atomic<std::uint64_t> wal_sync_count{0};
std::atomic<std::uint64_t> temp_file_count{0};
constexpr int kTemporaryFile = SQLITE_OPEN_SUBJOURNAL | SQLITE_OPEN_TEMP_JOURNAL |
                               SQLITE_OPEN_TEMP_DB | SQLITE_OPEN_TRANSIENT_DB;
sqlite3_vfs* real_vfs = nullptr;
sqlite3_vfs counting_vfs{};

// Our file: SQLite allocates szOsFile bytes; the real VFS's file follows ours.
struct CountingFile {
  sqlite3_file base;
  bool is_wal;
  sqlite3_file* real() { return reinterpret_cast<sqlite3_file*>(this + 1); }
};

CountingFile* counting(sqlite3_file* f) { return reinterpret_cast<CountingFile*>(f); }
sqlite3_file* real(sqlite3_file* f) { return counting(f)->real(); }

int file_close(sqlite3_file* f) { return real(f)->pMethods->xClose(real(f)); }
int file_read(sqlite3_file* f, void* p, int n, sqlite3_int64 o) {
  return real(f)->pMethods->xRead(real(f), p, n, o);
}
int file_write(sqlite3_file* f, const void* p, int n, sqlite3_int64 o) {
  return real(f)->pMethods->xWrite(real(f), p, n, o);
}
int file_truncate(sqlite3_file* f, sqlite3_int64 size) {
  return real(f)->pMethods->xTruncate(real(f), size);
}
int file_sync(sqlite3_file* f, int flags) {
  if (counting(f)->is_wal) ++wal_sync_count;
  return real(f)->pMethods->xSync(real(f), flags);
}
int file_size(sqlite3_file* f, sqlite3_int64* size) {
  return real(f)->pMethods->xFileSize(real(f), size);
}
int file_lock(sqlite3_file* f, int level) { return real(f)->pMethods->xLock(real(f), level); }
int file_unlock(sqlite3_file* f, int level) { return real(f)->pMethods->xUnlock(real(f), level); }
int file_check_reserved(sqlite3_file* f, int* out) {
  return real(f)->pMethods->xCheckReservedLock(real(f), out);
}
int file_control(sqlite3_file* f, int op, void* arg) {
  return real(f)->pMethods->xFileControl(real(f), op, arg);
}
int file_sector_size(sqlite3_file* f) { return real(f)->pMethods->xSectorSize(real(f)); }
int file_device(sqlite3_file* f) { return real(f)->pMethods->xDeviceCharacteristics(real(f)); }
int file_shm_map(sqlite3_file* f, int region, int size, int extend, void volatile** out) {
  return real(f)->pMethods->xShmMap(real(f), region, size, extend, out);
}
int file_shm_lock(sqlite3_file* f, int offset, int n, int flags) {
  return real(f)->pMethods->xShmLock(real(f), offset, n, flags);
}
void file_shm_barrier(sqlite3_file* f) { real(f)->pMethods->xShmBarrier(real(f)); }
int file_shm_unmap(sqlite3_file* f, int delete_flag) {
  return real(f)->pMethods->xShmUnmap(real(f), delete_flag);
}
int file_fetch(sqlite3_file* f, sqlite3_int64 offset, int amount, void** out) {
  return real(f)->pMethods->xFetch(real(f), offset, amount, out);
}
int file_unfetch(sqlite3_file* f, sqlite3_int64 offset, void* p) {
  return real(f)->pMethods->xUnfetch(real(f), offset, p);
}

const sqlite3_io_methods kMethods = {
    3,
    file_close,
    file_read,
    file_write,
    file_truncate,
    file_sync,
    file_size,
    file_lock,
    file_unlock,
    file_check_reserved,
    file_control,
    file_sector_size,
    file_device,
    file_shm_map,
    file_shm_lock,
    file_shm_barrier,
    file_shm_unmap,
    file_fetch,
    file_unfetch,
};

int vfs_open(sqlite3_vfs*, const char* name, sqlite3_file* file, int flags, int* out_flags) {
  CountingFile* mine = counting(file);
  const int rc = real_vfs->xOpen(real_vfs, name, mine->real(), flags, out_flags);
  // SQLite calls xClose only when pMethods is set, so set it only for a real open file.
  mine->base.pMethods = mine->real()->pMethods ? &kMethods : nullptr;
  mine->is_wal = (flags & SQLITE_OPEN_WAL) != 0;
  if ((flags & kTemporaryFile) != 0) ++temp_file_count;
  return rc;
}
int vfs_delete(sqlite3_vfs*, const char* name, int sync_dir) {
  return real_vfs->xDelete(real_vfs, name, sync_dir);
}
int vfs_access(sqlite3_vfs*, const char* name, int flags, int* out) {
  return real_vfs->xAccess(real_vfs, name, flags, out);
}
int vfs_full_pathname(sqlite3_vfs*, const char* name, int n, char* out) {
  return real_vfs->xFullPathname(real_vfs, name, n, out);
}
void* vfs_dl_open(sqlite3_vfs*, const char* path) { return real_vfs->xDlOpen(real_vfs, path); }
void vfs_dl_error(sqlite3_vfs*, int n, char* out) { real_vfs->xDlError(real_vfs, n, out); }
void (*vfs_dl_sym(sqlite3_vfs*, void* handle, const char* symbol))(void) {
  return real_vfs->xDlSym(real_vfs, handle, symbol);
}
void vfs_dl_close(sqlite3_vfs*, void* handle) { real_vfs->xDlClose(real_vfs, handle); }
int vfs_randomness(sqlite3_vfs*, int n, char* out) {
  return real_vfs->xRandomness(real_vfs, n, out);
}
int vfs_sleep(sqlite3_vfs*, int micros) { return real_vfs->xSleep(real_vfs, micros); }
int vfs_current_time(sqlite3_vfs*, double* out) { return real_vfs->xCurrentTime(real_vfs, out); }
int vfs_last_error(sqlite3_vfs*, int n, char* out) {
  return real_vfs->xGetLastError(real_vfs, n, out);
}
int vfs_current_time_int64(sqlite3_vfs*, sqlite3_int64* out) {
  return real_vfs->xCurrentTimeInt64(real_vfs, out);
}

}  // namespace

SyncCountingVfs::SyncCountingVfs() {
  sqlite3_initialize();
  real_vfs = sqlite3_vfs_find(nullptr);
  if (real_vfs == nullptr) throw std::runtime_error("no default SQLite VFS");
  counting_vfs = sqlite3_vfs{};
  counting_vfs.iVersion = 2;
  counting_vfs.szOsFile = static_cast<int>(sizeof(CountingFile)) + real_vfs->szOsFile;
  counting_vfs.mxPathname = real_vfs->mxPathname;
  counting_vfs.zName = "callbackd-sync-counting";
  counting_vfs.xOpen = vfs_open;
  counting_vfs.xDelete = vfs_delete;
  counting_vfs.xAccess = vfs_access;
  counting_vfs.xFullPathname = vfs_full_pathname;
  counting_vfs.xDlOpen = vfs_dl_open;
  counting_vfs.xDlError = vfs_dl_error;
  counting_vfs.xDlSym = vfs_dl_sym;
  counting_vfs.xDlClose = vfs_dl_close;
  counting_vfs.xRandomness = vfs_randomness;
  counting_vfs.xSleep = vfs_sleep;
  counting_vfs.xCurrentTime = vfs_current_time;
  counting_vfs.xGetLastError = vfs_last_error;
  counting_vfs.xCurrentTimeInt64 = vfs_current_time_int64;
  if (sqlite3_vfs_register(&counting_vfs, /*makeDflt=*/1) != SQLITE_OK) {
    throw std::runtime_error("cannot register the counting VFS");
  }
}

SyncCountingVfs::~SyncCountingVfs() {
  sqlite3_vfs_unregister(&counting_vfs);
  sqlite3_vfs_register(real_vfs, /*makeDflt=*/1);
}

std::uint64_t SyncCountingVfs::wal_syncs() const { return wal_sync_count.load(); }
std::uint64_t SyncCountingVfs::temp_files_opened() const { return temp_file_count.load(); }

}  // namespace callbackd::testing
