// runner::HttpServer: requests over a real socket, answered now or later, streamed, refused.
#include <gtest/gtest.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/stat.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <string>

#include "runner/http_server.hpp"

namespace batman::runner {
namespace {

using namespace std::chrono_literals;

class HttpServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto l = EventLoop::create();
    ASSERT_TRUE(l) << l.error().message;
    loop = std::move(*l);
  }

  void serve(HttpServer::Handler handler, HttpServer::Options options = {}) {
    auto fd = listen_tcp("127.0.0.1", 0);
    ASSERT_TRUE(fd) << fd.error().message;
    auto p = bound_port(fd->get());
    ASSERT_TRUE(p);
    port = *p;
    auto s = HttpServer::serve(*loop, std::move(*fd), std::move(options), std::move(handler));
    ASSERT_TRUE(s) << s.error().message;
    server = std::move(*s);
  }

  UniqueFd connect_client() {
    UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<std::uint16_t>(port));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int rc = ::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr);
    EXPECT_TRUE(rc == 0 || errno == EINPROGRESS);
    return fd;
  }

  static void send_all(int fd, std::string_view data) {
    while (!data.empty()) {
      ssize_t n = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL);
      if (n < 0 && errno == EAGAIN) continue;
      ASSERT_GT(n, 0);
      data.remove_prefix(static_cast<std::size_t>(n));
    }
  }

  // Run the loop and read from `fd` until `done(received)` or the connection closes or 3 s.
  std::string read_until(int fd, const std::function<bool(const std::string&)>& done, bool* closed = nullptr,
                         Duration wait = 3s) {
    std::string got;
    auto deadline = SteadyClock::now() + wait;
    while (SteadyClock::now() < deadline) {
      (void)loop->run_once(Duration(5ms));
      char buf[4096];
      ssize_t n = ::recv(fd, buf, sizeof buf, MSG_DONTWAIT);
      if (n > 0) got.append(buf, static_cast<std::size_t>(n));
      if (n == 0) {
        if (closed) *closed = true;
        break;
      }
      if (done && done(got)) break;
    }
    return got;
  }

  static auto has(const std::string& needle, int times = 1) {
    return [needle, times](const std::string& s) {
      int count = 0;
      for (auto pos = s.find(needle); pos != std::string::npos; pos = s.find(needle, pos + 1)) ++count;
      return count >= times;
    };
  }

  std::unique_ptr<EventLoop> loop;
  std::unique_ptr<HttpServer> server;
  int port = 0;
};

TEST_F(HttpServerTest, AnswersAndKeepsTheConnection) {
  serve([](const HttpRequest& r, HttpResponder out) {
    out.respond(200, "text/plain", r.method + " " + r.path + " " + r.param("name").value_or("-") + " " + r.header("x-thing"));
  });
  auto fd = connect_client();
  send_all(fd.get(), "GET /a%20b?name=J%C3%B6+x&z HTTP/1.1\r\nHost: h\r\nX-Thing: one\r\n\r\n");
  std::string got = read_until(fd.get(), has("one"));
  EXPECT_EQ(got.rfind("HTTP/1.1 200 OK\r\n", 0), 0u) << got;
  EXPECT_NE(got.find("Content-Length: 18\r\n"), std::string::npos) << got;
  EXPECT_NE(got.find("Connection: keep-alive"), std::string::npos);
  EXPECT_TRUE(got.ends_with("\r\n\r\nGET /a b Jö x one")) << got;
  // The same connection answers again.
  send_all(fd.get(), "POST /p HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc");
  got = read_until(fd.get(), has("POST /p"));
  EXPECT_NE(got.find("POST /p - "), std::string::npos) << got;
  EXPECT_EQ(server->clients(), 1u);
}

TEST_F(HttpServerTest, PipelinedRequestsAreAnsweredInOrder) {
  serve([](const HttpRequest& r, HttpResponder out) { out.respond(200, "text/plain", r.path + ":" + r.body); });
  auto fd = connect_client();
  send_all(fd.get(),
           "POST /one HTTP/1.1\r\nContent-Length: 1\r\n\r\nxGET /two HTTP/1.1\r\n\r\nPOST /three HTTP/1.1\r\n"
           "Transfer-Encoding: chunked\r\n\r\n2\r\nab\r\n1\r\nc\r\n0\r\n\r\n");
  std::string got = read_until(fd.get(), has("/three"));
  auto one = got.find("/one:x"), two = got.find("/two:"), three = got.find("/three:abc");
  ASSERT_NE(one, std::string::npos) << got;
  ASSERT_NE(two, std::string::npos) << got;
  ASSERT_NE(three, std::string::npos) << got;
  EXPECT_LT(one, two);
  EXPECT_LT(two, three);
}

