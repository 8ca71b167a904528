// Finished tasks as the pipeline hands them over, for tests.
#pragma once

#include <callbackd/payload.h>

#include <string>

namespace callbackd::testing {

// A completed generation with one track.
inline TaskResult completed_task(std::string task_id) {
  TaskResult task;
  task.task_id = std::move(task_id);
  task.results.push_back(Track{"clip_1", "https://cdn.example/1.mp3", "https://cdn.example/1.jpg",
                               "Night Drive", 182.5, "synthwave", "[Verse] neon", 1767225600000});
  return task;
}

inline TaskResult failed_task(std::string task_id, std::string error = "generation failed") {
  TaskResult task;
  task.task_id = std::move(task_id);
  task.status = TaskStatus::kFailed;
  task.error = std::move(error);
  return task;
}

}  // namespace callbackd::testing
