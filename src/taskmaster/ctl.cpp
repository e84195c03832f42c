// `batman ctl [--socket PATH | --config CONFIG] [COMMAND ...]`: one Taskmaster command over
// the control socket, or the interactive shell when no command is given.
#include <poll.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <filesystem>
#include <iostream>
#include <optional>
#include <sstream>

#include <nlohmann/json.hpp>

#include "common/fs.hpp"
#include "src/cli/cli.hpp"
#include "src/taskmaster/control_commands.hpp"
#include "src/taskmaster/control_socket.hpp"
#include "src/cli/project.hpp"
#include "src/taskmaster/shell.hpp"
#include "src/taskmaster/supervisor_config.hpp"

namespace batman::cli {
namespace {

const char* kUsage =
    "usage: batman ctl [--socket PATH | --config CONFIG] [COMMAND ...]\n\n"
    "Control a running supervisor (taskmaster). With no COMMAND, an interactive shell.\n"
    "Without --socket or --config, the one supervisor found under $BATMAN_HOME.\n\n";

// In the shell, Ctrl-C while a command runs (`tail -f` above all) ends that command, not ctl:
// SIGINT is blocked and read from a signalfd meanwhile, beside the socket.
class SigintWatch {
 public:
  SigintWatch() {
    sigemptyset(&set_);
    sigaddset(&set_, SIGINT);
    ::sigprocmask(SIG_BLOCK, &set_, &old_);
    fd_.reset(::signalfd(-1, &set_, SFD_NONBLOCK | SFD_CLOEXEC));
  }
  ~SigintWatch() {
    if (fd_) {
      signalfd_siginfo info;
      while (::read(fd_.get(), &info, sizeof info) == static_cast<ssize_t>(sizeof info)) {
      }
    }
    ::sigprocmask(SIG_SETMASK, &old_, nullptr);
  }
  SigintWatch(const SigintWatch&) = delete;
  SigintWatch& operator=(const SigintWatch&) = delete;
  int fd() const { return fd_.get(); }

 private:
  sigset_t set_{}, old_{};
  UniqueFd fd_;
};

// What Connection::run returns when Ctrl-C ended the command (the shell goes on).
constexpr int kInterrupted = 130;

// The supervisor's socket; each request reads JSON lines up to {"exit":N}. Every command
// gets its own connection (the first one is made up front, to report a missing supervisor
// at once): the supervisor closes connections idle for a few seconds, and a shell's user may
// think for longer than that.
class Connection {
 public:
  Connection(std::string path, UniqueFd fd) : path_(std::move(path)), fd_(std::move(fd)) {}

  // Runs `line`, printing output as it arrives; returns the command's exit code, or
  // kInterrupted when `interruptible` and Ctrl-C ended it (the connection is closed, which
  // ends a `tail -f` on the supervisor's side).
  Result<int> run(const std::string& line, std::ostream& out, bool interruptible = false) {
    std::optional<SigintWatch> sigint;
    if (interruptible) sigint.emplace();
    sigint_fd_ = sigint ? sigint->fd() : -1;
    if (!fd_) {
      auto fd = connect_control(path_);
      if (!fd) return std::unexpected(fd.error());
      fd_ = std::move(*fd);
      buffer_.clear();
    }
    // Whatever happens below, the next command starts on a fresh connection.
    struct Reset {
      UniqueFd& fd;
      ~Reset() { fd.reset(); }
    } reset{fd_};
    std::string request = line + "\n";
    // A supervisor that refuses us (SO_PEERCRED) answers and closes at once: read its answer
    // even when sending failed.
    auto sent = write_all(fd_.get(), request);
    for (;;) {
      auto reply = next_line();
      if (!reply && interrupted_) {
        interrupted_ = false;
        out.flush();
        return kInterrupted;
      }
      if (!reply) return std::unexpected(sent ? reply.error() : sent.error().wrap("send to supervisor"));
      nlohmann::json j = nlohmann::json::parse(*reply, nullptr, false);
      if (j.is_discarded() || !j.is_object()) return fail("malformed reply from the supervisor: " + reply->substr(0, 80));
      if (auto it = j.find("out"); it != j.end() && it->is_string()) {
        out << it->get<std::string>();
        out.flush();
      }
      if (auto it = j.find("exit"); it != j.end() && it->is_number_integer()) {
        if (auto e = j.find("error"); e != j.end() && e->is_string()) error(e->get<std::string>());
        const int code = it->get<int>();
        // A supervisor still there after the wait: 1, as for a command that failed.
        if (code == 0 && quits(line) && !wait_until_closed(std::chrono::seconds(30))) return kCommandFailed;
        return code;
      }
    }
  }

 private:
  static bool quits(const std::string& line) {
    const auto words = ControlCommands::split_words(line);
    return !words.empty() && (words.front() == "quit" || words.front() == "shutdown");
  }

