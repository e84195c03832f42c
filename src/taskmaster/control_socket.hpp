// The supervisor's control socket: a Unix socket (mode 0600, peers with batman's uid or root
// only, by SO_PEERCRED) served from the supervisor's event loop, single-threaded and
// non-blocking. Protocol: the client sends one command per line (at most 4096 bytes); the
// server answers each with JSON lines: {"out":"..."} zero or more times, then
// {"exit":N,"error":"..."} ("error" only on failure). `tail -f` streams "out" lines until the
// client closes the connection.
//
// Hostile clients cost bounded memory and cannot lock others out: a connection with no
// command running and nothing to write is closed after kIdleTimeout; one that does not read
// what it is sent is dropped after kStallTimeout; a client's next command runs only once
// less than kHighWater bytes wait for it (nothing more is read from it meanwhile); when
// every slot is taken, the connection idle the longest makes room for a new one.
#pragma once
#include <algorithm>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "common/error.hpp"
#include "common/unique_fd.hpp"
#include "runner/event_loop.hpp"
#include "src/taskmaster/control_commands.hpp"

namespace batman::cli {

constexpr Duration kIdleTimeout = std::chrono::seconds(5);
constexpr Duration kStallTimeout = std::chrono::seconds(10);
constexpr std::size_t kHighWater = 64 << 10;
constexpr std::size_t kMaxClients = 1024;

class ControlServer {
 public:
  // A command line from a client: answer through `out`, end with `finish` (exactly once).
  using Handler = std::function<ControlCommands::Cancel(std::string_view line, ControlCommands::Output out,
                                                        ControlCommands::Finish finish)>;

  // Bind `path` (an old socket nobody answers on is replaced; a live one is an error).
  static Result<std::unique_ptr<ControlServer>> listen(runner::EventLoop& loop, const std::string& path,
                                                       Handler handler);
  ~ControlServer();
  ControlServer(const ControlServer&) = delete;
  ControlServer& operator=(const ControlServer&) = delete;

  // Write what is queued for clients, waiting at most `timeout` (before the supervisor exits).
  void flush(Duration timeout);
  // Close and remove the listening socket, keeping the clients: a supervisor that exits does
  // this before it closes their connections, so the one who waited for the end (ctl quit)
  // finds the path free for the next supervisor.
  void stop_listening();
  const std::string& path() const { return path_; }
  // At most this many connections at once (the supervisor keeps enough fds for its programs).
  void set_max_clients(std::size_t n) { max_clients_ = std::clamp<std::size_t>(n, 4, kMaxClients); }
  std::size_t clients() const { return clients_.size(); }

 private:
  struct Client;
  ControlServer(runner::EventLoop& loop, std::string path, Handler handler);
  void on_accept();
  bool make_room();
  void on_client(int fd, std::uint32_t events);
  void pump(Client& client);
  void dispatch(Client& client);
  void send(Client& client, std::string data);
  bool write_some(Client& client);
  void update_watch(Client& client);
  void schedule(Client& client);
  void on_deadline(int fd, std::uint64_t serial);
  void close_client(int fd);

  runner::EventLoop& loop_;
  std::string path_;
  Handler handler_;
  UniqueFd listener_;
  std::map<int, std::unique_ptr<Client>> clients_;
  std::size_t max_clients_ = kMaxClients;
  std::uint64_t next_serial_ = 1;
  std::optional<runner::EventLoop::TimerId> accept_pause_;
  bool flushing_ = false;
};

// Encode one protocol line.
std::string encode_output(std::string_view text);
std::string encode_finish(int exit_code, const std::string& error);

}  // namespace batman::cli
