// libFuzzer harness: runner::HttpServer (connection handling and http-parser), end to end.
// The input is what a client sends on one connection before it shuts its side down; the real
// server answers on a real Unix socket from a real event loop. Its handler answers at once
// (/now), later from a timer (/later), or as a chunked stream (/stream).
// The promises checked: the server closes the connection once the client has said all it will
// say and every answer is written (no hang: a loop that never ends is a libFuzzer timeout);
// every answer it writes starts with a well-formed status line; and the connection table is
// empty afterwards (nothing leaks from one client to the next).
#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <string>
#include <string_view>

#include "runner/event_loop.hpp"
#include "runner/http_server.hpp"

using namespace batman;

namespace {

struct World {
  std::string dir;
  std::unique_ptr<runner::EventLoop> loop;
  std::unique_ptr<runner::HttpServer> server;
};

World* world = nullptr;

void handle(const runner::HttpRequest& request, runner::HttpResponder out) {
  if (request.path == "/later") {
    world->loop->add_timer_after(std::chrono::milliseconds(0),
                                 [out]() mutable { out.respond(200, "text/plain", "later"); });
  } else if (request.path == "/stream") {
    out.start_stream(200, "text/event-stream");
    out.write(request.body);
    out.write("data: x\n\n");
    out.end();
  } else {
    out.respond(200, "text/plain", request.method + " " + request.path + " " + std::to_string(request.body.size()));
  }
}

// Each answer in `text` starts with "HTTP/1.1 NNN " (bodies are skipped by their length or
// their chunks; a stream ends with its last chunk).
bool well_formed(std::string_view text) {
  while (!text.empty()) {
    if (text.size() < 13 || !text.starts_with("HTTP/1.1 ")) return false;
    for (int i = 9; i < 12; ++i)
      if (text[i] < '0' || text[i] > '9') return false;
    auto end = text.find("\r\n\r\n");
    if (end == std::string_view::npos) return false;
    std::string_view head = text.substr(0, end + 2);
    text.remove_prefix(end + 4);
    if (head.substr(9, 3) == "100") continue;
    if (auto cl = head.find("Content-Length: "); cl != std::string_view::npos) {
      std::size_t length = std::strtoul(std::string(head.substr(cl + 16)).c_str(), nullptr, 10);
      bool is_head = false;  // HEAD answers carry the length but no body: skip what fits
      if (length > text.size() || (text.size() > length && !text.substr(length).starts_with("HTTP/1.1 "))) is_head = true;
      if (!is_head) text.remove_prefix(length);
      continue;
    }
    if (head.find("Transfer-Encoding: chunked") != std::string_view::npos) {
      for (;;) {
        auto line = text.find("\r\n");
        if (line == std::string_view::npos) return false;
        std::size_t size = std::strtoul(std::string(text.substr(0, line)).c_str(), nullptr, 16);
        text.remove_prefix(line + 2);
        if (size == 0) {
          if (!text.starts_with("\r\n")) return false;
          text.remove_prefix(2);
          break;
        }
        if (text.size() < size + 2) return false;
        text.remove_prefix(size + 2);
      }
      continue;
    }
    return true;  // HTTP/1.0 stream: the rest is its body
  }
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  world = new World;
  const char* tmp = std::getenv("TMPDIR");
  std::string tmpl = std::string(tmp && *tmp ? tmp : "/tmp") + "/batman-fuzz-http.XXXXXX";
  if (!::mkdtemp(tmpl.data())) std::abort();
  world->dir = tmpl;
  auto loop = runner::EventLoop::create();
  if (!loop) std::abort();
  world->loop = std::move(*loop);
  auto listener = runner::listen_unix(world->dir + "/http.sock", "busy");
  if (!listener) std::abort();
  runner::HttpServer::Options options;
  options.max_body_bytes = 4096;
  options.max_header_bytes = 2048;
  auto server = runner::HttpServer::serve(*world->loop, std::move(*listener), options, handle);
  if (!server) std::abort();
  world->server = std::move(*server);
  std::atexit([] {
    ::unlink((world->dir + "/http.sock").c_str());
    ::rmdir(world->dir.c_str());
  });
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view input(reinterpret_cast<const char*>(data), size);
  auto client = runner::connect_unix(world->dir + "/http.sock");
  if (!client) std::abort();
  int fd = client->get();
  ::fcntl(fd, F_SETFL, O_NONBLOCK);
  std::size_t sent = 0;
  bool shut = false, eof = false;
  std::string answers;
  while (!eof) {
    while (sent < input.size()) {
      ssize_t n = ::send(fd, input.data() + sent, input.size() - sent, MSG_NOSIGNAL);
      if (n <= 0) break;
      sent += static_cast<std::size_t>(n);
    }
    if (sent == input.size() && !shut) {
      ::shutdown(fd, SHUT_WR);
      shut = true;
    }
    (void)world->loop->run_once(std::chrono::milliseconds(1));
    char buf[65536];
    for (;;) {
      ssize_t n = ::recv(fd, buf, sizeof buf, 0);
      if (n > 0) {
        answers.append(buf, static_cast<std::size_t>(n));
        continue;
      }
      if (n == 0 || (n < 0 && errno == ECONNRESET)) eof = true;
      break;
    }
  }
  if (!well_formed(answers)) std::abort();
  client->reset();
  for (int i = 0; i < 4; ++i) (void)world->loop->run_once(std::chrono::milliseconds(0));
  if (world->server->clients() != 0) std::abort();
  return 0;
}
