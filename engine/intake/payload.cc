#include <callbackd/payload.h>

#include <array>
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

namespace {

// JSON text written straight into the body, byte for byte what nlohmann's dump() writes (the
// engine used to build an ordered_json and dump it; payload_test holds the two side by side):
// no whitespace, strings as UTF-8 with only '"', '\\' and control characters escaped,
// integers in decimal, a double as its shortest round-trip form.
class BodyWriter {
 public:
  explicit BodyWriter(std::string& out) : out_(out) {}

  void key(std::string_view name) {
    separate();
    quoted(name);
    out_ += ':';
    first_ = true;  // the value follows the colon with no comma
  }
  void string(std::string_view text) {
    separate();
    quoted(text);
  }
  void integer(std::int64_t n) {
    separate();
    out_ += std::to_string(n);
  }
  void number(double x) {
    separate();
    std::array<char, 64> digits{};
    char* end = nlohmann::detail::to_chars(digits.data(), digits.data() + digits.size(), x);
    out_.append(digits.data(), end);
  }
  void open(char bracket) {
    separate();
    out_ += bracket;
    first_ = true;
  }
  void close(char bracket) {
    out_ += bracket;
    first_ = false;
  }

 private:
  void separate() {
    if (!first_) out_ += ',';
    first_ = false;
  }
  void quoted(std::string_view text) {
    out_ += '"';
    for (const char c : text) {
      switch (c) {
        case '"':
          out_ += "\\\"";
          break;
        case '\\':
          out_ += "\\\\";
          break;
        case '\b':
          out_ += "\\b";
          break;
        case '\f':
          out_ += "\\f";
          break;
        case '\n':
          out_ += "\\n";
          break;
        case '\r':
          out_ += "\\r";
          break;
        case '\t':
          out_ += "\\t";
          break;
        default:
          if (static_cast<unsigned char>(c) < 0x20) {
            static constexpr char kHex[] = "0123456789abcdef";
            out_ += "\\u00";
            out_ += kHex[(c >> 4) & 0xf];
            out_ += kHex[c & 0xf];
          } else {
            out_ += c;  // UTF-8 bytes as they are (checked valid before)
          }
      }
    }
    out_ += '"';
  }

  std::string& out_;
  bool first_ = true;
};

}  // namespace

Result<std::string> build_callback_body(const TaskResult& task) {
  if (Status s = check_task(task); !s.ok()) return s;

  // The seed's field order, so the bytes are the same for every build.
  std::string body;
  body.reserve(128 + task.error.size() + task.results.size() * 512);
  BodyWriter w(body);
  w.open('{');
  w.key("task_id");
  w.string(task.task_id);
  w.key("status");
  if (task.status == TaskStatus::kFailed) {
    w.string("failed");
    w.key("error");
    w.string(task.error);
  } else {
    w.string("completed");
    w.key("results");
    w.open('[');
    for (const Track& t : task.results) {
      w.open('{');
      w.key("id");
      w.string(t.id);
      w.key("audio_url");
      w.string(t.audio_url);
      w.key("image_url");
      w.string(t.image_url);
      w.key("title");
      w.string(t.title);
      w.key("duration");
      w.number(t.duration);
      w.key("tags");
      w.string(t.tags);
      w.key("prompt");
      w.string(t.prompt);
      w.key("expire_at");
      w.integer(t.expire_at);
      w.close('}');
    }
    w.close(']');
  }
  w.close('}');
  return body;
}

}  // namespace callbackd
