// Customer URLs are hostile: the network guard refuses forbidden addresses for real, both up
// front (literal addresses) and at connect time (names, whatever they resolve to).
#include <callbackd/engine.h>
#include <gtest/gtest.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <thread>

#include "intake/own_addresses.h"
#include "receiver.h"
#include "sample_tasks.h"
#include "sqlite_engine.h"
#include "temp_dir.h"
#include "wait.h"

namespace callbackd {
namespace {

using namespace std::chrono_literals;
using testing::ReceivedRequest;
using testing::Receiver;
using testing::Reply;

TaskResult task(std::string id) { return testing::failed_task(std::move(id), "e"); }

class GuardTest : public ::testing::Test {
 protected:
  std::unique_ptr<Engine> open(std::vector<std::string> allow = {}) {
    EngineOptions options;
    options.retry_schedule = {10ms, 10ms};
    options.poll_interval = 10ms;
    options.attempt_timeout = 2s;
    options.allow_networks = std::move(allow);
    auto engine = testing::open_sqlite_engine(dir_ / "callbackd.db", options);
    EXPECT_TRUE(engine.ok()) << engine.status().to_string();
    return std::move(*engine);
  }
  testing::TempDir dir_;
};

TEST_F(GuardTest, LiteralForbiddenAddressesAreRefusedAtEnqueueAndNothingIsStored) {
  auto engine = open();
  auto app = engine->create_app("acme");
  const char* urls[] = {
      "http://127.0.0.1:8080/x",
      "http://2130706433/",          // 127.0.0.1 as one number
      "http://0x7f.1/",              // 127.0.0.1 in hex, short form
      "http://017700000001/",        // 127.0.0.1 in octal
      "http://[::ffff:127.0.0.1]/",  // IPv4-mapped IPv6
      "http://[::1]:9/",
      "http://169.254.169.254/latest/meta-data/",
      "http://10.0.0.1/",
      "http://192.168.1.10/",
      "http://100.64.0.1/",
      "http://0.0.0.0/",
      "http://[fe80::1]/",
      "http://[fd00::1]/",
      "http://224.0.0.1/",
  };
  for (const char* url : urls) {
    Result<EnqueueReceipt> r = engine->enqueue(app->app.id, url, task(url));
    ASSERT_FALSE(r.ok()) << url;
    EXPECT_EQ(r.status().code(), StatusCode::kPermissionDenied) << url;
    EXPECT_EQ(r.status().message().rfind("callback_url: ", 0), 0u) << r.status().message();
  }
  EXPECT_TRUE(engine->list({})->items.empty());
}

// A service listening on every interface answers on the machine's own non-loopback address
// too: opening loopback for tests must not open that address.
TEST_F(GuardTest, ThisMachinesOwnInterfaceAddressIsRefusedWithLoopbackOpened) {
  std::optional<boost::asio::ip::address_v4> own;
  for (const OwnAddresses::Bytes& bytes : OwnAddresses::read_interfaces()) {
    const boost::asio::ip::address_v6 v6(bytes);
    if (!v6.is_v4_mapped()) continue;
    const auto v4 = boost::asio::ip::make_address_v4(boost::asio::ip::v4_mapped, v6);
    if (!v4.is_loopback()) own = v4;
  }
  if (!own) GTEST_SKIP() << "this machine has no non-loopback IPv4 interface address";
  // A real listener on 0.0.0.0: what a callback to the own address would reach.
  boost::asio::io_context io;
  boost::asio::ip::tcp::acceptor listener(io, {boost::asio::ip::address_v4::any(), 0});
  listener.non_blocking(true);
  const std::string url = "http://" + own->to_string() + ":" +
                          std::to_string(listener.local_endpoint().port()) + "/hook";

  auto engine = open({"127.0.0.0/8"});
  engine->start();
  auto app = engine->create_app("acme");
  Result<EnqueueReceipt> r = engine->enqueue(app->app.id, url, task("own"));
  ASSERT_FALSE(r.ok()) << url;
  EXPECT_EQ(r.status().code(), StatusCode::kPermissionDenied);
  EXPECT_NE(r.status().message().find("local interface"), std::string::npos)
      << r.status().message();
  EXPECT_TRUE(engine->list({})->items.empty());
  boost::system::error_code ec;
  listener.accept(ec);
  EXPECT_EQ(ec, boost::asio::error::would_block) << "something connected to " << url;
}

// "localhost" is a name: it passes enqueue, and the guard refuses every address curl is about
// to connect to. A blocked attempt is recorded as such and, since DNS can change, retried on
// the schedule like any failure; nothing ever reaches the receiver.
TEST_F(GuardTest, NameThatResolvesToLoopbackIsBlockedAtConnectTime) {
  Receiver receiver;
  auto engine = open();
  auto app = engine->create_app("acme");
  engine->start();
  const std::string url = "http://localhost:" + std::to_string(receiver.port()) + "/hook";
  auto receipt = engine->enqueue(app->app.id, url, task("t1"));
  ASSERT_TRUE(receipt.ok()) << receipt.status().to_string();
  ASSERT_TRUE(testing::wait_until(
      [&] { return engine->delivery(receipt->delivery_id)->state == DeliveryState::kDead; }, 10s));
  Result<Delivery> d = engine->delivery(receipt->delivery_id);
  ASSERT_EQ(d->attempts.size(), 3u) << "a blocked name gets its whole budget";
  for (const Attempt& a : d->attempts) EXPECT_EQ(a.error, AttemptError::kBlocked);
  EXPECT_EQ(receiver.connections_accepted(), 0u);
  EXPECT_EQ(receiver.count(), 0u);
}

TEST_F(GuardTest, AllowListOpensARange) {
  Receiver receiver;
  auto engine = open({"127.0.0.0/8"});
  auto app = engine->create_app("acme");
  engine->start();
  const std::string url = "http://localhost:" + std::to_string(receiver.port()) + "/hook";
  ASSERT_TRUE(engine->enqueue(app->app.id, url, task("t1")).ok());
  ASSERT_TRUE(engine->enqueue(app->app.id, receiver.url(), task("t2")).ok());
  EXPECT_TRUE(receiver.wait_for_count(2, 10s));
}

// A redirect towards a private address is never followed: the 302 is the attempt's result.
TEST_F(GuardTest, RedirectToAPrivateAddressIsNotFollowed) {
  Receiver target;
  Receiver redirector([&](const ReceivedRequest&) {
    return Reply{.status = 302, .headers = {{"Location", "http://169.254.169.254/latest/"}}};
  });
  Receiver redirect_to_loopback([&](const ReceivedRequest&) {
    return Reply{.status = 307, .headers = {{"Location", target.url("/stolen")}}};
  });
  auto engine = open({"127.0.0.0/8"});
  auto app = engine->create_app("acme");
  engine->start();
  auto a = engine->enqueue(app->app.id, redirector.url(), task("r1"));
  auto b = engine->enqueue(app->app.id, redirect_to_loopback.url(), task("r2"));
  for (const auto& receipt : {*a, *b}) {
    ASSERT_TRUE(testing::wait_until(
        [&] { return engine->delivery(receipt.delivery_id)->state == DeliveryState::kDead; }, 10s));
  }
  EXPECT_EQ(engine->delivery(a->delivery_id)->attempts[0].http_status, 302);
  EXPECT_EQ(engine->delivery(b->delivery_id)->attempts[0].http_status, 307);
  EXPECT_EQ(target.count(), 0u);
}

}  // namespace
}  // namespace callbackd
