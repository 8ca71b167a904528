// libFuzzer: customer callback URLs. Any bytes must be refused with a message naming
// callback_url, or accepted as http(s) with a host and no credentials or control characters;
// the guard must judge any literal address without crashing.
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "intake/callback_url.h"
#include "intake/network_guard.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  callbackd::Result<callbackd::CallbackUrl> url = callbackd::parse_callback_url(input);
  if (!url.ok()) {
    if (url.status().message().rfind("callback_url: ", 0) != 0) std::abort();
    return 0;
  }
  if (url->scheme != "http" && url->scheme != "https") std::abort();
  if (url->host.empty()) std::abort();
  for (unsigned char c : url->url) {
    if (c <= 0x20 || c == 0x7f) std::abort();
  }
  static const auto guard = *callbackd::NetworkGuard::create({"127.0.0.0/8"});
  if (auto address = url->literal_address()) (void)guard.refusal(*address);
  return 0;
}
