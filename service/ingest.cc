#include "ingest.h"

#include <algorithm>
#include <nlohmann/json.hpp>

#include "json_shape.h"
#include "plain_callback_parser.h"

namespace callbackd {
namespace {

using nlohmann::json;

IngestProblem invalid(std::string message) {
  return {IngestError::kInvalidField, std::move(message)};
}

// Every field of the object must be one of `allowed`.
std::optional<IngestProblem> check_known_fields(const json& object, std::string_view prefix,
                                                std::initializer_list<std::string_view> allowed) {
  for (const auto& [key, value] : object.items()) {
    if (std::find(allowed.begin(), allowed.end(), key) == allowed.end()) {
      return invalid(std::string(prefix) + key + ": unknown field");
    }
  }
  return std::nullopt;
}

std::optional<IngestProblem> read_string(const json& object, std::string_view prefix,
                                         const char* field, std::string& out) {
  auto it = object.find(field);
  if (it == object.end()) return invalid(std::string(prefix) + field + ": required");
  if (!it->is_string()) return invalid(std::string(prefix) + field + ": must be a string");
  out = it->get<std::string>();
  return std::nullopt;
}

std::optional<IngestProblem> read_track(const json& item, const std::string& prefix, Track& track) {
  if (!item.is_object())
    return invalid(prefix.substr(0, prefix.size() - 1) + ": must be an object");
  if (auto p = check_known_fields(
          item, prefix,
          {"id", "audio_url", "image_url", "title", "duration", "tags", "prompt", "expire_at"})) {
    return p;
  }
  const std::pair<const char*, std::string*> texts[] = {
      {"id", &track.id},       {"audio_url", &track.audio_url}, {"image_url", &track.image_url},
      {"title", &track.title}, {"tags", &track.tags},           {"prompt", &track.prompt},
  };
  for (const auto& [field, out] : texts) {
    if (auto p = read_string(item, prefix, field, *out)) return p;
  }
  auto duration = item.find("duration");
  if (duration == item.end()) return invalid(prefix + "duration: required");
  if (!duration->is_number()) return invalid(prefix + "duration: must be a number");
  track.duration = duration->get<double>();
  auto expire_at = item.find("expire_at");
  if (expire_at == item.end()) return invalid(prefix + "expire_at: required");
  if (!expire_at->is_number_integer()) {
    return invalid(prefix + "expire_at: must be an integer (Unix milliseconds)");
  }
  if (expire_at->is_number_unsigned() && expire_at->get<std::uint64_t>() > INT64_MAX) {
    return invalid(prefix + "expire_at: out of range");
  }
  track.expire_at = expire_at->get<std::int64_t>();
  return std::nullopt;
}

}  // namespace

std::variant<CallbackRequest, IngestProblem> parse_callback_request(std::string_view body) {
  if (std::optional<CallbackRequest> plain = parse_plain_callback_request(body)) {
    return std::move(*plain);
  }
  return parse_callback_request_fully(body);
}

std::variant<CallbackRequest, IngestProblem> parse_callback_request_fully(std::string_view body) {
  std::variant<json, JsonProblem> parsed = parse_checked_json(body);
  if (auto* problem = std::get_if<JsonProblem>(&parsed)) {
    const bool names_a_field = problem->kind == JsonProblemKind::kDuplicateKey;
    return IngestProblem{names_a_field ? IngestError::kInvalidField : IngestError::kMalformedJson,
                         std::move(problem->message)};
  }
  const json& root = std::get<json>(parsed);
  if (!root.is_object()) {
    return IngestProblem{IngestError::kMalformedJson, "body: must be a JSON object"};
  }
  if (auto p = check_known_fields(
          root, "",
          {"app_id", "callback_url", "task_id", "status", "results", "error", "endpoint"})) {
    return *p;
  }

  CallbackRequest request;
  if (auto p = read_string(root, "", "app_id", request.app_id)) return *p;
  if (request.app_id.empty()) return invalid("app_id: must not be empty");
  if (auto p = read_string(root, "", "callback_url", request.callback_url)) return *p;
  if (auto p = read_string(root, "", "task_id", request.task.task_id)) return *p;
  if (request.task.task_id.size() > kMaxTaskIdBytes) {
    return invalid("task_id: longer than " + std::to_string(kMaxTaskIdBytes) + " bytes");
  }

  if (root.contains("endpoint")) {
    if (auto p = read_string(root, "", "endpoint", request.endpoint)) return *p;
    const auto& e = request.endpoint;
    if (std::find(std::begin(kSynchronousEndpoints), std::end(kSynchronousEndpoints), e) !=
        std::end(kSynchronousEndpoints)) {
      return IngestProblem{IngestError::kUnsupportedEndpoint,
                           "endpoint: \"" + e + "\" is synchronous and does not send callbacks"};
    }
    if (std::find(std::begin(kCallbackEndpoints), std::end(kCallbackEndpoints), e) ==
        std::end(kCallbackEndpoints)) {
      return invalid(
          "endpoint: must be one of generate, cover, remaster, soundfx, add-vocals, "
          "infill");
    }
  }

  std::string status;
  if (auto p = read_string(root, "", "status", status)) return *p;
  if (status == "completed") {
    request.task.status = TaskStatus::kCompleted;
    if (root.contains("error")) return invalid("error: only allowed when status is \"failed\"");
    auto results = root.find("results");
    if (results == root.end()) return invalid("results: required when status is \"completed\"");
    if (!results->is_array()) return invalid("results: must be an array");
    for (std::size_t i = 0; i < results->size(); ++i) {
      Track track;
      if (auto p = read_track((*results)[i], "results[" + std::to_string(i) + "].", track)) {
        return *p;
      }
      request.task.results.push_back(std::move(track));
    }
  } else if (status == "failed") {
    request.task.status = TaskStatus::kFailed;
    if (root.contains("results")) {
      return invalid("results: only allowed when status is \"completed\"");
    }
    if (auto p = read_string(root, "", "error", request.task.error)) return *p;
  } else {
    return invalid("status: must be \"completed\" or \"failed\"");
  }
  return request;
}

}  // namespace callbackd
