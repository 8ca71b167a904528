#include "intake/own_addresses.h"

#include <ifaddrs.h>
#include <netinet/in.h>

#include <algorithm>
#include <cstring>

namespace callbackd {

std::vector<OwnAddresses::Bytes> OwnAddresses::read_interfaces() {
  std::vector<Bytes> found;
  ifaddrs* list = nullptr;
  if (getifaddrs(&list) != 0) return found;
  for (const ifaddrs* i = list; i != nullptr; i = i->ifa_next) {
    if (i->ifa_addr == nullptr) continue;
    Bytes b{};
    if (i->ifa_addr->sa_family == AF_INET) {
      const auto* v4 = reinterpret_cast<const sockaddr_in*>(i->ifa_addr);
      b[10] = b[11] = 0xff;
      std::memcpy(b.data() + 12, &v4->sin_addr, 4);
    } else if (i->ifa_addr->sa_family == AF_INET6) {
      const auto* v6 = reinterpret_cast<const sockaddr_in6*>(i->ifa_addr);
      std::memcpy(b.data(), &v6->sin6_addr, 16);
    } else {
      continue;
    }
    found.push_back(b);
  }
  freeifaddrs(list);
  return found;
}

bool OwnAddresses::contains(const Bytes& address) {
  std::lock_guard lock(mutex_);
  const auto now = std::chrono::steady_clock::now();
  // A fresh list at most every max_age_: a check costs a short scan, not a netlink dump.
  if (!read_once_ || now - read_at_ >= max_age_) {
    addresses_ = read_interfaces();
    read_at_ = now;
    read_once_ = true;
  }
  return std::find(addresses_.begin(), addresses_.end(), address) != addresses_.end();
}

}  // namespace callbackd
