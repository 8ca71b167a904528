// `callbackd --version` and `callbackd --help`, from the real binary.
#include <gtest/gtest.h>

#include <regex>

#include "daemon_process.h"

namespace callbackd {
namespace {

TEST(CommandLineVersion, PrintsTheProjectVersionAndExitsZero) {
  auto version = testing::run_command(CALLBACKD_BINARY, {"--version"});
  EXPECT_EQ(version.exit_code, 0);
  // "callbackd 0.1.0" and, from a git checkout, " (v0.1.0-12-gabc1234-dirty)" or " (abc1234)".
  EXPECT_TRUE(
      std::regex_match(version.output, std::regex(R"(callbackd \d+\.\d+\.\d+( \([^()\n]+\))?\n)")))
      << version.output;
  // The same wherever it is given, without touching configuration.
  auto after_command = testing::run_command(CALLBACKD_BINARY, {"serve", "--version"}, "",
                                            {"CALLBACKD_MAX_IN_FLIGHT=lots"});
  EXPECT_EQ(after_command.exit_code, 0);
  EXPECT_EQ(after_command.output, version.output);
}

TEST(CommandLineHelp, IsAManualPageWithEveryCommandAndKey) {
  auto help = testing::run_command(CALLBACKD_BINARY, {"--help"});
  ASSERT_EQ(help.exit_code, 0);
  const std::string& text = help.output;
  // The sections, in a manual page's order, each a line of its own.
  std::size_t previous = 0;
  bool first = true;
  for (const char* section : {"NAME", "SYNOPSIS", "DESCRIPTION", "COMMANDS", "OPTIONS",
                              "ENVIRONMENT", "FILES", "EXIT STATUS"}) {
    const std::size_t at = ("\n" + text).find("\n" + std::string(section) + "\n");
    ASSERT_NE(at, std::string::npos) << section << "\n" << text;
    EXPECT_TRUE(first || at > previous) << section << " is out of order";
    previous = at;
    first = false;
  }
  EXPECT_EQ(text.rfind("NAME\n    callbackd - ", 0), 0u) << text;
  for (const char* command :
       {"\n    serve\n", "\n    apps create --name NAME", "\n    apps rotate-secret APP_ID",
        "\n    send [FILE]", "\n    deliveries list", "\n    deliveries show DELIVERY_ID",
        "\n    deliveries redeliver DELIVERY_ID",
        "\n    deliveries redeliver [--state dead|delivered]", "\n    probe healthz|readyz",
        "\n    store copy", "\n    verify --secret S --signature HEX"}) {
    EXPECT_NE(text.find(command), std::string::npos) << command;
  }
  for (const char* entry :
       {"CALLBACKD_MASTER_KEY", "CALLBACKD_<KEY>", "/etc/callbackd/callbackd.toml",
        "callbackd.db.key", "--version", "\n    2   Usage or configuration error"}) {
    EXPECT_NE(text.find(entry), std::string::npos) << entry;
  }
  // `help` and no arguments print the same page (the latter as a usage error).
  auto word = testing::run_command(CALLBACKD_BINARY, {"help"});
  EXPECT_EQ(word.exit_code, 0);
  EXPECT_EQ(word.output, text);
  auto nothing = testing::run_command(CALLBACKD_BINARY, {});
  EXPECT_EQ(nothing.exit_code, 2);
  EXPECT_EQ(nothing.output, text);
}

}  // namespace
}  // namespace callbackd
