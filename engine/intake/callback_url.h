// Customer callback URLs are untrusted input: parse and check them before anything is stored.
#pragma once

#include <callbackd/status.h>

#include <boost/asio/ip/address.hpp>
#include <optional>
#include <string>
#include <string_view>

namespace callbackd {

inline constexpr std::size_t kMaxCallbackUrlLength = 2048;

struct CallbackUrl {
  std::string url;     // as given (it passed every check)
  std::string scheme;  // "http" or "https"
  std::string host;    // lowercase; IPv6 literals keep their brackets
  int port = 0;        // explicit or the scheme's default
  // "scheme://host:port": the endpoint, unit of the per-host concurrency cap and health.
  std::string host_key() const { return scheme + "://" + host + ":" + std::to_string(port); }
  // The host as an IP address when the URL names one literally (curl has already normalized
  // forms such as 2130706433 or 0x7f.1 to 127.0.0.1); nullopt for a DNS name.
  std::optional<boost::asio::ip::address> literal_address() const;
};

// kInvalidArgument naming "callback_url" when the URL is empty, longer than
// kMaxCallbackUrlLength, contains spaces or control characters (CR/LF included), is not
// absolute http(s), carries credentials (user-info), or has no host.
Result<CallbackUrl> parse_callback_url(std::string_view text);

}  // namespace callbackd
