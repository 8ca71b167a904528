// Bounds on untrusted JSON, checked by a streaming pass before any document tree is built.
// nlohmann::json::parse builds the whole tree first (a 1 MiB "[[[[…" body costs hundreds of
// MiB) and keeps the last of duplicate keys; this pass stops at the first problem.
#pragma once

#include <cstddef>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <variant>

namespace callbackd {

struct JsonLimits {
  std::size_t max_depth = 32;       // nested arrays and objects
  std::size_t max_values = 10'000;  // values of every kind, containers and members included
};

enum class JsonProblemKind {
  kSyntax,         // not JSON
  kTooDeep,        // nested deeper than max_depth
  kTooManyValues,  // more than max_values
  kDuplicateKey,   // an object names the same key twice
};

struct JsonProblem {
  JsonProblemKind kind;
  // Names the problem and where: "body: JSON nested deeper than 32 levels",
  // "results[0].title: duplicate key".
  std::string message;
};

// nullopt when `text` is one JSON document within `limits`, with unique keys in every object.
// Thread-safe; memory used is bounded by the depth and the keys of the open objects.
std::optional<JsonProblem> check_json_shape(std::string_view text, const JsonLimits& limits = {});
// The same check and nlohmann::json::parse in one pass over the text: the document, or the
// problem check_json_shape names.
std::variant<nlohmann::json, JsonProblem> parse_checked_json(std::string_view text,
                                                             const JsonLimits& limits = {});

}  // namespace callbackd
