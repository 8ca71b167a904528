// A TCP forwarder on a loopback port in front of a server (a TCP host:port or a unix socket),
// that can freeze: every connection stays open and new ones are accepted, but nothing is
// forwarded in either direction, as a proxy or NAT box with a stuck path does. Our kernel's
// packets are still acknowledged (by this host), so TCP keepalives and tcp_user_timeout do not
// notice; only a client's own deadlines do. Serves on its own thread until destroyed.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

namespace callbackd::testing {

struct ProxyUpstream {
  std::string unix_path;  // a unix socket, or else:
  std::string host;       // a TCP host (an address or a name)
  std::uint16_t port = 0;
};

class StallingProxy {
 public:
  // `dbname` and `user` only go into conninfo().
  StallingProxy(ProxyUpstream upstream, std::string dbname, std::string user = "postgres");
  // In front of the server of a libpq conninfo (as tests/support/postgres-cluster prints it:
  // "host=/dir port=5432 …" is the unix socket /dir/.s.PGSQL.5432); conninfo() names its database
  // and user. Throws when the conninfo cannot be parsed.
  static std::unique_ptr<StallingProxy> for_postgres(const std::string& conninfo);
  ~StallingProxy();
  StallingProxy(const StallingProxy&) = delete;
  StallingProxy& operator=(const StallingProxy&) = delete;

  std::uint16_t port() const;
  // "host=127.0.0.1 port=<port> user=<user> dbname=<db>": libpq through this proxy.
  std::string conninfo() const;
  // From when it returns nothing is forwarded (what is read is held, connects wait)...
  void freeze();
  // ...until this: what was held goes on, and forwarding resumes.
  void thaw();
  // The next connection whose client sends `marker` (e.g. "COMMIT") has that sent on to the
  // server, and from then on that connection alone forwards nothing until thaw(): the server
  // acts on the statement, its answer never arrives. `also_freeze_all` freezes every
  // connection at that moment instead.
  void freeze_after(std::string marker, bool also_freeze_all = false);
  std::size_t connections_accepted() const;

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
  std::string dbname_;
  std::string user_;
};

}  // namespace callbackd::testing
