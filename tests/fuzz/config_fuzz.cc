// libFuzzer: configuration files. Any bytes must load or be refused with a message naming the
// source; a loaded configuration must keep the loopback-without-token rule.
#include <cstdint>
#include <cstdlib>
#include <string>

#include "config.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  callbackd::ConfigSources sources;
  sources.file_text = std::string(reinterpret_cast<const char*>(data), size);
  callbackd::Result<callbackd::Config> config = callbackd::load_config(sources);
  if (!config.ok()) {
    if (config.status().message().empty()) std::abort();
    return 0;
  }
  if (config->api_token.empty()) {
    // A non-loopback address without a token must never load.
    callbackd::Result<callbackd::ListenAddress> listen =
        callbackd::parse_listen_address(config->listen);
    if (!listen.ok() || !listen->address.is_loopback()) std::abort();
  }
  return 0;
}
