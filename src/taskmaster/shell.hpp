// The Taskmaster control shell: libedit line editing with the prompt `taskmaster> `, a
// history file kept across runs, and tab completion of commands and program names. Blocking
// (batman ctl) or driven by the supervisor's event loop (the foreground supervisor).
#pragma once
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "common/error.hpp"
#include "runner/event_loop.hpp"

namespace batman::cli {

class Shell {
 public:
  struct Options {
    std::string prompt = "taskmaster> ";
    std::string history_path;  // empty: no history file
    std::vector<std::string> commands;
    // Program and instance names, asked at each completion (they change on reload).
    std::function<std::vector<std::string>()> names;
  };
  using LineHandler = std::function<void(std::optional<std::string> line)>;  // nullopt: EOF

  // One shell per process: libedit's readline layer is global.
  explicit Shell(Options options);
  ~Shell();
  Shell(const Shell&) = delete;
  Shell& operator=(const Shell&) = delete;

  // Blocking: the next line (without its newline), nullopt at end of input.
  std::optional<std::string> read_line();

  // Event-loop mode: the prompt is shown and stdin is read on `loop`; each line goes to
  // `handler` with the prompt hidden until resume().
  Result<void> attach(runner::EventLoop& loop, LineHandler handler);
  void resume();
  void pause();
  // While paused: call `on_enter` once the user presses Enter (ends `tail -f` in the shell).
  void wait_for_enter(std::function<void()> on_enter);
  // Leave the terminal as it was (before the supervisor exits).
  void detach();

 private:
  void remember(const std::string& line);
  static void on_line(char* line);

  Options options_;
  runner::EventLoop* loop_ = nullptr;
  LineHandler handler_;
  bool installed_ = false;
};

}  // namespace batman::cli
