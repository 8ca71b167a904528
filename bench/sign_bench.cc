// Signing throughput: HMAC-SHA256 of a callback body with an app's keyed state, and the full
// X-Signature header. bench/sign_vs_openssl.sh compares the first with `openssl speed`.
#include <benchmark/benchmark.h>

#include <string>
#include <vector>

#include "secrets/app_keyring.h"
#include "signing/hmac_sha256.h"
#include "signing/signer.h"

namespace callbackd {
namespace {

const std::string kSecret(64, 'k');  // the length of a generated hex secret

void BM_HmacSha256(benchmark::State& state) {
  const std::string body(static_cast<std::size_t>(state.range(0)), 'x');
  HmacSha256 hmac(kSecret);
  for (auto _ : state) benchmark::DoNotOptimize(hmac.mac(body));
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations()) * state.range(0));
}
BENCHMARK(BM_HmacSha256)->Arg(64)->Arg(1024)->Arg(16384);

void BM_SignatureHeader(benchmark::State& state) {
  const std::string body(static_cast<std::size_t>(state.range(0)), 'x');
  AppKey key;
  key.secret = kSecret;
  Signer signer(key);
  std::vector<std::string> headers;
  for (auto _ : state) {
    headers.clear();
    signer.add_headers("dlv_01JD0000000000000000000000", TimePoint(), body, headers);
    benchmark::DoNotOptimize(headers.data());
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations()) * state.range(0));
}
BENCHMARK(BM_SignatureHeader)->Arg(64)->Arg(1024)->Arg(16384);

}  // namespace
}  // namespace callbackd

BENCHMARK_MAIN();
