// At-least-once across kill -9: a child process running the engine is killed while callbacks
// are in flight; an engine reopened on the same file delivers every callback the child had
// accepted. Duplicates are allowed, losses are not.
#include <callbackd/engine.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <set>
#include <string>
#include <thread>

#include "receiver.h"
#include "sqlite_engine.h"
#include "temp_dir.h"
#include "wait.h"

extern char** environ;

namespace callbackd {
namespace {

using namespace std::chrono_literals;

TEST(CrashSafety, EveryAcceptedCallbackIsDeliveredAfterKillDashNine) {
  testing::TempDir dir;
  // Slow answers keep attempts in flight when the kill lands.
  testing::Receiver receiver([](const testing::ReceivedRequest&) {
    return testing::Reply{.status = 204, .delay = 150ms};
  });
  const std::string db = (dir / "callbackd.db").string();
  const Millis attempt_timeout = 500ms;

  std::string app_id;
  {
    auto engine = testing::open_sqlite_engine(db, {});
    ASSERT_TRUE(engine.ok());
    app_id = (*engine)->create_app("crash")->app.id;
  }

  int out[2];
  ASSERT_EQ(pipe(out), 0);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, out[1], STDOUT_FILENO);
  posix_spawn_file_actions_addclose(&actions, out[0]);
  const std::string url = receiver.url();
  const std::string timeout = std::to_string(attempt_timeout.count());
  const char* child_argv[] = {CALLBACKD_CRASH_CHILD, db.c_str(), app_id.c_str(), url.c_str(), "400",
                              timeout.c_str(),       nullptr};
  pid_t child = 0;
  ASSERT_EQ(posix_spawn(&child, CALLBACKD_CRASH_CHILD, &actions, nullptr,
                        const_cast<char**>(child_argv), environ),
            0);
  posix_spawn_file_actions_destroy(&actions);
  close(out[1]);

  // Read accepted ids until well into the run, with attempts in flight, then kill -9.
  std::set<std::string> accepted;
  FILE* lines = fdopen(out[0], "r");
  char line[128];
  while (accepted.size() < 150 && std::fgets(line, sizeof line, lines) != nullptr) {
    std::string id(line);
    if (!id.empty() && id.back() == '\n') id.pop_back();
    accepted.insert(id);
  }
  ASSERT_EQ(accepted.size(), 150u) << "the child stopped early";
  ASSERT_GT(receiver.count(), 0u);
  ASSERT_EQ(kill(child, SIGKILL), 0);
  int status = 0;
  ASSERT_EQ(waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
  // Ids printed before the kill but not yet read are accepted too.
  while (std::fgets(line, sizeof line, lines) != nullptr) {
    std::string id(line);
    if (!id.empty() && id.back() == '\n') id.pop_back();
    if (!id.empty()) accepted.insert(id);
  }
  std::fclose(lines);
  const std::size_t seen_before_restart = receiver.count();

  EngineOptions options;
  options.attempt_timeout = attempt_timeout;
  options.retry_schedule = {50ms, 50ms};
  options.poll_interval = 20ms;
  options.allow_networks = {"127.0.0.0/8"};
  auto engine = testing::open_sqlite_engine(db, options);
  ASSERT_TRUE(engine.ok()) << engine.status().to_string();
  (*engine)->start();

  auto delivered_ids = [&] {
    std::set<std::string> ids;
    for (const auto& r : receiver.requests()) ids.insert(r.headers.at("x-callback-id"));
    return ids;
  };
  const bool all_arrived = testing::wait_until(
      [&] {
        const auto ids = delivered_ids();
        for (const auto& id : accepted) {
          if (!ids.contains(id)) return false;
        }
        return true;
      },
      30s);
  std::size_t missing = 0;
  const auto ids = delivered_ids();
  for (const auto& id : accepted) missing += ids.contains(id) ? 0 : 1;
  EXPECT_TRUE(all_arrived) << missing << " of " << accepted.size() << " accepted callbacks lost";
  for (const auto& id : accepted) {
    EXPECT_TRUE(testing::wait_until(
        [&] { return (*engine)->delivery(id)->state == DeliveryState::kDelivered; }, 10s))
        << id;
  }
  std::printf("accepted=%zu received_before_restart=%zu received_total=%zu\n", accepted.size(),
              seen_before_restart, receiver.count());
}

}  // namespace
}  // namespace callbackd
