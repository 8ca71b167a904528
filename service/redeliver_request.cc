#include "redeliver_request.h"

#include <nlohmann/json.hpp>

#include "json_shape.h"
#include "json_views.h"
#include "units.h"

namespace callbackd {

std::variant<RedeliverFilter, RequestProblem> parse_redeliver_request(std::string_view body,
                                                                      TimePoint now) {
  RedeliverFilter filter;
  if (body.find_first_not_of(" \t\r\n") == std::string_view::npos) return filter;
  const auto invalid = [](std::string message) {
    return RequestProblem{"invalid_field", std::move(message)};
  };
  if (std::optional<JsonProblem> problem = check_json_shape(body)) {
    const bool names_a_field = problem->kind == JsonProblemKind::kDuplicateKey;
    return RequestProblem{names_a_field ? "invalid_field" : "malformed_json", problem->message};
  }
  const nlohmann::json json = nlohmann::json::parse(body, nullptr, false);
  if (json.is_discarded() || !json.is_object()) {
    return RequestProblem{"malformed_json", "body: must be a JSON object"};
  }
  for (const auto& [key, value] : json.items()) {
    if (key == "limit") {
      if (!value.is_number_integer() || value.get<std::int64_t>() < 1 ||
          value.get<std::int64_t>() > 1000) {
        return invalid("limit: must be a number from 1 to 1000");
      }
      filter.limit = value.get<std::size_t>();
      continue;
    }
    const bool is_time = key == "since" || key == "until";
    if (key != "state" && key != "app_id" && key != "cursor" && !is_time) {
      return invalid(key + ": unknown field");
    }
    if (!value.is_string()) return invalid(key + ": must be a string");
    const std::string text = value.get<std::string>();
    if (key == "state") {
      const std::optional<DeliveryState> state = parse_delivery_state(text);
      if (state != DeliveryState::kDead && state != DeliveryState::kDelivered) {
        return invalid("state: must be dead or delivered");
      }
      filter.state = *state;
    } else if (key == "app_id") {
      filter.app_id = text;
    } else if (key == "cursor") {
      filter.cursor = text;
    } else {
      // An age ("2h": two hours before now) or a time.
      std::optional<TimePoint> time = parse_rfc3339(text);
      if (std::optional<Millis> age = parse_duration(text)) time = now - *age;
      if (!time) {
        return invalid(key + ": must be an age such as 2h or an RFC 3339 time such as " +
                       "2026-11-24T09:00:00Z");
      }
      (key == "since" ? filter.finished_since : filter.finished_until) = time;
    }
  }
  if (filter.finished_since && filter.finished_until &&
      *filter.finished_until < *filter.finished_since) {
    return invalid("until: before since");
  }
  return filter;
}

}  // namespace callbackd
