// Store faults cost nothing: an engine on a real store whose every kind of call is made to fail
// once, fail three times in a row, lose its answer after it was applied, or hang past its
// bound, while callbacks go to a real receiver. Whatever the fault, the promises hold:
// - no attempt number of a delivery reaches the receiver twice;
// - every callback is delivered, and none is left in flight;
// - stop() returns within shutdown_timeout;
// - the per-app quota comes out exact (as many accepted as it allows, then a refusal).
// The same faults during stop(), and a store that hangs longer than shutdown_timeout, are here
// too. SQLite for the whole matrix; PostgreSQL for the calls that differ there.
#include <callbackd/engine.h>
#include <callbackd/postgres_store.h>
#include <callbackd/sqlite_store.h>
#include <gtest/gtest.h>

#include <map>
#include <set>

#include "faulty_queue.h"
#include "postgres_cluster.h"
#include "receiver.h"
#include "sample_tasks.h"
#include "temp_dir.h"
#include "wait.h"

namespace callbackd {
namespace {

using namespace std::chrono_literals;
using testing::QueueCall;
using testing::QueueFault;

struct FaultCase {
  std::string backend;  // "sqlite" or "postgres"
  QueueCall call;
  QueueFault fault;
};

std::string case_name(const FaultCase& c) {
  std::string name = c.backend + "_" + std::string(testing::to_string(c.call)) + "_" +
                     std::string(testing::to_string(c.fault.kind));
  if (c.fault.kind != QueueFault::Kind::kHang) name += "_x" + std::to_string(c.fault.times);
  return name;
}
std::string param_name(const ::testing::TestParamInfo<FaultCase>& info) {
  return case_name(info.param);
}
// What ctest and a failure print for a case: its name, not its bytes.
void PrintTo(const FaultCase& c, std::ostream* out) { *out << case_name(c); }

constexpr Millis kShutdownTimeout = 3s;

// The engine's clock runs ten times faster than real time (the store keeps real time), so the
// leases it holds run low within a tenth of a second and renewals (and leases given up, and
// their releases) happen, and are disturbed, in a short test. The engine only ever ends a lease sooner than the store would: safe, just busier.
class FastClock final : public Clock {
 public:
  TimePoint now() const override { return system_clock()->now(); }
  SteadyTime steady_now() const override {
    return start_ + 10 * (std::chrono::steady_clock::now() - start_);
  }

 private:
  const SteadyTime start_ = std::chrono::steady_clock::now();
};

class StoreFaultsTest : public ::testing::TestWithParam<FaultCase> {
 protected:
  void SetUp() override {
    if (GetParam().backend == "postgres") conninfo_ = testing::fresh_postgres_database();
    faulty_ = std::make_shared<testing::FaultyQueue>(open_store());
    app_id_ = create_app();
  }

  std::unique_ptr<Queue> open_store() {
    Result<std::unique_ptr<Queue>> queue = GetParam().backend == "sqlite"
                                               ? open_sqlite_queue({.path = dir_ / "callbackd.db"})
                                               : open_postgres_queue({.conninfo = conninfo_});
    EXPECT_TRUE(queue.ok()) << queue.status().to_string();
    return std::move(*queue);
  }

  std::size_t callbacks() const { return 8; }
  // Answers quick enough for a short test; slow enough, for releases, that attempts wait in
  // line past their (fast-running) leases and are given back.
  Millis answer_delay() const { return GetParam().call == QueueCall::kRelease ? 150ms : 30ms; }

  EngineOptions options() const {
    EngineOptions options;
    options.queue = faulty_;
    options.master_key = std::string(64, 'a');
    options.retry_schedule = {20ms, 20ms, 20ms};
    options.clock = std::make_shared<FastClock>();
    options.attempt_timeout = 500ms;
    options.poll_interval = 50ms;
    options.max_in_flight_per_host = 1;
    options.max_pending_per_app = callbacks();
    options.shutdown_timeout = kShutdownTimeout;
    options.allow_networks = {"127.0.0.0/8"};
    // Half the attempts fail on purpose: the breaker (tested on its own) must not hold them.
    options.breaker.enabled = false;
    return options;
  }

  std::string create_app() {
    auto engine = Engine::open(options());
    EXPECT_TRUE(engine.ok()) << engine.status().to_string();
    auto app = (*engine)->create_app("acme");
    EXPECT_TRUE(app.ok()) << app.status().to_string();
    return app->app.id;
  }

  // Hands `count` tasks over as a pipeline would: a refused or failed one is handed over again,
  // the same task, until it is taken.
  void hand_over(Engine& engine, const std::string& url, std::size_t first, std::size_t count) {
    for (std::size_t i = first; i < first + count; ++i) {
      const std::string task = "task-" + std::to_string(i);
      ASSERT_TRUE(testing::wait_until(
          [&] { return engine.enqueue(app_id_, url, testing::completed_task(task)).ok(); }, 20s))
          << task << " was never taken";
    }
  }

