// The sidecar's HTTP server in this process, with a handler the test controls.
#include "http_server.h"

#include <gtest/gtest.h>

#include <boost/asio/post.hpp>
#include <future>
#include <thread>

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

}  // namespace
}  // namespace callbackd
