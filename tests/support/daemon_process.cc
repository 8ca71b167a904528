#include "daemon_process.h"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <regex>
#include <sstream>
#include <stdexcept>
#include <thread>

extern char** environ;

namespace callbackd::testing {
namespace {

std::vector<std::string> merged_environment(const std::vector<std::string>& extra) {
  std::vector<std::string> env;
  for (char** e = environ; *e != nullptr; ++e) {
    const std::string entry = *e;
    const std::string key = entry.substr(0, entry.find('='));
    bool overridden = false;
    for (const auto& x : extra) overridden |= x.substr(0, x.find('=')) == key;
    // Start from a clean callbackd configuration: only what the test sets.
    if (!overridden && key.rfind("CALLBACKD_", 0) != 0) env.push_back(entry);
  }
  env.insert(env.end(), extra.begin(), extra.end());
  return env;
}

pid_t spawn(const std::string& binary, const std::vector<std::string>& args,
            const std::vector<std::string>& environment, int stdin_fd, int out_fd) {
  std::vector<std::string> argv_storage{binary};
  argv_storage.insert(argv_storage.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& a : argv_storage) argv.push_back(a.data());
  argv.push_back(nullptr);
  std::vector<std::string> env_storage = merged_environment(environment);
  std::vector<char*> envp;
  for (auto& e : env_storage) envp.push_back(e.data());
  envp.push_back(nullptr);

  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  if (stdin_fd >= 0) posix_spawn_file_actions_adddup2(&actions, stdin_fd, STDIN_FILENO);
  posix_spawn_file_actions_adddup2(&actions, out_fd, STDOUT_FILENO);
  posix_spawn_file_actions_adddup2(&actions, out_fd, STDERR_FILENO);
  pid_t pid = -1;
  const int rc = posix_spawn(&pid, binary.c_str(), &actions, nullptr, argv.data(), envp.data());
  posix_spawn_file_actions_destroy(&actions);
  if (rc != 0) throw std::runtime_error("posix_spawn " + binary + " failed");
  return pid;
}

int decode_status(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return -1;
}

}  // namespace

DaemonProcess::DaemonProcess(std::string binary, std::vector<std::string> args,
                             std::filesystem::path log_file, std::vector<std::string> environment)
    : log_file_(std::move(log_file)) {
  std::error_code ignored;
  log_start_ = static_cast<std::size_t>(std::filesystem::file_size(log_file_, ignored));
  if (log_start_ == static_cast<std::size_t>(-1)) log_start_ = 0;
  const int fd = open(log_file_.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd < 0) throw std::runtime_error("cannot open " + log_file_.string());
  pid_ = spawn(binary, args, environment, -1, fd);
  close(fd);
}

DaemonProcess::~DaemonProcess() {
  if (running()) {
    kill(pid_, SIGKILL);
    wait_exit();
  }
}

std::optional<int> DaemonProcess::wait_listening(std::chrono::milliseconds timeout) {
  static const std::regex listening(R"(event=listening address=[^ ]*:(\d+))");
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    std::smatch match;
    std::string text = log();
    text.erase(0, std::min(log_start_, text.size()));
    if (std::regex_search(text, match, listening)) {
      port_ = std::stoi(match[1]);
      return port_;
    }
    if (!running()) return std::nullopt;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return std::nullopt;
}

void DaemonProcess::signal(int signal_number) {
  if (running()) kill(pid_, signal_number);
}

bool DaemonProcess::running() {
  if (exit_code_) return false;
  int status = 0;
  if (waitpid(pid_, &status, WNOHANG) == pid_) {
    exit_code_ = decode_status(status);
    return false;
  }
  return true;
}

std::optional<int> DaemonProcess::wait_exit(std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (running()) {
    if (std::chrono::steady_clock::now() >= deadline) return std::nullopt;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return exit_code_;
}

std::string DaemonProcess::log() const {
  std::ifstream in(log_file_);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

CommandResult run_command(const std::string& binary, const std::vector<std::string>& args,
                          const std::string& stdin_text,
                          const std::vector<std::string>& environment) {
  char in_path[] = "/tmp/callbackd-stdin-XXXXXX";
  char out_path[] = "/tmp/callbackd-out-XXXXXX";
  const int in_fd = mkstemp(in_path);
  const int out_fd = mkstemp(out_path);
  if (in_fd < 0 || out_fd < 0) throw std::runtime_error("mkstemp failed");
  if (!stdin_text.empty() && write(in_fd, stdin_text.data(), stdin_text.size()) !=
                                 static_cast<ssize_t>(stdin_text.size())) {
    throw std::runtime_error("cannot write stdin file");
  }
  lseek(in_fd, 0, SEEK_SET);
  const pid_t pid = spawn(binary, args, environment, in_fd, out_fd);
  int status = 0;
  waitpid(pid, &status, 0);
  close(in_fd);
  close(out_fd);
  std::ifstream out(out_path);
  std::stringstream text;
  text << out.rdbuf();
  unlink(in_path);
  unlink(out_path);
  return CommandResult{decode_status(status), text.str()};
}

}  // namespace callbackd::testing
