#include "secrets/master_key.h"

#include <fcntl.h>
#include <openssl/crypto.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cstring>

#include "encoding.h"
#include "intake/ids.h"

namespace callbackd {
namespace {

constexpr std::string_view kKeyCheckSetting = "master_key_check";

// Writes a new random key file readable by its owner only; refuses to replace one.
Result<std::string> create_key_file(const std::filesystem::path& path) {
  std::array<unsigned char, 32> key{};
  random_bytes(key);
  std::string text = hex_encode(key) + "\n";
  struct Wipe {  // every way out of here leaves no copy of the key behind
    std::array<unsigned char, 32>& key;
    std::string& text;
    ~Wipe() {
      OPENSSL_cleanse(key.data(), key.size());
      wipe_secret(text);
    }
  } wipe{key, text};
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) {
    return Status::FailedPrecondition("master key file \"" + path.string() +
                                      "\": cannot create: " + std::strerror(errno));
  }
  const bool written = ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size()) &&
                       ::fsync(fd) == 0;
  ::close(fd);
  if (!written)
    return Status::FailedPrecondition("master key file \"" + path.string() + "\": write failed");
  spdlog::info("event=master_key_created path={}", path.string());
  return std::string(reinterpret_cast<const char*>(key.data()), key.size());
}

// Read with plain read(2) into a buffer of known size, so the key's text can be wiped after.
Result<std::string> read_key_file(const std::filesystem::path& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    return Status::FailedPrecondition("master key file \"" + path.string() +
                                      "\": cannot read: " + std::strerror(errno));
  }
  std::string text(256, '\0');  // a key file is 65 bytes; anything longer is not a key
  ssize_t length = 0;
  for (ssize_t n = 0; length < static_cast<ssize_t>(text.size()); length += n) {
    n = ::read(fd, text.data() + length, text.size() - static_cast<std::size_t>(length));
    if (n <= 0) break;
  }
  ::close(fd);
  text.resize(static_cast<std::size_t>(std::max<ssize_t>(length, 0)));
  Result<std::string> key = parse_master_key(text, "master key file \"" + path.string() + "\"");
  wipe_secret(text);
  if (!key.ok()) return Status::FailedPrecondition(key.status().message());
  return key;
}

}  // namespace

Result<SecretBox> open_secret_box(const EngineOptions& options, Queue& queue) {
  Result<std::optional<std::string>> check = queue.get_setting(kKeyCheckSetting);
  if (!check.ok()) return check.status();
  const bool sealed_before = check->has_value();

  std::string key;
  if (!options.master_key.empty()) {
    Result<std::string> parsed = parse_master_key(options.master_key, "master_key");
    if (!parsed.ok()) return parsed.status();
    key = std::move(*parsed);
  } else {
    const std::filesystem::path& file = options.master_key_file;
    std::error_code ec;
    Result<std::string> loaded =
        std::filesystem::exists(file, ec) ? read_key_file(file)
        : sealed_before                   ? Result<std::string>(Status::FailedPrecondition(
                                                "master key: the store \"" + queue.describe() +
                                                "\" holds sealed secrets but its key file \"" + file.string() +
                                                "\" does not exist; provide the key it was created "
                                                                  "with (CALLBACKD_MASTER_KEY or master_key_file)"))
                                          : create_key_file(file);
    if (!loaded.ok()) return loaded.status();
    key = std::move(*loaded);
  }

  SecretBox box(std::move(key));
  wipe_secret(key);  // empty after the move; wiped in case the move ever copies
  if (sealed_before && **check != box.key_check()) {
    return Status::FailedPrecondition("master key: not the key the store \"" + queue.describe() +
                                      "\" was sealed with; its secrets cannot be opened");
  }
  if (!sealed_before) {
    if (Status s = queue.put_setting(kKeyCheckSetting, box.key_check()); !s.ok()) return s;
  }
  return box;
}

}  // namespace callbackd
