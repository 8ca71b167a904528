// The network guard's address rules, and the allow-list that opens ranges.
#include "network_guard.h"

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
