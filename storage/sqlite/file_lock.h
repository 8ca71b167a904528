// One process per store: an exclusive advisory lock (flock) on a lock file beside the data,
// held for as long as the object lives. The holder writes its pid into the file, so a process
// that is refused can say who holds it. The kernel drops the lock when the holder dies, even
// by kill -9, so a stale file never blocks a restart.
#pragma once

#include <callbackd/status.h>

#include <filesystem>
#include <memory>

namespace callbackd::sqlite {

class FileLock {
 public:
  // Takes the lock on `path`, creating the file (mode 0600). kFailedPrecondition naming the
  // holder's pid when another process has it; kUnavailable when the file cannot be opened.
  static Result<std::unique_ptr<FileLock>> acquire(const std::filesystem::path& path);
  ~FileLock();  // releases the lock; the file stays
  FileLock(const FileLock&) = delete;
  FileLock& operator=(const FileLock&) = delete;

 private:
  explicit FileLock(int fd) : fd_(fd) {}
  int fd_;
};

}  // namespace callbackd::sqlite
