// An exception inside one of curl's callbacks (here: out of memory while the socket for a
// connection is being watched) fails that transfer cleanly: it never unwinds through curl's C
// frames, leaks no descriptor, and the client keeps working.
#include <gtest/gtest.h>

#include <boost/asio/io_context.hpp>
#include <filesystem>
#include <optional>

#include "failing_new.h"
#include "receiver.h"
#include "transport/http_client.h"

namespace callbackd {
namespace {

using namespace std::chrono_literals;

std::size_t open_descriptors() {
  std::size_t count = 0;
  for ([[maybe_unused]] const auto& entry : std::filesystem::directory_iterator("/proc/self/fd")) {
    ++count;
  }
  return count;
}

HttpResponse post(boost::asio::io_context& io, HttpClient& client, const std::string& url) {
  std::optional<HttpResponse> response;
  client.post({url, {}, std::make_shared<const std::string>("{}"), Millis(5000)},
              [&](HttpResponse r) { response = std::move(r); });
  io.restart();
  while (!response && io.run_one_for(30s) > 0) {
  }
  EXPECT_TRUE(response.has_value()) << "no response";
  return response.value_or(HttpResponse{});
}

TEST(CurlCallbacksTest, OutOfMemoryInTheOpenSocketCallbackFailsOnlyThatTransfer) {
  testing::Receiver receiver;
  boost::asio::io_context io;
  bool fail_this_connect = true;
  HttpClientOptions options;
  // The guard runs inside curl's open-socket callback, just before the socket gets its watch:
  // the allocation of that watch is the one that fails.
  options.allow_address = [&](const boost::asio::ip::address&) {
    if (std::exchange(fail_this_connect, false)) testing::fail_next_allocation_on_this_thread();
    return true;
  };
  HttpClient client(io, options);
  const std::size_t descriptors_before = open_descriptors();

  const HttpResponse failed = post(io, client, receiver.url());
  EXPECT_NE(failed.error, AttemptError::kNone);
  EXPECT_EQ(receiver.count(), 0u);
  EXPECT_EQ(open_descriptors(), descriptors_before) << "the socket leaked";

  const HttpResponse next = post(io, client, receiver.url());
  EXPECT_EQ(next.error, AttemptError::kNone) << next.error_detail;
  EXPECT_EQ(receiver.count(), 1u);
}

}  // namespace
}  // namespace callbackd
