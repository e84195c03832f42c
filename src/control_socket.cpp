// The control socket: accept, check the peer's uid, read command lines, write JSON-line
// answers, all non-blocking on the supervisor's event loop.
#include "src/control_socket.hpp"

#include <fcntl.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>
#include <deque>
#include <filesystem>

#include <nlohmann/json.hpp>

namespace batman::cli {
namespace {

constexpr std::size_t kMaxClients = 64;
constexpr std::size_t kMaxQueuedOutput = 8 << 20;  // a `tail -f` reader that falls behind loses data

// A sockaddr for `path`. Paths too long for sun_path go through the directory's fd
// (/proc/self/fd/N/name), which `dir` keeps open until the call is made.
Result<sockaddr_un> socket_address(const std::string& path, UniqueFd& dir) {
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

std::string json_line(const nlohmann::json& j) {
  // Program output need not be UTF-8: replace what JSON cannot carry rather than fail.
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
}

}  // namespace

std::string encode_output(std::string_view text) { return json_line({{"out", std::string(text)}}); }

std::string encode_finish(int exit_code, const std::string& error) {
  nlohmann::json j = {{"exit", exit_code}};
  if (!error.empty()) j["error"] = error;
  return json_line(j);
}

struct ControlServer::Client {
  UniqueFd fd;
  std::string in, out;
  std::deque<std::string> lines;
  bool busy = false;
  bool dispatching = false;
  bool closing = false;  // close once `out` is written
  bool writable_watch = false;
  bool dropped = false;
  ControlCommands::Cancel cancel;
  std::shared_ptr<bool> alive = std::make_shared<bool>(true);
};

ControlServer::ControlServer(runner::EventLoop& loop, std::string path, Handler handler)
    : loop_(loop), path_(std::move(path)), handler_(std::move(handler)) {}

Result<std::unique_ptr<ControlServer>> ControlServer::listen(runner::EventLoop& loop, const std::string& path,
                                                             Handler handler) {
  std::unique_ptr<ControlServer> server(new ControlServer(loop, path, std::move(handler)));
  UniqueFd dir;
  auto addr = socket_address(path, dir);
  if (!addr) return std::unexpected(addr.error());
  // A socket file left by a supervisor that died is replaced; one that answers is not.
  struct stat st{};
  if (::lstat(path.c_str(), &st) == 0) {
    if (!S_ISSOCK(st.st_mode)) return fail("control socket " + path + " exists and is not a socket: remove it or set 'socket:'");
    UniqueFd probe(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (probe && ::connect(probe.get(), reinterpret_cast<const sockaddr*>(&*addr), sizeof *addr) == 0)
      return fail("another supervisor is already serving " + path + ": stop it with 'batman ctl --socket " + path + " quit'");
    if (::unlink(path.c_str()) != 0 && errno != ENOENT) return sys_error("remove stale socket " + path);
  }
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return sys_error("socket");
  server->listener_.reset(fd);
  // The file is created 0600 from the start: no window in which others could connect.
  mode_t old = ::umask(0177);
  int rc = ::bind(fd, reinterpret_cast<const sockaddr*>(&*addr), sizeof *addr);
  int err = errno;
  ::umask(old);
  if (rc != 0) return sys_error("bind control socket " + path, err);
  if (::listen(fd, 128) != 0) return sys_error("listen on " + path);
  ControlServer* self = server.get();
  if (auto w = loop.watch(fd, EPOLLIN, [self](std::uint32_t) { self->on_accept(); }); !w)
    return std::unexpected(w.error());
  return server;
}

ControlServer::~ControlServer() {
  for (auto& [fd, client] : clients_) {
    *client->alive = false;
    if (client->cancel) {
      auto cancel = std::move(client->cancel);
      cancel();
    }
    loop_.unwatch(fd);
  }
  clients_.clear();
  if (listener_) {
    loop_.unwatch(listener_.get());
    ::unlink(path_.c_str());
  }
}

void ControlServer::on_accept() {
  for (;;) {
    int fd = ::accept4(listener_.get(), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) return;  // EAGAIN, or a client that vanished before we got to it
    UniqueFd owner(fd);
    ucred cred{};
    socklen_t len = sizeof cred;
    if (::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) continue;
    if (cred.uid != ::geteuid() && cred.uid != 0) {
      std::string msg = encode_finish(kCommandUsage, "permission denied: uid " + std::to_string(cred.uid) +
                                                         " may not control this supervisor");
      (void)::send(fd, msg.data(), msg.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
      continue;
    }
    if (clients_.size() >= kMaxClients) {
      std::string msg = encode_finish(kCommandFailed, "too many control connections; try again");
      (void)::send(fd, msg.data(), msg.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
      continue;
    }
    auto client = std::make_unique<Client>();
    client->fd = std::move(owner);
    if (!loop_.watch(fd, EPOLLIN, [this, fd](std::uint32_t events) { on_client(fd, events); })) continue;
    clients_[fd] = std::move(client);
  }
}

void ControlServer::on_client(int fd, std::uint32_t events) {
  auto it = clients_.find(fd);
  if (it == clients_.end()) return;
  Client& client = *it->second;
  if (events & EPOLLOUT) {
    write_some(client);
    if (!clients_.count(fd)) return;
  }
  if (!(events & (EPOLLIN | EPOLLHUP | EPOLLERR))) return;
  char buf[8192];
  for (;;) {
    ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n > 0) {
      if (client.closing) continue;  // after a protocol error nothing more is read
      client.in.append(buf, static_cast<std::size_t>(n));
      std::size_t start = 0, nl;
      while ((nl = client.in.find('\n', start)) != std::string::npos) {
        client.lines.push_back(client.in.substr(start, nl - start));
        start = nl + 1;
      }
      client.in.erase(0, start);
      if (client.in.size() > kMaxRequestLine) {
        client.in.clear();
        client.lines.clear();
        client.closing = true;
        send(client, encode_finish(kCommandUsage, "request line longer than " + std::to_string(kMaxRequestLine) +
                                                      " bytes: send one command per line"));
        return;
      }
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) break;
    close_client(fd);  // EOF or error: the client is gone
    return;
  }
  dispatch(client);
}

void ControlServer::dispatch(Client& client) {
  if (client.dispatching) return;
  client.dispatching = true;
  while (!client.busy && !client.closing && !client.lines.empty()) {
    std::string line = std::move(client.lines.front());
    client.lines.pop_front();
    if (line.size() > kMaxRequestLine) {
      client.closing = true;
      send(client, encode_finish(kCommandUsage, "request line too long"));
      break;
    }
    client.busy = true;
    std::weak_ptr<bool> alive = client.alive;
    Client* c = &client;
    auto out = [this, alive, c](std::string_view text) {
      auto a = alive.lock();
      if (!a || !*a || text.empty()) return;
      if (c->out.size() > kMaxQueuedOutput) {
        if (!c->dropped) c->out += encode_output("\n[batman: output dropped: the reader is too slow]\n");
        c->dropped = true;
        return;
      }
      c->dropped = false;
      send(*c, encode_output(text));
    };
    auto finish = [this, alive, c](int code, const std::string& error) {
      auto a = alive.lock();
      if (!a || !*a) return;
      c->busy = false;
      c->cancel = nullptr;
      send(*c, encode_finish(code, error));
      if (clients_.count(c->fd.get())) dispatch(*c);
    };
    auto cancel = handler_(line, out, finish);
    if (auto a = alive.lock(); a && *a && client.busy) client.cancel = std::move(cancel);
    if (!alive.lock() || !*alive.lock()) return;  // the client went away inside the handler
  }
  client.dispatching = false;
}

void ControlServer::send(Client& client, std::string data) {
  client.out += data;
  write_some(client);
}

void ControlServer::write_some(Client& client) {
  int fd = client.fd.get();
  while (!client.out.empty()) {
    ssize_t n = ::send(fd, client.out.data(), client.out.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n > 0) {
      client.out.erase(0, static_cast<std::size_t>(n));
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) break;
    close_client(fd);
    return;
  }
  bool want = !client.out.empty();
  if (want != client.writable_watch) {
    client.writable_watch = want;
    (void)loop_.watch(fd, want ? (EPOLLIN | EPOLLOUT) : EPOLLIN,
                      [this, fd](std::uint32_t events) { on_client(fd, events); });
  }
  if (!want && client.closing && !client.busy) close_client(fd);
}

void ControlServer::close_client(int fd) {
  auto it = clients_.find(fd);
  if (it == clients_.end()) return;
  std::unique_ptr<Client> client = std::move(it->second);
  clients_.erase(it);
  *client->alive = false;
  loop_.unwatch(fd);
  if (client->cancel) {
    auto cancel = std::move(client->cancel);
    cancel();
  }
}

void ControlServer::flush(Duration timeout) {
  auto deadline = SteadyClock::now() + timeout;
  for (;;) {
    std::vector<pollfd> fds;
    for (auto& [fd, client] : clients_)
      if (!client->out.empty()) fds.push_back({fd, POLLOUT, 0});
    if (fds.empty()) return;
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - SteadyClock::now()).count();
    if (left <= 0) return;
    if (::poll(fds.data(), fds.size(), static_cast<int>(left)) <= 0) return;
    for (auto& p : fds)
      if (auto it = clients_.find(p.fd); it != clients_.end()) write_some(*it->second);
  }
}

Result<UniqueFd> connect_control(const std::string& path) {
  UniqueFd dir;
  auto addr = socket_address(path, dir);
  if (!addr) return std::unexpected(addr.error());
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd) return sys_error("socket");
  if (::connect(fd.get(), reinterpret_cast<const sockaddr*>(&*addr), sizeof *addr) != 0) {
    int err = errno;
    if (err == ENOENT || err == ECONNREFUSED)
      return fail("no supervisor is listening on " + path + ": start one with 'taskmaster CONFIG --daemon'", err);
    return sys_error("connect to " + path, err);
  }
  return fd;
}

}  // namespace batman::cli
