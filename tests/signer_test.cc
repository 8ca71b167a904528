// HMAC-SHA256 signing: RFC 4231 vectors, and the X-Signature header a receiver recomputes.
#include "signing/signer.h"

#include <callbackd/signature.h>
#include <gtest/gtest.h>
#include <openssl/hmac.h>

#include <string>

#include "encoding.h"
#include "signing/hmac_sha256.h"

namespace callbackd {
namespace {

std::string repeat(unsigned char byte, std::size_t n) {
  return std::string(n, static_cast<char>(byte));
}

std::string from_hex(std::string_view hex) {
  std::string out;
  for (std::size_t i = 0; i + 1 < hex.size(); i += 2) {
    out.push_back(static_cast<char>(std::stoi(std::string(hex.substr(i, 2)), nullptr, 16)));
  }
  return out;
}

struct Rfc4231Case {
  std::string key;
  std::string data;
  std::string hmac_hex;  // full 256-bit result
};

TEST(HmacSha256, MatchesRfc4231TestVectors) {
  const Rfc4231Case cases[] = {
      {repeat(0x0b, 20), "Hi There",
       "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"},
      {"Jefe", "what do ya want for nothing?",
       "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"},
      {repeat(0xaa, 20), repeat(0xdd, 50),
       "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe"},
      {from_hex("0102030405060708090a0b0c0d0e0f10111213141516171819"), repeat(0xcd, 50),
       "82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b"},
      {repeat(0xaa, 131), "Test Using Larger Than Block-Size Key - Hash Key First",
       "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"},
      {repeat(0xaa, 131),
       "This is a test using a larger than block-size key and a larger than block-size data. "
       "The key needs to be hashed before being used by the HMAC algorithm.",
       "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2"},
  };
  for (const auto& c : cases) {
    HmacSha256 hmac(c.key);
    EXPECT_EQ(hex_encode(hmac.mac(c.data)), c.hmac_hex);
    // The keyed state is reused: a second MAC with the same object must agree.
    EXPECT_EQ(hex_encode(hmac.mac(c.data)), c.hmac_hex);
    EXPECT_EQ(hex_signature(c.key, c.data), c.hmac_hex);
  }
  // RFC 4231 test case 5 is truncated to 128 bits.
  EXPECT_EQ(hex_encode(HmacSha256(repeat(0x0c, 20)).mac("Test With Truncation")).substr(0, 32),
            "a3b6167473100ee06e0c796c2955552b");
}

TEST(HmacSha256, MultiPartEqualsConcatenation) {
  HmacSha256 hmac("secret");
  EXPECT_EQ(hmac.mac({"msg_1", ".", "1700000000", ".", "{}"}), hmac.mac("msg_1.1700000000.{}"));
}

TEST(HmacSha256, CopiesAreIndependent) {
  HmacSha256 original("k");
  HmacSha256 copy(original);
  EXPECT_EQ(copy.mac("a"), original.mac("a"));
  EXPECT_NE(copy.mac("a"), copy.mac("b"));
}

TEST(HmacSha256, EmptyKeyAndBody) {
  unsigned char expected[32];
  unsigned int length = 0;
  HMAC(EVP_sha256(), "", 0, nullptr, 0, expected, &length);
  EXPECT_EQ(hex_encode(HmacSha256(std::string_view()).mac("")),
            hex_encode(std::span<const unsigned char>(expected, length)));
}

// What a receiver does: recompute HMAC-SHA256 over the raw body with the secret's bytes, using
// OpenSSL directly, and compare with the X-Signature header.
TEST(Signer, HexSchemeHeaderIsWhatAReceiverRecomputes) {
  AppKey key;
  key.app.id = "app_1";
  key.secret = "5f1c0a7e9b2d4c6e8f00112233445566778899aabbccddeeff00112233445566";
  const std::string body = R"({"task_id":"t1","status":"failed","error":"boom"})";

  Signer signer(key);
  std::vector<std::string> headers;
  signer.add_headers("dlv_1", TimePoint(), body, headers);
  ASSERT_EQ(headers.size(), 1u);

  unsigned char mac[32];
  unsigned int length = 0;
  HMAC(EVP_sha256(), key.secret.data(), static_cast<int>(key.secret.size()),
       reinterpret_cast<const unsigned char*>(body.data()), body.size(), mac, &length);
  EXPECT_EQ(headers[0], "X-Signature: " + hex_encode(std::span<const unsigned char>(mac, length)));
}

// The Standard Webhooks specification's published test vector.
TEST(Signer, StandardWebhooksSpecVector) {
  AppKey key;
  key.app.scheme = SignatureScheme::kStandard;
  key.secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
  Signer signer(key);
  std::vector<std::string> headers;
  signer.add_headers("msg_p5jXN8AQM9LWM0D4loKWxJek", from_unix_ms(1614265330000),
                     R"({"test": 2432232314})", headers);
  EXPECT_EQ(headers, (std::vector<std::string>{
                         "webhook-id: msg_p5jXN8AQM9LWM0D4loKWxJek",
                         "webhook-timestamp: 1614265330",
                         "webhook-signature: v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
                     }));
}

TEST(Signer, RotatedOutSecretSignsAlongsideUntilItsOverlapEnds) {
  AppKey key;
  key.app.scheme = SignatureScheme::kStandard;
  key.secret = "whsec_" + std::string("QkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJC");
  key.previous_secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
  const TimePoint now = from_unix_ms(1614265330000);
  key.previous_until = now + Millis(1000);
  Signer signer(key);
  std::vector<std::string> during, after;
  signer.add_headers("msg_p5jXN8AQM9LWM0D4loKWxJek", now, R"({"test": 2432232314})", during);
  signer.add_headers("msg_p5jXN8AQM9LWM0D4loKWxJek", now + Millis(1000), R"({"test": 2432232314})",
                     after);
  const std::string& both = during[2];
  EXPECT_EQ(both.substr(0, 22), "webhook-signature: v1,");
  // New secret first, then the old one (whose signature is the spec vector's).
  EXPECT_NE(both.find(" v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="), std::string::npos);
  EXPECT_EQ(after[2].find(' ', 19), std::string::npos) << "old secret still signing: " << after[2];
}

TEST(VerifyHexSignature, AcceptsTheRightSignatureInEitherCaseOnly) {
  const std::string secret = "s3cret";
  const std::string body = "{\"a\":1}";
  std::string signature = hex_signature(secret, body);
  EXPECT_TRUE(verify_hex_signature(secret, body, signature));
  std::string upper = signature;
  for (char& c : upper) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  EXPECT_TRUE(verify_hex_signature(secret, body, upper));
  EXPECT_FALSE(verify_hex_signature(secret, body + " ", signature));
  EXPECT_FALSE(verify_hex_signature("other", body, signature));
  EXPECT_FALSE(verify_hex_signature(secret, body, signature.substr(0, 63)));
  EXPECT_FALSE(verify_hex_signature(secret, body, ""));
}

}  // namespace
}  // namespace callbackd
