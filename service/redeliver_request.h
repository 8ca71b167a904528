// The body of POST /v1/callbacks/redeliver (bulk recovery) read into a RedeliverFilter.
#pragma once

#include <callbackd/delivery.h>

#include <string>
#include <string_view>
#include <variant>

namespace callbackd {

// What is wrong with a request, as the API answers it (400 with this code and message).
struct RequestProblem {
  std::string code;     // "malformed_json" or "invalid_field"
  std::string message;  // names the field at fault
};

// {"state"?,"app_id"?,"since"?,"until"?,"limit"?,"cursor"?}; an empty body means every default
// (dead deliveries, any app, any time, 1000 a call). since/until are RFC 3339 times or ages
// ("2h": two hours before `now`).
std::variant<RedeliverFilter, RequestProblem> parse_redeliver_request(std::string_view body,
                                                                      TimePoint now);

}  // namespace callbackd
