// libFuzzer: configuration files. Any bytes must load or be refused with a message naming the
// source; a loaded configuration must keep the loopback-without-token rule.
#include <boost/asio/ip/address.hpp>
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
    std::string host = config->listen.substr(0, config->listen.rfind(':'));
    if (host.size() >= 2 && host.front() == '[') host = host.substr(1, host.size() - 2);
    boost::system::error_code ec;
    const auto address = boost::asio::ip::make_address(host, ec);
    if (ec || !address.is_loopback()) std::abort();
  }
  return 0;
}