TEST_F(HttpServerTest, AnAnswerMayComeLaterFromTheLoop) {
  std::optional<HttpResponder> kept;
  serve([&](const HttpRequest&, HttpResponder out) { kept = out; });
  auto fd = connect_client();
  send_all(fd.get(), "GET /wait HTTP/1.1\r\n\r\nGET /next HTTP/1.1\r\n\r\n");
  std::string got = read_until(fd.get(), nullptr, nullptr, 150ms);
  ASSERT_TRUE(kept);
  EXPECT_TRUE(kept->alive());
  EXPECT_TRUE(got.empty()) << got;  // nothing answered yet, and /next waits behind /wait
  HttpResponder first = *kept;
  loop->add_timer_after(Duration(10ms), [first]() mutable { first.respond(202, "text/plain", "later"); });
  got = read_until(fd.get(), has("later"));
  EXPECT_EQ(got.rfind("HTTP/1.1 202 Accepted", 0), 0u) << got;
  // The handle answered once; a second answer is ignored, and /next is now asked.
  first.respond(500, "text/plain", "twice");
  got = read_until(fd.get(), [&](const std::string&) { return kept->alive(); });
  EXPECT_EQ(got.find("twice"), std::string::npos);
  EXPECT_TRUE(kept->alive());  // the handler ran again for /next
  kept->respond(200, "text/plain", "next");
  got = read_until(fd.get(), has("next"));
  EXPECT_NE(got.find("next"), std::string::npos);
}

TEST_F(HttpServerTest, StreamsAreChunkedAndTheirEndIsSeen) {
  std::optional<HttpResponder> stream;
  bool closed_early = false;
  serve([&](const HttpRequest& r, HttpResponder out) {
    out.start_stream(200, "text/event-stream");
    out.write("data: one\n\n");
    if (r.path == "/finite") {
      out.write("data: two\n\n");
      out.end();
      return;
    }
    out.on_close([&] { closed_early = true; });
    stream = out;
  });
  auto fd = connect_client();
  send_all(fd.get(), "GET /finite HTTP/1.1\r\n\r\n");
  std::string got = read_until(fd.get(), has("0\r\n\r\n"));
  EXPECT_NE(got.find("Transfer-Encoding: chunked\r\n"), std::string::npos) << got;
  EXPECT_NE(got.find("\r\nb\r\ndata: one\n\n\r\nb\r\ndata: two\n\n\r\n0\r\n\r\n"), std::string::npos) << got;

  // An endless stream: the client hangs up, the producer hears of it.
  auto other = connect_client();
  send_all(other.get(), "GET /endless HTTP/1.1\r\n\r\n");
  got = read_until(other.get(), has("data: one"));
  ASSERT_TRUE(stream && stream->alive());
  other.reset();
  read_until(fd.get(), [&](const std::string&) { return closed_early; });
  EXPECT_TRUE(closed_early);
  EXPECT_FALSE(stream->alive());
  stream->write("ignored");  // harmless on a gone connection
}

TEST_F(HttpServerTest, Http10StreamsEndWithTheConnection) {
  serve([](const HttpRequest&, HttpResponder out) {
    out.start_stream(200, "text/plain");
    out.write("abc");
    out.end();
  });
  auto fd = connect_client();
  send_all(fd.get(), "GET / HTTP/1.0\r\n\r\n");
  bool closed = false;
  std::string got = read_until(fd.get(), nullptr, &closed);
  EXPECT_TRUE(closed);
  EXPECT_EQ(got.find("chunked"), std::string::npos) << got;
  EXPECT_TRUE(got.ends_with("\r\n\r\nabc")) << got;
}

TEST_F(HttpServerTest, HeadAnswersHaveNoBody) {
  serve([](const HttpRequest&, HttpResponder out) { out.respond(200, "text/plain", "body"); });
  auto fd = connect_client();
  send_all(fd.get(), "HEAD / HTTP/1.1\r\n\r\nGET / HTTP/1.1\r\n\r\n");
  std::string got = read_until(fd.get(), has("\r\n\r\nbody"));
  EXPECT_TRUE(has("HTTP/1.1 200", 2)(got)) << got;
  EXPECT_EQ(got.find("body"), got.rfind("body")) << got;  // once: the GET's
  EXPECT_TRUE(got.ends_with("\r\n\r\nbody")) << got;
}

TEST_F(HttpServerTest, OversizedAndMalformedRequestsAreRefused) {
  HttpServer::Options options;
  options.max_body_bytes = 100;
  options.max_header_bytes = 200;
  int calls = 0;
  serve([&](const HttpRequest&, HttpResponder out) { ++calls, out.respond(200, "text/plain", "ok"); }, options);
  struct Case {
    std::string request;
    std::string status;
  };
  std::vector<Case> cases = {
      {"POST / HTTP/1.1\r\nContent-Length: 101\r\n\r\n", "413"},
      {"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n70\r\n" + std::string(112, 'x') + "\r\n0\r\n\r\n", "413"},
      {"GET /" + std::string(300, 'a') + " HTTP/1.1\r\n\r\n", "431"},
      {"GET / HTTP/1.1\r\nX: " + std::string(300, 'a') + "\r\n\r\n", "431"},
      {"NOT A REQUEST\r\n\r\n", "400"},
      {"GET /%zz HTTP/1.1\r\n\r\n", "400"},
      {"GET /a%00b HTTP/1.1\r\n\r\n", "400"},
      {"POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab", "400"},
  };
  for (const auto& c : cases) {
    auto fd = connect_client();
    send_all(fd.get(), c.request);
    bool closed = false;
    std::string got = read_until(fd.get(), nullptr, &closed);
    EXPECT_EQ(got.substr(0, 12), "HTTP/1.1 " + c.status) << c.request.substr(0, 60) << " -> " << got;
    EXPECT_TRUE(closed) << c.request.substr(0, 60);
  }
  EXPECT_EQ(calls, 0);
}

