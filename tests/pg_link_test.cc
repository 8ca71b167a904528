// The PostgreSQL link's bounds against a real server behind a real TCP proxy that freezes (keeps
// every connection open and forwards nothing): each wait ends within its bound, the link is
// rebuilt once the proxy forwards again, and the keepalive keywords reach the socket. Timing
// is real; the margins are generous.
#include <callbackd/postgres_store.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <atomic>
#include <thread>

#include "postgres/pg_connection.h"
#include "postgres/pg_listener.h"
#include "postgres/pg_pool.h"
#include "postgres_cluster.h"
#include "stalling_proxy.h"
#include "wait.h"

namespace callbackd {
namespace {

using namespace std::chrono_literals;
using postgres::Connection;
using postgres::Listener;
using postgres::Pool;
using Clock = std::chrono::steady_clock;

// How much later than its bound a wait may end in these tests (a loaded machine).
constexpr auto kSlack = 2s;

PostgresLinkBounds one_second_bounds() {
  return {.connect_timeout = 1s,
          .statement_timeout = 1s,
          .keepalive_idle = 1s,
          .keepalive_interval = 1s,
          .keepalive_count = 2,
          .tcp_user_timeout = 1s};
}

Millis since(Clock::time_point start) {
  return std::chrono::duration_cast<Millis>(Clock::now() - start);
}

int socket_option(int fd, int level, int name) {
  int value = -1;
  socklen_t size = sizeof value;
  if (getsockopt(fd, level, name, &value, &size) != 0) return -1;
  return value;
}

class PgLinkTest : public ::testing::Test {
 protected:
  // Throws (the test fails) when there is no PostgreSQL to be had: never a skip.
  std::string database_ = testing::fresh_postgres_database();
  std::unique_ptr<testing::StallingProxy> proxy_ = testing::StallingProxy::for_postgres(database_);
};

// (a) A statement on a frozen link ends within statement_timeout + margin, its outcome unknown;
// a reconnect while frozen is bounded too; after the thaw the same Connection works on a new
// session.
TEST_F(PgLinkTest, AStatementOnAFrozenLinkFailsWithinItsBoundAndTheLinkIsRebuiltAfter) {
  auto c = Connection::open(proxy_->conninfo(), one_second_bounds());
  ASSERT_TRUE(c.ok()) << c.status().to_string();
  ASSERT_TRUE((*c)->run("warm up", "SELECT 1").ok());
  const std::uint64_t first_session = (*c)->session();

  proxy_->freeze();
  auto start = Clock::now();
  auto frozen = (*c)->run("probe", "SELECT 1");
  Millis took = since(start);
  ASSERT_FALSE(frozen.ok());
  EXPECT_EQ(frozen.status().code(), StatusCode::kStorageUnavailable);
  EXPECT_EQ(frozen.status().message(),
            "postgres: probe: no answer within 1 s (statement_timeout); the link is reset");
  EXPECT_TRUE((*c)->outcome_unknown());
  EXPECT_FALSE((*c)->healthy());
  EXPECT_FALSE((*c)->in_transaction());
  EXPECT_GE(took, 1s);
  EXPECT_LE(took, 1s + kSlack) << took.count() << " ms";

  // Still frozen: the reconnect the next call makes has connect_timeout; its statement never
  // went out, so its outcome is known.
  start = Clock::now();
  auto reconnect = (*c)->run("probe again", "SELECT 1");
  took = since(start);
  ASSERT_FALSE(reconnect.ok());
  EXPECT_EQ(reconnect.status().code(), StatusCode::kStorageUnavailable);
  EXPECT_NE(reconnect.status().message().find("(connect_timeout)"), std::string::npos)
      << reconnect.status().message();
  EXPECT_FALSE((*c)->outcome_unknown());
  EXPECT_LE(took, 1s + kSlack) << took.count() << " ms";

  proxy_->thaw();
  auto after = (*c)->run("after the thaw", "SELECT 1");
  ASSERT_TRUE(after.ok()) << after.status().to_string();
  EXPECT_EQ(after->text(0, 0), "1");
  EXPECT_FALSE((*c)->outcome_unknown());
  EXPECT_NE((*c)->session(), first_session);
}

// Outcome unknown means just that: a COMMIT the proxy held reaches the server after the thaw,
// long after the caller was told "unavailable", and commits.
TEST_F(PgLinkTest, AStatementWhoseOutcomeIsUnknownMayStillBeApplied) {
  auto c = Connection::open(proxy_->conninfo(), one_second_bounds());
  ASSERT_TRUE(c.ok()) << c.status().to_string();
  ASSERT_TRUE((*c)->exec("create", "CREATE TABLE t (n integer)").ok());
  ASSERT_TRUE((*c)->exec("insert", "BEGIN; INSERT INTO t VALUES (1)").ok());
  proxy_->freeze();
  Status commit = (*c)->exec("commit", "COMMIT");
  EXPECT_EQ(commit.code(), StatusCode::kStorageUnavailable);
  EXPECT_TRUE((*c)->outcome_unknown());
  proxy_->thaw();

  auto direct = Connection::open(database_, one_second_bounds());
  ASSERT_TRUE(direct.ok()) << direct.status().to_string();
  EXPECT_TRUE(testing::wait_until(
      [&] {
        auto rows = (*direct)->run("count", "SELECT count(*) FROM t");
        return rows.ok() && rows->int64(0, 0) == 1;
      },
      5s))
      << "the held COMMIT was applied after the thaw";
}

// The server's own statement_timeout comes first when the server is alive but slow: its error
// says the statement did not happen, and the link stays.
TEST_F(PgLinkTest, TheServerCancelsASlowStatementBeforeTheClientGivesUp) {
  auto c = Connection::open(database_, one_second_bounds());
  ASSERT_TRUE(c.ok()) << c.status().to_string();
  auto shown = (*c)->run("show", "SHOW statement_timeout");
  ASSERT_TRUE(shown.ok()) << shown.status().to_string();
  EXPECT_EQ(shown->text(0, 0), "1s");
  const std::uint64_t session = (*c)->session();
  const auto start = Clock::now();
  auto slow = (*c)->run("sleep", "SELECT pg_sleep(10)");
  const Millis took = since(start);
  ASSERT_FALSE(slow.ok());
  EXPECT_EQ(slow.status().code(), StatusCode::kStorageUnavailable);
  EXPECT_NE(slow.status().message().find("statement timeout"), std::string::npos)
      << slow.status().message();
  EXPECT_FALSE((*c)->outcome_unknown());
  EXPECT_TRUE((*c)->healthy());
  EXPECT_LE(took, 1s + kSlack) << took.count() << " ms";
  ASSERT_TRUE((*c)->run("after", "SELECT 1").ok());
  EXPECT_EQ((*c)->session(), session);
}

// A COPY whose rows cannot all go out (the frozen link fills every buffer) ends within its
// bound too: sending never blocks.
TEST_F(PgLinkTest, ACopyIntoAFrozenLinkFailsWithinItsBound) {
  auto c = Connection::open(proxy_->conninfo(), one_second_bounds());
  ASSERT_TRUE(c.ok()) << c.status().to_string();
  ASSERT_TRUE((*c)->exec("create", "CREATE TEMPORARY TABLE rows (line text)").ok());
  std::string data;
  const std::string line(1023, 'x');
  while (data.size() < (64u << 20)) data += line + '\n';  // more than any socket buffer
  proxy_->freeze();
  const auto start = Clock::now();
  Status copied = (*c)->copy_in("copy", "COPY rows (line) FROM STDIN", data);
  const Millis took = since(start);
  EXPECT_EQ(copied.code(), StatusCode::kStorageUnavailable) << copied.to_string();
  EXPECT_TRUE((*c)->outcome_unknown());
  EXPECT_LE(took, 1s + kSlack) << took.count() << " ms";
  proxy_->thaw();
}

// (b) Connecting through a frozen proxy (it accepts, then answers nothing) fails within
// connect_timeout.
TEST_F(PgLinkTest, ConnectingThroughAFrozenLinkFailsWithinConnectTimeout) {
  proxy_->freeze();
  const auto start = Clock::now();
  auto c = Connection::open(proxy_->conninfo(), one_second_bounds());
  const Millis took = since(start);
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().code(), StatusCode::kStorageUnavailable);
  EXPECT_NE(c.status().message().find("no answer within 1 s (connect_timeout)"), std::string::npos)
      << c.status().message();
  EXPECT_GE(proxy_->connections_accepted(), 1u) << "the TCP connection itself was made";
  EXPECT_GE(took, 1s);
  EXPECT_LE(took, 1s + kSlack) << took.count() << " ms";
}

// (c) With every connection busy, borrow() fails after its bound instead of waiting for good.
TEST_F(PgLinkTest, BorrowFailsWithinItsBoundWhenEveryConnectionIsBusy) {
  auto pool = Pool::open(database_, 2, one_second_bounds());  // bound: statement_timeout
  ASSERT_TRUE(pool.ok()) << pool.status().to_string();
  std::optional<Result<Pool::Lease>> first((*pool)->borrow());
  auto second = (*pool)->borrow();
  ASSERT_TRUE(first->ok() && second.ok());
  EXPECT_EQ((*pool)->in_use(), 2u);

  const auto start = Clock::now();
  auto third = (*pool)->borrow();
  const Millis took = since(start);
  ASSERT_FALSE(third.ok());
  EXPECT_EQ(third.status().code(), StatusCode::kStorageUnavailable);
  EXPECT_EQ(third.status().message(), "postgres: no free connection within 1 s (all 2 busy)");
  EXPECT_GE(took, 1s);
  EXPECT_LE(took, 1s + kSlack) << took.count() << " ms";

  // One given back in the meantime is taken at once.
  std::thread giver([&] {
    std::this_thread::sleep_for(200ms);
    first.reset();
  });
  auto fourth = (*pool)->borrow();
  giver.join();
  ASSERT_TRUE(fourth.ok()) << fourth.status().to_string();
  EXPECT_TRUE((*fourth)->run("use it", "SELECT 1").ok());
}

TEST_F(PgLinkTest, BorrowTakesItsOwnBoundWhenGivenOne) {
  auto pool = Pool::open(database_, 1, one_second_bounds(), 300ms);
  ASSERT_TRUE(pool.ok()) << pool.status().to_string();
  auto held = (*pool)->borrow();
  ASSERT_TRUE(held.ok());
  const auto start = Clock::now();
  auto other = (*pool)->borrow();
  EXPECT_FALSE(other.ok());
  EXPECT_EQ(other.status().message(), "postgres: no free connection within 300 ms (all 1 busy)");
  EXPECT_LE(since(start), 300ms + kSlack);
}

// Sends NOTIFYs (on a link of its own, not through the proxy) until `heard` counts one.
bool notify_until_heard(const std::string& database, const std::atomic<int>& heard) {
  const int before = heard.load();
  const auto deadline = Clock::now() + 10s;
  while (Clock::now() < deadline) {
    testing::run_postgres_sql(database, "NOTIFY callbackd_due, 'another process'");
    if (testing::wait_until([&] { return heard.load() > before; }, 200ms)) return true;
  }
  return false;
}

// (d) The Listener notices its frozen LISTEN link (its check times out), rebuilds it once the
// proxy forwards again, and hears what is sent after.
TEST_F(PgLinkTest, TheListenerRebuildsAFrozenLinkAndHearsNotificationsAfterTheThaw) {
  Listener listener(proxy_->conninfo(), one_second_bounds(), "callbackd_due", "this process",
                    /*check_every=*/1s);
  std::atomic<int> heard = 0;
  listener.set_callback([&] { ++heard; });
  ASSERT_TRUE(notify_until_heard(database_, heard)) << "the first link never heard a NOTIFY";
  EXPECT_EQ(listener.links_made(), 1u);
  EXPECT_EQ(proxy_->connections_accepted(), 1u);

  proxy_->freeze();
  // check_every, then the check's bound (1 s + margin): it drops the link and tries again.
  EXPECT_TRUE(testing::wait_until([&] { return proxy_->connections_accepted() >= 2; },
                                  1s + 1500ms + kSlack))
      << "the listener never noticed its link froze";
  proxy_->thaw();
  EXPECT_TRUE(testing::wait_until([&] { return listener.links_made() >= 2; }, 5s + kSlack))
      << "no new LISTEN link after the thaw";
  EXPECT_TRUE(notify_until_heard(database_, heard)) << "the rebuilt link never heard a NOTIFY";
  listener.set_callback(nullptr);
}

// Its destructor returns at once while a wait on a frozen link is in progress: a check...
TEST_F(PgLinkTest, TheListenerStopsPromptlyWhileItsCheckWaitsOnAFrozenLink) {
  PostgresLinkBounds bounds;  // 5 s each: far longer than the stop may take
  auto listener =
      std::make_unique<Listener>(proxy_->conninfo(), bounds, "callbackd_due", "me", 500ms);
  ASSERT_TRUE(testing::wait_until([&] { return listener->links_made() == 1; }, 5s));
  proxy_->freeze();
  std::this_thread::sleep_for(1500ms);  // its check (SELECT 1) now waits, up to 5.5 s
  const auto start = Clock::now();
  listener.reset();
  EXPECT_LE(since(start), 1s);
}

// ...or a connect.
TEST_F(PgLinkTest, TheListenerStopsPromptlyWhileItConnectsThroughAFrozenLink) {
  proxy_->freeze();
  auto listener =
      std::make_unique<Listener>(proxy_->conninfo(), PostgresLinkBounds{}, "callbackd_due", "me");
  ASSERT_TRUE(testing::wait_until([&] { return proxy_->connections_accepted() == 1; }, 5s));
  std::this_thread::sleep_for(300ms);
  const auto start = Clock::now();
  listener.reset();
  EXPECT_LE(since(start), 1s);
  EXPECT_EQ(proxy_->connections_accepted(), 1u);
}

// (e) The keepalive and timeout keywords reach libpq and the socket itself; a keyword the
// user's conninfo sets wins over ours.
TEST_F(PgLinkTest, LinkKeywordsAreInEffectAndTheUsersOwnWin) {
  const PostgresLinkBounds bounds{.connect_timeout = 9s,
                                  .statement_timeout = 5s,
                                  .keepalive_idle = 7s,
                                  .keepalive_interval = 3s,
                                  .keepalive_count = 4,
                                  .tcp_user_timeout = 6500ms};
  auto ours = Connection::open(proxy_->conninfo(), bounds);
  ASSERT_TRUE(ours.ok()) << ours.status().to_string();
  const Connection& c = **ours;
  EXPECT_EQ(c.keyword_value("keepalives"), "1");
  EXPECT_EQ(c.keyword_value("keepalives_idle"), "7");
  EXPECT_EQ(c.keyword_value("keepalives_interval"), "3");
  EXPECT_EQ(c.keyword_value("keepalives_count"), "4");
  EXPECT_EQ(c.keyword_value("tcp_user_timeout"), "6500");
  EXPECT_EQ(c.keyword_value("connect_timeout"), "9");
  EXPECT_EQ(c.keyword_value("password"), std::nullopt);
  EXPECT_EQ(socket_option(c.socket(), SOL_SOCKET, SO_KEEPALIVE), 1);
  EXPECT_EQ(socket_option(c.socket(), IPPROTO_TCP, TCP_KEEPIDLE), 7);
  EXPECT_EQ(socket_option(c.socket(), IPPROTO_TCP, TCP_KEEPINTVL), 3);
  EXPECT_EQ(socket_option(c.socket(), IPPROTO_TCP, TCP_KEEPCNT), 4);
  EXPECT_EQ(socket_option(c.socket(), IPPROTO_TCP, TCP_USER_TIMEOUT), 6500);

  auto theirs = Connection::open(
      proxy_->conninfo() + " keepalives_idle=11 tcp_user_timeout=12345 connect_timeout=8", bounds);
  ASSERT_TRUE(theirs.ok()) << theirs.status().to_string();
  const Connection& t = **theirs;
  EXPECT_EQ(t.keyword_value("keepalives_idle"), "11");
  EXPECT_EQ(t.keyword_value("tcp_user_timeout"), "12345");
  EXPECT_EQ(t.keyword_value("connect_timeout"), "8");
  EXPECT_EQ(t.keyword_value("keepalives_interval"), "3");  // not theirs: ours
  EXPECT_EQ(socket_option(t.socket(), IPPROTO_TCP, TCP_KEEPIDLE), 11);
  EXPECT_EQ(socket_option(t.socket(), IPPROTO_TCP, TCP_USER_TIMEOUT), 12345);
  EXPECT_EQ(socket_option(t.socket(), IPPROTO_TCP, TCP_KEEPINTVL), 3);

  // A URI is kept whole too (expand_dbname), its query parameters included.
  const std::string db = *c.keyword_value("dbname");
  auto uri = Connection::open("postgresql://postgres@127.0.0.1:" + std::to_string(proxy_->port()) +
                                  "/" + db + "?keepalives_count=6",
                              bounds);
  ASSERT_TRUE(uri.ok()) << uri.status().to_string();
  EXPECT_EQ((*uri)->keyword_value("keepalives_count"), "6");
  EXPECT_EQ((*uri)->keyword_value("keepalives_idle"), "7");
  EXPECT_EQ(socket_option((*uri)->socket(), IPPROTO_TCP, TCP_KEEPCNT), 6);
}

// A user's connect_timeout bounds the whole handshake as ours would (libpq's own would not
// cover the steps of a nonblocking connect).
TEST_F(PgLinkTest, TheUsersConnectTimeoutBoundsTheHandshake) {
  proxy_->freeze();
  const auto start = Clock::now();
  auto c = Connection::open(proxy_->conninfo() + " connect_timeout=2", one_second_bounds());
  const Millis took = since(start);
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.status().message().find("no answer within 2 s (connect_timeout)"), std::string::npos)
      << c.status().message();
  EXPECT_GE(took, 2s);
  EXPECT_LE(took, 2s + kSlack);
}

