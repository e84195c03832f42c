// HttpServer: connections, request parsing (http-parser), answers and streams, deadlines; and
// the socket helpers (TCP and Unix listeners, Unix client) its users share.
#include "runner/http_server.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <http_parser.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <exception>
#include <filesystem>

namespace batman::runner {

namespace detail {

// One client connection. Owned by the server's table; responders and deferred work hold weak
// references, and the code handling one of its events holds a strong one, so a connection
// closed in the middle of that code is destroyed only when it returns.
struct HttpConnection {
  HttpServer::Impl* server = nullptr;
  UniqueFd fd;
  std::uint64_t serial = 0;
  std::optional<ucred> peer;

  http_parser parser{};
  std::string in;  // received, not yet parsed (a request waits while the one before is answered)
  bool read_eof = false;

  // The request being parsed.
  HttpRequest request;
  std::string url;
  std::string field, value;
  bool in_value = false;
  std::size_t header_bytes = 0;
  bool message_begun = false;
  bool message_complete = false;
  bool expects_continue = false;  // "Expect: 100-continue": say so before the body is sent
  int parse_status = 0;  // 413 or 431 when a callback refused the request
  TimePoint request_started{};

  // The answer.
  std::uint64_t answering = 0;  // the request id being answered; 0: none
  std::uint64_t next_request = 1;
  bool keep_alive = true;
  bool head = false;
  bool streaming = false;
  bool chunked = false;
  bool close_after_write = false;
  std::function<void()> on_close;
  std::string out;

  bool closed = false;
  bool registered = false;
  std::uint32_t watching = 0;
  TimePoint last_activity{};  // accepted, a request arrived, or an answer ended
  TimePoint last_progress{};  // `out` became non-empty, or some of it was written
  std::optional<EventLoop::TimerId> timer;
  TimePoint timer_at{};
};

}  // namespace detail

using detail::HttpConnection;

struct HttpServer::Impl {
  EventLoop& loop;
  UniqueFd listener;
  Options options;
  Handler handler;
  bool unix_socket = false;
  std::map<int, std::shared_ptr<HttpConnection>> connections;
  std::uint64_t next_serial = 1;
  std::optional<EventLoop::TimerId> accept_pause;
  http_parser_settings settings{};

  Impl(EventLoop& l, UniqueFd fd, Options o, Handler h)
      : loop(l), listener(std::move(fd)), options(std::move(o)), handler(std::move(h)) {}

