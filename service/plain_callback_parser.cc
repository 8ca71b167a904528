#include "plain_callback_parser.h"

#include <algorithm>
#include <charconv>
#include <cstdint>
#include <limits>
#include <string>

namespace callbackd {
namespace {

// More tracks than this go the slow way, which also enforces the JSON value limit.
constexpr std::size_t kMaxPlainTracks = 100;

// Reads the plain subset of JSON. Every read returns false (or nullopt) at the first thing
// outside it, valid JSON or not, and the caller gives up.
class PlainReader {
 public:
  explicit PlainReader(std::string_view text) : text_(text) {}

  // The next character, after whitespace, is `c`: taken.
  bool consume(char c) {
    skip_space();
    if (pos_ >= text_.size() || text_[pos_] != c) return false;
    ++pos_;
    return true;
  }

  bool at_end() {
    skip_space();
    return pos_ == text_.size();
  }

  // A string of printable ASCII with the short escapes; \u escapes, control characters and
  // bytes past ASCII are left to the full parser.
  bool string(std::string& out) {
    if (!consume('"')) return false;
    out.clear();
    std::size_t run = pos_;  // start of the bytes not yet copied
    while (pos_ < text_.size()) {
      const auto c = static_cast<unsigned char>(text_[pos_]);
      if (c == '"') {
        out.append(text_, run, pos_ - run);
        ++pos_;
        return true;
      }
      if (c == '\\') {
        out.append(text_, run, pos_ - run);
        if (++pos_ >= text_.size()) return false;
        switch (text_[pos_++]) {
          case '"':
            out += '"';
            break;
          case '\\':
            out += '\\';
            break;
          case '/':
            out += '/';
            break;
          case 'b':
            out += '\b';
            break;
          case 'f':
            out += '\f';
            break;
          case 'n':
            out += '\n';
            break;
          case 'r':
            out += '\r';
            break;
          case 't':
            out += '\t';
            break;
          default:
            return false;
        }
        run = pos_;
        continue;
      }
      if (c < 0x20 || c >= 0x80) return false;
      ++pos_;
    }
    return false;
  }

  // A number as nlohmann reads it into a double: an integer token as an integer converted
  // (so "-0" is 0), any other token as the nearest double; nullopt out of range.
  std::optional<double> number() {
    bool integral = false;
    const std::string_view token = number_token(integral);
    if (token.empty()) return std::nullopt;
    const char* end = token.data() + token.size();
    if (integral) {
      if (token[0] == '-') {
        std::int64_t n = 0;
        auto [ptr, ec] = std::from_chars(token.data(), end, n);
        if (ec != std::errc() || ptr != end) return std::nullopt;
        return static_cast<double>(n);
      }
      std::uint64_t n = 0;
      auto [ptr, ec] = std::from_chars(token.data(), end, n);
      if (ec != std::errc() || ptr != end) return std::nullopt;
      return static_cast<double>(n);
    }
    double x = 0;
    auto [ptr, ec] = std::from_chars(token.data(), end, x);
    if (ec != std::errc() || ptr != end) return std::nullopt;
    return x;
  }

  // An integer token that fits in an int64.
  std::optional<std::int64_t> integer() {
    bool integral = false;
    const std::string_view token = number_token(integral);
    if (token.empty() || !integral) return std::nullopt;
    std::int64_t n = 0;
    auto [ptr, ec] = std::from_chars(token.data(), token.data() + token.size(), n);
    if (ec != std::errc() || ptr != token.data() + token.size()) return std::nullopt;
    return n;
  }

 private:
  void skip_space() {
    while (pos_ < text_.size() && (text_[pos_] == ' ' || text_[pos_] == '\n' ||
                                   text_[pos_] == '\r' || text_[pos_] == '\t')) {
      ++pos_;
    }
  }

  bool digit() const { return pos_ < text_.size() && text_[pos_] >= '0' && text_[pos_] <= '9'; }

  // JSON's number grammar: -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?; empty when the text
  // here is not one. `integral`: no fraction and no exponent.
  std::string_view number_token(bool& integral) {
    skip_space();
    const std::size_t start = pos_;
    if (pos_ < text_.size() && text_[pos_] == '-') ++pos_;
    if (!digit()) return {};
    if (text_[pos_++] != '0') {
      while (digit()) ++pos_;
    }
    integral = true;
    if (pos_ < text_.size() && text_[pos_] == '.') {
      ++pos_;
      if (!digit()) return {};
      while (digit()) ++pos_;
      integral = false;
    }
    if (pos_ < text_.size() && (text_[pos_] == 'e' || text_[pos_] == 'E')) {
      ++pos_;
      if (pos_ < text_.size() && (text_[pos_] == '+' || text_[pos_] == '-')) ++pos_;
      if (!digit()) return {};
      while (digit()) ++pos_;
      integral = false;
    }
    return text_.substr(start, pos_ - start);
  }

