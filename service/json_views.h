// How API responses look: deliveries, attempts and errors as JSON.
#pragma once

#include <callbackd/delivery.h>
#include <callbackd/endpoint_health.h>

#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>

namespace callbackd {

// "2026-11-24T09:00:00.123Z"
std::string rfc3339(TimePoint time);
// The reverse, for times given to the API: "2026-11-24T09:00:00Z", with an optional fraction
// (kept to the millisecond) and "Z" or an offset ("+02:00"). nullopt when malformed.
std::optional<TimePoint> parse_rfc3339(std::string_view text);

// {"delivery_id","app_id","task_id","callback_url","state","attempts":[...],"next_attempt_at",
//  "created_at"}
nlohmann::ordered_json delivery_json(const Delivery& delivery);

// {"endpoint","state","attempts","failures","failure_rate","success_rate","last_error",
//  "last_failure_at","opened_at","next_probe_at","in_flight","waiting"}
// `waiting`: the endpoint's pending deliveries in the store.
nlohmann::ordered_json endpoint_json(const EndpointHealth& endpoint, std::size_t waiting);

// {"error":{"code":…,"message":…}}
std::string error_json(std::string_view code, std::string_view message);

}  // namespace callbackd
