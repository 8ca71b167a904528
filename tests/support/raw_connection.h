// A plain TCP client for tests that must control every byte on the wire: send a request's
// head without its body, see whether "100 Continue" comes back, hold connections open.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace callbackd::testing {

class RawConnection {
 public:
  // Connects to 127.0.0.1:port; connected() tells whether it worked.
  explicit RawConnection(std::uint16_t port);
  ~RawConnection();
  RawConnection(RawConnection&& other) noexcept;
  RawConnection(const RawConnection&) = delete;
  RawConnection& operator=(const RawConnection&) = delete;

  bool connected() const { return fd_ >= 0; }
  bool send(std::string_view bytes);
  // Everything received until the peer closes (or resets); nullopt if `timeout` passes first.
  std::optional<std::string> read_until_closed(std::chrono::milliseconds timeout);
  // Bytes received until `text` appears (included), or nullopt when the connection ends or
  // `timeout` passes first.
  std::optional<std::string> read_until(std::string_view text, std::chrono::milliseconds timeout);

 private:
  int fd_ = -1;
  std::string received_;
};

}  // namespace callbackd::testing
