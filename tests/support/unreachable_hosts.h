// Endpoints that are down: a TCP connect to them never completes, so an attempt fails only at
// its timeout, as with a host that drops packets. One listening socket on every local address
// keeps its accept queue full (a few connections it never accepts), so the kernel drops every
// further SYN to that port; each loopback address 127.1.x.y is a different host to callbackd.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace callbackd::testing {

class UnreachableHosts {
 public:
  UnreachableHosts();
  ~UnreachableHosts();
  UnreachableHosts(const UnreachableHosts&) = delete;
  UnreachableHosts& operator=(const UnreachableHosts&) = delete;

  std::uint16_t port() const { return port_; }
  // The callback URL of down host number `i` (0 <= i < 62500): "http://127.1.b.c:<port>/hook".
  std::string url(std::size_t i) const;

 private:
  int listener_ = -1;
  std::uint16_t port_ = 0;
  std::vector<int> fillers_;  // connections that fill the accept queue
};

}  // namespace callbackd::testing
