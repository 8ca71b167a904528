// The callback body: the seed's contract, byte for byte.
#include <callbackd/payload.h>
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <vector>

namespace callbackd {
namespace {

TaskResult completed_task() {
  TaskResult task;
  task.task_id = "task_8f3a";
  task.status = TaskStatus::kCompleted;
  task.results.push_back(Track{"clip_1", "https://cdn.example/1.mp3", "https://cdn.example/1.jpg",
                               "Night Drive", 182.5, "synthwave, retro",
                               "[Verse]\nNeon \"lights\" café", 1767225600000});
  task.results.push_back(Track{"clip_2", "https://cdn.example/2.mp3", "https://cdn.example/2.jpg",
                               "Night Drive (alt)", 180.0, "synthwave", "", 1767225600001});
  return task;
}

TEST(Payload, CompletedTaskBytesAreExact) {
  Result<std::string> body = build_callback_body(completed_task());
  ASSERT_TRUE(body.ok()) << body.status().to_string();
  EXPECT_EQ(*body,
            R"({"task_id":"task_8f3a","status":"completed","results":[)"
            R"({"id":"clip_1","audio_url":"https://cdn.example/1.mp3",)"
            R"("image_url":"https://cdn.example/1.jpg","title":"Night Drive","duration":182.5,)"
            R"("tags":"synthwave, retro","prompt":"[Verse]\nNeon \"lights\" café",)"
            R"("expire_at":1767225600000},)"
            R"({"id":"clip_2","audio_url":"https://cdn.example/2.mp3",)"
            R"json("image_url":"https://cdn.example/2.jpg","title":"Night Drive (alt)",)json"
            R"("duration":180.0,"tags":"synthwave","prompt":"","expire_at":1767225600001}]})");
}

TEST(Payload, FailedTaskBytesAreExact) {
  TaskResult task;
  task.task_id = "task_9";
  task.status = TaskStatus::kFailed;
  task.error = "content policy: lyrics rejected";
  Result<std::string> body = build_callback_body(task);
  ASSERT_TRUE(body.ok());
  EXPECT_EQ(*body,
            R"({"task_id":"task_9","status":"failed","error":"content policy: lyrics rejected"})");
}

TEST(Payload, TypesAreTheSeedsTypes) {
  auto json = nlohmann::json::parse(*build_callback_body(completed_task()));
  const auto& item = json["results"][0];
  EXPECT_TRUE(item["duration"].is_number_float());
  EXPECT_TRUE(item["expire_at"].is_number_integer());
  for (const char* field : {"id", "audio_url", "image_url", "title", "tags", "prompt"}) {
    EXPECT_TRUE(item[field].is_string()) << field;
  }
  EXPECT_FALSE(json.contains("error"));
}

TEST(Payload, SameInputSameBytes) {
  EXPECT_EQ(*build_callback_body(completed_task()), *build_callback_body(completed_task()));
}

TEST(Payload, CompletedWithNoResultsHasAnEmptyArray) {
  TaskResult task;
  task.task_id = "t";
  EXPECT_EQ(*build_callback_body(task), R"({"task_id":"t","status":"completed","results":[]})");
}

struct BadTask {
  const char* name;
  TaskResult task;
  const char* message;
};

TEST(Payload, BadInputNamesTheField) {
  TaskResult no_id = completed_task();
  no_id.task_id.clear();
  TaskResult failed_without_error;
  failed_without_error.task_id = "t";
  failed_without_error.status = TaskStatus::kFailed;
  TaskResult failed_with_results = completed_task();
  failed_with_results.status = TaskStatus::kFailed;
  failed_with_results.error = "x";
  TaskResult completed_with_error = completed_task();
  completed_with_error.error = "x";
  TaskResult nan_duration = completed_task();
  nan_duration.results[1].duration = std::numeric_limits<double>::quiet_NaN();
  TaskResult negative_duration = completed_task();
  negative_duration.results[0].duration = -1;
  TaskResult bad_utf8 = completed_task();
  bad_utf8.results[1].title = "\xff\xfe";

  const BadTask cases[] = {
      {"empty task_id", no_id, "invalid_argument: task_id: must not be empty"},
      {"failed without error", failed_without_error,
       "invalid_argument: error: required when status is \"failed\""},
      {"failed with results", failed_with_results,
       "invalid_argument: results: only allowed when status is \"completed\""},
      {"completed with error", completed_with_error,
       "invalid_argument: error: only allowed when status is \"failed\""},
      {"NaN duration", nan_duration,
       "invalid_argument: results[1].duration: must be a finite number >= 0"},
      {"negative duration", negative_duration,
       "invalid_argument: results[0].duration: must be a finite number >= 0"},
      {"invalid UTF-8", bad_utf8, "invalid_argument: results[1].title: not valid UTF-8"},
  };
  for (const auto& c : cases) {
    Result<std::string> body = build_callback_body(c.task);
    ASSERT_FALSE(body.ok()) << c.name;
    EXPECT_EQ(body.status().to_string(), c.message) << c.name;
  }
}

// The body as the engine first built it, through nlohmann's ordered_json: the writer must give
// the same bytes (receivers that compare bodies across versions see no change).
std::string nlohmann_body(const TaskResult& task) {
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

TEST(Payload, BytesAreNlohmannsDumpForAnyText) {
  std::mt19937_64 random(20261130);
  // Every byte below 0x80 (the escapes, control characters, DEL), and multi-byte UTF-8.
  const std::vector<std::string> pieces = [] {
    std::vector<std::string> p;
    for (int c = 0; c < 0x80; ++c) p.emplace_back(1, static_cast<char>(c));
    for (const char* utf8 : {"\xc3\xa9", "\xe2\x82\xac", "\xf0\x9f\x8e\xb5", "\xe2\x80\xa8"}) {
      p.emplace_back(utf8);
    }
    return p;
  }();
  const auto text = [&](std::size_t max_pieces) {
    std::string out;
    for (std::size_t n = random() % (max_pieces + 1); n > 0; --n)
      out += pieces[random() % pieces.size()];
    return out;
  };
  const double durations[] = {0.0,
                              -0.0,
                              182.5,
                              1.0,
                              0.1,
                              1e-7,
                              123456789.125,
                              1e21,
                              1e300,
                              std::numeric_limits<double>::denorm_min(),
                              std::numeric_limits<double>::max()};
  const std::int64_t expiries[] = {0, -1, 1767225600000, std::numeric_limits<std::int64_t>::min(),
                                   std::numeric_limits<std::int64_t>::max()};
  for (int round = 0; round < 2000; ++round) {
    TaskResult task;
    task.task_id = "t" + text(8);
    if (round % 5 == 0) {
      task.status = TaskStatus::kFailed;
      task.error = "e" + text(40);
    } else {
      for (std::size_t n = random() % 3; n > 0; --n) {
        Track t{text(6), text(20), text(20), text(12), 0, text(8), text(60), 0};
        t.duration = round % 2 ? durations[random() % std::size(durations)]
                               : std::ldexp(static_cast<double>(random() >> 11), -(random() % 60));
        t.expire_at = round % 3 ? expiries[random() % std::size(expiries)]
                                : static_cast<std::int64_t>(random());
        task.results.push_back(std::move(t));
      }
    }
    Result<std::string> body = build_callback_body(task);
    ASSERT_TRUE(body.ok()) << body.status().to_string();
    ASSERT_EQ(*body, nlohmann_body(task));
  }
}

}  // namespace
}  // namespace callbackd
