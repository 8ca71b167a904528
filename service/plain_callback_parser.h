// The fast path of parse_callback_request: one pass over the text, straight into a
// CallbackRequest, for the bodies a pipeline sends every time (ASCII text, simple escapes, the
// documented fields with their types). Anything else, every mistake included, is left to
// parse_callback_request, which names the problem; this never reports one itself.
#pragma once

#include <optional>
#include <string_view>

#include "ingest.h"

namespace callbackd {

// The request parse_callback_request would return for `body`, or nullopt when the body is not
// one this parser takes (then parse_callback_request must decide, and may refuse it).
std::optional<CallbackRequest> parse_plain_callback_request(std::string_view body);

}  // namespace callbackd
