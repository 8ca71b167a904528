#include "json_shape.h"

#include <gtest/gtest.h>

namespace callbackd {
namespace {

std::string problem_of(std::string_view text, JsonLimits limits = {}) {
  std::optional<JsonProblem> problem = check_json_shape(text, limits);
  return problem ? problem->message : "";
}

TEST(JsonShapeTest, WellFormedDocumentsWithinTheLimitsPass) {
  EXPECT_EQ(problem_of(R"({"a":[1,2,{"b":null}],"c":"x"})"), "");
  EXPECT_EQ(problem_of("[]"), "");
  EXPECT_EQ(problem_of(std::string(32, '[') + std::string(32, ']')), "");
  // The same key in different objects is fine.
  EXPECT_EQ(problem_of(R"([{"id":1},{"id":2}])"), "");
}

TEST(JsonShapeTest, DepthIsCheckedBeforeTheRestIsRead) {
  EXPECT_EQ(problem_of(std::string(33, '[') + std::string(33, ']')),
            "body: JSON nested deeper than 32 levels");
  // Not valid JSON at all past the limit: the depth is what is reported, found early.
  const auto deep = check_json_shape(std::string(1 << 20, '{'), {});
  ASSERT_TRUE(deep);
  EXPECT_EQ(deep->kind, JsonProblemKind::kSyntax);  // "{{" : a key is expected, not an object
  const auto arrays = check_json_shape(std::string(1 << 20, '['), {});
  ASSERT_TRUE(arrays);
  EXPECT_EQ(arrays->kind, JsonProblemKind::kTooDeep);
}

TEST(JsonShapeTest, ValueCountIsBounded) {
  EXPECT_EQ(problem_of("[1,2,3]", {.max_depth = 32, .max_values = 4}), "");
  EXPECT_EQ(problem_of("[1,2,3,4]", {.max_depth = 32, .max_values = 4}),
            "body: more than 4 JSON values");
  EXPECT_EQ(problem_of(R"({"a":1,"b":2,"c":3,"d":4})", {.max_depth = 32, .max_values = 4}),
            "body: more than 4 JSON values");
}

TEST(JsonShapeTest, DuplicateKeysAreNamedWithTheirPath) {
  EXPECT_EQ(problem_of(R"({"app_id":"a","app_id":"b"})"), "app_id: duplicate key");
  EXPECT_EQ(problem_of(R"({"results":[{"title":"a"},{"title":"b","title":"c"}]})"),
            "results[1].title: duplicate key");
  const auto problem = check_json_shape(R"({"a":{"x":1,"x":2}})");
  ASSERT_TRUE(problem);
  EXPECT_EQ(problem->kind, JsonProblemKind::kDuplicateKey);
  EXPECT_EQ(problem->message, "a.x: duplicate key");
}

TEST(JsonShapeTest, SyntaxErrorsSayWhere) {
  EXPECT_EQ(problem_of(R"({"a":)"), "body: not valid JSON (at byte 6)");
  EXPECT_EQ(problem_of("[1] x").rfind("body: not valid JSON", 0), 0u);
  EXPECT_EQ(problem_of("").rfind("body: not valid JSON", 0), 0u);
}

// The one-pass parse answers exactly as the check followed by nlohmann's own parse: the same
// problem for a bad text, the same document for a good one.
TEST(JsonShapeTest, ParseCheckedJsonAgreesWithTheCheckThenAParse) {
  const std::string texts[] = {
      R"({"a":[1,2,{"b":null}],"c":"x","d":-3,"e":18446744073709551615,"f":1.5e3,"g":true})",
      R"({"s":"caf\u00e9 \"q\" \\ \n","t":"\ud83c\udfb5"})",
      "[]",
      "  {}  ",
      R"({"app_id":"a","app_id":"b"})",
      R"({"results":[{"title":"a"},{"title":"b","title":"c"}]})",
      std::string(33, '[') + std::string(33, ']'),
      std::string(1000, '['),
      R"({"a":)",
      "[1] x",
      "",
      "1e999",
      R"({"a":1,})",
      "\"\xff\"",
  };
  for (const std::string& text : texts) {
    std::variant<nlohmann::json, JsonProblem> parsed = parse_checked_json(text);
    if (std::optional<JsonProblem> problem = check_json_shape(text)) {
      ASSERT_TRUE(std::holds_alternative<JsonProblem>(parsed)) << text;
      EXPECT_EQ(std::get<JsonProblem>(parsed).message, problem->message) << text;
      EXPECT_EQ(std::get<JsonProblem>(parsed).kind, problem->kind) << text;
    } else {
      ASSERT_TRUE(std::holds_alternative<nlohmann::json>(parsed)) << text;
      EXPECT_EQ(std::get<nlohmann::json>(parsed), nlohmann::json::parse(text)) << text;
    }
  }
  EXPECT_EQ(std::get<JsonProblem>(parse_checked_json("[1,2,3,4]", {.max_values = 4})).message,
            "body: more than 4 JSON values");
}

}  // namespace
}  // namespace callbackd
