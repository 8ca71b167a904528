// The network guard's address rules, and the allow-list that opens ranges.
#include "intake/network_guard.h"

#include <gtest/gtest.h>

namespace callbackd {
namespace {

namespace ip = boost::asio::ip;

TEST(NetworkGuard, RefusesEveryForbiddenRangeByDefault) {
  NetworkGuard guard = *NetworkGuard::create({});
  const std::pair<const char*, const char*> refused[] = {
      {"127.0.0.1", "loopback"},
      {"127.255.255.254", "loopback"},
      {"10.1.2.3", "private"},
      {"172.16.0.1", "private"},
      {"172.31.255.255", "private"},
      {"192.168.1.1", "private"},
      {"169.254.169.254", "link-local"},  // cloud metadata
      {"100.64.0.1", "CGNAT"},
      {"100.127.255.255", "CGNAT"},
      {"224.0.0.1", "multicast"},
      {"0.0.0.0", "unspecified"},
      {"255.255.255.255", "reserved"},
      {"::1", "loopback"},
      {"::", "unspecified"},
      {"fc00::1", "private"},
      {"fd12:3456::1", "private"},
      {"fe80::1", "link-local"},
      {"ff02::1", "multicast"},
      {"::ffff:127.0.0.1", "loopback"},  // IPv4-mapped
      {"::ffff:169.254.169.254", "link-local"},
      {"::127.0.0.1", "loopback"},       // IPv4-compatible
      {"64:ff9b::10.0.0.1", "private"},  // NAT64
      {"2002:7f00:1::", "loopback"},     // 6to4 of 127.0.0.1
  };
  for (const auto& [text, why] : refused) {
    auto reason = guard.refusal(ip::make_address(text));
    ASSERT_TRUE(reason.has_value()) << text;
    EXPECT_EQ(*reason, why) << text;
  }
}

TEST(NetworkGuard, AllowsPublicAddresses) {
  NetworkGuard guard = *NetworkGuard::create({});
  for (const char* text : {"93.184.216.34", "8.8.8.8", "172.32.0.1", "100.128.0.1", "11.0.0.1",
                           "2606:4700::1111", "2001:4860:4860::8888", "::ffff:8.8.8.8"}) {
    EXPECT_TRUE(guard.allows(ip::make_address(text))) << text;
  }
}

TEST(NetworkGuard, AllowListOpensRangesIncludingMappedForms) {
  NetworkGuard guard = *NetworkGuard::create({"127.0.0.0/8", "fd00::/8"});
  EXPECT_TRUE(guard.allows(ip::make_address("127.0.0.1")));
  EXPECT_TRUE(guard.allows(ip::make_address("::ffff:127.0.0.1")));
  EXPECT_TRUE(guard.allows(ip::make_address("fd00::5")));
  EXPECT_FALSE(guard.allows(ip::make_address("10.0.0.1")));
  EXPECT_FALSE(guard.allows(ip::make_address("::1")));
  EXPECT_FALSE(guard.allows(ip::make_address("169.254.169.254")));
}

TEST(NetworkGuard, RefusesDocumentationTranslatedNat64LocalAndTeredoRanges) {
  NetworkGuard guard = *NetworkGuard::create({});
  const std::pair<const char*, const char*> refused[] = {
      {"192.0.2.1", "documentation"},
      {"198.51.100.7", "documentation"},
      {"203.0.113.255", "documentation"},
      {"::ffff:203.0.113.9", "documentation"},  // IPv4-mapped form
      {"2001:db8::1", "documentation"},
      {"2001:db8:ffff::1", "documentation"},
      {"64:ff9b:1::8.8.8.8", "NAT64 local-use"},
      {"64:ff9b:1:ffff::1", "NAT64 local-use"},
      {"::ffff:0:8.8.8.8", "IPv4-translated"},  // not ::ffff:8.8.8.8 (mapped)
      {"::ffff:0:127.0.0.1", "IPv4-translated"},
      {"2001:0:4136:e378:8000:63bf:3fff:fdd2", "Teredo"},
      {"2001::1", "Teredo"},
      {"2001:2::1", "benchmarking"},
      {"100::1", "discard-only"},
  };
  for (const auto& [text, why] : refused) {
    auto reason = guard.refusal(ip::make_address(text));
    ASSERT_TRUE(reason.has_value()) << text;
    EXPECT_EQ(*reason, why) << text;
  }
  // Neighbours of those ranges stay open.
  for (const char* text : {"192.0.3.1", "198.51.101.1", "203.0.112.1", "2001:db9::1",
                           "64:ff9b:2::1", "2001:1::1", "2001:3::1", "100:0:0:1::1"}) {
    EXPECT_TRUE(guard.allows(ip::make_address(text))) << text;
  }
}

TEST(NetworkGuard, AllowListOpensTheNewRanges) {
  NetworkGuard guard =
      *NetworkGuard::create({"192.0.2.0/24", "2001:db8::/32", "2001::/32", "::ffff:0:0:0/96"});
  EXPECT_TRUE(guard.allows(ip::make_address("192.0.2.10")));
  EXPECT_TRUE(guard.allows(ip::make_address("2001:db8::1")));
  EXPECT_TRUE(guard.allows(ip::make_address("2001::1")));
  EXPECT_TRUE(guard.allows(ip::make_address("::ffff:0:8.8.8.8")));
  EXPECT_FALSE(guard.allows(ip::make_address("198.51.100.1")));
}

// The machine's real interfaces: a listener on 0.0.0.0 or [::] answers on each of them.
TEST(NetworkGuard, RefusesEveryAddressOfThisMachinesInterfaces) {
  NetworkGuard guard = *NetworkGuard::create({});
  int checked = 0;
  for (const OwnAddresses::Bytes& bytes : OwnAddresses::read_interfaces()) {
    const ip::address_v6 v6(bytes);
    const ip::address address =
        v6.is_v4_mapped() ? ip::address(ip::make_address_v4(ip::v4_mapped, v6)) : ip::address(v6);
    if (address.is_loopback()) continue;
    EXPECT_EQ(guard.refusal(address), std::optional<std::string_view>("local interface"))
        << address.to_string();
    // The allow-list still opens it, like any other range.
    const std::string host = address.to_string();
    NetworkGuard opened = *NetworkGuard::create({host + (address.is_v4() ? "/32" : "/128")});
    EXPECT_TRUE(opened.allows(address)) << host;
    ++checked;
  }
  if (checked == 0) GTEST_SKIP() << "this machine has no interface address besides loopback";
}

TEST(NetworkGuard, BadCidrIsAnErrorNamingIt) {
  for (const char* bad : {"10.0.0.0", "10.0.0.0/33", "banana/8", "fd00::/129"}) {
    Result<NetworkGuard> guard = NetworkGuard::create({bad});
    ASSERT_FALSE(guard.ok()) << bad;
    EXPECT_EQ(guard.status().message(),
              std::string("allow_networks: \"") + bad + "\" is not a CIDR network");
  }
}

}  // namespace
}  // namespace callbackd
