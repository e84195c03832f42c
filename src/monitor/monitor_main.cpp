// batman-monitor PORT STATE_FILE TITLE: serves one run's state file as an HTML page
// (refreshing) and as /status.json on 127.0.0.1 until its stdin (batman's lifeline) closes.
#include <httplib.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdio>
#include <string>
#include <thread>

#include "common/fs.hpp"
#include "common/duration.hpp"

namespace {

constexpr std::size_t kThreads = 32;
constexpr time_t kIdleSeconds = 2;

std::string escape_html(const std::string& s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '&': out += "&amp;"; break;
      case '"': out += "&quot;"; break;
      default: out += c;
    }
  }
  return out;
}

std::string read_state(const std::string& path) {
  auto text = batman::read_file(path);
  return text ? *text : std::string("{}");
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 4) {
    std::fprintf(stderr, "usage: batman-monitor PORT STATE_FILE TITLE (started by batman --monitor)\n");
    return 2;
  }
  auto port = batman::parse_integer(argv[1], "PORT", 0, 65535);
  if (!port) {
    std::printf("error: %s\n", port.error().message.c_str());
    return 2;
  }
  std::string state_file = argv[2];
  std::string title = argv[3];
  httplib::Server server;
  // cpp-httplib gives each connection a pool thread until it closes or times out: with the
  // default 8 threads and 5 s timeouts, 8 idle connections held the page back for 5 s. More
  // threads, and a connection that sends nothing for 2 s is closed.
  server.new_task_queue = [] { return new httplib::ThreadPool(kThreads); };
  server.set_keep_alive_timeout(kIdleSeconds);
  server.set_read_timeout(kIdleSeconds, 0);
  server.set_write_timeout(kIdleSeconds, 0);
  server.Get("/status.json", [&](const httplib::Request&, httplib::Response& res) {
    res.set_content(read_state(state_file), "application/json");
  });
  server.Get("/", [&](const httplib::Request&, httplib::Response& res) {
    std::string body = "<!doctype html><html><head><meta charset=\"utf-8\"><meta http-equiv=\"refresh\" content=\"2\">"
                       "<title>batman: " + escape_html(title) + "</title></head><body><h1>batman: " +
                       escape_html(title) + "</h1><pre id=\"state\">" + escape_html(read_state(state_file)) +
                       "</pre></body></html>";
    res.set_content(body, "text/html; charset=utf-8");
  });
  // cpp-httplib's default sets SO_REUSEPORT too, with which a second monitor on the same port
  // was accepted and the kernel shared the connections between the two: SO_REUSEADDR alone
  // (a port in TIME_WAIT is reused), so a port in use is refused.
  server.set_socket_options([](socket_t sock) {
    int yes = 1;
    ::setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
  });
  int bound = 0;
  if (*port == 0) {
    bound = server.bind_to_any_port("127.0.0.1");
  } else if (server.bind_to_port("127.0.0.1", static_cast<int>(*port))) {
    bound = static_cast<int>(*port);
  }
  if (bound <= 0) {
    std::printf("error: cannot listen on 127.0.0.1:%lld (in use?): pick another port or use --monitor\n",
                static_cast<long long>(*port));
    return 1;
  }
  std::printf("%d\n", bound);
  std::fflush(stdout);
  std::thread watcher([&server] {
    // batman holds the other end of stdin: when it goes away, so do we.
    char c;
    while (::read(0, &c, 1) > 0) {
    }
    server.stop();
  });
  server.listen_after_bind();
  watcher.join();
  return 0;
}
