// Parsing and running one Taskmaster command line against the Supervisor.
#include "src/control_commands.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <memory>

#include "batman_config.h"
#include "common/fs.hpp"
#include "common/unique_fd.hpp"

namespace batman::cli {
namespace {

constexpr std::size_t kTailBytes = 1600;  // supervisorctl's default

std::string join_lines(const std::vector<std::string>& lines) {
  std::string out;
  for (const auto& l : lines) out += l + "\n";
  return out;
}

bool any_error(const std::vector<std::string>& lines) {
  return std::any_of(lines.begin(), lines.end(),
                     [](const std::string& l) { return l.find(": ERROR (") != std::string::npos; });
}

// The last `bytes` bytes of a file, read without following a symlink.
Result<std::string> read_tail(const std::string& path, std::size_t bytes) {
  auto opened = open_regular(path, O_RDONLY | O_NOFOLLOW);  // a FIFO cannot block the supervisor
  if (!opened) {
    if (opened.error().code == ENOENT) return std::string();
    return std::unexpected(opened.error());
  }
  const int fd = opened->get();
  struct stat st{};
  if (::fstat(fd, &st) != 0) return sys_error("stat " + path);
  off_t size = st.st_size;
  off_t from = size > static_cast<off_t>(bytes) ? size - static_cast<off_t>(bytes) : 0;
  std::string out(static_cast<std::size_t>(size - from), '\0');
  ssize_t n = ::pread(fd, out.data(), out.size(), from);
  if (n < 0) return sys_error("read " + path);
  out.resize(static_cast<std::size_t>(n));
  return out;
}

}  // namespace

const std::vector<std::string>& ControlCommands::command_names() {
  static const std::vector<std::string> names = {"status", "start", "stop", "restart", "reload",
                                                 "quit",   "tail",  "pid",  "help",    "version"};
  return names;
}

std::vector<std::string> ControlCommands::completions(const std::vector<std::string>& commands,
                                           const std::vector<std::string>& names, const std::string& command,
                                           int word_index, const std::string& text) {
  std::vector<std::string> pool;
  if (word_index == 0) {
    pool = commands;
  } else if (command == "start" || command == "stop" || command == "restart" || command == "status" ||
             command == "pid") {
    pool = names;
    if (command != "status") pool.push_back("all");
    if (command == "status") pool.push_back("--json");
  } else if (command == "tail") {
    pool = names;
    pool.insert(pool.end(), {"-f", "stdout", "stderr"});
  }
  std::vector<std::string> out;
  for (auto& p : pool)
    if (p.compare(0, text.size(), text) == 0) out.push_back(p);
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

std::vector<std::string> ControlCommands::split_words(std::string_view line) {
  std::vector<std::string> words;
  std::size_t i = 0;
  while (i < line.size()) {
    while (i < line.size() && (line[i] == ' ' || line[i] == '\t' || line[i] == '\r')) ++i;
    std::size_t j = i;
    while (j < line.size() && line[j] != ' ' && line[j] != '\t' && line[j] != '\r') ++j;
    if (j > i) words.emplace_back(line.substr(i, j - i));
    i = j;
  }
  return words;
}

std::string ControlCommands::help_text() {
  return "commands:\n"
         "  status [--json] [NAME...]   one line per instance: NAME  STATE  detail\n"
         "  start NAME...|all           start programs (NAME or NAME:NN), wait until RUNNING\n"
         "  stop NAME...|all            stop programs with their stop sequence\n"
         "  restart NAME...|all         stop, then start\n"
         "  reload                      re-read the config and apply what changed\n"
         "  quit                        stop every program, then exit the supervisor\n"
         "  tail NAME [-f] [-BYTES] [stdout|stderr]   the end of an instance's output\n"
         "  pid [NAME...|all]           the supervisor's pid, or the programs'\n"
         "  help                        this list\n"
         "  version                     batman's version\n";
}

ControlCommands::Cancel ControlCommands::run(std::string_view line, Output out, Finish finish) {
  std::vector<std::string> words = split_words(line);
  if (words.empty()) {
    finish(0, "");
    return {};
  }
  std::string command = words.front();
  std::vector<std::string> args(words.begin() + 1, words.end());

  if (command == "help" || command == "?") {
    out(help_text());
    finish(0, "");
    return {};
  }
  if (command == "version") {
    out(std::string("batman ") + BATMAN_VERSION + "\n");
    finish(0, "");
    return {};
  }
  if (command == "status") {
    bool json = false;
    std::vector<std::string> names;
    for (const auto& a : args) {
      if (a == "--json") {
        json = true;
      } else if (!a.empty() && a[0] == '-') {
        finish(kCommandUsage, "status: unknown option '" + a + "' (usage: status [--json] [NAME...])");
        return {};
      } else {
        names.push_back(a);
      }
    }
    std::vector<runner::InstanceStatus> rows;
    if (names.empty()) {
      rows = supervisor_.status();
    } else {
      auto keys = supervisor_.select(names);
      if (!keys) {
        finish(kCommandUsage, "status: " + keys.error().message);
        return {};
      }
      rows = supervisor_.status(*keys);
    }
    out(json ? runner::status_json(rows).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n"
             : runner::format_status(rows));
    finish(0, "");
    return {};
  }
  if (command == "start" || command == "stop" || command == "restart") {
    if (args.empty()) {
      finish(kCommandUsage, command + ": name a program, NAME:NN or 'all' (usage: " + command + " NAME...|all)");
      return {};
    }
    auto keys = supervisor_.select(args);
    if (!keys) {
      finish(kCommandUsage, command + ": " + keys.error().message);
      return {};
    }
    auto done = [out, finish](std::vector<std::string> lines) {
      out(join_lines(lines));
      finish(any_error(lines) ? kCommandFailed : 0, "");
    };
    if (command == "start") supervisor_.start(*keys, done);
    else if (command == "stop") supervisor_.stop(*keys, done);
    else supervisor_.restart(*keys, done);
    return {};
  }
  if (command == "reload") {
    if (!args.empty()) {
      finish(kCommandUsage, "reload takes no arguments");
      return {};
    }
    auto plan = hooks_.reload();
    if (!plan) {
      finish(kCommandFailed, "reload: " + plan.error().message + " (nothing was changed)");
      return {};
    }
    out("reloaded: " + plan->summary() + "\n");
    finish(0, "");
    return {};
  }
  if (command == "quit" || command == "shutdown") {
    if (!args.empty()) {
      finish(kCommandUsage, command + " takes no arguments");
      return {};
    }
    hooks_.quit([out, finish] {
      out("stopped every program; supervisor exiting\n");
      finish(0, "");
    });
    return {};
  }
  if (command == "pid") {
    if (args.empty()) {
      out(std::to_string(::getpid()) + "\n");
      finish(0, "");
      return {};
    }
    auto keys = supervisor_.select(args);
    if (!keys) {
      finish(kCommandUsage, "pid: " + keys.error().message);
      return {};
    }
    std::string text;
    auto rows = supervisor_.status(*keys);
    bool single = rows.size() == 1;
    for (const auto& r : rows) text += single ? std::to_string(r.pid) + "\n" : r.name + " " + std::to_string(r.pid) + "\n";
    out(text);
    finish(0, "");
    return {};
  }
  if (command == "tail") return tail(args, std::move(out), std::move(finish));
  finish(kCommandUsage, "unknown command '" + command + "': type 'help' for the list");
  return {};
}

ControlCommands::Cancel ControlCommands::tail(const std::vector<std::string>& args, Output out, Finish finish) {
  const char* usage = " (usage: tail NAME [-f] [-BYTES] [stdout|stderr])";
  bool follow = false;
  std::size_t bytes = kTailBytes;
  std::string stream = "stdout";
  std::string name;
  for (const auto& a : args) {
    if (a == "-f") {
      follow = true;
    } else if (a == "stdout" || a == "stderr") {
      stream = a;
    } else if (a.size() > 1 && a[0] == '-' &&
               std::all_of(a.begin() + 1, a.end(), [](char c) { return c >= '0' && c <= '9'; }) && a.size() < 12) {
      bytes = static_cast<std::size_t>(std::stoull(a.substr(1)));
    } else if (!a.empty() && a[0] == '-') {
      finish(kCommandUsage, "tail: unknown option '" + a + "'" + usage);
      return {};
    } else if (name.empty()) {
      name = a;
    } else {
      finish(kCommandUsage, std::string("tail: one name only") + usage);
      return {};
    }
  }
  if (name.empty()) {
    finish(kCommandUsage, std::string("tail: name an instance") + usage);
    return {};
  }
  auto keys = supervisor_.select({name});
  if (!keys) {
    finish(kCommandUsage, "tail: " + keys.error().message);
    return {};
  }
  if (keys->size() != 1) {
    finish(kCommandUsage, "tail: " + name + " has several instances: name one, e.g. " +
                              runner::instance_name(name, 0, 2));
    return {};
  }
  auto path = supervisor_.log_path(keys->front(), stream);
  if (!path) {
    finish(kCommandFailed, "tail: " + name + "'s " + stream + " is discarded (" + stream + ": null in the config)");
    return {};
  }
  auto text = read_tail(*path, bytes);
  if (!text) {
    finish(kCommandFailed, "tail: " + text.error().message);
    return {};
  }
  out(*text);
  if (!follow) {
    finish(0, "");
    return {};
  }
  auto id = supervisor_.subscribe(keys->front(), stream, [out](std::string_view data) { out(data); });
  if (!id) {
    finish(kCommandFailed, "tail: " + id.error().message);
    return {};
  }
  // Following ends when the client goes away or cancels (Ctrl-C in the shell).
  runner::Supervisor* supervisor = &supervisor_;
  auto ended = std::make_shared<bool>(false);
  return [supervisor, id = *id, finish, ended] {
    if (*ended) return;
    *ended = true;
    supervisor->unsubscribe(id);
    finish(0, "");
  };
}

}  // namespace batman::cli