  std::string_view text_;
  std::size_t pos_ = 0;
};

// Calls `member(key)` for each member of an object, which reads the value; false at once when
// the object is empty, malformed, or `member` says false.
template <class Member>
bool read_object(PlainReader& r, std::string& key, Member&& member) {
  if (!r.consume('{')) return false;
  do {
    if (!r.string(key) || !r.consume(':') || !member(key)) return false;
  } while (r.consume(','));
  return r.consume('}');
}

// Marks `bit` seen; false when it was already (a duplicate key).
bool first_time(unsigned& seen, unsigned bit) {
  if (seen & bit) return false;
  seen |= bit;
  return true;
}

bool read_track(PlainReader& r, std::string& key, Track& track) {
  unsigned seen = 0;
  const bool read = read_object(r, key, [&](const std::string& name) {
    const std::pair<const char*, std::string*> texts[] = {
        {"id", &track.id},       {"audio_url", &track.audio_url}, {"image_url", &track.image_url},
        {"title", &track.title}, {"tags", &track.tags},           {"prompt", &track.prompt},
    };
    for (unsigned i = 0; i < std::size(texts); ++i) {
      if (name == texts[i].first) return first_time(seen, 1u << i) && r.string(*texts[i].second);
    }
    if (name == "duration") {
      std::optional<double> duration = r.number();
      track.duration = duration.value_or(0);
      return first_time(seen, 1u << 6) && duration;
    }
    if (name == "expire_at") {
      std::optional<std::int64_t> expire_at = r.integer();
      track.expire_at = expire_at.value_or(0);
      return first_time(seen, 1u << 7) && expire_at;
    }
    return false;  // unknown: the full parser names it
  });
  return read && seen == 0xff;  // every field, each once
}

bool read_results(PlainReader& r, std::string& key, std::vector<Track>& results) {
  if (!r.consume('[')) return false;
  if (r.consume(']')) return true;
  do {
    if (results.size() >= kMaxPlainTracks || !read_track(r, key, results.emplace_back())) {
      return false;
    }
  } while (r.consume(','));
  return r.consume(']');
}

enum Field : unsigned {
  kAppId = 1,
  kCallbackUrl = 2,
  kTaskId = 4,
  kStatus = 8,
  kResults = 16,
  kError = 32,
  kEndpoint = 64,
};

}  // namespace

std::optional<CallbackRequest> parse_plain_callback_request(std::string_view body) {
  PlainReader r(body);
  CallbackRequest request;
  std::string key;
  std::string status;
  unsigned seen = 0;
  const bool read = read_object(r, key, [&](const std::string& name) {
    if (name == "app_id") return first_time(seen, kAppId) && r.string(request.app_id);
    if (name == "callback_url") {
      return first_time(seen, kCallbackUrl) && r.string(request.callback_url);
    }
    if (name == "task_id") return first_time(seen, kTaskId) && r.string(request.task.task_id);
    if (name == "status") return first_time(seen, kStatus) && r.string(status);
    if (name == "error") return first_time(seen, kError) && r.string(request.task.error);
    if (name == "endpoint") return first_time(seen, kEndpoint) && r.string(request.endpoint);
    if (name == "results") {
      return first_time(seen, kResults) && read_results(r, key, request.task.results);
    }
    return false;
  });
  if (!read || !r.at_end()) return std::nullopt;

  // What parse_callback_request accepts, and nothing it would refuse.
  const unsigned required = kAppId | kCallbackUrl | kTaskId | kStatus;
  if ((seen & required) != required || request.app_id.empty() ||
      request.task.task_id.size() > kMaxTaskIdBytes) {
    return std::nullopt;
  }
  if ((seen & kEndpoint) && std::find(std::begin(kCallbackEndpoints), std::end(kCallbackEndpoints),
                                      request.endpoint) == std::end(kCallbackEndpoints)) {
    return std::nullopt;
  }
  if (status == "completed" && (seen & (kResults | kError)) == kResults) {
    request.task.status = TaskStatus::kCompleted;
  } else if (status == "failed" && (seen & (kResults | kError)) == kError) {
    request.task.status = TaskStatus::kFailed;
  } else {
    return std::nullopt;
  }
  return request;
}

}  // namespace callbackd