  void on_accept();
  bool make_room();
  void on_event(int fd, std::uint32_t events);
  void process(const std::shared_ptr<HttpConnection>& c);
  void dispatch(const std::shared_ptr<HttpConnection>& c);
  void reject(HttpConnection& c, int status, std::string_view message);
  void queue(HttpConnection& c, std::string_view data);
  bool write_some(HttpConnection& c);
  void answer_ended(HttpConnection& c);
  void update_watch(HttpConnection& c);
  void schedule(HttpConnection& c);
  void on_deadline(int fd, std::uint64_t serial);
  void close(HttpConnection& c);
  void continue_later(HttpConnection& c);
};

namespace {

HttpConnection& connection_of(http_parser* p) { return *static_cast<HttpConnection*>(p->data); }

// Header bytes beyond the limit refuse the request with 431.
int count_header_bytes(HttpConnection& c, std::size_t n) {
  c.header_bytes += n;
  if (c.header_bytes > c.server->options.max_header_bytes) {
    c.parse_status = 431;
    return 1;
  }
  return 0;
}

void store_header(HttpConnection& c) {
  if (c.field.empty()) return;
  std::string name = c.field;
  std::transform(name.begin(), name.end(), name.begin(), [](unsigned char ch) { return std::tolower(ch); });
  auto [it, inserted] = c.request.headers.emplace(name, c.value);
  if (!inserted) it->second += ", " + c.value;
  c.field.clear();
  c.value.clear();
}

http_parser_settings make_settings() {
  http_parser_settings s{};
  s.on_message_begin = [](http_parser* p) {
    auto& c = connection_of(p);
    c.request = HttpRequest{};
    c.url.clear();
    c.field.clear();
    c.value.clear();
    c.in_value = false;
    c.header_bytes = 0;
    c.message_begun = true;
    c.request_started = SteadyClock::now();
    return 0;
  };
  s.on_url = [](http_parser* p, const char* at, std::size_t n) {
    auto& c = connection_of(p);
    c.url.append(at, n);
    return count_header_bytes(c, n);
  };
  s.on_header_field = [](http_parser* p, const char* at, std::size_t n) {
    auto& c = connection_of(p);
    if (c.in_value) {
      store_header(c);
      c.in_value = false;
    }
    c.field.append(at, n);
    return count_header_bytes(c, n);
  };
  s.on_header_value = [](http_parser* p, const char* at, std::size_t n) {
    auto& c = connection_of(p);
    c.in_value = true;
    c.value.append(at, n);
    return count_header_bytes(c, n);
  };
  s.on_headers_complete = [](http_parser* p) {
    auto& c = connection_of(p);
    store_header(c);
    c.in_value = false;
    // A declared body beyond the limit is refused before any of it is read.
    if ((p->flags & F_CONTENTLENGTH) && p->content_length > c.server->options.max_body_bytes) {
      c.parse_status = 413;
      return -1;
    }
    auto expect = c.request.headers.find("expect");
    c.expects_continue = expect != c.request.headers.end() && expect->second == "100-continue" && p->http_minor >= 1;
    return 0;
  };
  s.on_body = [](http_parser* p, const char* at, std::size_t n) {
    auto& c = connection_of(p);
    if (c.request.body.size() + n > c.server->options.max_body_bytes) {
      c.parse_status = 413;
      return 1;
    }
    c.request.body.append(at, n);
    return 0;
  };
  s.on_message_complete = [](http_parser* p) {
    auto& c = connection_of(p);
    c.message_complete = true;
    c.keep_alive = http_should_keep_alive(p) != 0;
    http_parser_pause(p, 1);  // one request at a time: the next waits for this answer
    return 0;
  };
  return s;
}

// Fill in method, path, query and version from the parsed request line.
bool finish_request(HttpConnection& c) {
  HttpRequest& r = c.request;
  r.method = http_method_str(static_cast<http_method>(c.parser.method));
  r.http_minor = c.parser.http_major == 1 ? c.parser.http_minor : 0;
  r.target = c.url;
  r.peer = c.peer;
  http_parser_url u;
  http_parser_url_init(&u);
  if (http_parser_parse_url(c.url.data(), c.url.size(), 0, &u) != 0) return false;
  std::string_view raw_path = "/";
  if (u.field_set & (1 << UF_PATH)) raw_path = std::string_view(c.url).substr(u.field_data[UF_PATH].off, u.field_data[UF_PATH].len);
  if (u.field_set & (1 << UF_QUERY)) r.query = c.url.substr(u.field_data[UF_QUERY].off, u.field_data[UF_QUERY].len);
  auto path = percent_decode(raw_path, false);
  if (!path || path->empty() || path->front() != '/' || path->find('\0') != std::string::npos) return false;
  r.path = std::move(*path);
  return true;
}

std::string status_line(int status) {
  return "HTTP/1.1 " + std::to_string(status) + " " + std::string(http_reason(status)) + "\r\n";
}

bool valid_header_text(std::string_view s) { return s.find_first_of("\r\n") == std::string_view::npos; }

}  // namespace

// --- HttpRequest ---

const std::string& HttpRequest::header(const std::string& lowercase_name) const {
  static const std::string none;
  auto it = headers.find(lowercase_name);
  return it == headers.end() ? none : it->second;
}

std::optional<std::string> HttpRequest::param(std::string_view name) const {
  std::string_view rest = query;
  while (!rest.empty()) {
    auto amp = rest.find('&');
    std::string_view pair = rest.substr(0, amp);
    rest = amp == std::string_view::npos ? std::string_view{} : rest.substr(amp + 1);
    auto eq = pair.find('=');
    auto key = percent_decode(pair.substr(0, eq), true);
    if (!key || *key != name) continue;
    if (eq == std::string_view::npos) return std::string();
    return percent_decode(pair.substr(eq + 1), true);
  }
  return std::nullopt;
}

// --- HttpResponder ---

namespace {
// The connection, when this responder's request is the one being answered on it.
std::shared_ptr<HttpConnection> current(const std::weak_ptr<HttpConnection>& weak, std::uint64_t request) {
  auto c = weak.lock();
  if (!c || c->closed || c->answering != request || request == 0) return nullptr;
  return c;
}
}  // namespace

bool HttpResponder::alive() const { return current(connection_, request_) != nullptr; }

void HttpResponder::respond(int status, std::string_view content_type, std::string body, const HttpHeaders& extra) {
  auto c = current(connection_, request_);
  if (!c || c->streaming) return;
  std::string head = status_line(status);
  if (!content_type.empty() && valid_header_text(content_type)) head += "Content-Type: " + std::string(content_type) + "\r\n";
  head += "Content-Length: " + std::to_string(body.size()) + "\r\n";
  for (const auto& [name, value] : extra)
    if (valid_header_text(name) && valid_header_text(value)) head += name + ": " + value + "\r\n";
  head += c->keep_alive ? "Connection: keep-alive\r\n\r\n" : "Connection: close\r\n\r\n";
  auto& server = *c->server;
  server.queue(*c, head);
  if (!c->head && !c->closed) server.queue(*c, body);
  if (!c->closed) server.answer_ended(*c);
}

void HttpResponder::start_stream(int status, std::string_view content_type, const HttpHeaders& extra) {
  auto c = current(connection_, request_);
  if (!c || c->streaming) return;
  c->streaming = true;
  c->chunked = c->request.http_minor >= 1 && !c->head;
  if (!c->chunked) c->keep_alive = false;  // HTTP/1.0: the end is the connection's close
  std::string head = status_line(status);
  if (!content_type.empty() && valid_header_text(content_type)) head += "Content-Type: " + std::string(content_type) + "\r\n";
  if (c->chunked) head += "Transfer-Encoding: chunked\r\n";
  for (const auto& [name, value] : extra)
    if (valid_header_text(name) && valid_header_text(value)) head += name + ": " + value + "\r\n";
  head += c->keep_alive ? "Connection: keep-alive\r\n\r\n" : "Connection: close\r\n\r\n";
  c->server->queue(*c, head);
  if (c->head && !c->closed) end();
}

void HttpResponder::write(std::string_view data) {
  auto c = current(connection_, request_);
  if (!c || !c->streaming || data.empty() || c->head) return;
  if (c->chunked) {
    char size[32];
    int n = std::snprintf(size, sizeof size, "%zx\r\n", data.size());
    std::string chunk(size, static_cast<std::size_t>(n));
    chunk.append(data);
    chunk += "\r\n";
    c->server->queue(*c, chunk);
  } else {
    c->server->queue(*c, data);
  }
}

void HttpResponder::end() {
  auto c = current(connection_, request_);
  if (!c || !c->streaming) return;
  if (c->chunked) c->server->queue(*c, "0\r\n\r\n");
  if (!c->closed) c->server->answer_ended(*c);
}

std::size_t HttpResponder::backlog() const {
  auto c = current(connection_, request_);
  return c ? c->out.size() : 0;
}

void HttpResponder::on_close(std::function<void()> callback) {
  if (auto c = current(connection_, request_)) c->on_close = std::move(callback);
}

// --- HttpServer ---

HttpServer::HttpServer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

Result<std::unique_ptr<HttpServer>> HttpServer::serve(EventLoop& loop, UniqueFd listener, Options options,
                                                      Handler handler) {
  if (!listener) return fail("HTTP server: no listening socket");
  sockaddr_storage addr{};
  socklen_t len = sizeof addr;
  if (::getsockname(listener.get(), reinterpret_cast<sockaddr*>(&addr), &len) != 0) return sys_error("getsockname");
  int flags = ::fcntl(listener.get(), F_GETFL);
  if (flags < 0 || ::fcntl(listener.get(), F_SETFL, flags | O_NONBLOCK) != 0) return sys_error("fcntl O_NONBLOCK");
  if (!options.allow_peer) {
    uid_t self = ::geteuid();
    options.allow_peer = [self](const ucred& peer) { return peer.uid == self || peer.uid == 0; };
  }
  auto impl = std::make_unique<Impl>(loop, std::move(listener), std::move(options), std::move(handler));
  impl->unix_socket = addr.ss_family == AF_UNIX;
  impl->settings = make_settings();
  Impl* self = impl.get();
  if (auto w = loop.watch(self->listener.get(), EPOLLIN, [self](std::uint32_t) { self->on_accept(); }); !w)
    return std::unexpected(w.error());
  return std::unique_ptr<HttpServer>(new HttpServer(std::move(impl)));
}

HttpServer::~HttpServer() {
  auto& s = *impl_;
  auto connections = std::move(s.connections);
  for (auto& [fd, c] : connections) {
    c->closed = true;
    if (c->timer) s.loop.cancel_timer(*c->timer);
    s.loop.unwatch(fd);
  }
  stop_listening();
}

void HttpServer::stop_listening() {
  auto& s = *impl_;
  if (s.accept_pause) s.loop.cancel_timer(*s.accept_pause);
  s.accept_pause.reset();
  if (!s.listener) return;
  s.loop.unwatch(s.listener.get());
  s.listener.reset();
}

std::size_t HttpServer::clients() const { return impl_->connections.size(); }

void HttpServer::flush(Duration timeout) {
  auto deadline = SteadyClock::now() + timeout;
  for (;;) {
    std::vector<pollfd> fds;
    for (auto& [fd, c] : impl_->connections)
      if (!c->out.empty()) fds.push_back({fd, POLLOUT, 0});
    if (fds.empty()) return;
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - SteadyClock::now()).count();
    if (left <= 0 || ::poll(fds.data(), fds.size(), static_cast<int>(left)) <= 0) return;
    for (auto& p : fds)
      if (auto it = impl_->connections.find(p.fd); it != impl_->connections.end()) {
        auto keep = it->second;
        impl_->write_some(*keep);
      }
  }
}

