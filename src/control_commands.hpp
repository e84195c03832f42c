// The Taskmaster command language (SPEC §9: status, start, stop, restart, reload, quit, tail,
// pid, help, version), run against a live Supervisor. Shared by the control socket and the
// foreground shell, so both answer the same way.
#pragma once
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "common/error.hpp"
#include "runner/supervisor.hpp"

namespace batman::cli {

// Exit codes carried back to `batman ctl`: 0 done, 1 a command failed (spawn error, not
// running...), 125 a bad command line (unknown command, unknown name).
constexpr int kCommandFailed = 1;
constexpr int kCommandUsage = 125;

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

  // For tab completion.
  static const std::vector<std::string>& command_names();
  // Splits on blanks; no quoting is needed since names never hold blanks.
  static std::vector<std::string> split_words(std::string_view line);
  static std::string help_text();
  // Tab completion: candidates for `text` at word `word_index` of a line whose first word is
  // `command` (commands first, then program and instance names).
  static std::vector<std::string> completions(const std::vector<std::string>& commands,
                                              const std::vector<std::string>& names, const std::string& command,
                                              int word_index, const std::string& text);

 private:
  Cancel tail(const std::vector<std::string>& args, Output out, Finish finish);
  runner::Supervisor& supervisor_;
  CommandHooks hooks_;
};

}  // namespace batman::cli
