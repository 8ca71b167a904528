// Secrets at rest: AES-256-GCM sealing, bound to the app, and master key parsing.
#include "secrets/secret_box.h"

#include <gtest/gtest.h>

namespace callbackd {
namespace {

const std::string kKey(32, '\x42');

TEST(SecretBox, SealsAndOpens) {
  SecretBox box(kKey);
  const std::string sealed = box.seal("5f1c-secret", "app_1");
  EXPECT_EQ(sealed.find("5f1c-secret"), std::string::npos);
  EXPECT_NE(box.seal("5f1c-secret", "app_1"), sealed) << "nonces must differ";
  Result<std::string> opened = box.open(sealed, "app_1");
  ASSERT_TRUE(opened.ok());
  EXPECT_EQ(*opened, "5f1c-secret");
}

TEST(SecretBox, WrongKeyAppOrTamperingDoNotOpen) {
  SecretBox box(kKey);
  const std::string sealed = box.seal("secret", "app_1");
  EXPECT_EQ(SecretBox(std::string(32, 'x')).open(sealed, "app_1").status().code(),
            StatusCode::kFailedPrecondition);
  EXPECT_FALSE(box.open(sealed, "app_2").ok());
  std::string tampered = sealed;
  tampered[tampered.size() / 2] ^= 1;
  EXPECT_FALSE(box.open(tampered, "app_1").ok());
  EXPECT_FALSE(box.open("v1short", "app_1").ok());
  EXPECT_FALSE(box.open("", "app_1").ok());
}

TEST(SecretBox, KeyCheckTellsKeysApartWithoutRevealingThem) {
  EXPECT_EQ(SecretBox(kKey).key_check(), SecretBox(kKey).key_check());
  EXPECT_NE(SecretBox(kKey).key_check(), SecretBox(std::string(32, 'x')).key_check());
  EXPECT_EQ(SecretBox(kKey).key_check().find(kKey), std::string::npos);
}

TEST(MasterKey, HexOrBase64Of32Bytes) {
  EXPECT_EQ(*parse_master_key(std::string(64, 'a'), "k"), std::string(32, '\xaa'));
  EXPECT_EQ(*parse_master_key(std::string(64, 'a') + "\n", "k"), std::string(32, '\xaa'));
  EXPECT_EQ(parse_master_key("QkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkI=", "k")->size(), 32u);
  for (const char* bad : {"", "abc", "zz", "QkJC"}) {
    Result<std::string> key = parse_master_key(bad, "CALLBACKD_MASTER_KEY");
    ASSERT_FALSE(key.ok()) << bad;
    EXPECT_EQ(key.status().message().rfind("CALLBACKD_MASTER_KEY: must be 32 bytes", 0), 0u);
  }
}

}  // namespace
}  // namespace callbackd
