#include "callback_url.h"

#include <gtest/gtest.h>

namespace callbackd {
namespace {

TEST(CallbackUrl, AcceptsHttpAndHttpsWithTheirHostKeys) {
  struct Case {
    const char* url;
    const char* host_key;
  } cases[] = {
      {"https://hooks.example.com/cb?x=1", "https://hooks.example.com:443"},
      {"http://Hooks.Example.com:8080/cb", "http://hooks.example.com:8080"},
      {"http://127.0.0.1:9/x", "http://127.0.0.1:9"},
      {"https://[2001:db8::1]/x", "https://[2001:db8::1]:443"},
  };
  for (const auto& c : cases) {
    Result<CallbackUrl> url = parse_callback_url(c.url);
    ASSERT_TRUE(url.ok()) << c.url << ": " << url.status().to_string();
    EXPECT_EQ(url->host_key(), c.host_key);
    EXPECT_EQ(url->url, c.url);
  }
}

TEST(CallbackUrl, RefusesHostileOrMalformedUrlsNamingTheField) {
  struct Case {
    std::string url;
    const char* why;
  } cases[] = {
      {"", "must not be empty"},
      {"ftp://example.com/x", "scheme must be http or https"},
      {"file:///etc/passwd", "scheme must be http or https"},
      {"gopher://example.com/", "scheme must be http or https"},
      {"https://user:pw@example.com/", "must not contain credentials (user-info)"},
      {"https://user@example.com/", "must not contain credentials (user-info)"},
      {"https://example.com/a\r\nX-Injected: 1", "must not contain spaces or control characters"},
      {"https://example.com/a b", "must not contain spaces or control characters"},
      {"https://example.com/\x01", "must not contain spaces or control characters"},
      {"example.com/path", "not an absolute http(s) URL"},
      {"https://", "not an absolute http(s) URL"},
      {"https://example.com/" + std::string(kMaxCallbackUrlLength, 'a'), "longer than 2048 bytes"},
  };
  for (const auto& c : cases) {
    Result<CallbackUrl> url = parse_callback_url(c.url);
    ASSERT_FALSE(url.ok()) << c.url;
    EXPECT_EQ(url.status().code(), StatusCode::kInvalidArgument);
    EXPECT_EQ(url.status().message(), std::string("callback_url: ") + c.why) << c.url;
  }
}

}  // namespace
}  // namespace callbackd
