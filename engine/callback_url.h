// Customer callback URLs are untrusted input: parse and check them before anything is stored.
#pragma once

#include <callbackd/status.h>

#include <string>
#include <string_view>

namespace callbackd {

inline constexpr std::size_t kMaxCallbackUrlLength = 2048;

struct CallbackUrl {
  std::string url;     // as given (it passed every check)
  std::string scheme;  // "http" or "https"
  std::string host;    // lowercase; IPv6 literals keep their brackets
  int port = 0;        // explicit or the scheme's default
  // "host:port": the unit of the per-host concurrency cap.
  std::string host_key() const { return host + ":" + std::to_string(port); }
};

// kInvalidArgument naming "callback_url" when the URL is empty, longer than
// kMaxCallbackUrlLength, contains spaces or control characters (CR/LF included), is not
// absolute http(s), carries credentials (user-info), or has no host.
Result<CallbackUrl> parse_callback_url(std::string_view text);

}  // namespace callbackd
