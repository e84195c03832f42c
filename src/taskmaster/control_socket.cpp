// The control socket: accept, check the peer's uid, read command lines, write JSON-line
// answers, all non-blocking on the supervisor's event loop.
#include "src/taskmaster/control_socket.hpp"

#include "runner/http_server.hpp"

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

// A `tail -f` reader that falls behind by this much loses data (a burst of a few MB passes).
constexpr std::size_t kMaxQueuedOutput = 8 << 20;
// Beyond kMaxQueuedOutput, room for one answer (status of every instance as JSON); a client
// whose queue would grow past both is dropped.
constexpr std::size_t kMaxAnswer = 8 << 20;

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
  std::uint64_t serial = 0;  // accept order
  RequestLines requests;
  std::string out;
  bool busy = false;         // a command is running (start waiting for RUNNING, tail -f)
  bool dispatching = false;
  bool closing = false;      // close once `out` is written
  bool dropped = false;      // tail -f output was dropped: the marker is queued
  bool registered = false;   // with the event loop
  std::uint32_t watching = 0;
  TimePoint last_command{};   // connected, or a command line arrived or was answered
  TimePoint last_progress{};  // `out` became non-empty or some of it was written
  std::optional<runner::EventLoop::TimerId> timer;
  TimePoint timer_at{};
  ControlCommands::Cancel cancel;
  std::shared_ptr<bool> alive = std::make_shared<bool>(true);
};

ControlServer::ControlServer(runner::EventLoop& loop, std::string path, Handler handler)
    : loop_(loop), path_(std::move(path)), handler_(std::move(handler)) {}

Result<std::unique_ptr<ControlServer>> ControlServer::listen(runner::EventLoop& loop, const std::string& path,
                                                             Handler handler) {
  std::unique_ptr<ControlServer> server(new ControlServer(loop, path, std::move(handler)));
  auto listener = runner::listen_unix(
      path, "another supervisor is already serving " + path + ": stop it with 'batman ctl --socket " + path + " quit'");
  if (!listener) return std::unexpected(listener.error());
  server->listener_ = std::move(*listener);
  int fd = server->listener_.get();
  ControlServer* self = server.get();
  if (auto w = loop.watch(fd, EPOLLIN, [self](std::uint32_t) { self->on_accept(); }); !w)
    return std::unexpected(w.error());
  return server;
}

ControlServer::~ControlServer() {
  for (auto& [fd, client] : clients_) {
    *client->alive = false;
    if (client->timer) loop_.cancel_timer(*client->timer);
    if (client->cancel) {
      auto cancel = std::move(client->cancel);
      cancel();
    }
    loop_.unwatch(fd);
  }
  clients_.clear();
  stop_listening();
}

void ControlServer::stop_listening() {
  if (accept_pause_) loop_.cancel_timer(*accept_pause_);
  accept_pause_.reset();
  if (!listener_) return;
  loop_.unwatch(listener_.get());
  ::unlink(path_.c_str());
  listener_.reset();
}

// Close the connection that has waited longest without a command running, so a new client
// gets in however many idle or stalled ones an attacker holds open. False when every
// connection is running a command.
bool ControlServer::make_room() {
  Client* victim = nullptr;
  for (auto& [fd, client] : clients_) {
    if (client->busy) continue;
    if (!victim || client->last_command < victim->last_command) victim = client.get();
  }
  if (!victim) return false;
  close_client(victim->fd.get());
  return true;
}