  testing::TempDir dir_;
  std::string conninfo_;
  std::shared_ptr<testing::FaultyQueue> faulty_;
  std::string app_id_;
};

// Each delivery's first attempt is refused (500), its second taken (204), each after `delay`:
// records of both kinds, retries claimed from the store, and attempts waiting in line.
testing::Responder answer(Millis delay) {
  return [delay](const testing::ReceivedRequest& r) {
    const bool first = r.headers.at("x-callback-attempt") == "1";
    return testing::Reply{.status = first ? 500 : 204, .delay = delay};
  };
}

// (delivery, attempt number) pairs that arrived more than once.
std::vector<std::string> repeated_attempts(const testing::Receiver& receiver) {
  std::map<std::string, int> seen;
  std::vector<std::string> repeated;
  for (const auto& r : receiver.requests()) {
    const std::string key =
        r.headers.at("x-callback-id") + " #" + r.headers.at("x-callback-attempt");
    if (++seen[key] == 2) repeated.push_back(key);
  }
  return repeated;
}

std::size_t delivered(const testing::Receiver& receiver) {
  std::set<std::string> ids;
  for (const auto& r : receiver.requests()) {
    if (r.headers.at("x-callback-attempt") != "1") ids.insert(r.headers.at("x-callback-id"));
  }
  return ids.size();
}

TEST_P(StoreFaultsTest, NoAttemptTwiceNothingLostStopBoundedQuotaExact) {
  testing::Receiver receiver(answer(answer_delay()));
  auto opened = Engine::open(options());
  ASSERT_TRUE(opened.ok()) << opened.status().to_string();
  Engine& engine = **opened;
  faulty_->inject(GetParam().call, GetParam().fault);
  engine.start();
  const std::size_t n = callbacks();
  hand_over(engine, receiver.url(), 0, n);

  ASSERT_TRUE(testing::wait_until([&] { return delivered(receiver) == n; }, 30s))
      << delivered(receiver) << " of " << n << " delivered";
  EXPECT_GT(faulty_->disturbed(GetParam().call), 0u) << "the fault never hit";
  faulty_->clear();
  // Every record stored: the store says delivered for all of them.
  ASSERT_TRUE(testing::wait_until(
      [&] {
        auto counts = engine.count_by_state();
        return counts.ok() && (*counts)[static_cast<int>(DeliveryState::kDelivered)] == n;
      },
      20s));

  const auto stopping = std::chrono::steady_clock::now();
  EXPECT_TRUE(engine.stop());
  EXPECT_LT(std::chrono::steady_clock::now() - stopping, kShutdownTimeout + 1s);

  EXPECT_EQ(repeated_attempts(receiver), std::vector<std::string>{});
  auto counts = engine.count_by_state();
  ASSERT_TRUE(counts.ok());
  EXPECT_EQ((*counts)[static_cast<int>(DeliveryState::kInFlight)], 0u);
  EXPECT_EQ((*counts)[static_cast<int>(DeliveryState::kPending)], 0u);

  // The quota counted every delivery back: exactly max_pending_per_app more are taken (they
  // wait, pending, with the engine stopped), and the next is refused.
  hand_over(engine, receiver.url(), n, n);
  auto refused = engine.enqueue(app_id_, receiver.url(), testing::completed_task("one-too-many"));
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().code(), StatusCode::kResourceExhausted)
      << refused.status().to_string();
}

// Records that fail while the engine stops are sent again (the worker's own timer runs on),
// and stop() returns once they are stored, within its bound.
TEST(StoreFaultsDuringStopTest, RecordsThatFailWhileStoppingAreStoredBeforeStopReturns) {
  testing::TempDir dir;
  auto faulty = std::make_shared<testing::FaultyQueue>(
      std::move(*open_sqlite_queue({.path = dir / "callbackd.db"})));
  testing::Receiver receiver([](const testing::ReceivedRequest&) {
    return testing::Reply{.status = 204, .delay = 400ms};
  });
  EngineOptions options;
  options.queue = faulty;
  options.master_key = std::string(64, 'a');
  options.attempt_timeout = 2s;
  options.poll_interval = 50ms;
  options.shutdown_timeout = kShutdownTimeout;
  options.allow_networks = {"127.0.0.0/8"};
  auto engine = std::move(*Engine::open(options));
  auto app = engine->create_app("acme");
  engine->start();
  for (int i = 0; i < 4; ++i) {
    ASSERT_TRUE(
        engine
            ->enqueue(app->app.id, receiver.url(), testing::completed_task("t" + std::to_string(i)))
            .ok());
  }
  ASSERT_TRUE(receiver.wait_for_count(4, 5s));  // all four are being answered, slowly
  faulty->inject(QueueCall::kRecord, {.kind = QueueFault::Kind::kFail, .times = 3});
  const auto stopping = std::chrono::steady_clock::now();
  EXPECT_TRUE(engine->stop()) << "the stop was cut short";
  EXPECT_LT(std::chrono::steady_clock::now() - stopping, kShutdownTimeout);
  EXPECT_EQ(faulty->disturbed(QueueCall::kRecord), 3u);
  auto counts = engine->count_by_state();
  ASSERT_TRUE(counts.ok());
  EXPECT_EQ((*counts)[static_cast<int>(DeliveryState::kDelivered)], 4u);
  EXPECT_EQ((*counts)[static_cast<int>(DeliveryState::kInFlight)], 0u);
}

// A store that hangs longer than shutdown_timeout: stop() and the destructor return within the
// bound anyway, leaving the leases to recovery. The next engine on the store delivers what was
// left; only an attempt that was in flight at the cut may be sent again under its number.
TEST(StoreFaultsDuringStopTest, AStoreThatHangsPastShutdownTimeoutIsLeftWithinTheBound) {
  testing::TempDir dir;
  testing::Receiver receiver([](const testing::ReceivedRequest&) {
    return testing::Reply{.status = 204, .delay = 300ms};
  });
  std::string app_id;
  EngineOptions options;
  options.master_key = std::string(64, 'a');
  options.attempt_timeout = 2s;
  options.poll_interval = 50ms;
  options.shutdown_timeout = kShutdownTimeout;
  options.allow_networks = {"127.0.0.0/8"};
  {
    auto faulty = std::make_shared<testing::FaultyQueue>(
        std::move(*open_sqlite_queue({.path = dir / "callbackd.db"})));
    options.queue = faulty;
    auto engine = std::move(*Engine::open(options));
    app_id = engine->create_app("acme")->app.id;
    engine->start();
    for (int i = 0; i < 3; ++i) {
      ASSERT_TRUE(
          engine->enqueue(app_id, receiver.url(), testing::completed_task("t" + std::to_string(i)))
              .ok());
    }
    ASSERT_TRUE(receiver.wait_for_count(3, 5s));
    faulty->inject(QueueCall::kRecord, {.kind = QueueFault::Kind::kHang, .hang = 6s});
    const auto stopping = std::chrono::steady_clock::now();
    EXPECT_FALSE(engine->stop()) << "the records cannot have been stored";
    EXPECT_LT(std::chrono::steady_clock::now() - stopping, kShutdownTimeout + 1s);
    const auto closing = std::chrono::steady_clock::now();
    engine.reset();
    EXPECT_LT(std::chrono::steady_clock::now() - closing, kShutdownTimeout + 1s);
    options.queue.reset();
  }
  // The hanging call ends (and lets go of the store's lock); the next engine takes over.
  std::unique_ptr<Engine> next;
  ASSERT_TRUE(testing::wait_until(
      [&] {
        auto queue = open_sqlite_queue({.path = dir / "callbackd.db"});
        if (!queue.ok()) return false;
        options.queue = std::move(*queue);
        next = std::move(*Engine::open(options));
        return true;
      },
      15s));
  next->start();
  ASSERT_TRUE(testing::wait_until(
      [&] {
        auto counts = next->count_by_state();
        return counts.ok() && (*counts)[static_cast<int>(DeliveryState::kDelivered)] == 3u;
      },
      20s));
  for (const std::string& repeat : repeated_attempts(receiver)) {
    EXPECT_NE(repeat.find(" #1"), std::string::npos)
        << repeat << ": only the attempt in flight at the cut may go again";
  }
}

std::vector<FaultCase> matrix() {
  const std::vector<QueueFault> faults = {
      {.kind = QueueFault::Kind::kFail, .times = 1},
      {.kind = QueueFault::Kind::kFail, .times = 3},
      {.kind = QueueFault::Kind::kLoseAnswer, .times = 1},
      {.kind = QueueFault::Kind::kHang, .times = 1, .hang = 1500ms},
  };
  std::vector<FaultCase> cases;
  for (QueueCall call :
       {QueueCall::kEnqueue, QueueCall::kClaim, QueueCall::kRenew, QueueCall::kRecord,
        QueueCall::kRelease, QueueCall::kRecover, QueueCall::kNextDue, QueueCall::kFindApp}) {
    for (const QueueFault& fault : faults) cases.push_back({"sqlite", call, fault});
  }
  // PostgreSQL: its own batched statements and recovery, with lost answers and failures.
  for (QueueCall call :
       {QueueCall::kEnqueue, QueueCall::kClaim, QueueCall::kRenew, QueueCall::kRecord}) {
    cases.push_back({"postgres", call, {.kind = QueueFault::Kind::kLoseAnswer, .times = 1}});
    cases.push_back({"postgres", call, {.kind = QueueFault::Kind::kFail, .times = 3}});
  }
  return cases;
}

INSTANTIATE_TEST_SUITE_P(Matrix, StoreFaultsTest, ::testing::ValuesIn(matrix()), param_name);

}  // namespace
}  // namespace callbackd