// The contract: a frozen database costs the queue's callers a bounded error, never a hang, and
// the queue works again once the database answers. /readyz's check takes one statement bound:
// a link that gave no answer is not tried again.
TEST_F(PgLinkTest, AQueueOnAFrozenDatabaseAnswersWithinItsBounds) {
  auto queue = open_postgres_queue({.conninfo = proxy_->conninfo(),
                                    .dispatch_connections = 1,
                                    .api_connections = 1,
                                    .bounds = one_second_bounds()});
  ASSERT_TRUE(queue.ok()) << queue.status().to_string();
  StoredApp app;
  app.app.id = "app_1";
  app.app.name = "acme";
  app.sealed_secret = "sealed";
  ASSERT_TRUE((*queue)->insert_app(app).ok());
  auto enqueue = [&](const std::string& task) {
    return (*queue)->enqueue(NewDelivery{
        "dlv_" + task, "app_1", task, "https://a.example/", "https://a.example:443",
        std::make_shared<const std::string>("{}"), system_clock()->now(), std::nullopt});
  };
  ASSERT_TRUE(enqueue("before").ok());

  proxy_->freeze();
  auto start = Clock::now();
  Status check = (*queue)->check_writable();
  Millis took = since(start);
  EXPECT_EQ(check.code(), StatusCode::kStorageUnavailable) << check.to_string();
  EXPECT_LE(took, 1500ms + kSlack) << took.count() << " ms";

  start = Clock::now();
  auto frozen = enqueue("frozen");
  took = since(start);
  EXPECT_EQ(frozen.status().code(), StatusCode::kStorageUnavailable) << frozen.status().to_string();
  EXPECT_LE(took, 1500ms + kSlack) << took.count() << " ms";

  proxy_->thaw();
  EXPECT_TRUE((*queue)->check_writable().ok());
  auto after = enqueue("after");
  ASSERT_TRUE(after.ok()) << after.status().to_string();
  EXPECT_TRUE(after->receipt.created);
}

