// The body a customer receives, exactly as the seed document specifies it.
#pragma once

#include <callbackd/status.h>

#include <cstdint>
#include <string>
#include <vector>

namespace callbackd {

// One generated music item of a completed task (the seed's results[] element).
struct Track {
  std::string id;
  std::string audio_url;
  std::string image_url;
  std::string title;
  double duration = 0;  // seconds
  std::string tags;
  std::string prompt;
  std::int64_t expire_at = 0;  // Unix time in milliseconds when the files expire
};

enum class TaskStatus { kCompleted, kFailed };

// A finished task as the pipeline hands it over.
struct TaskResult {
  std::string task_id;
  TaskStatus status = TaskStatus::kCompleted;
  std::vector<Track> results;  // only when completed
  std::string error;           // only when failed
};

// Serializes the callback body: {"task_id","status","results":[...]} for a completed task or
// {"task_id","status","error"} for a failed one, fields in the seed's order, no whitespace.
// Fails with kInvalidArgument naming the field when task_id is empty, a failed task has no
// error or carries results, a completed task carries an error, or a duration is not finite.
Result<std::string> build_callback_body(const TaskResult& task);

}  // namespace callbackd