TEST_F(HttpServerTest, IdleAndHalfSentRequestsTimeOut) {
  HttpServer::Options options;
  options.idle_timeout = 50ms;
  options.request_timeout = 80ms;
  serve([](const HttpRequest&, HttpResponder out) { out.respond(200, "text/plain", "ok"); }, options);
  auto idle = connect_client();
  bool closed = false;
  read_until(idle.get(), nullptr, &closed);
  EXPECT_TRUE(closed);
  auto half = connect_client();
  send_all(half.get(), "GET / HTTP/1.1\r\nHost: x\r\n");
  closed = false;
  std::string got = read_until(half.get(), nullptr, &closed);
  EXPECT_TRUE(closed);
  EXPECT_EQ(got.rfind("HTTP/1.1 408", 0), 0u) << got;
  EXPECT_EQ(server->clients(), 0u);
}

TEST_F(HttpServerTest, AThrowingHandlerAnswers500) {
  serve([](const HttpRequest&, HttpResponder) { throw std::runtime_error("boom"); });
  auto fd = connect_client();
  send_all(fd.get(), "GET / HTTP/1.1\r\n\r\n");
  std::string got = read_until(fd.get(), has("boom"));
  EXPECT_EQ(got.rfind("HTTP/1.1 500", 0), 0u) << got;
}

TEST_F(HttpServerTest, UnixSocketsCheckThePeer) {
  auto dir = std::filesystem::temp_directory_path() / ("batman-http-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  std::string path = (dir / "s.sock").string();
  auto listener = listen_unix(path, "busy");
  ASSERT_TRUE(listener) << listener.error().message;
  struct stat st{};
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  // A live socket is not replaced.
  HttpServer::Options options;
  bool allowed = true;
  std::optional<ucred> seen;
  options.allow_peer = [&](const ucred&) { return allowed; };
  auto s = HttpServer::serve(*loop, std::move(*listener), options, [&](const HttpRequest& r, HttpResponder out) {
    seen = r.peer;
    out.respond(200, "text/plain", "hi");
  });
  ASSERT_TRUE(s);
  auto second = listen_unix(path, "another one is serving");
  ASSERT_FALSE(second);
  EXPECT_EQ(second.error().message, "another one is serving");
  auto c = connect_unix(path);
  ASSERT_TRUE(c) << c.error().message;
  send_all(c->get(), "GET / HTTP/1.1\r\n\r\n");
  std::string got = read_until(c->get(), has("hi"));
  EXPECT_NE(got.find("hi"), std::string::npos) << got;
  ASSERT_TRUE(seen);
  EXPECT_EQ(seen->uid, ::geteuid());
  EXPECT_EQ(seen->pid, ::getpid());
  allowed = false;
  auto refused = connect_unix(path);
  ASSERT_TRUE(refused);
  bool closed = false;
  got = read_until(refused->get(), nullptr, &closed);
  EXPECT_EQ(got.rfind("HTTP/1.1 403", 0), 0u) << got;
  // A socket nobody serves any more is replaced.
  s->reset();
  EXPECT_TRUE(listen_unix(path, "busy"));
  std::filesystem::remove_all(dir);
  EXPECT_FALSE(connect_unix(path));
}

TEST(HttpText, EscapesAndDecodes) {
  EXPECT_EQ(html_escape("<script>\"a\" & 'b'</script>"), "&lt;script&gt;&quot;a&quot; &amp; &#39;b&#39;&lt;/script&gt;");
  EXPECT_EQ(percent_decode("a%2Fb+c", false), "a/b+c");
  EXPECT_EQ(percent_decode("a%2fb+c", true), "a/b c");
  EXPECT_FALSE(percent_decode("%4", false));
  EXPECT_FALSE(percent_decode("%", false));
  EXPECT_FALSE(percent_decode("%g0", false));
  HttpRequest r;
  r.query = "a=1&b&c=x%20y&a=2";
  EXPECT_EQ(r.param("a"), "1");
  EXPECT_EQ(r.param("b"), "");
  EXPECT_EQ(r.param("c"), "x y");
  EXPECT_FALSE(r.param("d"));
  EXPECT_EQ(http_reason(404), "Not Found");
  EXPECT_FALSE(listen_tcp("not-an-address", 0));
  EXPECT_FALSE(listen_tcp("127.0.0.1", 70000));
}

}  // namespace
}  // namespace batman::runner
