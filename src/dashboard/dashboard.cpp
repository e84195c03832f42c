// `batman dashboard`: start (or find) the one server of $BATMAN_HOME; `--monitor`'s client side.
#include "src/dashboard/dashboard.hpp"

#include <fcntl.h>
#include <poll.h>
#include <spawn.h>
#include <sys/file.h>
#include <sys/inotify.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <iostream>

#include <nlohmann/json.hpp>

#include "batman_config.h"
#include "common/executables.hpp"
#include "common/detach.hpp"
#include "common/fs.hpp"
#include "common/time_format.hpp"
#include "runner/event_loop.hpp"
#include "runner/http_server.hpp"
#include "runner/state_store.hpp"
#include "src/cli/cli.hpp"
#include "src/cli/project.hpp"
#include "src/cli/subprocess.hpp"
#include "src/dashboard/security.hpp"
#include "src/dashboard/server.hpp"

extern char** environ;

namespace batman::dashboard {
namespace {

using cli::error;
using cli::info;
using cli::kExitBatmanError;

constexpr const char* kInfoFile = "dashboard.json";
constexpr const char* kLockFile = "dashboard.lock";

// What dashboard.json says of the running server.
struct Running {
  std::string url, login_url, token, access_token, bind;
  int port = 0;
  pid_t pid = 0;
  unsigned long long pid_start_time = 0;
};

std::optional<Running> parse_info(const std::string& text) {
  const auto j = nlohmann::json::parse(text, nullptr, false);
  if (!j.is_object()) return std::nullopt;
  Running r;
  try {
    r.url = j.at("url").get<std::string>();
    r.port = j.at("port").get<int>();
    r.pid = j.at("pid").get<pid_t>();
    r.pid_start_time = j.value("pid_start_time", 0ULL);
    r.token = j.value("token", std::string());
    r.access_token = j.value("access_token", std::string());
    r.login_url = j.value("login_url", std::string());
    r.bind = j.value("bind", std::string());
  } catch (const nlohmann::json::exception&) {
    return std::nullopt;
  }
  return r;
}

std::string info_json(const Running& r) {
  nlohmann::json j = {{"url", r.url},
                      {"port", r.port},
                      {"bind", r.bind},
                      {"pid", r.pid},
                      {"pid_start_time", r.pid_start_time},
                      {"token", r.token},
                      {"started_at", format_rfc3339(std::chrono::system_clock::now())},
                      {"version", BATMAN_VERSION}};
  if (!r.access_token.empty()) {
    j["access_token"] = r.access_token;
    j["login_url"] = r.login_url;
  }
  return j.dump(2) + "\n";
}

Result<UniqueFd> open_home(const std::string& home) {
  UniqueFd fd(::open(home.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!fd) return sys_error("open BATMAN_HOME " + home);
  return fd;
}

// dashboard.lock, locked: this process is the home's one server. nullopt: another holds it.
Result<std::optional<UniqueFd>> take_lock(const std::string& home) {
  auto dir = BATMAN_TRY(open_home(home));
  auto fd = BATMAN_TRY(open_regular_at(dir.get(), kLockFile, O_RDWR | O_CREAT, 0600, home + "/" + kLockFile));
  if (::flock(fd.get(), LOCK_EX | LOCK_NB) == 0) return std::optional<UniqueFd>(std::move(fd));
  if (errno == EWOULDBLOCK) return std::optional<UniqueFd>();
  return sys_error("flock " + home + "/" + kLockFile);
}

// The running server's dashboard.json, waiting (inotify, no polling) up to `timeout` while
// it is being started: its lock is taken before the file is written.
Result<Running> wait_running(const std::string& home, Duration timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  UniqueFd watch(::inotify_init1(IN_NONBLOCK | IN_CLOEXEC));
  if (watch) (void)::inotify_add_watch(watch.get(), home.c_str(), IN_MOVED_TO | IN_CLOSE_WRITE | IN_ONLYDIR);
  for (;;) {
    auto dir = BATMAN_TRY(open_home(home));
    if (auto text = read_file_at(dir.get(), kInfoFile, 1 << 20)) {
      if (auto r = parse_info(*text); r && runner::process_matches(r->pid, r->pid_start_time)) return *r;
    }
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now()).count();
    if (left <= 0 || !watch)
      return fail("a dashboard holds " + home + "/" + kLockFile + " but " + home + "/" + kInfoFile +
                  " does not name it: is it still starting? try again");
    pollfd p{watch.get(), POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(left)) > 0) {
      char drain[4096];
      while (::read(watch.get(), drain, sizeof drain) > 0) {
      }
    }
  }
}

std::string url_host(const std::string& bind) {
  if (bind == "0.0.0.0" || bind == "::") {
    char name[256] = {};
    if (::gethostname(name, sizeof name - 1) == 0 && name[0]) return name;
    return bind == "::" ? "[::1]" : "127.0.0.1";
  }
  if (bind.find(':') != std::string::npos) return "[" + bind + "]";
  return bind;
}

// Spawn a helper (xdg-open) detached from our stdio; reaped when it exits.
void open_in_browser(runner::EventLoop& loop, const std::string& url) {
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0);
  posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0);
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  sigset_t none;
  sigemptyset(&none);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK);
  std::string program = "xdg-open", target = url;
  char* argv[] = {program.data(), target.data(), nullptr};
  pid_t pid = 0;
  const int rc = ::posix_spawnp(&pid, "xdg-open", &actions, &attr, argv, environ);
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  if (rc != 0) {
    info("--open: cannot run xdg-open (" + std::string(std::strerror(rc)) + "): open " + url + " yourself");
    return;
  }
  const int pidfd = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
  if (pidfd < 0) return;
  (void)loop.watch_exit(pidfd, [pid, pidfd] {
    while (::waitpid(pid, nullptr, 0) < 0 && errno == EINTR) {
    }
    ::close(pidfd);
  });
}

