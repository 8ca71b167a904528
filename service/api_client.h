// The CLI's way to the daemon: one HTTP request with libcurl's easy interface.
#pragma once

#include <callbackd/status.h>

#include <string>
#include <string_view>
#include <vector>

namespace callbackd {

struct ApiReply {
  long status = 0;
  std::string body;
  std::vector<std::string> headers;  // "Name: value" lines as received

  // The value of the first header named `name` (any case), or "" when there is none.
  std::string header(std::string_view name) const;
};

// `base_url` like "http://127.0.0.1:7780"; `token` empty for none. kUnavailable when the
// daemon cannot be reached, naming the URL.
// `extra_headers` are "Name: value" lines.
Result<ApiReply> call_api(const std::string& method, const std::string& base_url,
                          const std::string& path, const std::string& token,
                          const std::string& body = "",
                          const std::vector<std::string>& extra_headers = {});

}  // namespace callbackd
