#include "unreachable_hosts.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <stdexcept>

namespace callbackd::testing {

namespace {

constexpr int kFillers = 4;

sockaddr_in loopback(std::uint16_t port) {
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(port);
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  return address;
}

}  // namespace

UnreachableHosts::UnreachableHosts() {
  listener_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in any{};
  any.sin_family = AF_INET;
  any.sin_addr.s_addr = htonl(INADDR_ANY);
  socklen_t length = sizeof any;
  if (listener_ < 0 || ::bind(listener_, reinterpret_cast<sockaddr*>(&any), sizeof any) != 0 ||
      ::listen(listener_, 0) != 0 ||
      ::getsockname(listener_, reinterpret_cast<sockaddr*>(&any), &length) != 0) {
    throw std::runtime_error("UnreachableHosts: cannot listen");
  }
  port_ = ntohs(any.sin_port);
  // Fill the accept queue; the connections stay unaccepted for the object's life.
  const sockaddr_in target = loopback(port_);
  for (int i = 0; i < kFillers; ++i) {
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    (void)::connect(fd, reinterpret_cast<const sockaddr*>(&target), sizeof target);
    fillers_.push_back(fd);
  }
  // The first handshake completes into the queue, which is then full: wait for it.
  pollfd first{fillers_.front(), POLLOUT, 0};
  if (::poll(&first, 1, 5000) != 1) throw std::runtime_error("UnreachableHosts: queue not full");
}

UnreachableHosts::~UnreachableHosts() {
  for (int fd : fillers_) ::close(fd);
  if (listener_ >= 0) ::close(listener_);
}

std::string UnreachableHosts::url(std::size_t i) const {
  const std::size_t b = i / 250, c = i % 250 + 1;
  return "http://127.1." + std::to_string(b) + "." + std::to_string(c) + ":" +
         std::to_string(port_) + "/hook";
}

}  // namespace callbackd::testing
