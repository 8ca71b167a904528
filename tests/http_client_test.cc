// The curl-multi-on-Asio transport against a real loopback receiver.
#include "transport/http_client.h"

#include <gtest/gtest.h>

#include <boost/asio/io_context.hpp>
#include <filesystem>
#include <functional>
#include <map>
#include <optional>

#include "receiver.h"
#include "unreachable_hosts.h"
#include "wait.h"

namespace callbackd {
namespace {

using namespace std::chrono_literals;
using testing::ReceivedRequest;
using testing::Receiver;
using testing::Reply;

class HttpClientTest : public ::testing::Test {
 protected:
  // Posts and runs the loop until the response arrives.
  HttpResponse post(HttpClient& client, std::string url, std::string body = "{}",
                    Millis timeout = 5s, std::vector<std::string> headers = {}) {
    std::optional<HttpResponse> response;
    HttpRequest request{std::move(url), std::move(headers),
                        std::make_shared<const std::string>(std::move(body)), timeout};
    client.post(std::move(request), [&](HttpResponse r) { response = std::move(r); });
    io_.restart();
    while (!response && io_.run_one_for(30s) > 0) {
    }
    EXPECT_TRUE(response.has_value()) << "no response";
    return response.value_or(HttpResponse{});
  }

  HttpClientOptions options_{.max_response_bytes = 16, .user_agent = "callbackd/test"};
  boost::asio::io_context io_;
};

TEST_F(HttpClientTest, PostsTheExactBytesWithHeaders) {
  Receiver receiver;
  HttpClient client(io_, options_);
  const std::string body("{\"a\":1}\0\xff binary", 17);
  HttpResponse r = post(client, receiver.url("/in?x=1"), body, 5s, {"X-Callback-Id: dlv_1"});
  EXPECT_EQ(r.error, AttemptError::kNone);
  EXPECT_EQ(r.http_status, 204);
  ASSERT_EQ(receiver.count(), 1u);
  const ReceivedRequest got = receiver.requests()[0];
  EXPECT_EQ(got.method, "POST");
  EXPECT_EQ(got.target, "/in?x=1");
  EXPECT_EQ(got.body, body);
  EXPECT_EQ(got.headers.at("content-type"), "application/json");
  EXPECT_EQ(got.headers.at("user-agent"), "callbackd/test");
  EXPECT_EQ(got.headers.at("x-callback-id"), "dlv_1");
  EXPECT_FALSE(got.headers.contains("expect"));
}

TEST_F(HttpClientTest, NonSuccessStatusesAreStatusFailures) {
  for (int status : {500, 404, 429, 301}) {
    Receiver receiver([&](const ReceivedRequest& request) {
      if (request.target == "/elsewhere") return Reply{.status = 200};
      return Reply{.status = status, .body = "no", .headers = {{"Location", "/elsewhere"}}};
    });
    HttpClient client(io_, options_);
    HttpResponse r = post(client, receiver.url("/hook"));
    EXPECT_EQ(r.http_status, status);
    EXPECT_EQ(r.error, AttemptError::kStatus);
    EXPECT_EQ(r.body_head, "no");
    EXPECT_EQ(receiver.count(), 1u) << "a redirect was followed for " << status;
  }
}

TEST_F(HttpClientTest, HangingReceiverIsCutAtTheTimeout) {
  Receiver receiver([](const ReceivedRequest&) { return Reply{.hang = true}; });
  HttpClient client(io_, options_);
  HttpResponse r = post(client, receiver.url(), "{}", 300ms);
  EXPECT_EQ(r.error, AttemptError::kTimeout);
  EXPECT_EQ(r.http_status, 0);
  EXPECT_GE(r.duration, 290ms);
  EXPECT_LT(r.duration, 2s);
}

TEST_F(HttpClientTest, RefusedDnsAndResetAreTheirOwnKinds) {
  HttpClient client(io_, options_);
  const std::string refused = "http://127.0.0.1:" + std::to_string(testing::unused_loopback_port());
  EXPECT_EQ(post(client, refused + "/x").error, AttemptError::kRefused);
  EXPECT_EQ(post(client, "http://callbackd-test.invalid/x").error, AttemptError::kDns);
  Receiver closer([](const ReceivedRequest&) { return Reply{.close_connection = true}; });
  HttpResponse reset = post(client, closer.url());
  EXPECT_EQ(reset.error, AttemptError::kReset) << reset.error_detail;
  EXPECT_FALSE(reset.error_detail.empty());
}

TEST_F(HttpClientTest, GuardRefusalIsBlockedAndNeverConnects) {
  Receiver receiver;
  HttpClientOptions guarded = options_;
  std::vector<std::string> asked;
  guarded.allow_address = [&](const boost::asio::ip::address& a) {
    asked.push_back(a.to_string());
    return false;
  };
  HttpClient client(io_, guarded);
  HttpResponse r = post(client, receiver.url());
  EXPECT_EQ(r.error, AttemptError::kBlocked);
  EXPECT_EQ(asked, std::vector<std::string>{"127.0.0.1"});
  EXPECT_EQ(receiver.connections_accepted(), 0u);
}

// A name with one refused address and one allowed: the attempt is judged by what happened at
// the allowed address (delivered, a timeout, a refused connection), never as blocked.
TEST_F(HttpClientTest, ANameWithOneRefusedAddressFailsForItsOwnReason) {
  const auto loopback_only = [](const boost::asio::ip::address& a) {
    return a.is_v4() && a.to_v4().to_bytes()[0] == 127;
  };
  const auto client_for = [&](std::uint16_t port) {
    HttpClientOptions options = options_;
    options.allow_address = loopback_only;
    const std::string p = std::to_string(port);
    options.resolve = {"mixed.test:" + p + ":10.0.0.7,127.0.0.1"};
    return std::make_unique<HttpClient>(io_, options);
  };
  const auto url = [](std::uint16_t port) {
    return "http://mixed.test:" + std::to_string(port) + "/hook";
  };

  Receiver answering;
  EXPECT_EQ(post(*client_for(answering.port()), url(answering.port())).error, AttemptError::kNone);
  EXPECT_EQ(answering.count(), 1u);

  Receiver silent([](const ReceivedRequest&) { return Reply{.hang = true}; });
  HttpResponse timed_out = post(*client_for(silent.port()), url(silent.port()), "{}", 300ms);
  EXPECT_EQ(timed_out.error, AttemptError::kTimeout) << timed_out.error_detail;

  const std::uint16_t closed = testing::unused_loopback_port();
  HttpResponse refused = post(*client_for(closed), url(closed));
  EXPECT_EQ(refused.error, AttemptError::kRefused) << refused.error_detail;
}

std::size_t open_descriptors() {
  return static_cast<std::size_t>(std::distance(
      std::filesystem::directory_iterator("/proc/self/fd"), std::filesystem::directory_iterator()));
}

// curl closes a connect it gives up on without telling us, and the kernel hands the same
// descriptor number to the next socket: that socket must work (it used to be closed under curl,
// failing "after 0 ms"), and nothing may leak.
TEST_F(HttpClientTest, ConnectsCutAtTheirTimeoutLeaveTheNextConnectionAlone) {
  testing::UnreachableHosts down;
  Receiver healthy;
  {
    HttpClient warm_up(io_, options_);  // the loop's own descriptors exist from here on
    ASSERT_EQ(post(warm_up, healthy.url()).error, AttemptError::kNone);
  }
  // Counted with the receiver's side of the warm-up connection perhaps still open.
  const std::size_t descriptors_before = open_descriptors();
  std::map<AttemptError, int> outcomes;
  int healthy_ok = 0, healthy_sent = 0;
  {
    HttpClient client(io_, options_);
    int started = 0, finished = 0;
    std::function<void()> start_one = [&] {
      const std::size_t host = static_cast<std::size_t>(started++);
      client.post(
          HttpRequest{down.url(host), {}, std::make_shared<const std::string>("{}"), 200ms},
          [&](HttpResponse r) {
            ++outcomes[r.error];
            if (++finished % 10 == 0) {
              ++healthy_sent;
              client.post(
                  HttpRequest{healthy.url(), {}, std::make_shared<const std::string>("{}"), 2s},
                  [&](HttpResponse h) { healthy_ok += h.error == AttemptError::kNone; });
            }
            if (started < 300) start_one();
          });
    };
    for (int i = 0; i < 32; ++i) start_one();
    io_.restart();
    io_.run_for(30s);
  }
  EXPECT_EQ(outcomes[AttemptError::kTimeout], 300) << "some connects failed at once";
  EXPECT_EQ(healthy_ok, healthy_sent);
  // The receiver closes its side of the kept-alive connections once it sees them closed.
  EXPECT_TRUE(testing::wait_until([&] { return open_descriptors() <= descriptors_before; }, 5s))
      << open_descriptors() << " descriptors open, " << descriptors_before << " before";
}

TEST_F(HttpClientTest, AGuardThatThrowsRefusesTheAddress) {
  Receiver receiver;
  HttpClientOptions guarded = options_;
  guarded.allow_address = [](const boost::asio::ip::address&) -> bool {
    throw std::runtime_error("guard broke");
  };
  HttpClient client(io_, guarded);
  EXPECT_EQ(post(client, receiver.url()).error, AttemptError::kBlocked);
  EXPECT_EQ(receiver.connections_accepted(), 0u);
}

TEST_F(HttpClientTest, AZeroTimeoutStillBoundsTheAttempt) {
  Receiver receiver([](const ReceivedRequest&) { return Reply{.hang = true}; });
  HttpClient client(io_, options_);
  EXPECT_EQ(post(client, receiver.url(), "{}", Millis(0)).error, AttemptError::kTimeout);
}

TEST_F(HttpClientTest, ResponseBodyIsCappedButTheStatusCounts) {
  Receiver receiver([](const ReceivedRequest&) {
    return Reply{.status = 200, .body = std::string(100000, 'z')};
  });
  HttpClient client(io_, options_);
  HttpResponse r = post(client, receiver.url());
  EXPECT_EQ(r.error, AttemptError::kNone) << r.error_detail;
  EXPECT_EQ(r.http_status, 200);
  EXPECT_EQ(r.body_head, std::string(16, 'z'));
}

TEST_F(HttpClientTest, ConnectionsAreKeptAliveAndReused) {
  Receiver receiver;
  HttpClient client(io_, options_);
  for (int i = 0; i < 20; ++i) EXPECT_EQ(post(client, receiver.url()).error, AttemptError::kNone);
  EXPECT_EQ(receiver.count(), 20u);
  EXPECT_LE(receiver.connections_accepted(), 2u);
}

TEST_F(HttpClientTest, ManyConcurrentPostsAllComplete) {
  Receiver receiver([](const ReceivedRequest&) { return Reply{.status = 200, .delay = 20ms}; });
  HttpClient client(io_, options_);
  int done = 0, ok = 0;
  for (int i = 0; i < 200; ++i) {
    client.post({receiver.url(), {}, std::make_shared<const std::string>("{}"), 10s},
                [&](HttpResponse r) {
                  ++done;
                  ok += r.error == AttemptError::kNone;
                });
  }
  EXPECT_EQ(client.in_flight(), 200u);
  while (done < 200 && io_.run_one_for(30s) > 0) {
  }
  EXPECT_EQ(ok, 200);
  EXPECT_EQ(client.in_flight(), 0u);
}

TEST_F(HttpClientTest, OnlyHttpAndHttpsAreSpoken) {
  HttpClient client(io_, options_);
  HttpResponse r = post(client, "ftp://127.0.0.1/x");
  EXPECT_EQ(r.error, AttemptError::kNetwork);
  EXPECT_FALSE(r.error_detail.empty());
}

TEST_F(HttpClientTest, DestroyingWithTransfersRunningCallsNoHandler) {
  Receiver receiver([](const ReceivedRequest&) { return Reply{.hang = true}; });
  bool called = false;
  {
    HttpClient client(io_, options_);
    for (int i = 0; i < 5; ++i) {
      client.post({receiver.url(), {}, std::make_shared<const std::string>("{}"), 10s},
                  [&](HttpResponse) { called = true; });
    }
    while (receiver.count() < 5 && io_.run_one_for(1s) > 0) {
    }
    EXPECT_EQ(receiver.count(), 5u);
  }
  io_.restart();
  io_.run_for(50ms);
  EXPECT_FALSE(called);
}

}  // namespace
}  // namespace callbackd