  // quit answers once every program has stopped; the supervisor then writes its last states,
  // stops listening and closes this connection. Waiting for that lets a new supervisor be
  // started the moment ctl returns. False when it has not closed it in time.
  bool wait_until_closed(std::chrono::milliseconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) {
        error("the supervisor answered quit but has not exited after " + std::to_string(timeout.count() / 1000) + " s");
        return false;
      }
      pollfd fds[2] = {{fd_.get(), POLLIN, 0}, {sigint_fd_, POLLIN, 0}};
      const int n = ::poll(fds, sigint_fd_ >= 0 ? 2 : 1, static_cast<int>(left.count()));
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 || (sigint_fd_ >= 0 && (fds[1].revents & POLLIN))) return true;  // Ctrl-C: stop waiting
      if (n == 0) continue;
      char buf[4096];
      const ssize_t got = ::read(fd_.get(), buf, sizeof buf);
      if (got < 0 && errno == EINTR) continue;
      if (got <= 0) return true;  // closed (or reset): the supervisor is done with us
    }
  }

  Result<std::string> next_line() {
    for (;;) {
      auto nl = buffer_.find('\n');
      if (nl != std::string::npos) {
        std::string line = buffer_.substr(0, nl);
        buffer_.erase(0, nl + 1);
        return line;
      }
      if (sigint_fd_ >= 0) {
        pollfd fds[2] = {{fd_.get(), POLLIN, 0}, {sigint_fd_, POLLIN, 0}};
        if (::poll(fds, 2, -1) < 0) {
          if (errno == EINTR) continue;
          return sys_error("poll");
        }
        if (fds[1].revents & POLLIN) {
          interrupted_ = true;
          return fail("interrupted");
        }
      }
      char buf[65536];
      ssize_t n = ::read(fd_.get(), buf, sizeof buf);
      if (n > 0) {
        buffer_.append(buf, static_cast<std::size_t>(n));
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      if (n == 0) return fail("the supervisor closed the connection");
      return sys_error("read from supervisor");
    }
  }

  std::string path_;
  UniqueFd fd_;
  std::string buffer_;
  int sigint_fd_ = -1;
  bool interrupted_ = false;
};

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
    auto project = config_project(config);
    if (!project) return std::unexpected(project.error());
    auto home = home_dir(false);
    if (!home) return std::unexpected(home.error());
    // The project's state/control.sock is the supervisor's socket, or a symlink to the
    // config's `socket:` (supervise.cpp). Only when nothing answers there is the config read,
    // for a `socket:` the supervisor could not point to: a full parse of a 500-program
    // config was three quarters of `ctl --config C status`.
    std::string path = *home + "/" + *project + "/state/control.sock";
    if (auto fd = connect_control(path)) return Found{std::move(path), std::move(*fd)};
    auto loaded = load_supervisor_config(config);
    if (loaded && loaded->socket) return Found{*loaded->socket, {}};
    return Found{std::move(path), {}};
  }
  auto home = home_dir(false);
  if (!home) return std::unexpected(home.error());
  // Sockets nobody listens on (their supervisor was killed) are left out of the choice.
  std::vector<std::string> found, live;
  UniqueFd first;
  for (const auto& project : list_projects()) {
    std::string path = *home + "/" + project + "/state/control.sock";
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

std::vector<std::string> program_names(Connection& connection) {
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

int interactive(Connection& connection, const std::string& config) {
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
    auto words = ControlCommands::split_words(*line);
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
    if (words.front() == "quit" || words.front() == "shutdown") return *code;
  }
}

}  // namespace

int command_ctl(const std::vector<std::string>& args) {
  std::signal(SIGPIPE, SIG_IGN);  // a closed connection is an error to report, not death
  std::string socket, config;
  std::size_t i = 0;
  // ctl's own options come first; everything after them is the command and its arguments.
  for (; i < args.size(); ++i) {
    const std::string& a = args[i];
    auto value = [&](const std::string& name, std::string& into) -> bool {
      if (a == name) {
        if (i + 1 >= args.size()) return false;
        into = args[++i];
        return true;
      }
      into = a.substr(name.size() + 1);
      return true;
    };
    if (a == "--help" || a == "-h") {
      std::cout << kUsage << ControlCommands::help_text();
      return 0;
    }
    if (a == "--version" || a == "-V") {
      std::cout << version_text() << "\n";
      return 0;
    }
    if (a == "--socket" || a.rfind("--socket=", 0) == 0) {
      if (!value("--socket", socket) || socket.empty()) {
        error("ctl: --socket needs a PATH");
        return kExitBatmanError;
      }
    } else if (a == "--config" || a.rfind("--config=", 0) == 0) {
      if (!value("--config", config) || config.empty()) {
        error("ctl: --config needs a CONFIG file");
        return kExitBatmanError;
      }
    } else if (a == "--") {
      ++i;
      break;
    } else if (!a.empty() && a[0] == '-' && a != "-f") {
      error("ctl: unknown option '" + a + "' (see 'batman ctl --help')");
      return kExitBatmanError;
    } else {
      break;
    }
  }
  if (!socket.empty() && !config.empty()) {
    error("ctl: give --socket or --config, not both");
    return kExitBatmanError;
  }
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
  Connection connection(found->path, std::move(found->fd));
  if (i >= args.size()) return interactive(connection, config);
  std::string line;
  for (std::size_t k = i; k < args.size(); ++k) {
    if (args[k].find_first_of("\n\r") != std::string::npos) {
      error("ctl: arguments must not contain line breaks");
      return kExitBatmanError;
    }
    line += (line.empty() ? "" : " ") + args[k];
  }
  auto code = connection.run(line, std::cout);
  if (!code) {
    error("ctl: " + code.error().message);
    return kExitBatmanError;
  }
  return *code;
}

}  // namespace batman::cli
