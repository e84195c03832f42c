// The control shell over libedit's readline layer: callbacks for the event loop, completion
// of command words then program names, and the history file.
#include "src/taskmaster/shell.hpp"

#include <sys/epoll.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include <editline/readline.h>

#include "src/cli/control_client.hpp"
#include "src/taskmaster/control_commands.hpp"

namespace batman::cli {
namespace {

constexpr int kHistoryLines = 1000;
Shell* g_shell = nullptr;
const Shell::Options* g_options = nullptr;
std::vector<std::string> g_matches;

char* next_match(const char*, int state) {
  static std::size_t at = 0;
  if (state == 0) at = 0;
  if (at >= g_matches.size()) return nullptr;
  return ::strdup(g_matches[at++].c_str());
}

char** complete(const char* text, int start, int) {
  rl_attempted_completion_over = 1;  // no file-name completion
  if (!g_options) return nullptr;
  std::string before(rl_line_buffer ? rl_line_buffer : "", static_cast<std::size_t>(std::max(start, 0)));
  auto words = split_control_words(before);
  std::vector<std::string> names;
  if (!words.empty() && g_options->names) names = g_options->names();
  g_matches = ControlCommands::completions(g_options->commands, names, words.empty() ? "" : words.front(),
                                static_cast<int>(words.size()), text);
  if (g_matches.empty()) return nullptr;
  return rl_completion_matches(text, next_match);
}

}  // namespace

Shell::Shell(Options options) : options_(std::move(options)) {
  g_shell = this;
  g_options = &options_;
  rl_readline_name = "batman";
  rl_catch_signals = 0;  // signals are the event loop's (signalfd), not libedit's
  rl_attempted_completion_function = complete;
  using_history();
  stifle_history(kHistoryLines);
  if (!options_.history_path.empty()) (void)read_history(options_.history_path.c_str());
}

Shell::~Shell() {
  detach();
  g_shell = nullptr;
  g_options = nullptr;
}

void Shell::remember(const std::string& line) {
  if (line.find_first_not_of(" \t") == std::string::npos) return;
  HIST_ENTRY* last = history_length > 0 ? history_get(history_base + history_length - 1) : nullptr;
  if (last && last->line && line == last->line) return;
  add_history(line.c_str());
  if (!options_.history_path.empty()) (void)write_history(options_.history_path.c_str());
}

std::optional<std::string> Shell::read_line() {
  char* raw = readline(options_.prompt.c_str());
  if (!raw) return std::nullopt;
  std::string line(raw);
  std::free(raw);
  remember(line);
  return line;
}

void Shell::on_line(char* raw) {
  Shell* self = g_shell;
  if (!self) {
    std::free(raw);
    return;
  }
  std::optional<std::string> line;
  if (raw) {
    line = std::string(raw);
    std::free(raw);
    self->remember(*line);
  }
  // Hide the prompt while the command runs; resume() shows it again.
  self->pause();
  if (self->handler_) self->handler_(std::move(line));
}

Result<void> Shell::attach(runner::EventLoop& loop, LineHandler handler) {
  loop_ = &loop;
  handler_ = std::move(handler);
  resume();
  return {};
}

void Shell::resume() {
  if (installed_ || !loop_) return;
  // stdin is watched only while the prompt is up: input typed during a command waits in
  // the terminal, and a level-triggered watch would spin on it.
  auto w = loop_->watch(STDIN_FILENO, EPOLLIN, [this](std::uint32_t events) {
    if (events & (EPOLLHUP | EPOLLERR)) {
      // The terminal went away: that is the end of input, and a hung-up fd would spin.
      pause();
      if (handler_) handler_(std::nullopt);
      return;
    }
    rl_callback_read_char();
  });
  if (!w) return;
  installed_ = true;
  rl_callback_handler_install(options_.prompt.c_str(), on_line);
}

void Shell::pause() {
  if (!installed_) return;
  rl_callback_handler_remove();
  installed_ = false;
  if (loop_) loop_->unwatch(STDIN_FILENO);
}

void Shell::wait_for_enter(std::function<void()> on_enter) {
  if (!loop_ || installed_) return;
  runner::EventLoop* loop = loop_;
  (void)loop->watch(STDIN_FILENO, EPOLLIN, [loop, on_enter](std::uint32_t) {
    char buf[256];
    (void)::read(STDIN_FILENO, buf, sizeof buf);
    loop->unwatch(STDIN_FILENO);
    on_enter();
  });
}

void Shell::detach() {
  pause();
  loop_ = nullptr;
}

}  // namespace batman::cli
