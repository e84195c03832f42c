// The Taskmaster command language (SPEC §9: status, start, stop, restart, reload, quit, tail,
// pid, help, version), run against a live Supervisor. Shared by the control socket and the
// foreground shell, so both answer the same way.
#pragma once
#include <cstddef>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/error.hpp"
#include "src/cli/control_client.hpp"
#include "src/taskmaster/supervisor.hpp"

namespace batman::cli {

// Exit codes carried back to `batman ctl`: 0 done, 1 a command failed (kCommandFailed: spawn
// error, not running...), 125 a bad command line (unknown command, unknown name).
constexpr int kCommandUsage = 125;

// The longest command line a client may send, newline excluded.
constexpr std::size_t kMaxRequestLine = 4096;
// What `tail` shows without -BYTES (supervisorctl's default).
constexpr std::size_t kTailBytes = 1600;

// One command line of the protocol, parsed: what to do, before anything is looked up in the
// supervisor (program names are checked when it runs).
struct ControlRequest {
  std::string command;             // status start stop restart reload quit tail pid help version;
                                   // empty for a blank line ("?" is help, "shutdown" is quit)
  std::vector<std::string> names;  // NAME, NAME:NN or "all", as given
  bool json = false;               // status --json
  bool follow = false;             // tail -f
  std::size_t tail_bytes = kTailBytes;
  std::string stream = "stdout";   // tail: stdout | stderr
};

// Parse one line (without its newline). Pure: no supervisor, no I/O, any bytes accepted; an
// error is the one-line usage message the client gets with exit code kCommandUsage.
Result<ControlRequest> parse_control_line(std::string_view line);

// Splits what one client sends into command lines: each ends at '\n' and holds at most
// kMaxRequestLine bytes. Pure, so the framing can be tested and fuzzed without a socket.
// The bytes are kept as received (a line is cut out when taken): a burst of empty lines
// costs its bytes, not a string each.
class RequestLines {
 public:
  // Append received bytes; an over-long line is an error (the connection is then closed
  // after the error is sent), and nothing more is accepted after one.
  Result<void> feed(std::string_view bytes);
  // The peer will send nothing more (EOF, or shutdown(SHUT_WR)): an unterminated last line
  // counts as a line, so `printf status | nc -U` gets its answer.
  void end();
  std::optional<std::string> next();
  // Complete lines not taken yet.
  std::size_t pending() const { return complete_ + (ended_ && buffer_.size() > start_ ? 1 : 0); }
  std::size_t buffered() const { return buffer_.size() - start_; }
  bool ended() const { return ended_; }
  bool failed() const { return failed_; }

 private:
  std::string buffer_;
  std::size_t start_ = 0;     // buffer_[0, start_) was taken already
  std::size_t complete_ = 0;  // newlines in buffer_[start_, end)
  std::size_t partial_ = 0;   // length of the unterminated tail
  bool ended_ = false;
  bool failed_ = false;
};

struct CommandHooks {
  // Re-read the config and apply it; an invalid config is an error and changes nothing.
  std::function<Result<runner::ReloadPlan>()> reload;
  // Stop every program, call `stopped`, then let the supervisor exit.
  std::function<void(std::function<void()> stopped)> quit;
};

class ControlCommands {
 public:
  using Output = std::function<void(std::string_view text)>;
  // Called exactly once per command; `error` (one line, no newline) is empty on success.
  using Finish = std::function<void(int exit_code, const std::string& error)>;
  // Ends a streaming command (tail -f) early; empty for the others.
  using Cancel = std::function<void()>;

  ControlCommands(runner::Supervisor& supervisor, CommandHooks hooks)
      : supervisor_(supervisor), hooks_(std::move(hooks)) {}

  Cancel run(std::string_view line, Output out, Finish finish);
  Cancel run(const ControlRequest& request, Output out, Finish finish);

  // For tab completion.
  static const std::vector<std::string>& command_names();
  static std::string help_text();
  // Tab completion: candidates for `text` at word `word_index` of a line whose first word is
  // `command` (commands first, then program and instance names).
  static std::vector<std::string> completions(const std::vector<std::string>& commands,
                                              const std::vector<std::string>& names, const std::string& command,
                                              int word_index, const std::string& text);

 private:
  Cancel tail(const ControlRequest& request, Output out, Finish finish);
  runner::Supervisor& supervisor_;
  CommandHooks hooks_;
};

}  // namespace batman::cli
