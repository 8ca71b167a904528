// The addresses of this machine's own interfaces. A callback to one of them reaches a service
// on this host (a listener on 0.0.0.0 or [::] answers on every one), so the network guard
// refuses them like loopback.
#pragma once

#include <array>
#include <chrono>
#include <mutex>
#include <vector>

namespace callbackd {

// Thread-safe. Interfaces come and go (DHCP, containers): the list is read again with
// getifaddrs() when it is older than `max_age`, at the next check.
class OwnAddresses {
 public:
  using Bytes = std::array<unsigned char, 16>;  // IPv6, or IPv4 in its IPv4-mapped form

  explicit OwnAddresses(std::chrono::milliseconds max_age = std::chrono::seconds(1))
      : max_age_(max_age) {}

  bool contains(const Bytes& address);

  // Every address of every interface now (loopback included), IPv4 mapped into IPv6.
  static std::vector<Bytes> read_interfaces();

 private:
  const std::chrono::milliseconds max_age_;
  std::mutex mutex_;
  std::vector<Bytes> addresses_;
  std::chrono::steady_clock::time_point read_at_{};
  bool read_once_ = false;
};

}  // namespace callbackd
