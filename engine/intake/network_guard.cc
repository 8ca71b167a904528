#include "intake/network_guard.h"

#include <boost/asio/ip/network_v4.hpp>
#include <boost/asio/ip/network_v6.hpp>

namespace callbackd {
namespace {

using Bytes = std::array<unsigned char, 16>;
namespace ip = boost::asio::ip;

Bytes mapped(const ip::address_v4& v4) {
  Bytes b{};
  b[10] = b[11] = 0xff;
  const auto four = v4.to_bytes();
  std::copy(four.begin(), four.end(), b.begin() + 12);
  return b;
}

struct Range {
  const char* cidr;
  const char* why;
};

// IPv4 ranges never connected to by default.
constexpr Range kDeniedV4[] = {
    {"0.0.0.0/8", "unspecified"},
    {"10.0.0.0/8", "private"},
    {"100.64.0.0/10", "CGNAT"},
    {"127.0.0.0/8", "loopback"},
    {"169.254.0.0/16", "link-local"},
    {"172.16.0.0/12", "private"},
    {"192.0.0.0/24", "reserved"},
    {"192.168.0.0/16", "private"},
    {"198.18.0.0/15", "reserved"},
    {"224.0.0.0/4", "multicast"},
    {"240.0.0.0/4", "reserved"},
    // RFC 5737: never routed, so a callback there is a probe of someone's internal network.
    {"192.0.2.0/24", "documentation"},
    {"198.51.100.0/24", "documentation"},
    {"203.0.113.0/24", "documentation"},
};

// IPv6 ranges never connected to by default. Those that carry an IPv4 address in a form the
// guard cannot judge (translated, local-use NAT64, Teredo's obfuscated one) are refused whole.
constexpr Range kDeniedV6[] = {
    {"2001:db8::/32", "documentation"},     {"64:ff9b:1::/48", "NAT64 local-use"},
    {"::ffff:0:0:0/96", "IPv4-translated"}, {"2001::/32", "Teredo"},
    {"2001:2::/48", "benchmarking"},        {"100::/64", "discard-only"},
};

// The IPv4 address an IPv6 address stands for, if any.
std::optional<ip::address_v4> embedded_v4(const ip::address_v6& v6) {
  const auto b = v6.to_bytes();
  auto v4_at = [&](int offset) {
    return ip::address_v4(
        ip::address_v4::bytes_type{b[offset], b[offset + 1], b[offset + 2], b[offset + 3]});
  };
  if (v6.is_v4_mapped()) return v4_at(12);  // ::ffff:a.b.c.d
  bool zero_prefix = true;                  // ::a.b.c.d (deprecated)
  for (int i = 0; i < 12; ++i) zero_prefix = zero_prefix && b[i] == 0;
  if (zero_prefix && !v6.is_loopback() && !v6.is_unspecified()) return v4_at(12);
  static const Bytes kNat64{0, 0x64, 0xff, 0x9b};  // 64:ff9b::/96
  if (std::equal(kNat64.begin(), kNat64.begin() + 12, b.begin())) return v4_at(12);
  if (b[0] == 0x20 && b[1] == 0x02) return v4_at(2);  // 6to4 2002:a.b.c.d::/48
  return std::nullopt;
}

std::optional<std::string_view> v4_refusal(const ip::address_v4& v4) {
  const std::uint32_t value = v4.to_uint();
  for (const Range& range : kDeniedV4) {
    const auto network = ip::make_network_v4(range.cidr);
    const std::uint32_t mask =
        network.prefix_length() == 0 ? 0 : ~std::uint32_t{0} << (32 - network.prefix_length());
    if ((value & mask) == network.network().to_uint()) return range.why;
  }
  if (v4 == ip::address_v4::broadcast()) return "broadcast";
  return std::nullopt;
}

std::optional<std::string_view> v6_refusal(const ip::address_v6& v6) {
  if (v6.is_unspecified()) return "unspecified";
  if (v6.is_loopback()) return "loopback";
  if (v6.is_multicast()) return "multicast";
  const auto b = v6.to_bytes();
  static const std::vector<ip::network_v6> denied = [] {
    std::vector<ip::network_v6> networks;
    for (const Range& range : kDeniedV6) networks.push_back(ip::make_network_v6(range.cidr));
    return networks;
  }();
  for (std::size_t i = 0; i < denied.size(); ++i) {
    if (ip::make_network_v6(v6, denied[i].prefix_length()).canonical() == denied[i].canonical()) {
      return kDeniedV6[i].why;
    }
  }
  if ((b[0] & 0xfe) == 0xfc) return "private";                     // fc00::/7
  if (b[0] == 0xfe && (b[1] & 0xc0) == 0x80) return "link-local";  // fe80::/10
  if (b[0] == 0xfe && (b[1] & 0xc0) == 0xc0) return "site-local";  // fec0::/10
  return std::nullopt;
}

}  // namespace

Result<NetworkGuard> NetworkGuard::create(const std::vector<std::string>& allow_networks) {
  NetworkGuard guard;
  for (const std::string& cidr : allow_networks) {
    boost::system::error_code ec;
    Network network;
    if (cidr.find(':') == std::string::npos) {
      const auto v4 = ip::make_network_v4(cidr, ec);
      network.prefix = mapped(v4.network());
      network.bits = 96 + v4.prefix_length();
    } else {
      const auto v6 = ip::make_network_v6(cidr, ec);
      network.prefix = v6.network().to_bytes();
      network.bits = v6.prefix_length();
    }
    if (ec || cidr.find('/') == std::string::npos) {
      return Status::InvalidArgument("allow_networks: \"" + cidr + "\" is not a CIDR network");
    }
    guard.allowed_.push_back(network);
  }
  return guard;
}

bool NetworkGuard::contains(const Network& network, const Bytes& address) {
  int bits = network.bits;
  for (std::size_t i = 0; i < 16 && bits > 0; ++i, bits -= 8) {
    const unsigned char mask = bits >= 8 ? 0xff : static_cast<unsigned char>(0xff << (8 - bits));
    if ((address[i] & mask) != (network.prefix[i] & mask)) return false;
  }
  return true;
}

std::optional<std::string_view> NetworkGuard::refusal(const ip::address& address) const {
  // Judge an IPv6 form of an IPv4 address as that IPv4 address, for the allow-list too.
  std::optional<ip::address_v4> v4;
  if (address.is_v4()) {
    v4 = address.to_v4();
  } else {
    v4 = embedded_v4(address.to_v6());
  }
  const Bytes bytes = v4 ? mapped(*v4) : address.to_v6().to_bytes();
  for (const Network& network : allowed_) {
    if (contains(network, bytes)) return std::nullopt;
  }
  // Before the ranges, so the reason names the real danger (this host) whatever range the
  // address is in; loopback keeps its own name.
  const bool loopback = v4 ? (v4->to_uint() >> 24) == 127 : address.to_v6().is_loopback();
  if (!loopback && own_->contains(bytes)) return "local interface";
  if (v4) return v4_refusal(*v4);
  return v6_refusal(address.to_v6());
}

}  // namespace callbackd
