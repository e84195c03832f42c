#include "src/cli/control_client.hpp"

#include <poll.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstring>
#include <iostream>

#include <nlohmann/json.hpp>

#include "common/fs.hpp"
#include "runner/http_server.hpp"
#include "src/cli/cli.hpp"
#include "src/cli/project.hpp"

namespace batman::cli {
namespace {

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

bool quits(const std::string& line) {
  const auto words = split_control_words(line);
  return !words.empty() && (words.front() == "quit" || words.front() == "shutdown");
}

}  // namespace

std::vector<std::string> split_control_words(std::string_view line) {
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

Result<UniqueFd> connect_control(const std::string& path) {
  auto fd = runner::connect_unix(path);
  if (!fd && (fd.error().code == ENOENT || fd.error().code == ECONNREFUSED))
    return fail("no supervisor is listening on " + path + ": start one with 'taskmaster CONFIG --daemon'", fd.error().code);
  return fd;
}

CtlArgs parse_ctl_args(const std::vector<std::string>& args) {
  CtlArgs out;
  auto bad = [&out](std::string problem) {
    out.kind = CtlArgs::Kind::Bad;
    out.problem = std::move(problem);
    return out;
  };
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
      out.kind = CtlArgs::Kind::Help;
      return out;
    }
    if (a == "--version" || a == "-V") {
      out.kind = CtlArgs::Kind::Version;
      return out;
    }
    if (a == "--socket" || a.rfind("--socket=", 0) == 0) {
      if (!value("--socket", out.socket) || out.socket.empty()) return bad("--socket needs a PATH");
    } else if (a == "--config" || a.rfind("--config=", 0) == 0) {
      if (!value("--config", out.config) || out.config.empty()) return bad("--config needs a CONFIG file");
    } else if (a == "--") {
      ++i;
      break;
    } else if (!a.empty() && a[0] == '-' && a != "-f") {
      return bad("unknown option '" + a + "' (see 'batman ctl --help')");
    } else {
      break;
    }
  }
  if (!out.socket.empty() && !out.config.empty()) return bad("give --socket or --config, not both");
  out.command.assign(args.begin() + static_cast<std::ptrdiff_t>(i), args.end());
  return out;
}

Result<std::string> ctl_request_line(const std::vector<std::string>& words) {
  std::string line;
  for (const auto& word : words) {
    if (word.find_first_of("\n\r") != std::string::npos) return fail("arguments must not contain line breaks");
    line += (line.empty() ? "" : " ") + word;
  }
  return line;
}

Result<std::string> project_control_socket(const std::string& config) {
  auto project = BATMAN_TRY(config_project(config));
  auto home = BATMAN_TRY(home_dir(false));
  return control_socket_path(home, project);
}

std::string control_socket_path(const std::string& home, const std::string& project) {
  return home + "/" + project + "/state/control.sock";
}

bool config_may_set_socket(const std::string& config) {
  auto text = read_file(config, kMaxConfigBytes);
  // A backslash too: a double-quoted key may spell it with escapes ("soc\x6bet"); and a NUL:
  // in UTF-16 or UTF-32, which yaml-cpp reads, the word is not those six bytes.
  return !text || text->find("socket") != std::string::npos || text->find('\\') != std::string::npos ||
         text->find('\0') != std::string::npos;
}

Result<int> ControlConnection::run(const std::string& line, std::ostream& out, bool interruptible) {
  std::optional<SigintWatch> sigint;
  if (interruptible) sigint.emplace();
  sigint_fd_ = sigint ? sigint->fd() : -1;
  if (!fd_) {
    auto fd = connect_control(path_);
    if (!fd) return std::unexpected(fd.error());
    fd_ = std::move(*fd);
    buffer_.clear();
    start_ = scanned_ = 0;
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
      errno = 0;
      out << it->get<std::string>();
      out.flush();
      // Nobody reads any more (`ctl status | head -1`): quietly, as SIGPIPE would end it;
      // anything else (a full disk) is said: the output is lost.
      if (!out) return errno == EPIPE ? Result<int>(kBrokenPipe) : sys_error("write the output");
    }
    if (auto it = j.find("exit"); it != j.end()) {
      const auto wide = it->is_number_integer() ? it->get<long long>() : -1;
      if (wide < 0 || wide > 255) return fail("malformed reply from the supervisor: exit " + it->dump());
      if (auto e = j.find("error"); e != j.end() && e->is_string()) error(e->get<std::string>());
      const int code = static_cast<int>(wide);
      // A supervisor still there after the wait: 1, as for a command that failed.
      if (code == 0 && quits(line) && !wait_until_closed(std::chrono::seconds(30))) return kCommandFailed;
      return code;
    }
  }
}

// quit answers once every program has stopped; the supervisor then writes its last states,
// stops listening and closes this connection. Waiting for that lets a new supervisor be
// started the moment ctl returns. False when it has not closed it in time.
bool ControlConnection::wait_until_closed(std::chrono::milliseconds timeout) {
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

Result<std::string> ControlConnection::next_line() {
  for (;;) {
    // Each byte is searched once, and what was read is moved once, however long the line.
    auto nl = buffer_.find('\n', scanned_);
    if (nl != std::string::npos) {
      std::string line = buffer_.substr(start_, nl - start_);
      start_ = scanned_ = nl + 1;
      return line;
    }
    buffer_.erase(0, start_);
    start_ = 0;
    scanned_ = buffer_.size();
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
    if (buffer_.size() > kMaxReplyLine)
      return fail("malformed reply from the supervisor: a line longer than " + std::to_string(kMaxReplyLine >> 20) + " MiB");
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

int run_ctl_command(ControlConnection& connection, const std::string& line) {
  auto code = connection.run(line, std::cout);
  if (!code) {
    error("ctl: " + code.error().message);
    return kExitBatmanError;
  }
  return *code;
}

int flushed_output(int code) {
  errno = 0;
  std::cout.flush();
  if (std::cout) return code;
  if (errno == EPIPE) return kBrokenPipe;
  error(std::string("ctl: write the output: ") + std::strerror(errno));
  return kExitBatmanError;
}

// The launcher's ctl: batman-services would map, relocate and start a binary twice the size
// for the same few calls (`ctl --config C status` of 500 programs, 3 Dec 2026: see README).
std::optional<int> ctl_direct(const std::vector<std::string>& args) {
  const CtlArgs parsed = parse_ctl_args(args);
  if (parsed.kind != CtlArgs::Kind::Command || parsed.command.empty()) return std::nullopt;
  if (parsed.socket.empty() && parsed.config.empty()) return std::nullopt;
  auto line = ctl_request_line(parsed.command);
  if (!line) return std::nullopt;
  std::string path = parsed.socket;
  if (path.empty()) {
    if (config_may_set_socket(parsed.config)) return std::nullopt;
    auto found = project_control_socket(parsed.config);
    if (!found) return std::nullopt;
    path = std::move(*found);
  }
  auto fd = connect_control(path);
  if (!fd) return std::nullopt;  // services' ctl says why
  std::signal(SIGPIPE, SIG_IGN);  // a closed connection is an error to report, not death
  ControlConnection connection(std::move(path), std::move(*fd));
  return run_ctl_command(connection, *line);
}

}  // namespace batman::cli
