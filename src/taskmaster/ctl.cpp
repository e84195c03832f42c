// `batman ctl [--socket PATH | --config CONFIG] [COMMAND ...]`: one Taskmaster command over
// the control socket, or the interactive shell when no command is given. The client itself
// (options, connection, protocol) is src/cli/control_client.cpp, which `batman` also runs.
#include <sys/stat.h>
#include <unistd.h>

#include <csignal>
#include <iostream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "src/cli/cli.hpp"
#include "src/cli/control_client.hpp"
#include "src/taskmaster/control_commands.hpp"
#include "src/cli/project.hpp"
#include "src/taskmaster/shell.hpp"
#include "src/taskmaster/supervisor_config.hpp"

namespace batman::cli {
namespace {

const char* kUsage =
    "usage: batman ctl [--socket PATH | --config CONFIG] [COMMAND ...]\n\n"
    "Control a running supervisor (taskmaster). With no COMMAND, an interactive shell.\n"
    "Without --socket or --config, the one supervisor found under $BATMAN_HOME.\n\n";

bool exists(const std::string& path) {
  struct stat st{};
  return ::lstat(path.c_str(), &st) == 0;
}

// The socket ctl talks to, and the connection already made to it when one was (a supervisor
// that answers is asked once, not probed and then connected to again).
struct Found {
  std::string path;
  UniqueFd fd;
};

Result<Found> find_socket(const std::string& socket, const std::string& config) {
  if (!socket.empty()) return Found{socket, {}};
  if (!config.empty()) {
    // The config's own `socket:`, as the supervisor reads it; a config that cannot set one
    // (the word is nowhere in it) is not parsed: a 500-program config's parse was three
    // quarters of `ctl --config C status`. One that does not parse: state/control.sock.
    if (config_may_set_socket(config)) {
      auto loaded = load_supervisor_config(config);
      if (loaded && loaded->socket) return Found{*loaded->socket, {}};
    }
    return Found{BATMAN_TRY(project_control_socket(config)), {}};
  }
  auto home = home_dir(false);
  if (!home) return std::unexpected(home.error());
  // Sockets nobody listens on (their supervisor was killed) are left out of the choice.
  std::vector<std::string> found, live;
  UniqueFd first;
  for (const auto& project : list_projects()) {
    std::string path = control_socket_path(*home, project);
    if (!exists(path)) continue;
    found.push_back(path);
    auto fd = connect_control(path);
    if (fd || (fd.error().code != ECONNREFUSED && fd.error().code != ENOENT)) {
      live.push_back(path);
      if (fd && live.size() == 1) first = std::move(*fd);
    }
  }
  if (live.size() == 1) return Found{live.front(), std::move(first)};
  if (live.size() > 1) {
    std::string projects;
    for (const auto& p : live) projects += " " + p;
    return fail("several supervisors under " + *home + ":" + projects + ": choose one with --config CONFIG or --socket PATH");
  }
  if (found.size() == 1) return Found{found.front(), {}};  // connecting to it reports why not
  if (found.empty()) return fail("no supervisor socket under " + *home + ": give --socket PATH or --config CONFIG");
  return fail("no supervisor answers under " + *home + " (" + std::to_string(found.size()) +
              " stale sockets): start one with 'taskmaster CONFIG --daemon'");
}

std::string history_path(const std::string& config) {
  auto home = home_dir(false);
  if (!home) return {};
  if (!config.empty()) {
    if (auto project = config_project(config)) {
      std::string state = *home + "/" + *project + "/state";
      if (exists(state)) return state + "/history";
    }
  }
  return exists(*home) ? *home + "/.ctl_history" : std::string();
}

std::vector<std::string> program_names(ControlConnection& connection) {
  std::ostringstream out;
  auto code = connection.run("status --json", out);
  std::vector<std::string> names;
  if (!code || *code != 0) return names;
  auto j = nlohmann::json::parse(out.str(), nullptr, false);
  if (!j.is_array()) return names;
  for (const auto& row : j) {
    if (!row.is_object()) continue;
    if (auto p = row.find("program"); p != row.end() && p->is_string()) names.push_back(p->get<std::string>());
    if (auto n = row.find("name"); n != row.end() && n->is_string()) names.push_back(n->get<std::string>());
  }
  return names;
}

int interactive(ControlConnection& connection, const std::string& config) {
  if (!::isatty(STDIN_FILENO)) {
    // Commands from a pipe or file, one per line, no prompt.
    int last = 0;
    std::string line;
    while (std::getline(std::cin, line)) {
      if (line.find_first_not_of(" \t") == std::string::npos) continue;
      auto code = connection.run(line, std::cout);
      if (!code) {
        error(code.error().message);
        return kExitBatmanError;
      }
      if (*code == kBrokenPipe && !std::cout) return kBrokenPipe;  // nobody reads: send no more
      last = *code;
    }
    return last;
  }
  Shell::Options options;
  options.history_path = history_path(config);
  options.commands = ControlCommands::command_names();
  options.commands.push_back("exit");
  options.names = [&connection] { return program_names(connection); };
  Shell shell(std::move(options));
  std::cout << "connected; 'help' lists the commands, 'exit' or Ctrl-D leaves, 'quit' stops the supervisor\n";
  for (;;) {
    auto line = shell.read_line();
    if (!line) {
      std::cout << std::endl;
      return 0;
    }
    auto words = split_control_words(*line);
    if (words.empty()) continue;
    if (words.front() == "exit" && words.size() == 1) return 0;
    auto code = connection.run(*line, std::cout, true);
    if (!code) {
      error(code.error().message);
      return kExitBatmanError;
    }
    if (*code == kInterrupted) {
      std::cout << std::endl;  // Ctrl-C ended the command: back to the prompt
      continue;
    }
    if (*code == kBrokenPipe && !std::cout) return kBrokenPipe;
    if (words.front() == "quit" || words.front() == "shutdown") return *code;
  }
}

}  // namespace

int command_ctl(const std::vector<std::string>& args) {
  std::signal(SIGPIPE, SIG_IGN);  // a closed connection is an error to report, not death
  const CtlArgs parsed = parse_ctl_args(args);
  switch (parsed.kind) {
    case CtlArgs::Kind::Help:
      std::cout << kUsage << ControlCommands::help_text();
      return flushed_output(0);
    case CtlArgs::Kind::Version:
      std::cout << version_text() << "\n";
      return flushed_output(0);
    case CtlArgs::Kind::Bad:
      error("ctl: " + parsed.problem);
      return kExitBatmanError;
    case CtlArgs::Kind::Command:
      break;
  }
  const std::string& socket = parsed.socket;
  const std::string& config = parsed.config;
  auto found = find_socket(socket, config);
  if (!found) {
    error("ctl: " + found.error().message);
    return kExitBatmanError;
  }
  if (!found->fd) {
    auto fd = connect_control(found->path);
    if (!fd) {
      error("ctl: " + fd.error().message);
      return kExitBatmanError;
    }
    found->fd = std::move(*fd);
  }
  ControlConnection connection(found->path, std::move(found->fd));
  if (parsed.command.empty()) return interactive(connection, config);
  auto line = ctl_request_line(parsed.command);
  if (!line) {
    error("ctl: " + line.error().message);
    return kExitBatmanError;
  }
  return run_ctl_command(connection, *line);
}

}  // namespace batman::cli
