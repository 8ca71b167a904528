// A store with a damaged page does not open: it would take new callbacks into a file that
// cannot keep them. Real files, damaged at several positions.
#include <callbackd/sqlite_store.h>
#include <gtest/gtest.h>

#include <fstream>
#include <random>
#include <set>

#include "temp_dir.h"

namespace callbackd {
namespace {

constexpr std::size_t kPageSize = 4096;  // SQLite's default, which the store keeps

// A closed store (no WAL left) with apps, small rows and rows with overflow pages.
void write_store(const std::filesystem::path& path) {
  auto queue = open_sqlite_queue({.path = path});
  ASSERT_TRUE(queue.ok()) << queue.status().to_string();
  StoredApp app;
  app.app = App{"app_1", "acme", SignatureScheme::kHex, {}};
  app.sealed_secret = "sealed";
  ASSERT_TRUE((*queue)->insert_app(app).ok());
  for (int i = 0; i < 400; ++i) {
    const std::string task = "task_" + std::to_string(i);
    NewDelivery d{"dlv_" + std::to_string(i),
                  "app_1",
                  task,
                  "https://customer.example/" + task,
                  "https://customer.example:443",
                  std::make_shared<const std::string>(std::string(i % 10 == 0 ? 9000 : 600, 'b')),
                  {},
                  std::nullopt};
    ASSERT_TRUE((*queue)->enqueue(d).ok());
  }
}

// Overwrites page `page` (1-based) with noise, as a torn write or a bad sector would.
void damage_page(const std::filesystem::path& path, std::size_t page) {
  std::mt19937 noise(static_cast<unsigned>(page));
  std::string garbage(kPageSize, '\0');
  for (char& c : garbage) c = static_cast<char>(noise());
  std::fstream file(path, std::ios::in | std::ios::out | std::ios::binary);
  file.seekp(static_cast<std::streamoff>((page - 1) * kPageSize));
  file.write(garbage.data(), static_cast<std::streamsize>(garbage.size()));
  ASSERT_TRUE(file.good()) << path;
}

TEST(DamagedStore, ADamagedPageAtAnyOfNinePositionsStopsTheOpenWithWhatToDo) {
  testing::TempDir dir;
  const auto pristine = dir / "pristine.db";
  write_store(pristine);
  ASSERT_FALSE(std::filesystem::exists(pristine.string() + "-wal")) << "closed stores keep no WAL";
  const std::size_t pages = std::filesystem::file_size(pristine) / kPageSize;
  ASSERT_GT(pages, 40u);
  const std::set<std::size_t> positions = {
      1, 2, 3, 4, pages / 4, pages / 2, 3 * pages / 4, pages - 1, pages};
  ASSERT_EQ(positions.size(), 9u);

  int opened = 0;
  for (std::size_t page : positions) {
    const auto copy = dir / ("damaged-" + std::to_string(page) + ".db");
    std::filesystem::copy_file(pristine, copy);
    damage_page(copy, page);
    Result<std::unique_ptr<Queue>> queue = open_sqlite_queue({.path = copy});
    if (queue.ok()) {
      ++opened;
      ADD_FAILURE() << "a store with page " << page << " of " << pages << " damaged opened";
      continue;
    }
    const std::string& message = queue.status().message();
    EXPECT_EQ(queue.status().code(), StatusCode::kFailedPrecondition) << message;
    EXPECT_NE(message.find(copy.string()), std::string::npos) << message;
    EXPECT_NE(message.find("damaged"), std::string::npos) << message;
    EXPECT_NE(message.find(".recover"), std::string::npos) << message;
    EXPECT_NE(message.find("backup"), std::string::npos) << message;
  }
  EXPECT_EQ(opened, 0) << "of " << positions.size() << " damaged positions";
}

TEST(DamagedStore, AnUndamagedStoreStillOpensAndKeepsItsRows) {
  testing::TempDir dir;
  const auto path = dir / "callbackd.db";
  write_store(path);
  auto queue = open_sqlite_queue({.path = path});
  ASSERT_TRUE(queue.ok()) << queue.status().to_string();
  Result<DeliveryCounts> counts = (*queue)->count_by_state();
  ASSERT_TRUE(counts.ok());
  EXPECT_EQ((*counts)[static_cast<std::size_t>(DeliveryState::kPending)], 400u);
}

}  // namespace
}  // namespace callbackd
