// The sidecar's HTTP server in this process, with a handler the test controls.
#include "http_server.h"

#include <gtest/gtest.h>

#include <atomic>
#include <boost/asio/post.hpp>
#include <future>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "raw_connection.h"
#include "wait.h"

namespace callbackd {
namespace {

using namespace std::chrono_literals;
using testing::RawConnection;
using testing::wait_until;

// A session's last reference may be dropped on any thread (a worker, the engine's commit
// thread); the session must still end on the io thread, which alone touches the session set.
TEST(HttpServerTest, ASessionReleasedOnAnotherThreadEndsOnTheIoThread) {
  boost::asio::io_context io;
  std::promise<Respond> handed_over;
  HttpServer server(io, {.listen = "127.0.0.1:0"},
                    [&](const ApiRequest&, Respond respond) { handed_over.set_value(respond); });
  ASSERT_TRUE(server.start().ok());
  std::thread io_thread([&] { io.run(); });

  RawConnection client(server.local_endpoint().port());
  client.send("GET /x HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
  Respond respond = handed_over.get_future().get();
  Respond kept = respond;  // as the engine keeps a copy of a handler it has already called
  respond(ApiResponse{.status = 200, .body = "{}"});
  const std::optional<std::string> reply = client.read_until_closed(10s);
  ASSERT_TRUE(reply);
  EXPECT_EQ(reply->rfind("HTTP/1.1 200 ", 0), 0u) << *reply;

  // Hold the io thread while this thread drops the last reference.
  std::promise<void> io_held;
  std::promise<void> io_released;
  boost::asio::post(io, [&] {
    io_held.set_value();
    io_released.get_future().wait();
  });
  io_held.get_future().wait();
  respond = nullptr;
  kept = nullptr;
  EXPECT_EQ(server.open_connections(), 1u) << "the session ended off the io thread";
  io_released.set_value();
  EXPECT_TRUE(wait_until([&] { return server.open_connections() == 0; }, 10s));

  boost::asio::post(io, [&] { server.shutdown([&] { io.stop(); }); });
  io_thread.join();
}

// The quick handler runs on the io thread itself; what it declines, and any large body, goes to
// the worker pool as before. Every request gets its own answer either way.
TEST(HttpServerTest, AQuickHandlerAnswersOnTheIoThreadAndWorkersGetTheRest) {
  boost::asio::io_context io;
  std::atomic<std::thread::id> io_thread_id;  // set once the io thread exists, read on others
  std::mutex mutex;
  std::vector<std::string> quick, slow;  // targets, with where they ran
  HttpServer server(
      io, {.listen = "127.0.0.1:0"},
      [&](const ApiRequest& request, Respond respond) {
        {
          std::lock_guard lock(mutex);
          slow.push_back(request.target + (std::this_thread::get_id() == io_thread_id
                                               ? " on the io thread"
                                               : " on a worker"));
        }
        respond(ApiResponse{.status = 200, .body = "{\"by\":\"worker\"}"});
      },
      {},
      [&](const ApiRequest& request, const Respond& respond) {
        if (request.target != "/quick") return false;
        {
          std::lock_guard lock(mutex);
          quick.push_back(request.target + (std::this_thread::get_id() == io_thread_id
                                                ? " on the io thread"
                                                : " on a worker"));
        }
        respond(ApiResponse{.status = 202, .body = "{\"by\":\"io\"}"});
        return true;
      });
  ASSERT_TRUE(server.start().ok());
  std::thread io_thread([&] { io.run(); });
  io_thread_id = io_thread.get_id();

  // One keep-alive connection, one request at a time.
  RawConnection client(server.local_endpoint().port());
  const auto exchange = [&](const std::string& target, const std::string& body) {
    client.send("POST " + target + " HTTP/1.1\r\nHost: t\r\nContent-Length: " +
                std::to_string(body.size()) + "\r\n\r\n" + body);
    return client.read_until("}", 10s).value_or("(no answer)");
  };
  EXPECT_EQ(exchange("/quick", "{}").rfind("HTTP/1.1 202 ", 0), 0u);
  EXPECT_EQ(exchange("/other", "{}").rfind("HTTP/1.1 200 ", 0), 0u);
  const std::string large(64 << 10, 'x');  // parsed on a worker, never on the io thread
  EXPECT_EQ(exchange("/quick", large).rfind("HTTP/1.1 200 ", 0), 0u);
  EXPECT_EQ(exchange("/quick", "{}").rfind("HTTP/1.1 202 ", 0), 0u);
  {
    std::lock_guard lock(mutex);
    EXPECT_EQ(quick,
              (std::vector<std::string>{"/quick on the io thread", "/quick on the io thread"}));
    EXPECT_EQ(slow, (std::vector<std::string>{"/other on a worker", "/quick on a worker"}));
  }

  boost::asio::post(io, [&] { server.shutdown([&] { io.stop(); }); });
  io_thread.join();
}

}  // namespace
}  // namespace callbackd
