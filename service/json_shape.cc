#include "json_shape.h"

#include <nlohmann/json.hpp>
#include <unordered_set>
#include <vector>

namespace callbackd {
namespace {

using nlohmann::json;

// Takes SAX events and does nothing with them: the checker alone.
struct NoDocument {
  bool null() { return true; }
  bool boolean(bool) { return true; }
  bool number_integer(json::number_integer_t) { return true; }
  bool number_unsigned(json::number_unsigned_t) { return true; }
  bool number_float(json::number_float_t, const json::string_t&) { return true; }
  bool string(json::string_t&) { return true; }
  bool binary(json::binary_t&) { return true; }
  bool start_object(std::size_t) { return true; }
  bool start_array(std::size_t) { return true; }
  bool end_object() { return true; }
  bool end_array() { return true; }
  bool key(json::string_t&) { return true; }
};

// A SAX consumer that keeps only the path of open containers; returning false ends the parse.
// Events that pass the checks go on to `Document` (which may build the tree in the same pass).
template <class Document>
class ShapeChecker {
 public:
  ShapeChecker(const JsonLimits& limits, Document& document)
      : limits_(limits), document_(document) {}

  const std::optional<JsonProblem>& problem() const { return problem_; }

  bool null() { return value() && document_.null(); }
  bool boolean(bool b) { return value() && document_.boolean(b); }
  bool number_integer(json::number_integer_t n) { return value() && document_.number_integer(n); }
  bool number_unsigned(json::number_unsigned_t n) {
    return value() && document_.number_unsigned(n);
  }
  bool number_float(json::number_float_t n, const json::string_t& text) {
    return value() && document_.number_float(n, text);
  }
  bool string(json::string_t& s) { return value() && document_.string(s); }
  bool binary(json::binary_t& b) { return value() && document_.binary(b); }

  bool start_object(std::size_t n) { return open(/*is_object=*/true) && document_.start_object(n); }
  bool start_array(std::size_t n) { return open(/*is_object=*/false) && document_.start_array(n); }
  bool end_object() { return close() && document_.end_object(); }
  bool end_array() { return close() && document_.end_array(); }

  bool key(json::string_t& name) {
    Frame& object = open_.back();
    object.key = name;
    if (!object.keys.insert(name).second) {
      return fail(JsonProblemKind::kDuplicateKey, path() + ": duplicate key");
    }
    return document_.key(name);
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
  Document& document_;
  std::size_t values_ = 0;
  std::vector<Frame> open_;
  std::optional<JsonProblem> problem_;
};

template <class Document>
std::optional<JsonProblem> check(std::string_view text, const JsonLimits& limits,
                                 Document& document) {
  ShapeChecker<Document> checker(limits, document);
  const bool ok = json::sax_parse(text, &checker);
  if (ok) return std::nullopt;
  if (checker.problem()) return checker.problem();
  return JsonProblem{JsonProblemKind::kSyntax, "body: not valid JSON"};
}

}  // namespace

std::optional<JsonProblem> check_json_shape(std::string_view text, const JsonLimits& limits) {
  NoDocument none;
  return check(text, limits, none);
}

std::variant<nlohmann::json, JsonProblem> parse_checked_json(std::string_view text,
                                                             const JsonLimits& limits) {
  json document;
  nlohmann::detail::json_sax_dom_parser<json> builder(document, /*allow_exceptions_=*/false);
  if (std::optional<JsonProblem> problem = check(text, limits, builder)) return *problem;
  return document;
}

}  // namespace callbackd
