// The fast path of POST /v1/callbacks must take the bodies a pipeline sends, and must never
// answer differently from the full parse: whatever it takes, the full parse takes the same.
#include "plain_callback_parser.h"

#include <gtest/gtest.h>

#include <bit>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

namespace callbackd {
namespace {

std::string describe(const CallbackRequest& r) {
  std::string out = r.app_id + "|" + r.callback_url + "|" + r.endpoint + "|" + r.task.task_id +
                    "|" + std::to_string(static_cast<int>(r.task.status)) + "|" + r.task.error;
  for (const Track& t : r.task.results) {
    // The duration's bits: -0.0 and 0.0 differ in the body sent.
    out += "|" + t.id + "," + t.audio_url + "," + t.image_url + "," + t.title + "," + t.tags + "," +
           t.prompt + "," + std::to_string(std::bit_cast<std::uint64_t>(t.duration)) + "," +
           std::to_string(t.expire_at);
  }
  return out;
}

// True when the fast path took `body`; fails the test if the full parse answers differently.
bool taken_alike(const std::string& body) {
  std::optional<CallbackRequest> fast = parse_plain_callback_request(body);
  if (!fast) return false;
  auto full = parse_callback_request_fully(body);
  if (auto* problem = std::get_if<IngestProblem>(&full)) {
    ADD_FAILURE() << "the fast path took a body the full parse refuses (" << problem->message
                  << "): " << body;
    return true;
  }
  EXPECT_EQ(describe(*fast), describe(std::get<CallbackRequest>(full))) << body;
  return true;
}

const std::string kCompleted =
    R"({"app_id":"app_1","callback_url":"https://example.com/hook","task_id":"t-1",)"
    R"("status":"completed","endpoint":"generate","results":[{"id":"clip_1",)"
    R"("audio_url":"https://cdn.example/1.mp3","image_url":"https://cdn.example/1.jpg",)"
    R"("title":"Night \"Drive\"\n","duration":182.5,"tags":"synthwave","prompt":"[Verse]\tneon\\",)"
    R"("expire_at":1767225600000}]})";
const std::string kFailed =
    R"({ "task_id" : "t-2", "status" : "failed", "error" : "content policy",)"
    "\n  \"app_id\":\"app_1\",\"callback_url\":\"http://127.0.0.1:9/x\"}";

TEST(PlainCallbackParserTest, TakesWhatAPipelineSendsAsTheFullParseReadsIt) {
  EXPECT_TRUE(taken_alike(kCompleted));
  EXPECT_TRUE(taken_alike(kFailed));
  // No results, no endpoint; integral and negative-zero durations.
  EXPECT_TRUE(taken_alike(
      R"({"app_id":"a","callback_url":"u","task_id":"t","status":"completed","results":[]})"));
  for (const char* duration : {"0", "-0", "7", "1e2", "-1.5E-3", "18446744073709551615"}) {
    std::string body = kCompleted;
    body.replace(body.find("182.5"), 5, duration);
    EXPECT_TRUE(taken_alike(body)) << duration;
  }
}

TEST(PlainCallbackParserTest, LeavesEveryOtherBodyToTheFullParse) {
  const auto with = [](std::string from, std::string to) {
    std::string body = kCompleted;
    body.replace(body.find(from), from.size(), to);
    return body;
  };
  const std::vector<std::string> others = {
      with("\"endpoint\":\"generate\",", "\"endpoint\":\"generate\",\"extra\":1,"),  // unknown
      with("\"task_id\":\"t-1\",", "\"task_id\":\"t-1\",\"task_id\":\"t-2\","),      // duplicate
      with("\"clip_1\"", "\"clip_\\u0031\""),                                        // \u escape
      with("Night", "Nu\xc3\xaft"),                                                  // past ASCII
      with("Night", "Night\x01"),                    // a raw control character
      with("182.5", "\"182.5\""),                    // wrong type
      with("182.5", "1e999"),                        // out of range
      with("182.5", "01"),                           // not JSON
      with("1767225600000", "1.5"),                  // not an integer
      with("1767225600000", "9223372036854775808"),  // past int64
      with("\"generate\"", "\"stem\""),              // synchronous endpoint
      with("\"generate\"", "null"),
      with("\"app_1\"", "\"\""),                 // empty app_id
      with("\"completed\"", "\"failed\""),       // failed with results
      with(",\"expire_at\":1767225600000", ""),  // missing field
      kCompleted + " x",
      kCompleted.substr(0, kCompleted.size() - 1),
      "\xef\xbb\xbf" + kCompleted,  // a byte-order mark
      "[]",
      "",
  };
  for (const std::string& body : others) {
    EXPECT_FALSE(parse_plain_callback_request(body)) << body;
  }
}

// Random edits of good bodies: whatever the fast path still takes, it reads as the full parse.
TEST(PlainCallbackParserTest, NeverDisagreesWithTheFullParse) {
  std::mt19937 random(20261130);
  const std::string alphabet = "{}[]:,\"\\ \t\nabnrtu0123456789.-+eE_/";
  int taken = 0;
  for (int round = 0; round < 20000; ++round) {
    std::string body = round % 2 ? kCompleted : kFailed;
    for (int edits = 1 + static_cast<int>(random() % 3); edits > 0; --edits) {
      const std::size_t at = random() % body.size();
      switch (random() % 3) {
        case 0:
          body[at] = alphabet[random() % alphabet.size()];
          break;
        case 1:
          body.insert(at, 1, alphabet[random() % alphabet.size()]);
          break;
        default:
          body.erase(at, 1);
      }
    }
    if (taken_alike(body)) ++taken;
  }
  // Edits inside strings and numbers keep many bodies valid: the comparison ran on those.
  EXPECT_GT(taken, 1000);
}

}  // namespace
}  // namespace callbackd
