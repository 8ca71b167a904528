// Embeds callbackd the way the README shows: a SQLite queue in a scratch directory, an engine,
// an app, one completed task delivered to a receiver on loopback; checks the signature and the
// delivered state. Exit 0 only when all of that happened.
//   consumer SCRATCH_DIR
#include <arpa/inet.h>
#include <callbackd/engine.h>
#include <callbackd/postgres_store.h>
#include <callbackd/signature.h>
#include <callbackd/sqlite_store.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <future>
#include <string>
#include <thread>

namespace {

int fail(const std::string& message) {
  std::fprintf(stderr, "consumer: %s\n", message.c_str());
  return 1;
}

struct Received {
  std::string headers;
  std::string body;
};

// Accepts one HTTP request on `listener`, answers 204, returns what came.
Received receive_one(int listener) {
  Received received;
  const int connection = accept(listener, nullptr, nullptr);
  if (connection < 0) return received;
  std::string data;
  char buffer[4096];
  std::size_t body_length = std::string::npos;
  std::size_t header_end = std::string::npos;
  while (true) {
    const ssize_t n = read(connection, buffer, sizeof buffer);
    if (n <= 0) break;
    data.append(buffer, static_cast<std::size_t>(n));
    if (header_end == std::string::npos &&
        (header_end = data.find("\r\n\r\n")) != std::string::npos) {
      const std::size_t at = data.find("\r\ncontent-length:") != std::string::npos
                                 ? data.find("\r\ncontent-length:")
                                 : data.find("\r\nContent-Length:");
      body_length = at == std::string::npos ? 0 : std::stoul(data.substr(at + 17));
    }
    if (header_end != std::string::npos && data.size() >= header_end + 4 + body_length) break;
  }
  const std::string reply =
      "HTTP/1.1 204 No Content\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
  (void)!write(connection, reply.data(), reply.size());
  close(connection);
  if (header_end != std::string::npos) {
    received.headers = data.substr(0, header_end);
    received.body = data.substr(header_end + 4);
  }
  return received;
}

std::string header_value(const std::string& headers, const std::string& name) {
  for (const std::string& spelling : {name, std::string("x-signature")}) {
    const std::size_t at = headers.find("\r\n" + spelling + ": ");
    if (at == std::string::npos) continue;
    const std::size_t start = at + 4 + spelling.size();
    return headers.substr(start, headers.find("\r\n", start) - start);
  }
  return "";
}

}  // namespace

int main(int argc, char** argv) {
  using namespace std::chrono_literals;
  if (argc != 2) return fail("usage: consumer SCRATCH_DIR");
  const std::string dir = argv[1];

  // The PostgreSQL store links too (its libpq dependency comes from the package).
  auto* volatile open_postgres = &callbackd::open_postgres_queue;
  if (open_postgres == nullptr) return fail("no open_postgres_queue");

  const int listener = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t length = sizeof address;
  if (bind(listener, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0 ||
      listen(listener, 4) != 0 ||
      getsockname(listener, reinterpret_cast<sockaddr*>(&address), &length) != 0) {
    return fail("cannot listen on loopback");
  }
  const std::string url = "http://127.0.0.1:" + std::to_string(ntohs(address.sin_port)) + "/hook";
  std::future<Received> received = std::async(std::launch::async, receive_one, listener);

  auto queue = callbackd::open_sqlite_queue({.path = dir + "/callbackd.db"});
  if (!queue.ok()) return fail("open_sqlite_queue: " + queue.status().to_string());
  auto engine = callbackd::Engine::open({.queue = std::move(*queue),
                                         .retry_schedule = {100ms},
                                         .poll_interval = 50ms,
                                         .allow_networks = {"127.0.0.0/8"},
                                         .master_key_file = dir + "/master.key"});
  if (!engine.ok()) return fail("Engine::open: " + engine.status().to_string());
  auto app = (*engine)->create_app("consumer");
  if (!app.ok()) return fail("create_app: " + app.status().to_string());
  (*engine)->start();

  callbackd::TaskResult task;
  task.task_id = "task_consumer";
  task.results.push_back({.id = "clip_1",
                          .audio_url = "https://cdn.example/1.mp3",
                          .title = "Night Drive",
                          .duration = 182.5});
  auto receipt = (*engine)->enqueue(app->app.id, url, task);
  if (!receipt.ok()) return fail("enqueue: " + receipt.status().to_string());
  auto again = (*engine)->enqueue(app->app.id, url, task);
  if (!again.ok() || again->created || again->delivery_id != receipt->delivery_id) {
    return fail("a repeated task was not recognised");
  }

  if (received.wait_for(20s) != std::future_status::ready) return fail("nothing arrived in 20 s");
  const Received request = received.get();
  const std::string signature = header_value(request.headers, "X-Signature");
  if (!callbackd::verify_hex_signature(app->signing_secret, request.body, signature)) {
    return fail("bad signature \"" + signature + "\" on body " + request.body);
  }
  if (request.body.find("\"task_id\":\"task_consumer\"") == std::string::npos) {
    return fail("unexpected body " + request.body);
  }

  const auto deadline = std::chrono::steady_clock::now() + 20s;
  while (true) {
    auto delivery = (*engine)->delivery(receipt->delivery_id);
    if (!delivery.ok()) return fail("delivery: " + delivery.status().to_string());
    if (delivery->state == callbackd::DeliveryState::kDelivered) break;
    if (std::chrono::steady_clock::now() > deadline) return fail("not delivered within 20 s");
    std::this_thread::sleep_for(20ms);
  }
  (*engine)->stop();
  close(listener);
  std::printf("consumer: delivered %s, signature verified\n", receipt->delivery_id.c_str());
  return 0;
}
