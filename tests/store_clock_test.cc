// The SQLite store's clock across restarts (storage/sqlite/store_clock.h): in the same boot it
// continues exactly, whatever the wall clock did between the runs; after a reboot it starts at
// the wall time but never below what the last run reached. Real files, a manual clock.
#include "sqlite/store_clock.h"

#include <gtest/gtest.h>

#include <filesystem>

#include "manual_clock.h"
#include "sqlite/sqlite_queue.h"
#include "temp_dir.h"

namespace callbackd {
namespace {

using namespace std::chrono_literals;
using sqlite::ClockReading;
using testing::ManualClock;

constexpr const char* kHost = "https://a.example:443";

class StoreClockTest : public ::testing::Test {
 protected:
  void SetUp() override {
    queue_ = open(path(), "boot-1");
    ASSERT_TRUE(queue_);
    StoredApp app;
    app.app = App{"app_1", "acme", SignatureScheme::kHex, clock_->now()};
    app.sealed_secret = "sealed";
    ASSERT_TRUE(queue_->insert_app(app).ok());
  }

  std::unique_ptr<SqliteQueue> open(const std::filesystem::path& db, std::string boot_id) {
    auto queue = SqliteQueue::open({.path = db, .clock = clock_, .boot_id = std::move(boot_id)});
    EXPECT_TRUE(queue.ok()) << queue.status().to_string();
    return queue.ok() ? std::move(*queue) : nullptr;
  }
  std::filesystem::path path() const { return dir_ / "q.db"; }

  void enqueue(const std::string& task) {
    NewDelivery d{"dlv_" + task, "app_1",
                  task,          std::string(kHost) + "/" + task,
                  kHost,         std::make_shared<const std::string>("{}"),
                  clock_->now(), std::nullopt};
    Result<Enqueued> r = queue_->enqueue(d);
    ASSERT_TRUE(r.ok()) << r.status().to_string();
  }

  std::vector<ClaimedDelivery> claim() {
    auto claimed = queue_->claim({.limit = 10, .lease = 30s});
    EXPECT_TRUE(claimed.ok()) << claimed.status().to_string();
    return claimed.ok() ? *claimed : std::vector<ClaimedDelivery>{};
  }

  // One attempt of the one due delivery, ending in `next` (a retry `retry_after` from now).
  void attempt(DeliveryState next, Millis retry_after = 0ms) {
    auto claimed = claim();
    ASSERT_EQ(claimed.size(), 1u);
    Attempt a;
    a.number = claimed[0].attempts_made + 1;
    a.started_at = clock_->now();
    a.http_status = 500;
    a.error = AttemptError::kStatus;
    AttemptRecord r{claimed[0].lease, a, next, retry_after};
    ASSERT_TRUE(queue_->record({&r, 1})->empty());
  }

  ClockReading saved_reading() {
    Result<std::optional<std::string>> value = queue_->get_setting(sqlite::kClockSetting);
    EXPECT_TRUE(value.ok() && value->has_value());
    std::optional<ClockReading> reading =
        value.ok() && value->has_value() ? sqlite::decode(**value) : std::nullopt;
    EXPECT_TRUE(reading.has_value()) << (value.ok() ? value->value_or("") : "");
    return reading.value_or(ClockReading{});
  }

  // A crash: the files as the running queue left them, copied while it still holds the lock.
  std::filesystem::path crash_copy() {
    const std::filesystem::path copy = dir_ / "crashed";
    std::filesystem::create_directory(copy);
    for (const char* suffix : {"", "-wal"}) {
      std::filesystem::copy_file(path().string() + suffix, (copy / "q.db").string() + suffix);
    }
    return copy / "q.db";
  }

  // Another boot: a steady clock started over, and a wall clock `offset` from this one.
  void reboot(Millis offset) { clock_ = std::make_shared<ManualClock>(clock_->now() + offset); }