void ControlServer::on_accept() {
  for (;;) {
    int fd = ::accept4(listener_.get(), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EINTR) continue;
      if ((errno == EMFILE || errno == ENFILE) && make_room()) continue;
      if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
        // Out of fds with nobody to evict: stop accepting for a moment rather than spin on
        // a listener that stays readable.
        loop_.unwatch(listener_.get());
        accept_pause_ = loop_.add_timer_after(std::chrono::milliseconds(100), [this] {
          accept_pause_.reset();
          (void)loop_.watch(listener_.get(), EPOLLIN, [this](std::uint32_t) { on_accept(); });
        });
      }
      return;  // EAGAIN, or a client that vanished before we got to it
    }
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
    if (clients_.size() >= max_clients_ && !make_room()) {
      std::string msg = encode_finish(kCommandFailed, "too many control connections (" + std::to_string(clients_.size()) +
                                                          " running commands); try again");
      (void)::send(fd, msg.data(), msg.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
      continue;
    }
    auto client = std::make_unique<Client>();
    client->fd = std::move(owner);
    client->serial = next_serial_++;
    client->last_command = loop_.now();
    Client& c = *client;
    clients_[fd] = std::move(client);
    update_watch(c);
    if (!c.registered) {
      close_client(fd);
      continue;
    }
    schedule(c);
  }
}

void ControlServer::on_client(int fd, std::uint32_t events) {
  auto it = clients_.find(fd);
  if (it == clients_.end()) return;
  Client& client = *it->second;
  if (events & EPOLLERR) {
    close_client(fd);
    return;
  }
  if (events & EPOLLOUT) {
    if (!write_some(client)) return;
  }
  bool hangup = events & EPOLLHUP;  // both directions shut: nobody reads what we write
  if ((events & (EPOLLIN | EPOLLHUP)) && !client.requests.ended() && !client.closing) {
    // Read only what the pending lines allow (update_watch stops reading beyond that).
    char buf[8192];
    for (int rounds = 0; rounds < 16; ++rounds) {
      ssize_t n = ::recv(fd, buf, sizeof buf, 0);
      if (n > 0) {
        if (auto fed = client.requests.feed(std::string_view(buf, static_cast<std::size_t>(n))); !fed) {
          // A protocol error: what is still queued is dropped, the error sent, then we close.
          client.requests = RequestLines();
          client.closing = true;
          std::weak_ptr<bool> alive = client.alive;
          send(client, encode_finish(kCommandUsage, fed.error().message));
          if (!alive.expired()) pump(client);
          return;
        }
        if (client.requests.pending() >= 8) break;
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && errno == EAGAIN) break;
      if (n < 0) {
        close_client(fd);
        return;
      }
      client.requests.end();  // EOF, or shutdown(SHUT_WR): answer what was sent, then close
      break;
    }
  }
  std::weak_ptr<bool> alive = client.alive;
  pump(client);
  if (hangup && !alive.expired()) close_client(fd);
}

// Run what the client sent as far as its queue allows, then decide what to wait for.
void ControlServer::pump(Client& client) {
  int fd = client.fd.get();
  std::weak_ptr<bool> alive = client.alive;
  dispatch(client);
  if (alive.expired()) return;
  bool done = !client.busy && client.requests.pending() == 0 && client.out.empty();
  if (done && (client.closing || client.requests.ended())) {
    close_client(fd);
    return;
  }
  update_watch(client);
  schedule(client);
}

