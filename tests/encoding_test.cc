#include "encoding.h"

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <set>

#include "intake/ids.h"

namespace callbackd {
namespace {

TEST(Encoding, HexAndBase64KnownValues) {
  EXPECT_EQ(hex_encode(as_bytes(std::string_view("\x00\xff\x10", 3))), "00ff10");
  EXPECT_EQ(base64_encode(as_bytes("")), "");
  EXPECT_EQ(base64_encode(as_bytes("f")), "Zg==");
  EXPECT_EQ(base64_encode(as_bytes("fo")), "Zm8=");
  EXPECT_EQ(base64_encode(as_bytes("foobar")), "Zm9vYmFy");
  EXPECT_EQ(base64_decode("Zg=="), "f");
  EXPECT_EQ(base64_decode("Zm8="), "fo");
  EXPECT_EQ(base64_decode("Zm9vYmFy"), "foobar");
  EXPECT_EQ(base64_decode("Zm9"), std::nullopt);
  EXPECT_EQ(base64_decode("Zm9v!mFy"), std::nullopt);
  EXPECT_EQ(base64_decode("Z=9v"), std::nullopt);
}

TEST(Encoding, Base64RoundTripsEveryByte) {
  std::string all;
  for (int i = 0; i < 256; ++i) all.push_back(static_cast<char>(i));
  for (std::size_t n = 0; n < all.size(); n += 17) {
    std::string part = all.substr(0, n);
    EXPECT_EQ(base64_decode(base64_encode(as_bytes(part))), part);
  }
}

TEST(Encoding, CrockfordBase32Of128BitsIs26Digits) {
  std::array<unsigned char, 16> zeros{};
  EXPECT_EQ(crockford_base32_encode(zeros), std::string(26, '0'));
  std::array<unsigned char, 16> ones;
  ones.fill(0xff);
  EXPECT_EQ(crockford_base32_encode(ones), "7" + std::string(25, 'Z'));
}

TEST(Encoding, Utf8Validation) {
  EXPECT_TRUE(is_valid_utf8("plain ascii"));
  EXPECT_TRUE(is_valid_utf8("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x8e\xb5"));
  EXPECT_FALSE(is_valid_utf8("\xc3"));              // truncated
  EXPECT_FALSE(is_valid_utf8("\xc0\xaf"));          // overlong '/'
  EXPECT_FALSE(is_valid_utf8("\xed\xa0\x80"));      // surrogate
  EXPECT_FALSE(is_valid_utf8("\xf4\x90\x80\x80"));  // above U+10FFFF
  EXPECT_FALSE(is_valid_utf8("\xff"));
}

TEST(Encoding, ConstantTimeEquals) {
  EXPECT_TRUE(constant_time_equals("abc", "abc"));
  EXPECT_FALSE(constant_time_equals("abc", "abd"));
  EXPECT_FALSE(constant_time_equals("abc", "ab"));
}

TEST(Ids, AreUniqueTimeOrderedAndPrefixed) {
  const TimePoint t = from_unix_ms(1'700'000'000'000);
  std::set<std::string> seen;
  for (int i = 0; i < 1000; ++i) {
    std::string id = new_delivery_id(t);
    ASSERT_EQ(id.size(), 4u + 26u);
    EXPECT_EQ(id.substr(0, 4), "dlv_");
    EXPECT_TRUE(seen.insert(id).second);
  }
  EXPECT_LT(new_delivery_id(t).substr(0, 14), new_delivery_id(t + Millis(1)).substr(0, 14));
  EXPECT_EQ(new_app_id(t).substr(0, 4), "app_");
}

// Ids draw their random part from a pool per thread; a forked child (an embedding pipeline may
// fork) must not hand out the ids the parent goes on to make from the same pool.
TEST(Ids, AForkedChildDoesNotRepeatItsParentsIds) {
  const TimePoint t = from_unix_ms(1'700'000'000'000);
  (void)new_delivery_id(t);  // the pool is filled and partly used
  int pipe_fds[2];
  ASSERT_EQ(pipe(pipe_fds), 0);
  const pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    std::string ids;
    for (int i = 0; i < 3; ++i) ids += new_delivery_id(t);
    const bool written =
        write(pipe_fds[1], ids.data(), ids.size()) == static_cast<ssize_t>(ids.size());
    _exit(written ? 0 : 1);
  }
  close(pipe_fds[1]);
  std::string from_child(3 * 30, '\0');
  std::size_t got = 0;
  while (got < from_child.size()) {
    const ssize_t n = read(pipe_fds[0], from_child.data() + got, from_child.size() - got);
    ASSERT_GT(n, 0);
    got += static_cast<std::size_t>(n);
  }
  close(pipe_fds[0]);
  int status = 0;
  ASSERT_EQ(waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  for (int i = 0; i < 3; ++i) {
    const std::string ours = new_delivery_id(t);
    for (int j = 0; j < 3; ++j) EXPECT_NE(ours, from_child.substr(30 * j, 30));
  }
}

TEST(Ids, HexSecretsAre256RandomBits) {
  std::string a = new_hex_secret();
  std::string b = new_hex_secret();
  EXPECT_EQ(a.size(), 64u);
  EXPECT_EQ(a.find_first_not_of("0123456789abcdef"), std::string::npos);
  EXPECT_NE(a, b);
}

}  // namespace
}  // namespace callbackd