  std::shared_ptr<ManualClock> clock_ = std::make_shared<ManualClock>();
  testing::TempDir dir_;
  std::unique_ptr<SqliteQueue> queue_;
};

// (a) NTP steps the wall clock an hour forward between two runs of the same boot: a retry due
// in 30 s is still due in 30 s, not at once.
TEST_F(StoreClockTest, AWallStepForwardBetweenRunsBringsNoRetryForward) {
  enqueue("retry");
  attempt(DeliveryState::kPending, 30s);
  const std::optional<TimePoint> due = queue_->find_delivery("dlv_retry")->next_attempt_at;
  ASSERT_TRUE(due.has_value());
  queue_.reset();

  clock_->step_wall(1h);
  queue_ = open(path(), "boot-1");
  ASSERT_TRUE(queue_);
  EXPECT_EQ(queue_->find_delivery("dlv_retry")->next_attempt_at, due);
  EXPECT_TRUE(claim().empty()) << "the retry came early after a wall-clock step";
  clock_->advance(29'999ms);
  EXPECT_TRUE(claim().empty()) << "the retry came early after a wall-clock step";
  clock_->advance(1ms);
  EXPECT_EQ(claim().size(), 1u);
}

// (b) The wall clock stepped an hour back between two runs of the same boot: the store's clock
// goes on from where it was, with the steady time that passed.
TEST_F(StoreClockTest, AWallStepBackBetweenRunsRunsNoStoredTimeBackwards) {
  enqueue("done");
  attempt(DeliveryState::kDelivered);
  clock_->advance(7s);
  const TimePoint before_close = queue_->store_now();
  queue_.reset();

  clock_->step_wall(-1h);
  clock_->advance(2s);
  queue_ = open(path(), "boot-1");
  ASSERT_TRUE(queue_);
  EXPECT_EQ(queue_->store_now(), before_close + 2s);
  clock_->advance(1s);
  EXPECT_EQ(queue_->store_now(), before_close + 3s);
}

// (c) After a reboot with the wall clock behind what the last run reached: the store's clock
// starts where that run closed, not at the wall time.
TEST_F(StoreClockTest, AnotherBootWithTheWallBehindStartsAtTheLastRunsClock) {
  enqueue("retry");
  attempt(DeliveryState::kPending, 30s);
  clock_->advance(10min);
  const TimePoint at_close = queue_->store_now();
  queue_.reset();

  reboot(-1h);
  queue_ = open(path(), "boot-2");
  ASSERT_TRUE(queue_);
  EXPECT_EQ(queue_->store_now(), at_close);
  EXPECT_EQ(saved_reading(),
            (ClockReading{"boot-2", sqlite::steady_ms(*clock_), to_unix_ms(at_close)}));
}

// (c) The same after a crash: the last run saved where its clock stood now and then, with the
// writes it made anyway, and the next boot starts there at least.
TEST_F(StoreClockTest, AnotherBootAfterACrashStartsAtTheLastSavedReading) {
  enqueue("a");
  attempt(DeliveryState::kPending, 1h);
  enqueue("b");
  clock_->advance(sqlite::kClockSaveEvery + 1s);
  const TimePoint written = queue_->store_now();
  attempt(DeliveryState::kPending, 1h);  // a write that saves the clock too
  EXPECT_EQ(saved_reading().store_ms, to_unix_ms(written));
  clock_->advance(2s);  // unwritten: what the crash takes back
  const std::filesystem::path crashed = crash_copy();

  reboot(-1h);
  auto after = open(crashed, "boot-2");
  ASSERT_TRUE(after);
  EXPECT_EQ(after->store_now(), written);
}

// A store whose last run saved no reading (an older callbackd) after a reboot with the wall
// behind: its latest finish bounds the clock from below.
TEST_F(StoreClockTest, WithoutAReadingTheLatestFinishBoundsTheClock) {
  enqueue("done");
  clock_->advance(20s);
  attempt(DeliveryState::kDead);
  const std::int64_t finished = to_unix_ms(queue_->store_now());
  queue_.reset();
  {
    auto c = sqlite::Connection::open(path().string(), false);
    ASSERT_TRUE(c.ok());
    ASSERT_TRUE((*c)->exec("DELETE FROM settings WHERE key = 'store_clock'").ok());
  }

  reboot(-1h);
  queue_ = open(path(), "boot-2");
  ASSERT_TRUE(queue_);
  EXPECT_EQ(to_unix_ms(queue_->store_now()), finished);
}

// After a reboot with the wall clock ahead, the clock follows the wall: there is no steady time
// to tell how long the machine was down.
TEST_F(StoreClockTest, AnotherBootWithTheWallAheadStartsAtTheWall) {
  queue_.reset();
  reboot(1h);
  queue_ = open(path(), "boot-2");
  ASSERT_TRUE(queue_);
  EXPECT_EQ(queue_->store_now(), clock_->now());
}

// (d) A new store saves the reading at its first open: this boot, this steady time, the wall.
TEST_F(StoreClockTest, AFreshStoreSavesAReading) {
  EXPECT_EQ(saved_reading(),
            (ClockReading{"boot-1", sqlite::steady_ms(*clock_), to_unix_ms(clock_->now())}));
}

// The rule itself, on its own.
TEST(StoreClockRuleTest, ContinuesOnlyTheSameBootWithItsSteadyClockNotBehind) {
  const ClockReading saved{"boot-1", 1'000, 50'000};
  // Same boot, 300 ms of steady time later: exactly on, wherever the wall is.
  EXPECT_EQ(sqlite::store_ms_at_open({"boot-1", 1'300, 10}, saved, std::nullopt), 50'300);
  EXPECT_EQ(sqlite::store_ms_at_open({"boot-1", 1'300, 90'000}, saved, std::nullopt), 50'300);
  // A steady clock behind the reading is not the same boot's, whatever the id says.
  EXPECT_EQ(sqlite::store_ms_at_open({"boot-1", 900, 10}, saved, std::nullopt), 50'000);
  // Another boot, or none known: the wall time, no earlier than the reading or latest finish.
  EXPECT_EQ(sqlite::store_ms_at_open({"boot-2", 5'000, 10}, saved, std::nullopt), 50'000);
  EXPECT_EQ(sqlite::store_ms_at_open({"boot-2", 5'000, 60'000}, saved, std::nullopt), 60'000);
  EXPECT_EQ(sqlite::store_ms_at_open({"boot-2", 5'000, 10}, saved, 70'000), 70'000);
  EXPECT_EQ(sqlite::store_ms_at_open({"", 1'300, 10}, ClockReading{"", 1'000, 50'000}, 0), 50'000);
  EXPECT_EQ(sqlite::store_ms_at_open({"boot-1", 1'300, 10}, std::nullopt, std::nullopt), 10);
}

TEST(StoreClockRuleTest, ReadingsRoundTripAndStrangeValuesAreNone) {
  const ClockReading reading{"6f1c2a-boot", 1'000'000'123, 1'700'000'000'456};
  EXPECT_EQ(sqlite::encode(reading),
            "boot_id=6f1c2a-boot steady_ms=1000000123 "
            "store_ms=1700000000456");
  EXPECT_EQ(sqlite::decode(sqlite::encode(reading)), reading);
  EXPECT_EQ(sqlite::decode(sqlite::encode({"", 1, 2})), (ClockReading{"", 1, 2}));
  for (const char* bad :
       {"", "boot_id=x", "boot_id=x steady_ms=1 store_ms=", "steady_ms=1",
        "boot_id=x steady_ms=1 store_ms=2 more", "boot_id=x steady_ms=a store_ms=2"}) {
    EXPECT_FALSE(sqlite::decode(bad).has_value()) << bad;
  }
}

TEST(StoreClockRuleTest, ThisMachinesBootIdIsReadOnce) {
  if (!std::filesystem::exists("/proc/sys/kernel/random/boot_id")) GTEST_SKIP();
  EXPECT_EQ(sqlite::this_boot_id().size(), 36u) << sqlite::this_boot_id();
  EXPECT_EQ(&sqlite::this_boot_id(), &sqlite::this_boot_id());
}

}  // namespace
}  // namespace callbackd
