// The waits behind curl's multi_socket API, driven the way curl drives them, on real sockets.
#include "transport/socket_watches.h"

#include <curl/curl.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <boost/asio/io_context.hpp>
#include <vector>

namespace callbackd {
namespace {

using namespace std::chrono_literals;

struct Readiness {
  int fd;
  int events;
  bool operator==(const Readiness&) const = default;
};

class SocketWatchesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    int pair[2];
    ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair), 0);
    ours_ = pair[0];  // the socket curl would use; adopted by the watches
    peer_ = pair[1];  // the receiver's end
  }
  void TearDown() override { ::close(peer_); }

  void peer_sends() { ASSERT_EQ(::write(peer_, "x", 1), 1); }

  // Runs the loop until something is reported or `limit` passes.
  void run_until_reported(std::chrono::milliseconds limit = 2s) {
    io_.restart();
    const auto until = std::chrono::steady_clock::now() + limit;
    while (reported_.empty() && std::chrono::steady_clock::now() < until) {
      io_.run_one_for(10ms);
    }
  }

  boost::asio::io_context io_;
  std::vector<Readiness> reported_;
  SocketWatches watches_{io_, [this](int fd, int events) { reported_.push_back({fd, events}); }};
  int ours_ = -1;
  int peer_ = -1;
};

TEST_F(SocketWatchesTest, AWantedDirectionIsReportedWhenReady) {
  watches_.adopt(ours_);
  ASSERT_EQ(watches_.want(ours_, CURL_POLL_IN), 0);
  peer_sends();
  run_until_reported();
  EXPECT_EQ(reported_, (std::vector<Readiness>{{ours_, CURL_CSELECT_IN}}));
  EXPECT_EQ(watches_.close(ours_), 0);
}

TEST_F(SocketWatchesTest, NothingIsReportedOnceCurlRemovesTheSocket) {
  watches_.adopt(ours_);
  watches_.want(ours_, CURL_POLL_IN);
  watches_.want(ours_, CURL_POLL_REMOVE);
  peer_sends();
  run_until_reported(200ms);
  EXPECT_TRUE(reported_.empty());
  EXPECT_EQ(watches_.close(ours_), 0);
}

// A kept-alive connection: its transfer ends (REMOVE cancels the read wait) and the next
// transfer takes it and asks to read (IN), both before the cancelled wait's handler has run.
// The answer must still be reported, not left unread until the attempt's bound.
TEST_F(SocketWatchesTest, ReadingAskedAgainRightAfterARemoveIsStillReported) {
  watches_.adopt(ours_);
  watches_.want(ours_, CURL_POLL_IN);
  watches_.want(ours_, CURL_POLL_REMOVE);
  watches_.want(ours_, CURL_POLL_IN);
  peer_sends();
  run_until_reported();
  EXPECT_EQ(reported_, (std::vector<Readiness>{{ours_, CURL_CSELECT_IN}}));
  EXPECT_EQ(watches_.close(ours_), 0);
}

TEST_F(SocketWatchesTest, WritingAskedAgainRightAfterARemoveIsStillReported) {
  watches_.adopt(ours_);
  watches_.want(ours_, CURL_POLL_OUT);
  watches_.want(ours_, CURL_POLL_REMOVE);
  watches_.want(ours_, CURL_POLL_OUT);
  run_until_reported();
  EXPECT_EQ(reported_, (std::vector<Readiness>{{ours_, CURL_CSELECT_OUT}}));
  EXPECT_EQ(watches_.close(ours_), 0);
}

TEST_F(SocketWatchesTest, ADescriptorNotAdoptedIsWatchedThroughACopyAndLeftOpen) {
  int pipe_fds[2];
  ASSERT_EQ(::pipe2(pipe_fds, O_CLOEXEC), 0);
  ::close(ours_);
  ASSERT_EQ(watches_.want(pipe_fds[0], CURL_POLL_IN), 0);
  ASSERT_EQ(::write(pipe_fds[1], "x", 1), 1);
  run_until_reported();
  EXPECT_EQ(reported_, (std::vector<Readiness>{{pipe_fds[0], CURL_CSELECT_IN}}));
  watches_.want(pipe_fds[0], CURL_POLL_REMOVE);
  EXPECT_NE(::fcntl(pipe_fds[0], F_GETFD), -1) << "curl's own descriptor was closed";
  ::close(pipe_fds[0]);
  ::close(pipe_fds[1]);
}

// curl closes a socket whose connect timed out itself, not through close(); the kernel gives
// the number to the next socket. The old watch must not close it or swallow its readiness.
TEST_F(SocketWatchesTest, ANumberReusedAfterCurlClosedTheSocketItselfIsWatchedAfresh) {
  watches_.adopt(ours_);
  watches_.want(ours_, CURL_POLL_IN);
  ::close(ours_);
  int pair[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair), 0);
  ASSERT_EQ(pair[0], ours_) << "the kernel did not reuse the number; nothing to check";
  watches_.adopt(pair[0]);
  watches_.want(pair[0], CURL_POLL_IN);
  ASSERT_EQ(::write(pair[1], "x", 1), 1);
  run_until_reported();
  EXPECT_EQ(reported_, (std::vector<Readiness>{{pair[0], CURL_CSELECT_IN}}));
  EXPECT_EQ(watches_.close(pair[0]), 0);
  ::close(pair[1]);
}

}  // namespace
}  // namespace callbackd
