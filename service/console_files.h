// The web console (console/ in the repository, compiled into the binary): static files served
// at /console/ without a token — they hold no data; every API call the console makes carries
// the operator's bearer token.
#pragma once

#include <optional>
#include <string_view>

#include "api.h"

namespace callbackd {

// The response for `path` when it belongs to the console ("/", "/console", "/console/…"),
// else nullopt. GET and HEAD only; "/" and "/console" redirect to "/console/".
std::optional<ApiResponse> console_response(std::string_view method, std::string_view path);

}  // namespace callbackd
