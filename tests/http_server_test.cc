// The sidecar's HTTP server in this process, with a handler the test controls.
#include "http_server.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <boost/asio/post.hpp>
#include <chrono>
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
using Clock = std::chrono::steady_clock;

// Timing bounds are asserted with this much to spare, so a loaded machine does not fail them.
constexpr auto kMargin = 2s;

// A server on a free loopback port with an io thread of its own; shut down (sessions drained,
// the thread joined) when it goes out of scope.
class ServerOnAThread {
 public:
  ServerOnAThread(HttpServerOptions options, RequestHandler handler)
      : server_(io_, with_free_port(std::move(options)), std::move(handler)) {
    started_ = server_.start().ok();
    thread_ = std::thread([this] { io_.run(); });
  }
  ~ServerOnAThread() {
    boost::asio::post(io_, [this] { server_.shutdown([this] { io_.stop(); }); });
    thread_.join();
  }

  bool started() const { return started_; }
  std::uint16_t port() const { return server_.local_endpoint().port(); }
  std::size_t open_connections() const { return server_.open_connections(); }

 private:
  static HttpServerOptions with_free_port(HttpServerOptions options) {
    options.listen = "127.0.0.1:0";
    return options;
  }

  boost::asio::io_context io_;
  HttpServer server_;
  bool started_ = false;
  std::thread thread_;
};

Millis since(Clock::time_point start) {
  return std::chrono::duration_cast<Millis>(Clock::now() - start);
}

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

// A socket to 127.0.0.1:port with a receive buffer of a few KiB (set before connecting, so
// the window it advertises is small too): a response it never reads soon fills the kernel's
// buffers on both sides and stalls the server's write. -1 when it cannot connect.
int connect_with_a_small_receive_buffer(std::uint16_t port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  const int bytes = 4096;
  ::setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &bytes, sizeof bytes);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(port);
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

// Everything received on `fd` until the peer closes; nullopt if `timeout` passes first.
std::optional<std::string> read_until_closed(int fd, std::chrono::milliseconds timeout) {
  const Clock::time_point until = Clock::now() + timeout;
  std::string received;
  char buffer[64 << 10];
  for (;;) {
    const Millis left = std::chrono::duration_cast<Millis>(until - Clock::now());
    pollfd p{fd, POLLIN, 0};
    if (left.count() <= 0 || ::poll(&p, 1, static_cast<int>(left.count())) <= 0) return {};
    const ssize_t n = ::recv(fd, buffer, sizeof buffer, 0);
    if (n <= 0) return received;
    received.append(buffer, static_cast<std::size_t>(n));
  }
}

// The read deadline used to bound the handler and the write too: a handler slower than what
// was left of it lost its answer (an app created, its signing secret never shown). The answer
// here is larger than one write can hand the kernel, so it cannot slip out before a deadline
// that has passed is noticed, as a small one may.
TEST(HttpServerTest, AnAnswerSlowerThanTheIdleTimeoutIsStillDelivered) {
  const std::string body =
      "{\"secret\":\"whsec_shown_once\",\"padding\":\"" + std::string(8 << 20, 'x') + "\"}";
  ServerOnAThread server({.idle_timeout = 200ms, .read_timeout = 200ms, .write_timeout = 10s},
                         [&](const ApiRequest&, Respond respond) {
                           std::this_thread::sleep_for(600ms);  // a slow store
                           respond(ApiResponse{.status = 201, .body = body});
                         });
  ASSERT_TRUE(server.started());

  const int fd = connect_with_a_small_receive_buffer(server.port());
  ASSERT_GE(fd, 0);
  const std::string request =
      "POST /v1/apps HTTP/1.1\r\nHost: t\r\nConnection: close\r\nContent-Length: 2\r\n\r\n{}";
  const Clock::time_point start = Clock::now();
  ASSERT_EQ(::send(fd, request.data(), request.size(), MSG_NOSIGNAL),
            static_cast<ssize_t>(request.size()));
  const std::optional<std::string> reply = read_until_closed(fd, 600ms + 10s + kMargin);
  const Millis took = since(start);
  ::close(fd);
  ASSERT_TRUE(reply) << "not answered in full after " << took.count() << " ms";
  EXPECT_EQ(reply->rfind("HTTP/1.1 201 ", 0), 0u) << reply->substr(0, 200);
  const std::size_t head_end = reply->find("\r\n\r\n");
  ASSERT_NE(head_end, std::string::npos);
  EXPECT_EQ(reply->size() - head_end - 4, body.size()) << "the answer was cut short";
  EXPECT_EQ(reply->compare(head_end + 4, std::string::npos, body), 0);
}

