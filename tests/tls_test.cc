// TLS is verified: a real TLS receiver on loopback with a certificate from a CA the test makes
// is accepted when that CA is configured, and refused (error kind `tls`) when it is not.
#include <callbackd/engine.h>
#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>

#include "receiver.h"
#include "sample_tasks.h"
#include "sqlite_engine.h"
#include "temp_dir.h"
#include "wait.h"

namespace callbackd {
namespace {

using namespace std::chrono_literals;

// A CA and a server certificate for localhost/127.0.0.1 signed by it (openssl CLI).
void make_certificates(const std::filesystem::path& dir) {
  std::ofstream(dir / "san.ext") << "subjectAltName=DNS:localhost,IP:127.0.0.1\n";
  const std::string d = dir.string();
  const std::string script =
      "set -e; cd '" + d +
      "';"
      "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 "
      "  -subj '/CN=callbackd test CA' -keyout ca.key -out ca.pem 2>/dev/null;"
      "openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes "
      "  -subj '/CN=localhost' -keyout server.key -out server.csr 2>/dev/null;"
      "openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 "
      "  -extfile san.ext -out server.pem 2>/dev/null";
  ASSERT_EQ(std::system(("bash -c \"" + script + "\"").c_str()), 0) << "openssl failed";
}

class TlsTest : public ::testing::Test {
 protected:
  void SetUp() override { make_certificates(dir_.path()); }

  Delivery deliver(const std::string& ca_bundle) {
    testing::Receiver receiver(
        {}, testing::TlsFiles{(dir_ / "server.pem").string(), (dir_ / "server.key").string()});
    EngineOptions options;
    options.retry_schedule = {};
    options.allow_networks = {"127.0.0.0/8", "::1/128"};
    options.ca_bundle_path = ca_bundle;
    auto engine = *testing::open_sqlite_engine(
        dir_ / ("callbackd-" + std::to_string(runs_++) + ".db"), options);
    auto app = engine->create_app("tls");
    engine->start();
    auto receipt = engine->enqueue(app->app.id, receiver.url(), testing::failed_task("t"));
    EXPECT_TRUE(receipt.ok());
    EXPECT_TRUE(testing::wait_until(
        [&] {
          auto s = engine->delivery(receipt->delivery_id)->state;
          return s == DeliveryState::kDelivered || s == DeliveryState::kDead;
        },
        10s));
    received_ = receiver.count();
    return *engine->delivery(receipt->delivery_id);
  }

  testing::TempDir dir_;
  int runs_ = 0;
  std::size_t received_ = 0;
};

TEST_F(TlsTest, AcceptedWithItsCaConfigured) {
  Delivery d = deliver((dir_ / "ca.pem").string());
  EXPECT_EQ(d.state, DeliveryState::kDelivered);
  ASSERT_EQ(d.attempts.size(), 1u);
  EXPECT_EQ(d.attempts[0].http_status, 204);
  EXPECT_EQ(received_, 1u);
}

TEST_F(TlsTest, RefusedWithoutIt) {
  Delivery d = deliver("");  // the system's CAs do not know the test CA
  EXPECT_EQ(d.state, DeliveryState::kDead);
  ASSERT_EQ(d.attempts.size(), 1u);
  EXPECT_EQ(d.attempts[0].error, AttemptError::kTls) << d.attempts[0].error_detail;
  EXPECT_EQ(received_, 0u);
}

TEST_F(TlsTest, AMissingCaBundleIsATlsFailureNotATrustAll) {
  Delivery d = deliver((dir_ / "no-such-bundle.pem").string());
  EXPECT_EQ(d.state, DeliveryState::kDead);
  ASSERT_EQ(d.attempts.size(), 1u);
  EXPECT_EQ(d.attempts[0].error, AttemptError::kTls) << d.attempts[0].error_detail;
  EXPECT_EQ(received_, 0u);
}

}  // namespace
}  // namespace callbackd