void ControlServer::dispatch(Client& client) {
  if (client.dispatching || flushing_) return;
  client.dispatching = true;
  while (!client.busy && client.out.size() < kHighWater) {
    auto line = client.requests.next();
    if (!line) break;
    client.last_command = loop_.now();
    client.busy = true;
    std::weak_ptr<bool> alive = client.alive;
    Client* c = &client;
    auto out = [this, alive, c](std::string_view text) {
      auto a = alive.lock();
      if (!a || !*a || text.empty()) return;
      if (c->busy && c->cancel && c->out.size() > kMaxQueuedOutput) {
        // A `tail -f` reader that falls behind loses data, and says so once.
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
      c->last_command = loop_.now();
      send(*c, encode_finish(code, error));
      if (auto still = alive.lock(); still && *still && !c->dispatching) pump(*c);
    };
    auto cancel = handler_(*line, out, finish);
    auto a = alive.lock();
    if (!a || !*a) return;  // the client went away inside the handler
    if (client.busy) client.cancel = std::move(cancel);
  }
  client.dispatching = false;
}

void ControlServer::send(Client& client, std::string data) {
  if (client.out.empty()) client.last_progress = loop_.now();
  if (client.out.size() + data.size() > kMaxQueuedOutput + kMaxAnswer) {
    // Only a client that reads nothing gets here: drop it rather than grow without bound.
    close_client(client.fd.get());
    return;
  }
  client.out += data;
  write_some(client);
}

bool ControlServer::write_some(Client& client) {
  int fd = client.fd.get();
  std::size_t sent = 0;
  while (sent < client.out.size()) {
    ssize_t n = ::send(fd, client.out.data() + sent, client.out.size() - sent, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n > 0) {
      sent += static_cast<std::size_t>(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) break;
    close_client(fd);
    return false;
  }
  if (sent > 0) {
    client.out.erase(0, sent);
    client.last_progress = loop_.now();
    if (client.out.empty() && client.out.capacity() > kHighWater) std::string().swap(client.out);
  }
  if (client.dispatching) return true;  // dispatch() decides what happens next
  std::weak_ptr<bool> alive = client.alive;
  pump(client);  // room again: the client's next command may run, or it is done
  return !alive.expired();
}

// EPOLLIN while the client may send more (few lines pending, little output queued);
// EPOLLOUT while output waits. EPOLLHUP/EPOLLERR are always reported.
void ControlServer::update_watch(Client& client) {
  int fd = client.fd.get();
  std::uint32_t want = 0;
  if (!client.closing && !client.requests.ended() && client.requests.pending() < 8 && client.out.size() < kHighWater)
    want |= EPOLLIN;
  if (!client.out.empty()) want |= EPOLLOUT;
  if (client.registered && want == client.watching) return;
  client.registered = static_cast<bool>(loop_.watch(fd, want, [this, fd](std::uint32_t events) { on_client(fd, events); }));
  client.watching = want;
}

// The one deadline a connection has: the stall timeout while output waits, the idle timeout
// while nothing runs and nothing is queued, none while a command runs.
void ControlServer::schedule(Client& client) {
  std::optional<TimePoint> deadline;
  if (!client.out.empty())
    deadline = client.last_progress + kStallTimeout;
  else if (!client.busy && client.requests.pending() == 0)
    deadline = client.last_command + kIdleTimeout;
  if (!deadline) return;  // a timer armed earlier finds nothing to do and is not re-armed
  if (client.timer && client.timer_at <= *deadline) return;  // it fires first and re-checks
  if (client.timer) loop_.cancel_timer(*client.timer);
  int fd = client.fd.get();
  std::uint64_t serial = client.serial;
  client.timer_at = *deadline;
  client.timer = loop_.add_timer(*deadline, [this, fd, serial] { on_deadline(fd, serial); });
}

void ControlServer::on_deadline(int fd, std::uint64_t serial) {
  auto it = clients_.find(fd);
  if (it == clients_.end() || it->second->serial != serial) return;
  Client& client = *it->second;
  client.timer.reset();
  TimePoint now = loop_.now();
  if (!client.out.empty() && now >= client.last_progress + kStallTimeout) {
    close_client(fd);  // it does not read what it asked for
    return;
  }
  if (client.out.empty() && !client.busy && client.requests.pending() == 0 &&
      now >= client.last_command + kIdleTimeout) {
    close_client(fd);  // connected, but no command for kIdleTimeout
    return;
  }
  schedule(client);
}

void ControlServer::close_client(int fd) {
  auto it = clients_.find(fd);
  if (it == clients_.end()) return;
  std::unique_ptr<Client> client = std::move(it->second);
  clients_.erase(it);
  *client->alive = false;
  if (client->timer) loop_.cancel_timer(*client->timer);
  loop_.unwatch(fd);
  if (client->cancel) {
    auto cancel = std::move(client->cancel);
    cancel();
  }
}

void ControlServer::flush(Duration timeout) {
  flushing_ = true;  // the supervisor is exiting: answer what ran, run nothing more
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

}  // namespace batman::cli