// `batman dashboard --stop`: SIGTERM to the running server, then wait for it.
int stop_running(const Running& r) {
  const int pidfd = static_cast<int>(::syscall(SYS_pidfd_open, r.pid, 0));
  if (pidfd < 0 || !runner::process_matches(r.pid, r.pid_start_time)) {
    if (pidfd >= 0) ::close(pidfd);
    info("no dashboard is running (pid " + std::to_string(r.pid) + " is gone)");
    return 0;
  }
  UniqueFd owner(pidfd);
  if (::syscall(SYS_pidfd_send_signal, pidfd, SIGTERM, nullptr, 0) != 0) {
    error("cannot signal the dashboard (pid " + std::to_string(r.pid) + "): " + std::strerror(errno));
    return 1;
  }
  pollfd p{pidfd, POLLIN, 0};
  if (::poll(&p, 1, 10'000) != 1) {
    error("the dashboard (pid " + std::to_string(r.pid) + ") did not exit within 10 s");
    return 1;
  }
  info("stopped the dashboard (pid " + std::to_string(r.pid) + ")");
  return 0;
}

}  // namespace

int command_dashboard(const std::vector<std::string>& args) {
  int port = 0;
  std::string bind = "127.0.0.1";
  bool open = false, url_only = false, token = false, detach_flag = false, stop = false;
  CLI::App app{"One live web page for every project, run, supervised program and batch task under "
               "$BATMAN_HOME, with a JSON API (/api/v1/) and Prometheus metrics (/metrics). One server per "
               "home: a second start prints the running one's URL.",
               "batman dashboard"};
  app.add_option("--port", port, "TCP port (default 0: the kernel picks a free one)")->check(CLI::Range(0, 65535));
  app.add_option("--bind", bind, "address to listen on (default 127.0.0.1; another than loopback needs --token)");
  app.add_flag("--open", open, "open the page in a browser (xdg-open)");
  app.add_flag("--url", url_only, "print the running dashboard's URL and exit");
  app.add_flag("--token", token,
               "require an access token on every request (bearer, or a cookie set by the printed one-time login URL)");
  app.add_flag("-d,--detach", detach_flag, "serve in the background; print the URL once it serves");
  app.add_flag("--stop", stop, "stop the running dashboard");
  if (auto rc = cli::parse(app, args)) return *rc;
  if (bind.empty()) {
    error("--bind is empty");
    return kExitBatmanError;
  }

  auto home = cli::home_dir(true);
  if (!home) {
    error(home.error().message);
    return kExitBatmanError;
  }
  auto lock = take_lock(*home);
  if (!lock) {
    error(lock.error().message);
    return kExitBatmanError;
  }
  if (url_only || stop) {
    if (*lock) {
      if (stop) {
        info("no dashboard is running for " + *home);
        return 0;
      }
      error("no dashboard is running for " + *home + ": start one with 'batman dashboard'");
      return 1;
    }
    auto running = wait_running(*home, std::chrono::seconds(5));
    if (!running) {
      error(running.error().message);
      return 1;
    }
    if (stop) return stop_running(*running);
    std::cout << (running->login_url.empty() ? running->url : running->login_url) << std::endl;
    return 0;
  }
  if (!*lock) {
    auto running = wait_running(*home, std::chrono::seconds(5));
    if (!running) {
      error(running.error().message);
      return kExitBatmanError;
    }
    if (port != 0 && port != running->port)
      info("a dashboard already serves " + *home + " on port " + std::to_string(running->port) + " (pid " +
           std::to_string(running->pid) + "): not starting another on port " + std::to_string(port));
    else
      info("a dashboard already serves " + *home + " (pid " + std::to_string(running->pid) + ")");
    const std::string shown = running->login_url.empty() ? running->url : running->login_url;
    std::cout << shown << std::endl;
    if (open) {
      auto loop = runner::EventLoop::create();
      if (loop) open_in_browser(**loop, shown);
    }
    return 0;
  }

  const bool loopback = is_loopback_address(bind);
  if (!loopback && !token) {
    error("--bind " + bind + " is reachable from other machines: add --token, so that every request must carry "
          "the access token");
    return kExitBatmanError;
  }
  auto listener = runner::listen_tcp(bind, port);
  if (!listener) {
    error("dashboard: cannot listen on " + bind + ":" + std::to_string(port) + ": " + listener.error().message);
    return kExitBatmanError;
  }
  auto bound = runner::bound_port(listener->get());
  if (!bound) {
    error("dashboard: " + bound.error().message);
    return kExitBatmanError;
  }
  Running self;
  self.bind = bind;
  self.port = *bound;
  self.url = "http://" + url_host(bind) + ":" + std::to_string(self.port) + "/";
  self.token = random_token();
  std::string login_code;
  if (token) {
    self.access_token = random_token();
    login_code = random_token();
    self.login_url = self.url + "login?code=" + login_code;
  }
  if (!loopback)
    error("warning: listening on " + bind + ":" + std::to_string(self.port) +
          ", reachable from other machines: every request must carry the access token (--token)");
  else if (token)
    info("every request must carry the access token (--token)");

  int reply_fd = -1;
  UniqueFd reply_owner;
  if (detach_flag) {
    auto d = detach(true);
    if (!d) {
      error(d.error().message);
      return kExitBatmanError;
    }
    if (!d->in_child) {
      auto reply = read_detach_reply(d->reply.get());
      if (!reply.started) {
        error("dashboard: " + (reply.message.empty() ? std::string("the background server exited") : reply.message));
        return kExitBatmanError;
      }
      std::cout << reply.message << std::endl;
      return 0;
    }
    reply_owner = std::move(d->reply);
    reply_fd = reply_owner.get();
  }
  auto fail_start = [&](const std::string& message) {
    if (reply_fd >= 0) reply_failed(reply_owner.release(), message);
    else error("dashboard: " + message);
    return kExitBatmanError;
  };

  // Nothing of the server pins a directory: a removed home is noticed (inotify) and ends it.
  if (::chdir("/") != 0) return fail_start("chdir /: " + std::string(std::strerror(errno)));
  if (rlimit lim{}; ::getrlimit(RLIMIT_NOFILE, &lim) == 0 && lim.rlim_cur < lim.rlim_max) {
    lim.rlim_cur = std::min<rlim_t>(lim.rlim_max, 65536);
    (void)::setrlimit(RLIMIT_NOFILE, &lim);
  }
  ::signal(SIGPIPE, SIG_IGN);
  auto loop = runner::EventLoop::create();
  if (!loop) return fail_start(loop.error().message);
  bool home_gone = false;
  auto signals = (*loop)->handle_signals({SIGINT, SIGTERM, SIGHUP}, [&](const signalfd_siginfo&) { (*loop)->stop(); });
  if (!signals) return fail_start(signals.error().message);

  self.pid = ::getpid();
  self.pid_start_time = runner::process_start_time(self.pid);
  const std::string home_path = *home;
  auto write_info = [home_path](const Running& r) -> Result<void> {
    auto dir = BATMAN_TRY(open_home(home_path));
    return write_file_atomic(dir.get(), kInfoFile, info_json(r), 0600);
  };
  ServerConfig config;
  config.home = *home;
  config.listening = {bind, self.port, loopback};
  config.csrf_token = self.token;
  config.access_token = self.access_token;
  config.login_code = login_code;
  config.self_exe = self_executable();
  if (config.self_exe.empty()) config.self_exe = "/proc/self/exe";
  config.on_login_code = [&self, write_info](const std::string& code) {
    self.login_url = self.url + "login?code=" + code;
    (void)write_info(self);
  };
  auto server = Server::start(**loop, std::move(*listener), std::move(config), [&] {
    home_gone = true;
    (*loop)->stop();
  });
  if (!server) return fail_start(server.error().message);
  if (auto w = write_info(self); !w) return fail_start(w.error().wrap("write " + *home + "/" + kInfoFile).message);

  const std::string shown = self.login_url.empty() ? self.url : self.login_url;
  if (reply_fd >= 0) {
    reply_started(reply_owner.release(), shown);
  } else {
    std::cout << shown << std::endl;
    info("dashboard of " + *home + " (Ctrl-C stops it)");
  }
  if (open) open_in_browser(**loop, shown);
  auto ran = (*loop)->run();
  (*server)->flush(std::chrono::milliseconds(500));
  // dashboard.json is ours to remove (the lock says no other server wrote it since).
  if (!home_gone)
    if (auto dir = open_home(*home)) ::unlinkat(dir->get(), kInfoFile, 0);
  if (!ran) {
    error(ran.error().message);
    return 1;
  }
  if (home_gone) info(*home + " was removed: the dashboard stops");
  return 0;
}


}  // namespace batman::dashboard
