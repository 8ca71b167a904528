// Customer URLs are untrusted: by default callbackd does not connect to loopback, private,
// link-local (cloud metadata), CGNAT, multicast, reserved, documentation or unspecified
// addresses, in IPv4 or IPv6 (IPv4-mapped, -compatible, NAT64 and 6to4 forms are judged by the
// IPv4 inside them; IPv4-translated, local-use NAT64 and Teredo are refused whole), nor to any
// address of this machine's own interfaces. An allow-list of CIDRs opens ranges (own
// addresses included). The check runs on the address actually connected to,
// so a name that resolves or rebinds to a forbidden address is still refused.
#pragma once

#include <callbackd/status.h>

#include <boost/asio/ip/address.hpp>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "intake/own_addresses.h"

namespace callbackd {

class NetworkGuard {
 public:
  // kInvalidArgument naming "allow_networks" and the entry when a CIDR does not parse.
  static Result<NetworkGuard> create(const std::vector<std::string>& allow_networks);

  bool allows(const boost::asio::ip::address& address) const { return !refusal(address); }
  // Why the address is refused ("loopback", "private", …), or nullopt when it is allowed.
  std::optional<std::string_view> refusal(const boost::asio::ip::address& address) const;

 private:
  struct Network {
    std::array<unsigned char, 16> prefix{};  // IPv4 networks are stored IPv4-mapped
    int bits = 0;                            // prefix length over the 128-bit form
  };
  static bool contains(const Network& network, const std::array<unsigned char, 16>& address);

  std::vector<Network> allowed_;
  std::shared_ptr<OwnAddresses> own_ = std::make_shared<OwnAddresses>();
};

}  // namespace callbackd
