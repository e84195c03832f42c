// Parsing and running one Taskmaster command line against the Supervisor.
#include "src/taskmaster/control_commands.hpp"

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
// The last `bytes` of the file; `end` gets the offset the read ended at (where following goes on).
Result<std::string> read_tail(const std::string& path, std::size_t bytes, std::uint64_t& end) {
  end = 0;
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
  end = static_cast<std::uint64_t>(from) + static_cast<std::uint64_t>(n);
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

std::string ControlCommands::help_text() {
  return "commands:\n"
         "  status [--json] [NAME...]   one line per instance: NAME  STATE  detail\n"
         "  start NAME...|all           start programs (NAME, or NAME:NN / NAME_NN), wait until RUNNING\n"
         "  stop NAME...|all            stop programs with their stop sequence\n"
         "  restart NAME...|all         stop, then start\n"
         "  reload                      re-read the config and apply what changed\n"
         "  quit                        stop every program, then exit the supervisor\n"
         "  tail NAME [-f] [-BYTES] [stdout|stderr]   the end of an instance's output\n"
         "  pid [NAME...|all]           the supervisor's pid, or the programs'\n"
         "  help                        this list\n"
         "  version                     batman's version\n";
}

Result<ControlRequest> parse_control_line(std::string_view line) {
  std::vector<std::string> words = split_control_words(line);
  ControlRequest request;
  if (words.empty()) return request;
  request.command = words.front();
  std::vector<std::string> args(words.begin() + 1, words.end());
  const std::string& command = request.command;
  if (command == "?") request.command = "help";
  if (command == "shutdown") request.command = "quit";
  if (command == "help" || command == "version") return request;
  if (command == "status") {
    for (const auto& a : args) {
      if (a == "--json")
        request.json = true;
      else if (!a.empty() && a[0] == '-')
        return fail("status: unknown option '" + a + "' (usage: status [--json] [NAME...])");
      else
        request.names.push_back(a);
    }
    return request;
  }
  if (command == "start" || command == "stop" || command == "restart") {
    if (args.empty()) return fail(command + ": name a program, NAME:NN or 'all' (usage: " + command + " NAME...|all)");
    request.names = std::move(args);
    return request;
  }
  if (command == "reload") {
    if (!args.empty()) return fail("reload takes no arguments");
    return request;
  }
  if (command == "quit") {
    if (!args.empty()) return fail(words.front() + " takes no arguments");
    return request;
  }
  if (command == "pid") {
    request.names = std::move(args);
    return request;
  }
  if (command == "tail") {
    const char* usage = " (usage: tail NAME [-f] [-BYTES] [stdout|stderr])";
    for (const auto& a : args) {
      if (a == "-f") {
        request.follow = true;
      } else if (a == "stdout" || a == "stderr") {
        request.stream = a;
      } else if (a.size() > 1 && a.size() < 12 && a[0] == '-' &&
                 std::all_of(a.begin() + 1, a.end(), [](char c) { return c >= '0' && c <= '9'; })) {
        request.tail_bytes = static_cast<std::size_t>(std::stoull(a.substr(1)));
      } else if (!a.empty() && a[0] == '-') {
        return fail("tail: unknown option '" + a + "'" + usage);
      } else if (request.names.empty()) {
        request.names.push_back(a);
      } else {
        return fail(std::string("tail: one name only") + usage);
      }
    }
    if (request.names.empty()) return fail(std::string("tail: name an instance") + usage);
    return request;
  }
  return fail("unknown command '" + command + "': type 'help' for the list");
}

Result<void> RequestLines::feed(std::string_view bytes) {
  auto too_long = [] {
    return fail("request line longer than " + std::to_string(kMaxRequestLine) + " bytes: send one command per line");
  };
  if (failed_) return too_long();
  if (ended_) return {};
  for (std::size_t i = 0; i < bytes.size();) {
    std::size_t nl = bytes.find('\n', i);
    std::size_t piece = (nl == std::string_view::npos ? bytes.size() : nl) - i;
    if (partial_ + piece > kMaxRequestLine) {
      failed_ = true;
      std::string().swap(buffer_);
      start_ = complete_ = partial_ = 0;
      return too_long();
    }
    if (nl == std::string_view::npos) {
      partial_ += piece;
      break;
    }
    partial_ = 0;
    ++complete_;
    i = nl + 1;
  }
  if (start_ > 0 && start_ >= buffer_.size() / 2) {
    buffer_.erase(0, start_);
    start_ = 0;
  }
  buffer_.append(bytes);
  return {};
}

void RequestLines::end() {
  if (ended_ || failed_) return;
  ended_ = true;
}

std::optional<std::string> RequestLines::next() {
  if (complete_ > 0) {
    std::size_t nl = buffer_.find('\n', start_);
    std::string line = buffer_.substr(start_, nl - start_);
    start_ = nl + 1;
    --complete_;
    if (start_ == buffer_.size()) {
      buffer_.clear();
      start_ = 0;
    }
    return line;
  }
  if (ended_ && buffer_.size() > start_) {
    std::string line = buffer_.substr(start_);
    buffer_.clear();
    start_ = partial_ = 0;
    return line;
  }
  return std::nullopt;
}

ControlCommands::Cancel ControlCommands::run(std::string_view line, Output out, Finish finish) {
  auto request = parse_control_line(line);
  if (!request) {
    finish(kCommandUsage, request.error().message);
    return {};
  }
  return run(*request, std::move(out), std::move(finish));
}

ControlCommands::Cancel ControlCommands::run(const ControlRequest& request, Output out, Finish finish) {
  const std::string& command = request.command;
  if (command.empty()) {
    finish(0, "");
    return {};
  }
  if (command == "help") {
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
    std::vector<runner::InstanceStatus> rows;
    if (request.names.empty()) {
      rows = supervisor_.status();
    } else {
      auto keys = supervisor_.select(request.names);
      if (!keys) {
        finish(kCommandUsage, "status: " + keys.error().message);
        return {};
      }
      rows = supervisor_.status(*keys);
    }
    out(request.json ? runner::status_json(rows).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n"
                     : runner::format_status(rows));
    finish(0, "");
    return {};
  }
  if (command == "start" || command == "stop" || command == "restart") {
    auto keys = supervisor_.select(request.names);
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
    auto plan = hooks_.reload();
    if (!plan) {
      finish(kCommandFailed, "reload: " + plan.error().message + " (nothing was changed)");
      return {};
    }
    out("reloaded: " + plan->summary() + "\n");
    finish(0, "");
    return {};
  }
  if (command == "quit") {
    hooks_.quit([out, finish] {
      out("stopped every program; supervisor exiting\n");
      finish(0, "");
    });
    return {};
  }
  if (command == "pid") {
    if (request.names.empty()) {
      out(std::to_string(::getpid()) + "\n");
      finish(0, "");
      return {};
    }
    auto keys = supervisor_.select(request.names);
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
  if (command == "tail") return tail(request, std::move(out), std::move(finish));
  finish(kCommandUsage, "unknown command '" + command + "': type 'help' for the list");
  return {};
}

ControlCommands::Cancel ControlCommands::tail(const ControlRequest& request, Output out, Finish finish) {
  const std::string& name = request.names.front();
  const std::string& stream = request.stream;
  bool follow = request.follow;
  std::size_t bytes = request.tail_bytes;
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
  std::uint64_t end = 0;
  auto text = read_tail(*path, bytes, end);
  if (!text) {
    finish(kCommandFailed, "tail: " + text.error().message);
    return {};
  }
  out(*text);
  if (!follow) {
    finish(0, "");
    return {};
  }
  auto id = supervisor_.subscribe(keys->front(), stream, [out](std::string_view data) { out(data); }, end);
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
