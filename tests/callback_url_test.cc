#include "intake/callback_url.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

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

// Each thread remembers the URLs it parsed last: whatever came before, and however many, the
// same text gets the same answer, including a refusal right after a look-alike was accepted.
TEST(CallbackUrl, TheAnswerDependsOnTheTextAloneWhateverWasParsedBefore) {
  std::vector<std::string> urls;
  for (int i = 0; i < 20; ++i) {
    urls.push_back("https://h" + std::to_string(i % 5) +
                   ".example.com:" + std::to_string(8000 + i) + "/cb");
  }
  for (int round = 0; round < 3; ++round) {
    for (std::size_t i = 0; i < urls.size(); i += (round + 1)) {
      Result<CallbackUrl> url = parse_callback_url(urls[i]);
      ASSERT_TRUE(url.ok()) << urls[i];
      EXPECT_EQ(url->url, urls[i]);
      EXPECT_EQ(url->host_key(),
                "https://h" + std::to_string(i % 5) + ".example.com:" + std::to_string(8000 + i));
    }
  }
  ASSERT_TRUE(parse_callback_url("https://example.com/a").ok());
  for (const char* hostile : {"https://example.com/a ", "https://user@example.com/a",
                              "ftp://example.com/a", "https://example.com/a\r\n"}) {
    EXPECT_FALSE(parse_callback_url(hostile).ok()) << hostile;
  }
  EXPECT_EQ(parse_callback_url("HTTPS://EXAMPLE.com/a")->url, "HTTPS://EXAMPLE.com/a");
}

}  // namespace
}  // namespace callbackd
