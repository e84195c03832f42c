// The client side of a supervisor's control socket (SPEC §9: one command line out, JSON lines
// back up to {"exit":N}), and ctl's command line. Here in cli/, not taskmaster/, because both
// executables run it: `batman ctl [--socket P | --config C] COMMAND...` is answered by the
// `batman` launcher itself when the supervisor answers on the socket it names (ctl_direct);
// everything else (the shell, a bare ctl, --help, a socket found only by reading the config)
// is taskmaster's `command_ctl` in batman-services.
#pragma once
#include <chrono>
#include <optional>
#include <ostream>
#include <string>
#include <string_view>
#include <vector>

#include "common/error.hpp"
#include "common/unique_fd.hpp"

namespace batman::cli {

// A command that ran and failed (exit 1: a spawn error, not running...), as the supervisor
// answers it.
constexpr int kCommandFailed = 1;
// What ControlConnection::run returns when Ctrl-C ended the command (the shell goes on).
constexpr int kInterrupted = 130;
// ... when nobody reads ctl's output any more (128 + SIGPIPE, as a shell shows a tool it ended).
constexpr int kBrokenPipe = 141;
// The longest reply line read from a supervisor: twice what one queues for a client before it
// drops it (control_socket.cpp), so that a server that never ends a line cannot fill memory.
constexpr std::size_t kMaxReplyLine = std::size_t{32} << 20;

// The words of a control line, split at blanks (the protocol has no quoting: names never
// hold blanks).
std::vector<std::string> split_control_words(std::string_view line);

// A connected client socket for `path`; no supervisor there (ENOENT, ECONNREFUSED) is said
// with how to start one, keeping the errno as the error's code.
Result<UniqueFd> connect_control(const std::string& path);

// ctl's own options, then the command: `[--socket PATH | --config CONFIG] [--] [COMMAND...]`.
struct CtlArgs {
  enum class Kind { Command, Help, Version, Bad } kind = Kind::Command;
  std::string socket, config;
  std::string problem;                // Bad: what is wrong, for "ctl: PROBLEM"
  std::vector<std::string> command;   // empty: the interactive shell
};
CtlArgs parse_ctl_args(const std::vector<std::string>& args);
// The command's words as one request line; an error when one holds a line break.
Result<std::string> ctl_request_line(const std::vector<std::string>& words);
// Where PROJECT's supervisor listens, or points to its own `socket:`:
// HOME/PROJECT/state/control.sock.
std::string control_socket_path(const std::string& home, const std::string& project);
// The same for CONFIG's project (its file name's stem) under $BATMAN_HOME.
Result<std::string> project_control_socket(const std::string& config);
// Whether CONFIG could set a `socket:` of its own: the word (or a backslash, which could
// spell it) is somewhere in its text, or the file cannot be read. Only then must the whole config be parsed to find its supervisor.
bool config_may_set_socket(const std::string& config);

// One supervisor's socket; each request reads JSON lines up to {"exit":N}. Every command
// gets its own connection (the first one is made up front, to report a missing supervisor
// at once): the supervisor closes connections idle for a few seconds, and a shell's user may
// think for longer than that.
class ControlConnection {
 public:
  ControlConnection(std::string path, UniqueFd fd) : path_(std::move(path)), fd_(std::move(fd)) {}

  // Runs `line`, printing output as it arrives; returns the command's exit code, or
  // kInterrupted when `interruptible` and Ctrl-C ended it (the connection is closed, which
  // ends a `tail -f` on the supervisor's side).
  Result<int> run(const std::string& line, std::ostream& out, bool interruptible = false);

 private:
  bool wait_until_closed(std::chrono::milliseconds timeout);
  Result<std::string> next_line();

  std::string path_;
  UniqueFd fd_;
  std::string buffer_;
  std::size_t start_ = 0;    // buffer_[start_..]: what is not yet returned
  std::size_t scanned_ = 0;  // buffer_[..scanned_]: searched for a newline already
  int sigint_fd_ = -1;
  bool interrupted_ = false;
};

// One command's exit code, as `batman ctl` ends with it: the connection's failure is said
// ("ctl: WHY") and is 125.
int run_ctl_command(ControlConnection& connection, const std::string& line);
// CODE once what ctl printed itself (--help, -V) is flushed: 141 when nobody reads it any
// more, 125 (said) when it cannot be written.
int flushed_output(int code);

// `batman ctl [--socket P | --config C] COMMAND...` run by the launcher, when the supervisor
// answers on --socket or, for a config that sets no `socket:`, on its project's
// state/control.sock: its exit code. Nullopt (nothing said, nothing sent) for everything
// else, which batman-services' ctl runs.
std::optional<int> ctl_direct(const std::vector<std::string>& args);

}  // namespace batman::cli