// A queue through the proxy, with an app to enqueue for.
std::unique_ptr<Queue> queue_with_app(const testing::StallingProxy& proxy) {
  auto queue = open_postgres_queue({.conninfo = proxy.conninfo(),
                                    .dispatch_connections = 1,
                                    .api_connections = 1,
                                    .bounds = one_second_bounds()});
  EXPECT_TRUE(queue.ok()) << queue.status().to_string();
  StoredApp app;
  app.app.id = "app_1";
  app.app.name = "acme";
  app.sealed_secret = "sealed";
  EXPECT_TRUE((*queue)->insert_app(app).ok());
  return std::move(*queue);
}

NewDelivery delivery(const std::string& id, const std::string& task) {
  return NewDelivery{id,
                     "app_1",
                     task,
                     "https://a.example/",
                     "https://a.example:443",
                     std::make_shared<const std::string>("{}"),
                     system_clock()->now(),
                     std::nullopt};
}

// libpq's simple query message for COMMIT: the text and its terminating NUL (ON COMMIT DELETE
// ROWS, in the staging table's definition, is not it).
const std::string kCommitMessage("COMMIT\0", 7);

// A COMMIT that reached the server but whose answer never came back is resolved by looking the
// rows up on another connection: the caller hears "stored", not a 503 for a stored callback.
TEST_F(PgLinkTest, AnEnqueueWhoseCommitAnswerWasLostIsResolvedByLookingItUp) {
  auto queue = queue_with_app(*proxy_);
  proxy_->freeze_after(kCommitMessage);  // the enqueue connection only
  auto stored = queue->enqueue(delivery("dlv_1", "t1"));
  ASSERT_TRUE(stored.ok()) << stored.status().to_string();
  EXPECT_TRUE(stored->receipt.created);
  EXPECT_EQ(stored->receipt.delivery_id, "dlv_1");
  proxy_->thaw();
  EXPECT_TRUE(queue->find_delivery("dlv_1").ok());
}

// When the look-up cannot be made either, the answer says the outcome is unknown, and the
// caller's retry of the same task is answered with the delivery that was stored.
TEST_F(PgLinkTest, AnUnresolvedCommitIsAnsweredSoThatTheRetryFindsTheDelivery) {
  auto queue = queue_with_app(*proxy_);
  proxy_->freeze_after(kCommitMessage, /*also_freeze_all=*/true);
  auto unknown = queue->enqueue(delivery("dlv_1", "t1"));
  ASSERT_FALSE(unknown.ok());
  EXPECT_EQ(unknown.status().code(), StatusCode::kStorageUnavailable);
  EXPECT_NE(unknown.status().message().find("retry the same task"), std::string::npos)
      << unknown.status().message();
  proxy_->thaw();
  auto retried = queue->enqueue(delivery("dlv_2", "t1"));
  ASSERT_TRUE(retried.ok()) << retried.status().to_string();
  EXPECT_FALSE(retried->receipt.created);
  EXPECT_EQ(retried->receipt.delivery_id, "dlv_1") << "the commit that was lost had landed";
}

}  // namespace
}  // namespace callbackd
