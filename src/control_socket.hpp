// The supervisor's control socket: a Unix socket (mode 0600, peers with batman's uid or root
// only, by SO_PEERCRED) served from the supervisor's event loop, single-threaded and
// non-blocking. Protocol: the client sends one command per line (at most 4096 bytes); the
// server answers each with JSON lines: {"out":"..."} zero or more times, then
// {"exit":N,"error":"..."} ("error" only on failure). `tail -f` streams "out" lines until the
// client closes the connection.
#pragma once
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "common/error.hpp"
#include "common/unique_fd.hpp"
#include "runner/event_loop.hpp"
#include "src/control_commands.hpp"

namespace batman::cli {

constexpr std::size_t kMaxRequestLine = 4096;

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
  const std::string& path() const { return path_; }

 private:
  struct Client;
  ControlServer(runner::EventLoop& loop, std::string path, Handler handler);
  void on_accept();
  void on_client(int fd, std::uint32_t events);
  void dispatch(Client& client);
  void send(Client& client, std::string data);
  void write_some(Client& client);
  void close_client(int fd);

  runner::EventLoop& loop_;
  std::string path_;
  Handler handler_;
  UniqueFd listener_;
  std::map<int, std::unique_ptr<Client>> clients_;
};

// A connected client socket for `path` (used by `batman ctl`).
Result<UniqueFd> connect_control(const std::string& path);

// Encode one protocol line.
std::string encode_output(std::string_view text);
std::string encode_finish(int exit_code, const std::string& error);

}  // namespace batman::cli
