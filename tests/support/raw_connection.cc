#include "raw_connection.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <utility>

namespace callbackd::testing {
namespace {

enum class ReadResult { kData, kClosed, kTimedOut };

// Reads what arrives before `until`.
ReadResult read_some(int fd, std::string& into, std::chrono::steady_clock::time_point until) {
  const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
      until - std::chrono::steady_clock::now());
  if (left.count() <= 0) return ReadResult::kTimedOut;
  pollfd p{fd, POLLIN, 0};
  if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) return ReadResult::kTimedOut;
  char buffer[8192];
  const ssize_t n = ::recv(fd, buffer, sizeof buffer, 0);
  if (n <= 0) return ReadResult::kClosed;  // a reset counts as closed too
  into.append(buffer, static_cast<std::size_t>(n));
  return ReadResult::kData;
}

}  // namespace

RawConnection::RawConnection(std::uint16_t port) {
  fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd_ < 0) return;
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(port);
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd_, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0) {
    ::close(fd_);
    fd_ = -1;
  }
}

RawConnection::~RawConnection() {
  if (fd_ >= 0) ::close(fd_);
}

RawConnection::RawConnection(RawConnection&& other) noexcept
    : fd_(other.fd_), received_(std::move(other.received_)) {
  other.fd_ = -1;
}

bool RawConnection::send(std::string_view bytes) {
  while (!bytes.empty()) {
    const ssize_t n = ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL);
    if (n <= 0) return false;
    bytes.remove_prefix(static_cast<std::size_t>(n));
  }
  return true;
}

std::optional<std::string> RawConnection::read_until_closed(std::chrono::milliseconds timeout) {
  const auto until = std::chrono::steady_clock::now() + timeout;
  ReadResult result = ReadResult::kData;
  while (result == ReadResult::kData) result = read_some(fd_, received_, until);
  if (result == ReadResult::kTimedOut) return std::nullopt;
  return std::exchange(received_, {});
}

std::optional<std::string> RawConnection::read_until(std::string_view text,
                                                     std::chrono::milliseconds timeout) {
  const auto until = std::chrono::steady_clock::now() + timeout;
  while (received_.find(text) == std::string::npos) {
    if (read_some(fd_, received_, until) != ReadResult::kData) return std::nullopt;
  }
  const std::size_t end = received_.find(text) + text.size();
  std::string head = received_.substr(0, end);
  received_.erase(0, end);
  return head;
}

}  // namespace callbackd::testing