// Close the connection idle the longest (nothing being answered), so a new client gets in
// however many idle ones are held open. False when every connection is being answered.
bool HttpServer::Impl::make_room() {
  HttpConnection* victim = nullptr;
  for (auto& [fd, c] : connections) {
    if (c->answering != 0) continue;
    if (!victim || c->last_activity < victim->last_activity) victim = c.get();
  }
  if (!victim) return false;
  close(*victim);
  return true;
}

void HttpServer::Impl::on_accept() {
  for (;;) {
    int fd = ::accept4(listener.get(), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EINTR) continue;
      if ((errno == EMFILE || errno == ENFILE) && make_room()) continue;
      if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
        // Out of fds with nobody to evict: pause accepting rather than spin on a listener
        // that stays readable.
        loop.unwatch(listener.get());
        accept_pause = loop.add_timer_after(std::chrono::milliseconds(100), [this] {
          accept_pause.reset();
          (void)loop.watch(listener.get(), EPOLLIN, [this](std::uint32_t) { on_accept(); });
        });
      }
      return;
    }
    UniqueFd owner(fd);
    std::optional<ucred> peer;
    if (unix_socket) {
      ucred cred{};
      socklen_t len = sizeof cred;
      if (::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) continue;
      if (!options.allow_peer(cred)) {
        std::string body = "uid " + std::to_string(cred.uid) + " may not use this socket\n";
        std::string msg = status_line(403) + "Content-Type: text/plain\r\nContent-Length: " + std::to_string(body.size()) +
                          "\r\nConnection: close\r\n\r\n" + body;
        (void)::send(fd, msg.data(), msg.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
        continue;
      }
      peer = cred;
    } else if (options.check_loopback_peer) {
      sockaddr_storage from{};
      socklen_t len = sizeof from;
      bool loopback = false;
      if (::getpeername(fd, reinterpret_cast<sockaddr*>(&from), &len) == 0) {
        if (from.ss_family == AF_INET)
          loopback = (ntohl(reinterpret_cast<sockaddr_in*>(&from)->sin_addr.s_addr) >> 24) == 127;
        else if (from.ss_family == AF_INET6) {
          const in6_addr& a = reinterpret_cast<sockaddr_in6*>(&from)->sin6_addr;
          loopback = IN6_IS_ADDR_LOOPBACK(&a) || (IN6_IS_ADDR_V4MAPPED(&a) && a.s6_addr[12] == 127);
        }
      }
      if (loopback) {
        auto uid = loopback_peer_uid(fd);
        if (!uid || !options.allow_peer(ucred{0, *uid, 0})) {
          std::string body = uid ? "uid " + std::to_string(*uid) + " may not use this server\n"
                                 : std::string("the connecting process's user was not found\n");
          std::string msg = status_line(403) + "Content-Type: text/plain\r\nContent-Length: " + std::to_string(body.size()) +
                            "\r\nConnection: close\r\n\r\n" + body;
          (void)::send(fd, msg.data(), msg.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
          continue;
        }
      }
    }
    if (connections.size() >= options.max_clients && !make_room()) {
      std::string body = "too many connections; try again\n";
      std::string msg = status_line(503) + "Content-Type: text/plain\r\nContent-Length: " + std::to_string(body.size()) +
                        "\r\nConnection: close\r\n\r\n" + body;
      (void)::send(fd, msg.data(), msg.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
      continue;
    }
    auto c = std::make_shared<HttpConnection>();
    c->server = this;
    c->fd = std::move(owner);
    c->serial = next_serial++;
    c->peer = peer;
    c->last_activity = loop.now();
    http_parser_init(&c->parser, HTTP_REQUEST);
    c->parser.data = c.get();
    connections[fd] = c;
    update_watch(*c);
    if (!c->registered) {
      close(*c);
      continue;
    }
    schedule(*c);
  }
}

void HttpServer::Impl::on_event(int fd, std::uint32_t events) {
  auto it = connections.find(fd);
  if (it == connections.end()) return;
  std::shared_ptr<HttpConnection> c = it->second;
  if (events & (EPOLLERR | EPOLLHUP)) {
    close(*c);  // reset, or shut down both ways: nobody will read an answer
    return;
  }
  if ((events & EPOLLOUT) && !write_some(*c)) return;
  bool hangup = events & EPOLLRDHUP;  // the client sends nothing more: take what it sent
  if ((events & EPOLLIN) || hangup) {
    char buf[16384];
    // While a request is being answered, the next (pipelined) one waits: read a little, and
    // never more than one request's worth; the rest stays in the socket.
    std::size_t limit = options.max_header_bytes + options.max_body_bytes;
    while (!c->closed && !c->read_eof && c->in.size() < limit) {
      ssize_t n = ::recv(fd, buf, sizeof buf, 0);
      if (n > 0) {
        c->in.append(buf, static_cast<std::size_t>(n));
        if (c->answering != 0 && !hangup) break;
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && errno == EAGAIN) break;
      if (n < 0) {
        close(*c);
        return;
      }
      c->read_eof = true;
    }
    if (hangup) c->read_eof = true;
  }
  if (c->closed) return;
  if (c->read_eof && c->streaming) {
    close(*c);  // a stream never ends by itself: the reader is gone
    return;
  }
  process(c);
}

// Parse what was received and answer the next complete request, unless one is being answered.
void HttpServer::Impl::process(const std::shared_ptr<HttpConnection>& c) {
  if (c->closed) return;
  if (c->answering == 0 && !c->close_after_write) {
    if (!c->in.empty()) {
      http_parser_pause(&c->parser, 0);
      std::size_t used = http_parser_execute(&c->parser, &settings, c->in.data(), c->in.size());
      auto err = HTTP_PARSER_ERRNO(&c->parser);
      c->in.erase(0, std::min(used, c->in.size()));
      if (err != HPE_OK && err != HPE_PAUSED) {
        if (c->parse_status == 413) return reject(*c, 413, "request body too large");
        if (c->parse_status == 431) return reject(*c, 431, "request headers too large");
        return reject(*c, 400, std::string("bad request: ") + http_errno_name(err));
      }
      if (c->expects_continue) {
        c->expects_continue = false;
        if (!c->message_complete) queue(*c, "HTTP/1.1 100 Continue\r\n\r\n");
        if (c->closed) return;
      }
    }
    if (c->message_complete) {
      c->message_complete = false;
      c->message_begun = false;
      dispatch(c);
      if (c->closed) return;
    } else if (c->read_eof) {
      // The client finished sending: nothing more will come. Close once what is queued is
      // written (an unfinished request is dropped).
      if (c->out.empty()) return close(*c);
      c->close_after_write = true;
    }
  }
  update_watch(*c);
  schedule(*c);
}

void HttpServer::Impl::dispatch(const std::shared_ptr<HttpConnection>& c) {
  if (!finish_request(*c)) return reject(*c, 400, "bad request target");
  c->answering = c->next_request++;
  c->head = c->request.method == "HEAD";
  c->streaming = c->chunked = false;
  c->on_close = nullptr;
  c->last_activity = loop.now();
  HttpResponder responder(c, c->answering);
  try {
    handler(c->request, responder);
  } catch (const std::exception& e) {
    responder.respond(500, "text/plain", std::string("internal error: ") + e.what() + "\n");
  }
}

void HttpServer::Impl::reject(HttpConnection& c, int status, std::string_view message) {
  std::string body = std::string(message) + "\n";
  c.keep_alive = false;
  c.answering = 0;
  c.in.clear();
  queue(c, status_line(status) + "Content-Type: text/plain\r\nContent-Length: " + std::to_string(body.size()) +
               "\r\nConnection: close\r\n\r\n" + body);
  if (c.closed) return;
  c.close_after_write = true;
  if (c.out.empty()) return close(c);
  update_watch(c);
  schedule(c);
}

void HttpServer::Impl::queue(HttpConnection& c, std::string_view data) {
  if (c.closed || data.empty()) return;
  if (c.out.size() + data.size() > options.max_queued) {
    close(c);  // it reads nothing of what it asked for: drop it rather than grow
    return;
  }
  if (c.out.empty()) c.last_progress = loop.now();
  c.out.append(data);
  write_some(c);
}

// Write what the socket takes. False when the connection was closed.
bool HttpServer::Impl::write_some(HttpConnection& c) {
  if (c.closed) return false;
  std::size_t sent = 0;
  while (sent < c.out.size()) {
    ssize_t n = ::send(c.fd.get(), c.out.data() + sent, c.out.size() - sent, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n > 0) {
      sent += static_cast<std::size_t>(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) break;
    close(c);
    return false;
  }
  if (sent > 0) {
    c.out.erase(0, sent);
    c.last_progress = loop.now();
    if (c.out.empty() && c.out.capacity() > (256 << 10)) std::string().swap(c.out);
  }
  if (c.out.empty() && c.close_after_write) {
    close(c);
    return false;
  }
  update_watch(c);
  schedule(c);
  return true;
}

void HttpServer::Impl::answer_ended(HttpConnection& c) {
  c.answering = 0;
  c.streaming = false;
  c.on_close = nullptr;
  c.last_activity = loop.now();
  if (!c.keep_alive) {
    c.close_after_write = true;
    if (c.out.empty()) close(c);
    return;
  }
  continue_later(c);
}

// The next pipelined request is parsed from the loop, never inside the call that answered
// this one (that may be deep in a caller's own callback).
void HttpServer::Impl::continue_later(HttpConnection& c) {
  auto it = connections.find(c.fd.get());
  if (it == connections.end()) return;
  std::weak_ptr<HttpConnection> weak = it->second;
  loop.defer([this, weak] {
    if (auto conn = weak.lock(); conn && !conn->closed) process(conn);
  });
}

// EPOLLIN while a request may be read; EPOLLOUT while answer bytes wait; EPOLLRDHUP always,
// so a stream reader that hangs up is noticed.
void HttpServer::Impl::update_watch(HttpConnection& c) {
  if (c.closed) return;
  int fd = c.fd.get();
  std::uint32_t want = c.read_eof ? 0u : static_cast<std::uint32_t>(EPOLLRDHUP);
  if (!c.read_eof && !c.close_after_write && (c.answering == 0 || c.streaming) &&
      c.in.size() < options.max_header_bytes + options.max_body_bytes)
    want |= EPOLLIN;
  if (!c.out.empty()) want |= EPOLLOUT;
  if (c.registered && want == c.watching) return;
  c.registered = static_cast<bool>(loop.watch(fd, want, [this, fd](std::uint32_t events) { on_event(fd, events); }));
  c.watching = want;
}

// One deadline per connection: the stall timeout while answer bytes wait; none while an
// answer is being prepared or streamed; the request timeout while a request is half sent;
// the idle timeout otherwise.
void HttpServer::Impl::schedule(HttpConnection& c) {
  if (c.closed) return;
  std::optional<TimePoint> deadline;
  if (!c.out.empty())
    deadline = c.last_progress + options.stall_timeout;
  else if (c.answering != 0)
    deadline.reset();
  else if (c.message_begun || !c.in.empty())
    deadline = (c.message_begun ? c.request_started : c.last_activity) + options.request_timeout;
  else
    deadline = c.last_activity + options.idle_timeout;
  if (!deadline) return;  // an earlier timer finds nothing to do and is not re-armed
  if (c.timer && c.timer_at <= *deadline) return;
  if (c.timer) loop.cancel_timer(*c.timer);
  int fd = c.fd.get();
  std::uint64_t serial = c.serial;
  c.timer_at = *deadline;
  c.timer = loop.add_timer(*deadline, [this, fd, serial] { on_deadline(fd, serial); });
}

void HttpServer::Impl::on_deadline(int fd, std::uint64_t serial) {
  auto it = connections.find(fd);
  if (it == connections.end() || it->second->serial != serial) return;
  std::shared_ptr<HttpConnection> c = it->second;
  c->timer.reset();
  TimePoint now = loop.now();
  if (!c->out.empty()) {
    if (now >= c->last_progress + options.stall_timeout) return close(*c);
  } else if (c->answering == 0) {
    bool partial = c->message_begun || !c->in.empty();
    if (partial && now >= (c->message_begun ? c->request_started : c->last_activity) + options.request_timeout)
      return reject(*c, 408, "request timeout");
    if (!partial && now >= c->last_activity + options.idle_timeout) return close(*c);
  }
  schedule(*c);
}

void HttpServer::Impl::close(HttpConnection& c) {
  if (c.closed) return;
  c.closed = true;
  int fd = c.fd.get();
  if (c.timer) loop.cancel_timer(*c.timer);
  loop.unwatch(fd);
  if (c.answering != 0 && c.on_close) {
    // Told from the loop, never inside the call that closed it (a producer's write loop).
    loop.defer([callback = std::move(c.on_close)] { callback(); });
  }
  c.on_close = nullptr;
  auto it = connections.find(fd);
  std::shared_ptr<HttpConnection> keep;
  if (it != connections.end() && it->second.get() == &c) {
    keep = std::move(it->second);
    connections.erase(it);
  }
  c.fd.reset();
  // `keep` may be the last owner: destroy the connection after this frame, from the loop,
  // since a caller up the stack may still be using it.
  if (keep) loop.defer([keep] {});
}

// --- sockets ---

Result<UniqueFd> listen_tcp(const std::string& address, int port) {
  if (port < 0 || port > 65535) return fail("port " + std::to_string(port) + ": not in 0-65535");
  std::string host = address == "localhost" ? "127.0.0.1" : address;
  if (host.size() > 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  sockaddr_storage storage{};
  socklen_t len = 0;
  int family = AF_INET;
  auto* v4 = reinterpret_cast<sockaddr_in*>(&storage);
  auto* v6 = reinterpret_cast<sockaddr_in6*>(&storage);
  if (::inet_pton(AF_INET, host.c_str(), &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons(static_cast<std::uint16_t>(port));
    len = sizeof *v4;
  } else if (::inet_pton(AF_INET6, host.c_str(), &v6->sin6_addr) == 1) {
    family = AF_INET6;
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(static_cast<std::uint16_t>(port));
    len = sizeof *v6;
  } else {
    return fail("bind address '" + address + "': not an IPv4 or IPv6 address");
  }
  UniqueFd fd(::socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!fd) return sys_error("socket");
  // SO_REUSEADDR only: a port in TIME_WAIT may be bound again, a port in use may not.
  int one = 1;
  (void)::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  std::string where = (family == AF_INET6 ? "[" + host + "]" : host) + ":" + std::to_string(port);
  if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&storage), len) != 0) return sys_error("bind " + where);
  if (::listen(fd.get(), 128) != 0) return sys_error("listen on " + where);
  return fd;
}

namespace {
// "0100007F:1F90": an address and port as /proc/net/tcp{,6} print them (each 32-bit word of
// the address in the kernel's byte order, the port in host order).
std::string proc_net_endpoint(const sockaddr_storage& addr) {
  char out[64];
  if (addr.ss_family == AF_INET) {
    auto* a = reinterpret_cast<const sockaddr_in*>(&addr);
    std::snprintf(out, sizeof out, "%08X:%04X", a->sin_addr.s_addr, ntohs(a->sin_port));
  } else {
    auto* a = reinterpret_cast<const sockaddr_in6*>(&addr);
    std::uint32_t w[4];
    std::memcpy(w, &a->sin6_addr, sizeof w);
    std::snprintf(out, sizeof out, "%08X%08X%08X%08X:%04X", w[0], w[1], w[2], w[3], ntohs(a->sin6_port));
  }
  return out;
}
}  // namespace

std::optional<uid_t> loopback_peer_uid(int connection) {
  sockaddr_storage mine{}, theirs{};
  socklen_t a = sizeof mine, b = sizeof theirs;
  if (::getsockname(connection, reinterpret_cast<sockaddr*>(&mine), &a) != 0 ||
      ::getpeername(connection, reinterpret_cast<sockaddr*>(&theirs), &b) != 0 || mine.ss_family != theirs.ss_family)
    return std::nullopt;
  // The peer's own socket: its local address is our peer, its remote address is us.
  const std::string local = proc_net_endpoint(theirs), remote = proc_net_endpoint(mine);
  FILE* f = std::fopen(mine.ss_family == AF_INET ? "/proc/net/tcp" : "/proc/net/tcp6", "re");
  if (!f) return std::nullopt;
  std::optional<uid_t> found;
  char line[512];
  while (!found && std::fgets(line, sizeof line, f)) {
    char l[64], r[64];
    unsigned state = 0;
    unsigned long uid = 0;
    // sl local rem st tx:rx tr:when retrnsmt uid
    if (std::sscanf(line, " %*s %63s %63s %x %*s %*s %*s %lu", l, r, &state, &uid) == 4 && local == l && remote == r)
      found = static_cast<uid_t>(uid);
  }
  std::fclose(f);
  return found;
}

Result<int> bound_port(int listener) {
  sockaddr_storage addr{};
  socklen_t len = sizeof addr;
  if (::getsockname(listener, reinterpret_cast<sockaddr*>(&addr), &len) != 0) return sys_error("getsockname");
  if (addr.ss_family == AF_INET) return ntohs(reinterpret_cast<sockaddr_in*>(&addr)->sin_port);
  if (addr.ss_family == AF_INET6) return ntohs(reinterpret_cast<sockaddr_in6*>(&addr)->sin6_port);
  return fail("not a TCP socket");
}

namespace {
// A sockaddr for `path`. Paths too long for sun_path go through the directory's fd
// (/proc/self/fd/N/name), which `dir` keeps open until the call is made.
Result<sockaddr_un> unix_address(const std::string& path, UniqueFd& dir) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::string target = path;
  if (target.size() >= sizeof addr.sun_path) {
    std::filesystem::path p(path);
    int fd = ::open(p.parent_path().c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return sys_error("open socket directory " + p.parent_path().string());
    dir.reset(fd);
    target = "/proc/self/fd/" + std::to_string(fd) + "/" + p.filename().string();
    if (target.size() >= sizeof addr.sun_path) return fail("socket name too long: " + path);
  }
  std::memcpy(addr.sun_path, target.c_str(), target.size() + 1);
  return addr;
}
}  // namespace

Result<UniqueFd> listen_unix(const std::string& path, const std::string& busy_message) {
  UniqueFd dir;
  auto addr = BATMAN_TRY(unix_address(path, dir));
  // A socket file left by a server that died is replaced; one that answers is not.
  struct stat st{};
  if (::lstat(path.c_str(), &st) == 0 && S_ISLNK(st.st_mode)) {
    if (::unlink(path.c_str()) != 0 && errno != ENOENT) return sys_error("remove " + path);
  } else if (::lstat(path.c_str(), &st) == 0) {
    if (!S_ISSOCK(st.st_mode)) return fail("socket " + path + " exists and is not a socket: remove it or choose another path");
    UniqueFd probe(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (probe && ::connect(probe.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr) == 0)
      return fail(busy_message);
    if (::unlink(path.c_str()) != 0 && errno != ENOENT) return sys_error("remove stale socket " + path);
  }
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!fd) return sys_error("socket");
  // The file is created 0600 from the start: no window in which others could connect.
  mode_t old = ::umask(0177);
  int rc = ::bind(fd.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr);
  int err = errno;
  ::umask(old);
  if (rc != 0) return sys_error("bind socket " + path, err);
  if (::listen(fd.get(), 128) != 0) return sys_error("listen on " + path);
  return fd;
}

Result<UniqueFd> connect_unix(const std::string& path) {
  UniqueFd dir;
  auto addr = BATMAN_TRY(unix_address(path, dir));
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd) return sys_error("socket");
  if (::connect(fd.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0)
    return sys_error("connect to " + path);
  return fd;
}

// --- text ---

std::string_view http_reason(int status) {
  switch (status) {
    case 100: return "Continue";
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 204: return "No Content";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 303: return "See Other";
    case 304: return "Not Modified";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 411: return "Length Required";
    case 413: return "Content Too Large";
    case 415: return "Unsupported Media Type";
    case 421: return "Misdirected Request";
    case 422: return "Unprocessable Content";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    default: return status < 300 ? "OK" : status < 400 ? "Redirect" : status < 500 ? "Client Error" : "Server Error";
  }
}

std::string html_escape(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (char ch : text) {
    switch (ch) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&#39;"; break;
      default: out += ch;
    }
  }
  return out;
}

std::optional<std::string> percent_decode(std::string_view text, bool plus_is_space) {
  auto hex = [](char ch) -> int {
    if (ch >= '0' && ch <= '9') return ch - '0';
    if (ch >= 'a' && ch <= 'f') return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F') return ch - 'A' + 10;
    return -1;
  };
  std::string out;
  out.reserve(text.size());
  for (std::size_t i = 0; i < text.size(); ++i) {
    char ch = text[i];
    if (ch == '%') {
      if (i + 2 >= text.size()) return std::nullopt;
      int hi = hex(text[i + 1]), lo = hex(text[i + 2]);
      if (hi < 0 || lo < 0) return std::nullopt;
      out += static_cast<char>(hi * 16 + lo);
      i += 2;
    } else if (ch == '+' && plus_is_space) {
      out += ' ';
    } else {
      out += ch;
    }
  }
  return out;
}

}  // namespace batman::runner
