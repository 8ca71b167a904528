#include "secrets/secret_box.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include <array>
#include <memory>
#include <new>

#include "encoding.h"
#include "intake/ids.h"
#include "signing/hmac_sha256.h"

namespace callbackd {
namespace {

constexpr std::string_view kVersion = "v1";
constexpr std::size_t kNonceSize = 12;
constexpr std::size_t kTagSize = 16;

using CipherContext = std::unique_ptr<EVP_CIPHER_CTX, decltype(&EVP_CIPHER_CTX_free)>;

CipherContext new_context() {
  CipherContext ctx(EVP_CIPHER_CTX_new(), EVP_CIPHER_CTX_free);
  if (!ctx) throw std::bad_alloc();
  return ctx;
}

const unsigned char* bytes(std::string_view s) {
  return reinterpret_cast<const unsigned char*>(s.data());
}

int hex_digit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

}  // namespace

void wipe_secret(std::string& secret) {
  OPENSSL_cleanse(secret.data(), secret.size());
  secret.clear();
}

Result<std::string> parse_master_key(std::string_view text, std::string_view what) {
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r' || text.back() == ' ')) {
    text.remove_suffix(1);
  }
  if (text.size() == 64) {
    std::string key;
    key.reserve(32);  // no reallocation leaves a partial key behind
    for (std::size_t i = 0; i < 64; i += 2) {
      const int high = hex_digit(text[i]);
      const int low = hex_digit(text[i + 1]);
      if (high < 0 || low < 0) break;
      key.push_back(static_cast<char>(high * 16 + low));
    }
    if (key.size() == 32) return key;
    wipe_secret(key);
  }
  if (std::optional<std::string> key = base64_decode(text)) {
    if (key->size() == 32) return std::move(*key);
    wipe_secret(*key);
  }
  return Status::InvalidArgument(std::string(what) +
                                 ": must be 32 bytes as 64 hex digits or base64 "
                                 "(e.g. `openssl rand -hex 32`)");
}

std::string SecretBox::seal(std::string_view plaintext, std::string_view context) const {
  std::array<unsigned char, kNonceSize> nonce{};
  random_bytes(nonce);
  std::string out(kVersion);
  out.append(reinterpret_cast<const char*>(nonce.data()), nonce.size());
  const std::size_t body_at = out.size();
  out.resize(body_at + plaintext.size() + kTagSize);
  auto* cipher = reinterpret_cast<unsigned char*>(out.data() + body_at);

  CipherContext ctx = new_context();
  int length = 0;
  bool ok =
      EVP_EncryptInit_ex(ctx.get(), EVP_aes_256_gcm(), nullptr, bytes(key_), nonce.data()) == 1 &&
      EVP_EncryptUpdate(ctx.get(), nullptr, &length, bytes(context),
                        static_cast<int>(context.size())) == 1 &&
      EVP_EncryptUpdate(ctx.get(), cipher, &length, bytes(plaintext),
                        static_cast<int>(plaintext.size())) == 1 &&
      EVP_EncryptFinal_ex(ctx.get(), cipher + length, &length) == 1 &&
      EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_GET_TAG, kTagSize, cipher + plaintext.size()) ==
          1;
  if (!ok) throw std::bad_alloc();  // only a broken OpenSSL fails here
  return out;
}

Result<std::string> SecretBox::open(std::string_view sealed, std::string_view context) const {
  const Status wrong = Status::FailedPrecondition(
      "a stored secret does not decrypt: the master key is not the one it was sealed with");
  if (sealed.size() < kVersion.size() + kNonceSize + kTagSize ||
      sealed.substr(0, kVersion.size()) != kVersion) {
    return wrong;
  }
  const std::string_view nonce = sealed.substr(kVersion.size(), kNonceSize);
  const std::string_view cipher = sealed.substr(kVersion.size() + kNonceSize);
  const std::size_t text_size = cipher.size() - kTagSize;
  std::string plaintext(text_size, '\0');
  std::array<unsigned char, kTagSize> tag{};
  std::copy(cipher.end() - kTagSize, cipher.end(), tag.begin());

  CipherContext ctx = new_context();
  int length = 0;
  auto* out = reinterpret_cast<unsigned char*>(plaintext.data());
  bool ok =
      EVP_DecryptInit_ex(ctx.get(), EVP_aes_256_gcm(), nullptr, bytes(key_), bytes(nonce)) == 1 &&
      EVP_DecryptUpdate(ctx.get(), nullptr, &length, bytes(context),
                        static_cast<int>(context.size())) == 1 &&
      EVP_DecryptUpdate(ctx.get(), out, &length, bytes(cipher), static_cast<int>(text_size)) == 1 &&
      EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_SET_TAG, kTagSize, tag.data()) == 1 &&
      EVP_DecryptFinal_ex(ctx.get(), out + length, &length) == 1;
  if (!ok) {
    wipe_secret(plaintext);  // unauthenticated, but maybe a secret all the same
    return wrong;
  }
  return plaintext;
}

std::string SecretBox::key_check() const {
  return hex_encode(HmacSha256(key_).mac("callbackd master key check v1"));
}

}  // namespace callbackd
