#include "file_lock.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

namespace callbackd::sqlite {

namespace {

std::string read_holder(int fd) {
  char buffer[32] = {0};
  const ssize_t n = ::pread(fd, buffer, sizeof buffer - 1, 0);
  std::string pid(buffer, n > 0 ? static_cast<std::size_t>(n) : 0);
  while (!pid.empty() && (pid.back() == '\n' || pid.back() == ' ')) pid.pop_back();
  return pid.empty() ? "unknown" : pid;
}

}  // namespace

Result<std::unique_ptr<FileLock>> FileLock::acquire(const std::filesystem::path& path) {
  const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) {
    return Status::Unavailable("lock file \"" + path.string() + "\": " + std::strerror(errno));
  }
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    const int error = errno;
    const std::string holder = error == EWOULDBLOCK ? read_holder(fd) : "";
    ::close(fd);
    if (error == EWOULDBLOCK) {
      return Status::FailedPrecondition("the store is in use by another process (pid " + holder +
                                        ", lock file \"" + path.string() +
                                        "\"); one process per SQLite store");
    }
    return Status::Unavailable("lock file \"" + path.string() + "\": " + std::strerror(error));
  }
  const std::string pid = std::to_string(::getpid()) + "\n";
  // Only a hint for the next opener: a failure to write it does not matter.
  if (::ftruncate(fd, 0) == 0) (void)!::pwrite(fd, pid.data(), pid.size(), 0);
  return std::unique_ptr<FileLock>(new FileLock(fd));
}

FileLock::~FileLock() { ::close(fd_); }  // closing the last descriptor releases the flock

}  // namespace callbackd::sqlite
