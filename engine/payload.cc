#include <callbackd/payload.h>

#include <cmath>
#include <nlohmann/json.hpp>

#include "encoding.h"

namespace callbackd {
namespace {

Status check_text(std::string_view field, std::string_view value) {
  if (!is_valid_utf8(value))
    return Status::InvalidArgument(std::string(field) + ": not valid UTF-8");
  return Status::Ok();
}

Status check_track(std::size_t index, const Track& track) {
  const std::string prefix = "results[" + std::to_string(index) + "].";
  const std::pair<const char*, const std::string*> texts[] = {
      {"id", &track.id},       {"audio_url", &track.audio_url}, {"image_url", &track.image_url},
      {"title", &track.title}, {"tags", &track.tags},           {"prompt", &track.prompt},
  };
  for (const auto& [name, value] : texts) {
    if (Status s = check_text(prefix + name, *value); !s.ok()) return s;
  }
  if (!std::isfinite(track.duration) || track.duration < 0) {
    return Status::InvalidArgument(prefix + "duration: must be a finite number >= 0");
  }
  return Status::Ok();
}

Status check_task(const TaskResult& task) {
  if (task.task_id.empty()) return Status::InvalidArgument("task_id: must not be empty");
  if (Status s = check_text("task_id", task.task_id); !s.ok()) return s;
  if (task.status == TaskStatus::kFailed) {
    if (!task.results.empty()) {
      return Status::InvalidArgument("results: only allowed when status is \"completed\"");
    }
    if (task.error.empty()) {
      return Status::InvalidArgument("error: required when status is \"failed\"");
    }
    return check_text("error", task.error);
  }
  if (!task.error.empty()) {
    return Status::InvalidArgument("error: only allowed when status is \"failed\"");
  }
  for (std::size_t i = 0; i < task.results.size(); ++i) {
    if (Status s = check_track(i, task.results[i]); !s.ok()) return s;
  }
  return Status::Ok();
}

}  // namespace

Result<std::string> build_callback_body(const TaskResult& task) {
  if (Status s = check_task(task); !s.ok()) return s;

  // ordered_json keeps the seed's field order, so the bytes are the same for every build.
  nlohmann::ordered_json body;
  body["task_id"] = task.task_id;
  if (task.status == TaskStatus::kFailed) {
    body["status"] = "failed";
    body["error"] = task.error;
  } else {
    body["status"] = "completed";
    auto& results = body["results"] = nlohmann::ordered_json::array();
    for (const Track& t : task.results) {
      results.push_back({{"id", t.id},
                         {"audio_url", t.audio_url},
                         {"image_url", t.image_url},
                         {"title", t.title},
                         {"duration", t.duration},
                         {"tags", t.tags},
                         {"prompt", t.prompt},
                         {"expire_at", t.expire_at}});
    }
  }
  return body.dump();
}

}  // namespace callbackd
