// POST /v1/callbacks bodies: JSON in, a validated callback request out. Untrusted input: every
// problem is reported naming its field, and nothing here touches storage.
#pragma once

#include <callbackd/payload.h>
#include <callbackd/status.h>

#include <string>
#include <string_view>

namespace callbackd {

// The six task endpoints that send callbacks.
inline constexpr std::string_view kCallbackEndpoints[] = {"generate", "cover",      "remaster",
                                                          "soundfx",  "add-vocals", "infill"};
// The audio-processing endpoints: synchronous, they never send a callback.
inline constexpr std::string_view kSynchronousEndpoints[] = {"stem", "midi", "timeline", "waveform",
                                                             "wav"};

// Task ids are keys the pipeline chose; anything longer is a mistake, not an id.
inline constexpr std::size_t kMaxTaskIdBytes = 256;

struct CallbackRequest {
  std::string app_id;
  std::string callback_url;
  std::string endpoint;  // empty when not given
  TaskResult task;
};

enum class IngestError {
  kMalformedJson,        // not JSON, or not an object
  kInvalidField,         // missing, wrong type, not allowed for the status, unknown field
  kUnsupportedEndpoint,  // a synchronous endpoint: cannot have a callback (HTTP 422)
};

struct IngestProblem {
  IngestError kind;
  std::string message;  // names the field: "results[0].duration: must be a number"
};

// Parses and checks the body. On success the task is ready for build_callback_body.
// A plain body takes the fast path (plain_callback_parser.h); any other goes through
// parse_callback_request_fully, which names every problem.
std::variant<CallbackRequest, IngestProblem> parse_callback_request(std::string_view body);
// The full parse (nlohmann's, bounded by json_shape.h): what the fast path must agree with.
std::variant<CallbackRequest, IngestProblem> parse_callback_request_fully(std::string_view body);

}  // namespace callbackd
