// POST /v1/callbacks bodies as the pipeline sends them, for black-box tests and benchmarks.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

namespace callbackd::testing {

// A completed generation with one track, for `app_id`'s task `task_id`.
inline nlohmann::json completed_callback(const std::string& app_id, const std::string& url,
                                         const std::string& task_id) {
  return {{"app_id", app_id},
          {"callback_url", url},
          {"task_id", task_id},
          {"status", "completed"},
          {"endpoint", "generate"},
          {"results",
           {{{"id", "clip_1"},
             {"audio_url", "https://cdn.example/1.mp3"},
             {"image_url", "https://cdn.example/1.jpg"},
             {"title", "Night Drive"},
             {"duration", 182.5},
             {"tags", "synthwave"},
             {"prompt", "[Verse] neon"},
             {"expire_at", 1767225600000}}}}};
}

}  // namespace callbackd::testing
