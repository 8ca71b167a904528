// cmake/EmbedFiles.cmake: files compiled in come back byte for byte, found by relative path.
#include "embedded_files.h"

#include <gtest/gtest.h>

#include <fstream>
#include <sstream>
#include <string>

namespace callbackd {
std::span<const EmbeddedFile> embedded_test_fixtures();

namespace {

std::string read_fixture(const std::string& name) {
  std::ifstream in(std::string(CALLBACKD_EMBED_FIXTURES) + "/" + name, std::ios::binary);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

TEST(EmbeddedFilesTest, EveryFileComesBackByteForByteUnderItsRelativePath) {
  for (const char* name : {"hello.txt", "empty.txt", "nested/bytes.bin"}) {
    const EmbeddedFile* file = find_embedded_file(embedded_test_fixtures(), name);
    ASSERT_NE(file, nullptr) << name;
    EXPECT_EQ(file->bytes(), read_fixture(name)) << name;
  }
  EXPECT_EQ(find_embedded_file(embedded_test_fixtures(), "nested/bytes.bin")->size, 9u);
  EXPECT_EQ(find_embedded_file(embedded_test_fixtures(), "missing.txt"), nullptr);
  EXPECT_EQ(find_embedded_file(embedded_test_fixtures(), "bytes.bin"), nullptr);
}

}  // namespace
}  // namespace callbackd
