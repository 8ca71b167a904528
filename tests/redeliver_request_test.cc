// The bulk redelivery request body and the RFC 3339 times it carries.
#include "redeliver_request.h"

#include <gtest/gtest.h>

#include "json_views.h"

namespace callbackd {
namespace {

using namespace std::chrono_literals;

TEST(Rfc3339Test, ReadsUtcOffsetsAndFractionsToTheMillisecond) {
  const TimePoint noon = std::chrono::sys_days(std::chrono::year(2026) / 11 / 24) + 12h;
  EXPECT_EQ(parse_rfc3339("2026-11-24T12:00:00Z"), noon);
  EXPECT_EQ(parse_rfc3339("2026-11-24t12:00:00z"), noon);
  EXPECT_EQ(parse_rfc3339("2026-11-24T12:00:00.123Z"), noon + 123ms);
  EXPECT_EQ(parse_rfc3339("2026-11-24T12:00:00.5Z"), noon + 500ms);
  EXPECT_EQ(parse_rfc3339("2026-11-24T12:00:00.123456789Z"), noon + 123ms);
  EXPECT_EQ(parse_rfc3339("2026-11-24T14:30:00+02:30"), noon);
  EXPECT_EQ(parse_rfc3339("2026-11-24T07:00:00-05:00"), noon);
  EXPECT_EQ(parse_rfc3339(rfc3339(noon + 7ms)), noon + 7ms) << "reads what the API writes";
  for (const char* bad :
       {"", "2026-11-24", "2026-11-24T12:00:00", "2026-11-24 12:00:00Z", "2026-13-01T00:00:00Z",
        "2026-02-30T00:00:00Z", "2026-11-24T24:00:00Z", "2026-11-24T12:00:00.Z",
        "2026-11-24T12:00:00+0200", "2026-11-24T12:00:00Zjunk", "yesterday"}) {
    EXPECT_FALSE(parse_rfc3339(bad).has_value()) << bad;
  }
}

const TimePoint kNow = std::chrono::sys_days(std::chrono::year(2026) / 11 / 24) + 15h;

std::string problem_of(std::string_view body) {
  auto parsed = parse_redeliver_request(body, kNow);
  auto* problem = std::get_if<RequestProblem>(&parsed);
  return problem ? problem->code + " " + problem->message : "";
}

TEST(RedeliverRequestTest, AnEmptyBodyMeansEveryDeadDeliveryAThousandACall) {
  for (const char* body : {"", " \n", "{}"}) {
    auto parsed = parse_redeliver_request(body, kNow);
    ASSERT_TRUE(std::holds_alternative<RedeliverFilter>(parsed)) << body;
    const RedeliverFilter& f = std::get<RedeliverFilter>(parsed);
    EXPECT_EQ(f.state, DeliveryState::kDead);
    EXPECT_FALSE(f.app_id || f.finished_since || f.finished_until);
    EXPECT_EQ(f.limit, 1000u);
    EXPECT_TRUE(f.cursor.empty());
  }
}

TEST(RedeliverRequestTest, EveryFieldIsRead) {
  auto parsed = parse_redeliver_request(
      R"({"state":"delivered","app_id":"app_1","since":"2026-11-24T10:00:00Z",)"
      R"("until":"2026-11-24T12:00:00.250Z","limit":7,"cursor":"t123"})",
      kNow);
  ASSERT_TRUE(std::holds_alternative<RedeliverFilter>(parsed)) << problem_of("");
  const RedeliverFilter& f = std::get<RedeliverFilter>(parsed);
  EXPECT_EQ(f.state, DeliveryState::kDelivered);
  EXPECT_EQ(f.app_id, "app_1");
  EXPECT_EQ(f.finished_since, parse_rfc3339("2026-11-24T10:00:00Z"));
  EXPECT_EQ(f.finished_until, parse_rfc3339("2026-11-24T12:00:00.250Z"));
  EXPECT_EQ(f.limit, 7u);
  EXPECT_EQ(f.cursor, "t123");
}

TEST(RedeliverRequestTest, SinceAndUntilTakeAnAgeBeforeNow) {
  auto parsed = parse_redeliver_request(R"({"since":"2h","until":"10m"})", kNow);
  ASSERT_TRUE(std::holds_alternative<RedeliverFilter>(parsed));
  const RedeliverFilter& f = std::get<RedeliverFilter>(parsed);
  EXPECT_EQ(f.finished_since, kNow - 2h);
  EXPECT_EQ(f.finished_until, kNow - 10min);
}

TEST(RedeliverRequestTest, BadFieldsAreNamed) {
  EXPECT_EQ(problem_of(R"({"state":"pending"})"), "invalid_field state: must be dead or delivered");
  EXPECT_EQ(problem_of(R"({"state":7})"), "invalid_field state: must be a string");
  EXPECT_EQ(problem_of(R"({"limit":0})"), "invalid_field limit: must be a number from 1 to 1000");
  EXPECT_EQ(problem_of(R"({"limit":"5"})"), "invalid_field limit: must be a number from 1 to 1000");
  EXPECT_EQ(problem_of(R"({"limit":2.5})"), "invalid_field limit: must be a number from 1 to 1000");
  EXPECT_EQ(problem_of(R"({"since":"yesterday"})").rfind("invalid_field since:", 0), 0u);
  EXPECT_EQ(problem_of(R"({"since":"2026-11-24T12:00:00Z","until":"2026-11-24T11:00:00Z"})"),
            "invalid_field until: before since");
  EXPECT_EQ(problem_of(R"({"since":"1h","until":"2h"})"), "invalid_field until: before since");
  EXPECT_EQ(problem_of(R"({"finished_since":"2026-11-24T12:00:00Z"})"),
            "invalid_field finished_since: unknown field");
  EXPECT_EQ(problem_of(R"({"state":"dead","state":"dead"})").rfind("invalid_field state:", 0), 0u);
  EXPECT_EQ(problem_of("[1]"), "malformed_json body: must be a JSON object");
  EXPECT_EQ(problem_of("{").rfind("malformed_json", 0), 0u);
}

}  // namespace
}  // namespace callbackd
