// The real `callbackd` binary as a child process, for black-box tests: started with flags,
// its log captured to a file, stopped with a real signal.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace callbackd::testing {

class DaemonProcess {
 public:
  // Runs `binary args...` with stdout and stderr appended to `log_file`, and `environment`
  // ("KEY=value") added to this process's environment.
  DaemonProcess(std::string binary, std::vector<std::string> args, std::filesystem::path log_file,
                std::vector<std::string> environment = {});
  ~DaemonProcess();  // SIGKILLs the process if it is still running
  DaemonProcess(const DaemonProcess&) = delete;
  DaemonProcess& operator=(const DaemonProcess&) = delete;

  // Waits for this run's "event=listening address=HOST:PORT" log line; returns the port, or
  // nullopt if the process exited or the timeout passed first.
  std::optional<int> wait_listening(std::chrono::milliseconds timeout = std::chrono::seconds(15));
  std::string base_url() const { return "http://127.0.0.1:" + std::to_string(port_); }
  pid_t pid() const { return pid_; }

  void signal(int signal_number);
  // Waits for the exit; returns the exit code, 128+signal when killed, or nullopt on timeout.
  std::optional<int> wait_exit(std::chrono::milliseconds timeout = std::chrono::seconds(30));
  bool running();
  std::string log() const;

 private:
  pid_t pid_ = -1;
  int port_ = 0;
  std::optional<int> exit_code_;
  std::filesystem::path log_file_;
  std::size_t log_start_ = 0;  // the log may hold earlier runs: this run's lines start here
};

// Runs a command to completion; returns its exit code and combined output.
struct CommandResult {
  int exit_code = -1;
  std::string output;
};
CommandResult run_command(const std::string& binary, const std::vector<std::string>& args,
                          const std::string& stdin_text = "",
                          const std::vector<std::string>& environment = {});

}  // namespace callbackd::testing