// A handler that never answers in time: the client gets a 503 it can act on, and the
// handler's answer, when it comes at last from another thread, is dropped.
TEST(HttpServerTest, AHandlerThatDoesNotAnswerWithinHandleTimeoutGetsTheClientA503) {
  std::promise<Respond> handed_over;
  ServerOnAThread server({.handle_timeout = 300ms}, [&](const ApiRequest&, Respond respond) {
    handed_over.set_value(respond);
  });
  ASSERT_TRUE(server.started());

  std::optional<RawConnection> client(server.port());
  const Clock::time_point start = Clock::now();
  client->send("POST /v1/apps HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\n\r\n{}");
  Respond late = handed_over.get_future().get();
  const std::optional<std::string> reply = client->read_until_closed(300ms + kMargin);
  const Millis took = since(start);
  ASSERT_TRUE(reply) << "neither answered nor closed after " << took.count() << " ms";
  EXPECT_GE(took, 300ms);
  EXPECT_EQ(reply->rfind("HTTP/1.1 503 ", 0), 0u) << *reply;
  EXPECT_NE(reply->find("\"code\":\"timeout\""), std::string::npos) << *reply;
  EXPECT_NE(reply->find("Retry-After: 1\r\n"), std::string::npos) << *reply;
  EXPECT_NE(reply->find("Connection: close\r\n"), std::string::npos) << *reply;

  // From this thread, after the 503, while the session still drains the connection.
  late(ApiResponse{.status = 201, .body = "{}"});
  late = nullptr;
  client.reset();  // ends the drain
  EXPECT_TRUE(wait_until([&] { return server.open_connections() == 0; }, kMargin));
}

// The idle bound is for waiting; once a request starts, the read bound holds, however long
// the connection may stay idle.
TEST(HttpServerTest, AClientThatSendsHalfAHeaderIsCutOffAtTheReadBound) {
  ServerOnAThread server({.idle_timeout = 30s, .read_timeout = 300ms},
                         [](const ApiRequest&, Respond respond) { respond(ApiResponse{}); });
  ASSERT_TRUE(server.started());

  RawConnection client(server.port());
  const Clock::time_point start = Clock::now();
  client.send("GET /v1/apps HTTP/1.1\r\nHost: t\r\nAuthoriz");
  const std::optional<std::string> reply = client.read_until_closed(300ms + kMargin);
  const Millis took = since(start);
  ASSERT_TRUE(reply) << "still open after " << took.count() << " ms";
  EXPECT_GE(took, 300ms);
  EXPECT_EQ(*reply, "");
}

// One bound for the whole request, not one per read: a byte every 50 ms never leaves the
// connection silent, and is still cut off.
TEST(HttpServerTest, AClientThatTricklesItsBodyIsCutOffAtTheReadBound) {
  ServerOnAThread server({.idle_timeout = 30s, .read_timeout = 400ms},
                         [](const ApiRequest&, Respond respond) { respond(ApiResponse{}); });
  ASSERT_TRUE(server.started());

  RawConnection client(server.port());
  const Clock::time_point start = Clock::now();
  client.send("POST /v1/callbacks HTTP/1.1\r\nHost: t\r\nContent-Length: 1000\r\n\r\n");
  std::optional<std::string> reply;
  while (!reply && since(start) < 400ms + kMargin) {
    client.send("x");
    reply = client.read_until_closed(50ms);
  }
  const Millis took = since(start);
  ASSERT_TRUE(reply) << "still open after " << took.count() << " ms";
  EXPECT_GE(took, 400ms);
  EXPECT_EQ(*reply, "");
}

// The other side of the read bound: it starts with the request's first byte, not before.
TEST(HttpServerTest, AConnectionIdleLongerThanTheReadBoundIsStillServed) {
  ServerOnAThread server({.idle_timeout = 30s, .read_timeout = 200ms},
                         [](const ApiRequest&, Respond respond) {
                           respond(ApiResponse{.status = 200, .body = "{}"});
                         });
  ASSERT_TRUE(server.started());

  RawConnection client(server.port());
  std::this_thread::sleep_for(600ms);
  client.send("GET /x HTTP/1.1\r\nHost: t\r\n\r\n");
  const std::optional<std::string> reply = client.read_until("}", kMargin);
  ASSERT_TRUE(reply);
  EXPECT_EQ(reply->rfind("HTTP/1.1 200 ", 0), 0u) << *reply;
}

// A client that never reads its response is cut off at the write bound. The connection is
// keep-alive with a long idle bound, so a write that did complete would leave it open.
TEST(HttpServerTest, AClientThatNeverReadsItsResponseIsCutOffAtTheWriteBound) {
  ServerOnAThread server({.idle_timeout = 30s, .write_timeout = 300ms},
                         [](const ApiRequest&, Respond respond) {
                           // Far more than the kernel buffers on both sides hold.
                           respond(ApiResponse{.status = 200, .body = std::string(32 << 20, 'x')});
                         });
  ASSERT_TRUE(server.started());

  const int fd = connect_with_a_small_receive_buffer(server.port());
  ASSERT_GE(fd, 0);
  const std::string request = "GET /large HTTP/1.1\r\nHost: t\r\n\r\n";
  const Clock::time_point start = Clock::now();
  ASSERT_EQ(::send(fd, request.data(), request.size(), MSG_NOSIGNAL),
            static_cast<ssize_t>(request.size()));
  ASSERT_TRUE(wait_until([&] { return server.open_connections() == 1; }, kMargin));
  const bool cut_off = wait_until([&] { return server.open_connections() == 0; }, 300ms + kMargin);
  const Millis took = since(start);
  ::close(fd);
  ASSERT_TRUE(cut_off) << "still open after " << took.count() << " ms";
  EXPECT_GE(took, 300ms);
}

}  // namespace
}  // namespace callbackd
