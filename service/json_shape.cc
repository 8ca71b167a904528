#include "json_shape.h"

#include <nlohmann/json.hpp>
#include <unordered_set>
#include <vector>

namespace callbackd {
namespace {

using nlohmann::json;

// A SAX consumer that keeps only the path of open containers; returning false ends the parse.
class ShapeChecker {
 public:
  explicit ShapeChecker(const JsonLimits& limits) : limits_(limits) {}

  const std::optional<JsonProblem>& problem() const { return problem_; }

  bool null() { return value(); }
  bool boolean(bool) { return value(); }
  bool number_integer(json::number_integer_t) { return value(); }
  bool number_unsigned(json::number_unsigned_t) { return value(); }
  bool number_float(json::number_float_t, const json::string_t&) { return value(); }
  bool string(json::string_t&) { return value(); }
  bool binary(json::binary_t&) { return value(); }

  bool start_object(std::size_t) { return open(/*is_object=*/true); }
  bool start_array(std::size_t) { return open(/*is_object=*/false); }
  bool end_object() { return close(); }
  bool end_array() { return close(); }

  bool key(json::string_t& name) {
    Frame& object = open_.back();
    object.key = name;
    if (!object.keys.insert(name).second) {
      return fail(JsonProblemKind::kDuplicateKey, path() + ": duplicate key");
    }
    return true;
  }

  bool parse_error(std::size_t position, const std::string&, const nlohmann::detail::exception&) {
    return fail(JsonProblemKind::kSyntax,
                "body: not valid JSON (at byte " + std::to_string(position) + ")");
  }

 private:
  struct Frame {
    bool is_object = false;
    std::size_t elements = 0;  // arrays: elements begun so far
    std::string key;           // objects: the member being read
    std::unordered_set<std::string> keys;
  };

  bool value() {
    if (++values_ > limits_.max_values) {
      return fail(JsonProblemKind::kTooManyValues,
                  "body: more than " + std::to_string(limits_.max_values) + " JSON values");
    }
    if (!open_.empty() && !open_.back().is_object) ++open_.back().elements;
    return true;
  }

  bool open(bool is_object) {
    if (!value()) return false;
    if (open_.size() >= limits_.max_depth) {
      return fail(JsonProblemKind::kTooDeep,
                  "body: JSON nested deeper than " + std::to_string(limits_.max_depth) + " levels");
    }
    open_.push_back(Frame{.is_object = is_object});
    return true;
  }

  bool close() {
    open_.pop_back();
    return true;
  }

  // "results[0].title", as ingest's messages name fields.
  std::string path() const {
    std::string out;
    for (const Frame& frame : open_) {
      if (frame.is_object) {
        out += (out.empty() ? "" : ".") + frame.key;
      } else {
        out += "[" + std::to_string(frame.elements - 1) + "]";
      }
    }
    return out;
  }

  bool fail(JsonProblemKind kind, std::string message) {
    problem_ = JsonProblem{kind, std::move(message)};
    return false;
  }

  const JsonLimits& limits_;
  std::size_t values_ = 0;
  std::vector<Frame> open_;
  std::optional<JsonProblem> problem_;
};

}  // namespace

std::optional<JsonProblem> check_json_shape(std::string_view text, const JsonLimits& limits) {
  ShapeChecker checker(limits);
  const bool ok = json::sax_parse(text, &checker);
  if (ok) return std::nullopt;
  if (checker.problem()) return checker.problem();
  return JsonProblem{JsonProblemKind::kSyntax, "body: not valid JSON"};
}

}  // namespace callbackd
