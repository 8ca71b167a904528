// The daemon and its master key: taken out of the environment once read, not kept as text,
// and a warning when the key file sits where every backup of the data goes.
#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

#include "daemon_process.h"
#include "temp_dir.h"

namespace callbackd {
namespace {

using testing::DaemonProcess;

constexpr const char* kKeyHex = "7f3c9a1e5b2d4f608192a3b4c5d6e7f80112233445566778899aabbccddeeff0";

std::string file_text(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// Whether `needle` is anywhere in the process's writable memory (heap, stacks, data).
bool in_process_memory(pid_t pid, const std::string& needle) {
  std::ifstream maps("/proc/" + std::to_string(pid) + "/maps");
  std::ifstream memory("/proc/" + std::to_string(pid) + "/mem", std::ios::binary);
  std::string line;
  while (std::getline(maps, line)) {
    unsigned long start = 0, end = 0;
    char perms[5] = {};
    if (std::sscanf(line.c_str(), "%lx-%lx %4s", &start, &end, perms) != 3) continue;
    // Writable private memory only; huge reservations (sanitizer shadow) hold no copies.
    if (perms[0] != 'r' || perms[1] != 'w' || end - start > (256ul << 20)) continue;
    std::string bytes(end - start, '\0');
    memory.clear();
    memory.seekg(static_cast<std::streamoff>(start));
    memory.read(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    if (memory.gcount() > 0 && bytes.find(needle) != std::string::npos) return true;
  }
  return false;
}

class DaemonSecretsTest : public ::testing::Test {
 protected:
  std::unique_ptr<DaemonProcess> start(std::vector<std::string> extra,
                                       std::vector<std::string> env = {}) {
    std::vector<std::string> args = {"serve", "--listen=127.0.0.1:0",
                                     "--data-dir=" + (dir_ / "data").string()};
    args.insert(args.end(), extra.begin(), extra.end());
    auto daemon = std::make_unique<DaemonProcess>(CALLBACKD_BINARY, args, dir_ / "daemon.log", env);
    EXPECT_TRUE(daemon->wait_listening()) << daemon->log();
    return daemon;
  }
  testing::TempDir dir_;
};

TEST_F(DaemonSecretsTest, TheMasterKeyLeavesTheEnvironmentAndIsNotKeptAsText) {
  auto daemon = start({}, {std::string("CALLBACKD_MASTER_KEY=") + kKeyHex});
  const std::string environ_text = file_text("/proc/" + std::to_string(daemon->pid()) + "/environ");
  EXPECT_EQ(environ_text.find("CALLBACKD_MASTER_KEY"), std::string::npos);
  EXPECT_EQ(environ_text.find(kKeyHex), std::string::npos);
  EXPECT_EQ(daemon->log().find("master_key_in_data_dir"), std::string::npos)
      << "no key file is used";
#if defined(__SANITIZE_ADDRESS__)
  // The sanitizer runtime copies the initial environment (from /proc/self/environ) into memory
  // of its own before main() runs; only an uninstrumented daemon can be searched.
  GTEST_SKIP() << "memory search skipped under AddressSanitizer";
#endif
  EXPECT_FALSE(in_process_memory(daemon->pid(), kKeyHex))
      << "the key's text is still in the daemon's memory";
}

TEST_F(DaemonSecretsTest, AKeyFileInsideDataDirIsWarnedAbout) {
  auto daemon = start({});  // the default: <data_dir>/callbackd.db.key
  const std::string log = daemon->log();
  EXPECT_NE(log.find("level=warning event=master_key_in_data_dir"), std::string::npos) << log;
  EXPECT_NE(log.find("callbackd.db.key"), std::string::npos) << log;
}

TEST_F(DaemonSecretsTest, AKeyFileOutsideDataDirIsNotWarnedAbout) {
  std::filesystem::create_directories(dir_ / "keys");
  auto daemon = start({"--master-key-file=" + (dir_ / "keys" / "callbackd.key").string()});
  // Created by this start (the directory must exist): the listening line is the signal that
  // start-up, warnings included, is over.
  const std::string log = daemon->log();
  EXPECT_NE(log.find("event=listening"), std::string::npos) << log;
  EXPECT_EQ(log.find("master_key_in_data_dir"), std::string::npos) << log;
}

}  // namespace
}  // namespace callbackd
