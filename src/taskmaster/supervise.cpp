// `batman supervise CONFIG` (alias `taskmaster CONFIG`): the Taskmaster daemon of SPEC §9 —
// programs under restart rules, the control socket, the foreground shell, SIGHUP reload.
#include <fcntl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <functional>
#include <iostream>
#include <set>
#include <utility>
#include <vector>

#include "batman_config.h"
#include "common/detach.hpp"
#include "common/fs.hpp"
#include "runner/event_log.hpp"
#include "runner/event_loop.hpp"
#include "runner/http_server.hpp"
#include "src/taskmaster/leftovers.hpp"
#include "src/taskmaster/supervisor.hpp"
#include "src/cli/cli.hpp"
#include "src/taskmaster/control_commands.hpp"
#include "src/taskmaster/control_socket.hpp"
#include "src/cli/project.hpp"
#include "src/taskmaster/rpc_interface.hpp"
#include "src/taskmaster/shell.hpp"
#include "src/taskmaster/supervisord_config.hpp"
#include "src/taskmaster/supervisor_config.hpp"

extern char** environ;

namespace batman::cli {
namespace {

struct SuperviseOptions {
  std::string config;
  bool daemon = false;
  std::string pidfile;
  std::string format = "auto";  // auto | yaml | supervisord
  std::string rpc_socket;       // supervisord's XML-RPC interface; default state/supervisor.sock
};

ConfigFormat format_of(const std::string& word) {
  if (word == "yaml") return ConfigFormat::Yaml;
  if (word == "supervisord") return ConfigFormat::Supervisord;
  return ConfigFormat::Auto;
}

// supervisord's XML-RPC interface on a Unix socket (0600 unless [unix_http_server] chmod=
// says otherwise; SO_PEERCRED admits our uid and root, and whom that mode lets in), and on
// a TCP port only with Basic auth ([inet_http_server]).
struct RpcServers {
  std::unique_ptr<runner::HttpServer> unix_server, tcp_server;
  std::string unix_path;
};

Result<RpcServers> serve_rpc(runner::EventLoop& loop, RpcInterface& rpc, const runner::RpcSettings& settings,
                             const std::string& path) {
  RpcServers servers;
  auto listener = runner::listen_unix(path, "another process (a supervisord?) is already serving " + path + ": stop it, or choose another path with --rpc-socket");
  if (!listener) return std::unexpected(listener.error().wrap("XML-RPC socket"));
  if (settings.socket_owner && ::fchown(listener->get(), settings.socket_owner->uid, settings.socket_owner->gid) != 0 &&
      ::chown(path.c_str(), settings.socket_owner->uid, settings.socket_owner->gid) != 0)
    return sys_error("chown " + path);
  if (settings.socket_mode && ::chmod(path.c_str(), *settings.socket_mode) != 0) return sys_error("chmod " + path);
  runner::HttpServer::Options options;
  const uid_t self = ::geteuid();
  const mode_t mode = settings.socket_mode.value_or(0600);
  const std::optional<gid_t> group = settings.socket_owner ? std::optional<gid_t>(settings.socket_owner->gid) : std::nullopt;
  options.allow_peer = [self, mode, group](const ucred& peer) {
    if (peer.uid == 0 || peer.uid == self) return true;
    if ((mode & 0006) == 0006) return true;  // chmod=0777: anyone who can reach the file
    return (mode & 0060) == 0060 && group && peer.gid == *group;
  };
  const std::string user = settings.username.value_or(""), password = settings.password.value_or("");
  auto unix_server = runner::HttpServer::serve(loop, std::move(*listener), options,
                                               [&rpc, user, password](const runner::HttpRequest& request,
                                                                      runner::HttpResponder responder) {
                                                 if (!RpcInterface::authorized(request, user, password))
                                                   return RpcInterface::refuse_unauthorized(responder);
                                                 rpc.handle(request, std::move(responder));
                                               });
  if (!unix_server) return std::unexpected(unix_server.error().wrap("XML-RPC socket " + path));
  servers.unix_server = std::move(*unix_server);
  servers.unix_path = path;
  if (settings.inet) {
    auto tcp = runner::listen_tcp(settings.inet->host, settings.inet->port);
    if (!tcp)
      return std::unexpected(tcp.error().wrap("XML-RPC port " + settings.inet->host + ":" + std::to_string(settings.inet->port)));
    runner::HttpServer::Options tcp_options;
    auto tcp_server = runner::HttpServer::serve(
        loop, std::move(*tcp), tcp_options,
        [&rpc, user = settings.inet->username, password = settings.inet->password](const runner::HttpRequest& request,
                                                                                    runner::HttpResponder responder) {
          if (user.empty() || !RpcInterface::authorized(request, user, password))
            return RpcInterface::refuse_unauthorized(responder);
          rpc.handle(request, std::move(responder));
        });
    if (!tcp_server) return std::unexpected(tcp_server.error());
    servers.tcp_server = std::move(*tcp_server);
  }
  return servers;
}

// --daemon: detach (fork, setsid, fork); the first process waits for the daemon to say it is
// serving (or why it is not), so `taskmaster --daemon` fails loudly when it fails. Returns in
// the daemon only, with the write end of the reply; the first process exits.
Result<UniqueFd> daemonize() {
  auto detached = detach(true);
  if (!detached) return std::unexpected(detached.error());
  if (detached->in_child) return std::move(detached->reply);
  const DetachReply reply = read_detach_reply(detached->reply.get());
  if (!reply.started) {
    error(reply.message.empty() ? std::string("the daemon exited before it was ready") : reply.message);
    std::_Exit(kExitBatmanError);
  }
  // The daemon's pid, then what it found on its way up (processes a dead supervisor left).
  const auto nl = reply.message.find('\n');
  info("supervisor running as pid " + reply.message.substr(0, nl));
  if (nl != std::string::npos) info(reply.message.substr(nl + 1));
  std::_Exit(0);
}

// File descriptors the supervisor holds: its own (event loop, signalfd, timerfd, event log,
// project tree, listener, state writer...) and, per instance, the stdout/stderr pipes, the
// two log files and the pidfd, plus the ones a spawn holds for a moment. Measured with
// /proc/PID/fd: 10 instances hold 96, 100 hold 816 (16 + 8 per instance).
constexpr std::size_t kBaseFds = 32;
constexpr std::size_t kFdsPerInstance = 8;
// Control connections always allowed beyond the programs' share.
constexpr std::size_t kMinControlClients = 16;

std::size_t instance_count(const runner::SupervisorConfig& config) {
  std::size_t n = 0;
  for (const auto& p : config.programs) n += static_cast<std::size_t>(std::max(0, p.numprocs));
  return n;
}

std::size_t fds_needed(const runner::SupervisorConfig& config) {
  return kBaseFds + kFdsPerInstance * instance_count(config) + kMinControlClients;
}

rlim_t fd_limit() {
  rlimit limit{};
  if (::getrlimit(RLIMIT_NOFILE, &limit) != 0) return 1024;
  return limit.rlim_cur;
}

// Every program holds about eight fds: raise the soft limit to the hard one, as supervisord's
// minfds does, so hundreds of programs fit.
void raise_fd_limit() {
  if (rlimit limit{}; ::getrlimit(RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur < limit.rlim_max) {
    limit.rlim_cur = std::min<rlim_t>(limit.rlim_max, 1 << 16);
    (void)::setrlimit(RLIMIT_NOFILE, &limit);
  }
}

// Control connections that fit beside the programs.
std::size_t client_budget(const runner::SupervisorConfig& config) {
  rlim_t limit = fd_limit();
  std::size_t needed = fds_needed(config);
  if (limit == RLIM_INFINITY) return kMaxClients;
  return limit > needed ? static_cast<std::size_t>(limit - needed) + kMinControlClients : kMinControlClients;
}

// A config that needs more fds than the limit allows is refused whole, before anything is
// created: otherwise instances past the limit fail one by one with EMFILE.
Result<void> check_fd_budget(const runner::SupervisorConfig& config) {
  std::size_t needed = fds_needed(config);
  rlim_t limit = fd_limit();
  if (limit == RLIM_INFINITY || needed <= limit) return {};
  return fail(config.source + ": " + std::to_string(instance_count(config)) + " instances need about " +
              std::to_string(needed) + " file descriptors, but the limit (RLIMIT_NOFILE) is " + std::to_string(limit) +
              ": raise it (ulimit -n, LimitNOFILE=) or lower numprocs");
}

// Processes a supervisor that died without stopping its programs (kill -9) left running:
// found from its programs' state files, killed, and said. Returns what to report.
std::string kill_abandoned(int state_dirfd) {
  pid_t self = ::getpid();
  auto records = runner::abandoned_programs(state_dirfd, self);
  if (records.empty()) return {};
  std::vector<runner::Leftover> killed;
  // A leftover may fork while we kill: look again until nothing is found.
  for (int round = 0; round < 5; ++round) {
    auto found = runner::find_leftovers(records, self);
    if (found.empty()) break;
    auto k = runner::kill_leftovers(found, std::chrono::seconds(2));
    if (k.empty()) break;
    killed.insert(killed.end(), k.begin(), k.end());
  }
  if (killed.empty()) return {};
  std::set<pid_t> supervisors;
  for (const auto& r : records) supervisors.insert(r.batman_pid);
  std::string message = "killed " + std::to_string(killed.size()) + " process" + (killed.size() == 1 ? "" : "es") +
                        " left running by a supervisor that did not stop its programs (pid";
  for (pid_t p : supervisors) message += " " + std::to_string(p);
  message += "):";
  std::size_t shown = 0;
  for (const auto& l : killed) {
    if (++shown > 20) {
      message += " ...";
      break;
    }
    message += " " + l.run_id + ": " + l.command + " (pid " + std::to_string(l.pid) + ")" + (shown < killed.size() ? "," : "");
  }
  return message;
}

int supervise(const SuperviseOptions& options) {
  std::error_code ec;
  std::string config_path = std::filesystem::absolute(options.config, ec).lexically_normal().string();
  if (ec) config_path = options.config;
  const ConfigFormat format = format_of(options.format);
  ConfigWarnings warnings;
  auto config = load_any_config(config_path, format, &warnings);
  if (!config) {
    error(config.error().message);
    return kExitBatmanError;
  }
  for (const auto& w : warnings) info("warning: " + w);
  raise_fd_limit();
  if (auto fits = check_fd_budget(*config); !fits) {
    error(fits.error().message);
    return kExitBatmanError;
  }
  auto tree = open_project(config->project, true);
  if (!tree) {
    error(tree.error().message);
    return kExitBatmanError;
  }
  std::string socket_path = config->socket.value_or(tree->state_path() + "/control.sock");
  std::string rpc_path = !options.rpc_socket.empty()          ? options.rpc_socket
                         : config->rpc.socket                 ? *config->rpc.socket
                                                              : tree->state_path() + "/supervisor.sock";
  if (!options.rpc_socket.empty()) {
    std::error_code rec;
    rpc_path = std::filesystem::absolute(rpc_path, rec).lexically_normal().string();
  }
  const std::string main_log = config->logfile.value_or(tree->logs_path() + "/events.log");
  std::string pidfile = options.pidfile.empty() ? tree->state_path() + "/supervisor.pid" : options.pidfile;
  std::string start_dir = std::filesystem::current_path(ec).string();
  if (ec) start_dir = "/";

  auto events = config->logfile ? runner::open_event_log_path(*config->logfile, "taskmaster")
                                : runner::open_event_log(tree->logs_fd.get(), "events.log", "taskmaster",
                                                         tree->logs_path() + "/events.log");
  if (!events) {
    error(events.error().message);
    return kExitBatmanError;
  }

  for (const auto& w : warnings) (*events)->warn(w);

  UniqueFd ready;
  if (options.daemon) {
    auto r = daemonize();
    if (!r) {
      error(r.error().message);
      return kExitBatmanError;
    }
    ready = std::move(*r);
    if (::chdir("/") != 0) {
      // Nothing depends on it: programs get start_dir explicitly.
    }
  }
  auto refuse = [&](const std::string& message) {
    if (ready) reply_failed(ready.release(), message);
    else error(message);
    return kExitBatmanError;
  };

  // Writing to a client that left must not kill the supervisor; programs get default
  // dispositions back when they are spawned.
  std::signal(SIGPIPE, SIG_IGN);
  auto loop_made = runner::EventLoop::create();
  if (!loop_made) return refuse(loop_made.error().message);
  runner::EventLoop& loop = **loop_made;

  // Signals go to the signalfd from here on, before the state writer's thread exists (it
  // inherits the mask); what arrives before the loop runs waits in the signalfd.
  std::function<void(int)> on_signal;
  auto handled = loop.handle_signals({SIGHUP, SIGTERM, SIGINT, SIGCHLD}, [&](const signalfd_siginfo& info) {
    if (on_signal) on_signal(static_cast<int>(info.ssi_signo));
  });
  if (!handled) return refuse(handled.error().message);
  runner::StateWriter state_writer(tree->state_fd.get());
  // A state the disk could not take (ENOSPC) is said in the events log; the writer tries it
  // again (in place first) until it is written. spdlog's logger is safe from its thread.
  state_writer.set_on_error([events = *events](const std::string& message) { events->error("{}", message); });

  runner::SupervisorContext context;
  context.project = config->project;
  context.home = tree->home;
  context.project_dir = tree->dir;
  context.batman_home = tree->home;
  context.logs_dir = tree->logs_path();
  context.tmp_dir = tree->tmp_path();
  context.tmp_fd = tree->tmp_fd.get();
  context.state_writer = &state_writer;
  context.events = *events;
  for (char** e = environ; e && *e; ++e) context.base_env.emplace_back(*e);
  context.default_cwd = start_dir;
  std::string source_name = config->source;
  runner::Supervisor supervisor(loop, context, std::move(*config));

  bool shutting_down = false, all_stopped = false;
  // Every quit asked while the programs stop is answered when they have (a second ctl quit
  // after SIGTERM or supervisorctl's shutdown must not return before the first one would).
  std::vector<std::function<void()>> when_stopped;
  auto quit = [&](std::function<void()> stopped) {
    if (all_stopped) {
      if (stopped) stopped();
      return;
    }
    if (stopped) when_stopped.push_back(std::move(stopped));
    if (shutting_down) return;
    shutting_down = true;
    (*events)->info("shutting down: stopping every program");
    supervisor.shutdown([&] {
      all_stopped = true;
      for (auto& answer : std::exchange(when_stopped, {})) answer();
      (*events)->info("every program stopped; supervisor exiting");
      loop.add_timer_after(Duration::zero(), [&] { loop.stop(); });
    });
  };
  ControlServer* control = nullptr;
  auto reload = [&]() -> Result<runner::ReloadPlan> {
    ConfigWarnings reload_warnings;
    auto next = load_any_config(config_path, format, &reload_warnings);
    for (const auto& w : reload_warnings) (*events)->warn("reload: " + w);
    if (!next) {
      (*events)->error("reload refused, nothing changed: " + next.error().message);
      return std::unexpected(next.error());
    }
    if (next->socket != supervisor.config().socket || next->logfile != supervisor.config().logfile)
      (*events)->warn("reload: 'socket' and 'logfile' changes apply at the next start");
    if (auto fits = check_fd_budget(*next); !fits) {
      (*events)->error("reload refused, nothing changed: " + fits.error().message);
      return std::unexpected(fits.error());
    }
    next->socket = supervisor.config().socket;
    next->logfile = supervisor.config().logfile;
    next->rpc = supervisor.config().rpc;
    auto plan = supervisor.reload(std::move(*next));
    if (control) control->set_max_clients(client_budget(supervisor.config()));
    return plan;
  };
  ControlCommands commands(supervisor, CommandHooks{reload, quit});

  // supervisord's XML-RPC interface: `supervisorctl` drives the same supervisor.
  RpcInterface::Hooks rpc_hooks;
  rpc_hooks.load = [&]() -> Result<runner::SupervisorConfig> {
    ConfigWarnings ignored;
    return load_any_config(config_path, format, &ignored);
  };
  rpc_hooks.apply = [&](runner::SupervisorConfig next) -> Result<void> {
    if (auto fits = check_fd_budget(next); !fits) return std::unexpected(fits.error());
    next.socket = supervisor.config().socket;
    next.logfile = supervisor.config().logfile;
    next.rpc = supervisor.config().rpc;
    supervisor.reload(std::move(next));
    if (control) control->set_max_clients(client_budget(supervisor.config()));
    return {};
  };
  rpc_hooks.quit = [&] {
    (*events)->info("shutdown asked over XML-RPC");
    quit(nullptr);
  };
  rpc_hooks.restart = [&] {
    (*events)->info("restart asked over XML-RPC: stopping every program, then reading " + config_path + " again");
    auto keys = supervisor.select({"all"});
    supervisor.stop(keys ? *keys : std::vector<runner::InstanceKey>{}, [&](std::vector<std::string>) {
      loop.defer([&] {
        if (shutting_down) return;
        (void)reload();
        supervisor.start_autostart();
      });
    });
  };
  rpc_hooks.main_log = main_log;
  rpc_hooks.version = BATMAN_VERSION;
  RpcInterface rpc(loop, supervisor, std::move(rpc_hooks));
  supervisor.set_observer([&rpc](const runner::InstanceKey& key, runner::ProcState from, runner::ProcState to) {
    rpc.on_transition(key, from, to);
  });

  auto server = ControlServer::listen(loop, socket_path,
                                      [&](std::string_view line, ControlCommands::Output out,
                                          ControlCommands::Finish finish) {
                                        return commands.run(line, std::move(out), std::move(finish));
                                      });
  if (!server) return refuse(server.error().message);
  control = server->get();
  auto rpc_servers = serve_rpc(loop, rpc, supervisor.config().rpc, rpc_path);
  if (!rpc_servers) return refuse(rpc_servers.error().message);
  control->set_max_clients(client_budget(supervisor.config()));
  // With a `socket:` of its own, state/control.sock points to it: `batman stop PROJECT
  // INSTANCE` and a bare `batman ctl` find the supervisor where they always look.
  const std::string default_socket = tree->state_path() + "/control.sock";
  const bool pointer = socket_path != default_socket;
  if (pointer) {
    (void)::unlinkat(tree->state_fd.get(), "control.sock", 0);
    if (::symlinkat(socket_path.c_str(), tree->state_fd.get(), "control.sock") != 0)
      (*events)->warn("cannot point " + default_socket + " to " + socket_path + ": " + std::strerror(errno));
  }

  if (options.daemon || !options.pidfile.empty()) {
    auto dir = std::filesystem::path(pidfile).parent_path().string();
    auto dirfd = open_dir_path(dir.empty() ? "." : dir, false);
    if (!dirfd) return refuse("pid file " + pidfile + ": " + dirfd.error().message);
    auto written = write_file_atomic(dirfd->get(), std::filesystem::path(pidfile).filename().string(),
                                     std::to_string(::getpid()) + "\n", 0644);
    if (!written) return refuse("pid file " + pidfile + ": " + written.error().message);
  }


  std::optional<Shell> shell;
  ControlCommands::Cancel foreground_stream;
  on_signal = [&](int sig) {
    if (sig == SIGCHLD) {
      supervisor.reap_orphans();
    } else if (sig == SIGHUP) {
      (*events)->info("SIGHUP: reloading " + source_name);
      auto plan = reload();
      if (shell && !plan) std::cerr << "\nreload failed: " << plan.error().message << std::endl;
    } else if (sig == SIGINT && foreground_stream) {
      auto cancel = std::move(foreground_stream);
      foreground_stream = nullptr;
      cancel();
    } else {
      (*events)->info(std::string("SIG") + (sig == SIGINT ? "INT" : "TERM") + ": stopping");
      quit(nullptr);
    }
  };
  (*events)->info("supervisor started, pid " + std::to_string(::getpid()) + ", config " + config_path +
                  ", socket " + socket_path + ", XML-RPC " + rpc_path);
  // Only one supervisor serves a config (the socket above is ours): what its programs' state
  // files say is running under a supervisor that is gone is ended before ours start.
  std::string leftovers = kill_abandoned(tree->state_fd.get());
  if (!leftovers.empty()) {
    (*events)->warn(leftovers);
    if (!ready) info(leftovers);
  }
  supervisor.start_autostart();
  if (ready) reply_started(ready.release(), std::to_string(::getpid()) + (leftovers.empty() ? "" : "\n" + leftovers));

  if (!options.daemon && ::isatty(STDIN_FILENO)) {
    Shell::Options shell_options;
    shell_options.history_path = tree->state_path() + "/history";
    shell_options.commands = ControlCommands::command_names();
    shell_options.names = [&] { return supervisor.names(); };
    shell.emplace(std::move(shell_options));
    auto attached = shell->attach(loop, [&](std::optional<std::string> line) {
      if (!line) {
        std::cout << "quit" << std::endl;
        line = "quit";
      }
      auto out = [](std::string_view text) {
        std::cout << text;
        std::cout.flush();
      };
      auto finish = [&](int, const std::string& message) {
        if (!message.empty()) std::cerr << message << std::endl;
        foreground_stream = nullptr;
        if (!shutting_down && shell) shell->resume();
      };
      auto cancel = commands.run(*line, out, finish);
      if (cancel) {
        // `tail -f` in the shell: Enter or Ctrl-C ends it.
        foreground_stream = cancel;
        shell->wait_for_enter([&] {
          if (foreground_stream) {
            auto c = std::move(foreground_stream);
            foreground_stream = nullptr;
            c();
          }
        });
      }
    });
    if (!attached) error(attached.error().message);
  }

  auto ran = loop.run();
  if (shell) shell->detach();
  // What the writer could not do (a TMPDIR it could not remove) is said, as run and batch do.
  for (const auto& e : state_writer.flush()) {
    error(e.message);
    (*events)->error("{}", e.message);
  }
  // What names this supervisor goes first, while it still listens (no next one can have
  // replaced it yet); then the listening sockets; the clients' connections last. `ctl quit`
  // waits for its connection to close, so a supervisor started right after it finds every
  // path free and keeps its own pid file.
  if (pointer) {
    char target[4096];
    const ssize_t n = ::readlinkat(tree->state_fd.get(), "control.sock", target, sizeof target);
    if (n > 0 && std::string_view(target, static_cast<std::size_t>(n)) == socket_path)
      (void)::unlinkat(tree->state_fd.get(), "control.sock", 0);
  }
  if (options.daemon || !options.pidfile.empty()) ::unlink(pidfile.c_str());
  (*server)->stop_listening();
  if (rpc_servers->unix_server) {
    (void)::unlink(rpc_servers->unix_path.c_str());  // while it listens: the path is still ours
    rpc_servers->unix_server->stop_listening();
  }
  if (rpc_servers->tcp_server) rpc_servers->tcp_server->stop_listening();
  (*server)->flush(std::chrono::seconds(1));
  server->reset();
  if (rpc_servers->unix_server) rpc_servers->unix_server->flush(std::chrono::seconds(1));
  if (rpc_servers->tcp_server) rpc_servers->tcp_server->flush(std::chrono::seconds(1));
  rpc_servers->unix_server.reset();
  rpc_servers->tcp_server.reset();
  supervisor.set_observer(nullptr);
  if (!ran) {
    error(ran.error().message);
    return kExitBatmanError;
  }
  return 0;
}

}  // namespace

int command_supervise(const std::vector<std::string>& args) {
  CLI::App app{"Run the programs of CONFIG under Taskmaster restart rules (SPEC §9).", "taskmaster"};
  SuperviseOptions options;
  app.add_option("CONFIG", options.config, "the config (YAML, or supervisord's INI); its file name is the project")->required();
  app.add_option("--format", options.format, "how CONFIG is read: auto (by its syntax), yaml or supervisord")
      ->check(CLI::IsMember({"auto", "yaml", "supervisord"}));
  app.add_option("--rpc-socket", options.rpc_socket,
                 "where supervisorctl connects (default: [unix_http_server] file=, else state/supervisor.sock)");
  app.add_flag("--daemon,-d", options.daemon, "detach, write a pid file, serve the control socket");
  app.add_option("--pidfile", options.pidfile, "where --daemon writes its pid (default: state/supervisor.pid)");
  if (auto code = parse(app, args)) return *code;
  return supervise(options);
}

}  // namespace batman::cli
