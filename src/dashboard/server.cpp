// The dashboard server (see server.hpp): the home's model kept current from inotify, pidfds
// and control sockets; routes; event streams; actions.
#include "src/dashboard/server.hpp"

#include <fcntl.h>
#include <spawn.h>
#include <sys/epoll.h>
#include <sys/inotify.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <deque>
#include <map>
#include <set>

#include <nlohmann/json.hpp>

#include "batman_config.h"
#include "common/fs.hpp"
#include "common/names.hpp"
#include "runner/http_server.hpp"
#include "src/cli/control_client.hpp"
#include "src/cli/project.hpp"
#include "src/cli/subprocess.hpp"
#include "src/cli/runs.hpp"
#include "src/dashboard/home_model.hpp"
#include "src/dashboard/metrics.hpp"
#include "src/dashboard/web_assets.hpp"

extern char** environ;

namespace batman::dashboard {

using nlohmann::json;
using runner::HttpHeaders;
using runner::HttpRequest;
using runner::HttpResponder;

namespace {

// Changes are gathered for this long and applied together: a batch of 100 tasks ending at
// once is one pass, and the page still hears of a change well within a second.
constexpr Duration kCoalesce = std::chrono::milliseconds(40);
// A comment line to every event stream this often, so proxies and browsers keep it open and
// a vanished client is noticed.
constexpr Duration kKeepalive = std::chrono::seconds(20);
// Events kept for clients that reconnect with Last-Event-ID.
constexpr std::size_t kRingEvents = 4096;
constexpr std::size_t kRingBytes = 8 << 20;
// A stream whose client has this much unread is ended; it reconnects and replays.
constexpr std::size_t kStreamBacklog = 4 << 20;
// Log reads: one event carries at most this much; the tail shown first is this long.
constexpr std::size_t kLogChunk = 256 << 10;
constexpr std::size_t kLogTail = 64 << 10;
constexpr std::size_t kLogMaxLimit = 4 << 20;
// An action's child (batman stop / ctl) that has not finished by then is answered 504 and
// left to finish (it is still reaped).
constexpr Duration kActionTimeout = std::chrono::seconds(120);
constexpr Duration kSupervisorTimeout = std::chrono::seconds(5);

enum Role : unsigned { kHome = 1, kProjectDir = 2, kStateDir = 4, kLogsDir = 8, kEventsLog = 16, kFollowedLog = 32 };

std::string sse_frame(std::optional<std::uint64_t> id, std::string_view event, std::string_view data) {
  std::string f;
  f.reserve(data.size() + 48);
  if (id) f += "id: " + std::to_string(*id) + "\n";
  f += "event: ";
  f += event;
  f += "\ndata: ";
  f += data;
  f += "\n\n";
  return f;
}

std::string dump(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

std::optional<std::uint64_t> parse_u64(std::string_view text) {
  if (text.empty() || text.size() > 19) return std::nullopt;
  std::uint64_t v = 0;
  for (char c : text) {
    if (c < '0' || c > '9') return std::nullopt;
    v = v * 10 + static_cast<std::uint64_t>(c - '0');
  }
  return v;
}

std::vector<std::string> split_path(std::string_view path) {
  std::vector<std::string> parts;
  std::size_t at = 0;
  while (at <= path.size()) {
    auto slash = path.find('/', at);
    if (slash == std::string_view::npos) slash = path.size();
    if (slash > at) parts.emplace_back(path.substr(at, slash - at));
    at = slash + 1;
  }
  return parts;
}

// A program or instance as ctl names it: web, web:01, web_01.
bool valid_program_name(std::string_view name) {
  if (name.empty() || name.size() > 80) return false;
  for (char c : name)
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '.' && c != '_' && c != '-' && c != ':') return false;
  return std::isalnum(static_cast<unsigned char>(name.front()));
}

}  // namespace

struct Server::Impl {
  runner::EventLoop& loop;
  ServerConfig config;
  std::function<void()> on_home_gone;
  std::unique_ptr<runner::HttpServer> http;
  std::map<std::string, Project> projects;
  std::map<std::string, std::string> last_summary, last_programs;  // what the page was told last

  // inotify: one watch per directory or file, each with the roles it plays.
  UniqueFd inotify;
  struct Watch {
    std::string project, file;
    unsigned roles = 0;
    int followers = 0;
  };
  std::map<int, Watch> watches;

  // Changes seen and not applied yet.
  std::set<std::string> pending_home_names;
  std::set<std::string> pending_rescans;
  std::map<std::string, std::set<std::string>> pending_runs;
  std::set<std::string> pending_supervisors;
  std::optional<runner::EventLoop::TimerId> apply_timer;

  // Live runs' batman processes, by (pid, start time): their exit re-reads the runs' files.
  struct PidWatch {
    UniqueFd fd;
    std::set<std::pair<std::string, std::string>> runs;
  };
  std::map<std::pair<pid_t, unsigned long long>, PidWatch> pid_watches;

  // Supervisors: one `status --json` at a time per project.
  struct SupervisorQuery {
    std::string project;
    UniqueFd fd;
    std::string in, out;
    pid_t peer = 0;
    bool again = false, done = false;
    runner::EventLoop::TimerId timer = 0;
  };
  std::map<std::string, std::unique_ptr<SupervisorQuery>> queries;
  std::map<std::string, std::pair<pid_t, UniqueFd>> supervisor_exits;

  // Event streams.
  std::uint64_t seq = 0;
  std::deque<std::pair<std::uint64_t, std::string>> ring;
  std::size_t ring_bytes = 0;
  std::map<std::uint64_t, HttpResponder> streams;
  std::uint64_t next_id = 1;
  std::optional<runner::EventLoop::TimerId> keepalive;

  // Log followers.
  struct Follower {
    std::string project, run_id, file;
    UniqueFd fd;
    std::uint64_t offset = 0;
    HttpResponder responder;
    bool scheduled = false;
  };
  std::map<std::uint64_t, std::unique_ptr<Follower>> followers;

  // Actions: a batman child each.
  struct Action {
    pid_t pid = 0;
    UniqueFd pidfd, output;
    std::string text;
    bool exited = false, eof = false, answered = false;
    int status = 0;
    HttpResponder responder;
    std::string what;
    runner::EventLoop::TimerId timer = 0;
  };
  std::map<std::uint64_t, std::unique_ptr<Action>> actions;

  Impl(runner::EventLoop& l, ServerConfig c, std::function<void()> gone)
      : loop(l), config(std::move(c)), on_home_gone(std::move(gone)) {
    // Event ids grow across restarts of the server, so a page that reconnects to a new one
    // with an old Last-Event-ID is told to reload (its id is older than the ring).
    seq = static_cast<std::uint64_t>(
              std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
                  .count()) *
          1000;
  }

  WallTime now() const { return std::chrono::system_clock::now(); }

  // ---- files ---------------------------------------------------------------------------

  Result<UniqueFd> open_project_dir(const std::string& project) {
    // $BATMAN_HOME is opened per use, never held: an fd on it would keep a removed home's
    // inode alive, and the server would not hear that it is gone.
    UniqueFd home(::open(config.home.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!home) return sys_error("open " + config.home);
    return open_dir_at(home.get(), project, false);
  }
  Result<UniqueFd> open_sub(const std::string& project, const char* sub) {
    auto dir = BATMAN_TRY(open_project_dir(project));
    return open_dir_at(dir.get(), sub, false);
  }

  int add_watch(const std::string& path, std::uint32_t mask, unsigned role, const std::string& project,
                const std::string& file) {
    const int wd = ::inotify_add_watch(inotify.get(), path.c_str(), mask | IN_DONT_FOLLOW | IN_MASK_ADD);
    if (wd < 0) return -1;
    Watch& w = watches[wd];
    w.project = project;
    w.file = file;
    w.roles |= role;
    return wd;
  }

  void watch_project(const std::string& name) {
    const std::string dir = config.home + "/" + name;
    add_watch(dir, IN_CREATE | IN_MOVED_TO | IN_ONLYDIR, kProjectDir, name, "");
    add_watch(dir + "/state", IN_CLOSE_WRITE | IN_MOVED_TO | IN_MOVED_FROM | IN_DELETE | IN_CREATE | IN_ONLYDIR,
              kStateDir, name, "");
    add_watch(dir + "/logs", IN_CREATE | IN_MOVED_TO | IN_ONLYDIR, kLogsDir, name, "");
    add_watch(dir + "/logs/events.log", IN_MODIFY, kEventsLog, name, "events.log");
  }

  // Every state file of `name`, as load_runs reads them (the file's place names the run).
  std::map<std::string, runner::RunState> read_project(const std::string& name, bool& has_socket) {
    std::map<std::string, runner::RunState> runs;
    has_socket = false;
    auto state = open_sub(name, "state");
    if (!state) return runs;
    auto files = list_dir(state->get());
    if (!files) return runs;
    for (const auto& f : *files) {
      if (f == "control.sock") has_socket = true;
      if (f.size() < 6 || f[0] == '.' || !f.ends_with(".json")) continue;
      const std::string stem = f.substr(0, f.size() - 5);
      auto s = runner::read_state(state->get(), stem);
      if (!s || s->run_id.empty()) continue;
      s->project = name;
      s->run_id = stem;
      runs.emplace(stem, std::move(*s));
    }
    return runs;
  }

  void load_project(const std::string& name, bool announce) {
    watch_project(name);
    bool has_socket = false;
    auto runs = read_project(name, has_socket);
    Project& p = projects[name];
    const bool is_new = p.name.empty();
    p.name = name;
    // Diff against what was known: the page hears of each change.
    if (announce) {
      for (const auto& [stem, s] : runs) {
        auto it = p.runs.find(stem);
        if (it == p.runs.end() || runner::to_json(it->second) != runner::to_json(s)) emit("run", run_json(s, now()));
      }
      for (const auto& [stem, s] : p.runs)
        if (!runs.contains(stem)) emit("run-removed", {{"project", name}, {"run_id", stem}});
    }
    p.runs = std::move(runs);
    for (const auto& [stem, s] : p.runs)
      if (s.live_status()) watch_batman(s);
    if (has_socket) query_supervisor(name);
    else set_supervisor(name, std::nullopt, 0, announce);
    if (announce) announce_project(name, is_new);
  }

  void remove_project(const std::string& name) {
    if (!projects.erase(name)) return;
    last_summary.erase(name);
    last_programs.erase(name);
    emit("project-removed", {{"project", name}});
  }

  void reload_run(const std::string& project, const std::string& stem) {
    auto pit = projects.find(project);
    if (pit == projects.end()) return;
    Project& p = pit->second;
    std::optional<runner::RunState> fresh;
    if (auto state = open_sub(project, "state")) {
      if (auto s = runner::read_state(state->get(), stem); s && !s->run_id.empty()) {
        s->project = project;
        s->run_id = stem;
        fresh = std::move(*s);
      }
    }
    auto it = p.runs.find(stem);
    if (!fresh) {
      if (it == p.runs.end()) return;
      p.runs.erase(it);
      emit("run-removed", {{"project", project}, {"run_id", stem}});
      return;
    }
    if (it != p.runs.end() && runner::to_json(it->second) == runner::to_json(*fresh)) return;
    if (fresh->live_status()) watch_batman(*fresh);
    emit("run", run_json(*fresh, now()));
    p.runs[stem] = std::move(*fresh);
  }

  // The project's summary and programs, when they changed since the page was told.
  void announce_project(const std::string& name, bool force = false) {
    auto it = projects.find(name);
    if (it == projects.end()) return;
    json summary = project_summary(it->second);
    std::string text = dump(summary);
    if (force || last_summary[name] != text) {
      last_summary[name] = text;
      emit("project", summary);
    }
    json programs = programs_json(it->second, now());
    std::string ptext = dump(programs);
    if (last_programs[name] != ptext) {
      last_programs[name] = ptext;
      emit("programs", {{"project", name}, {"items", programs}});
    }
  }

  // ---- live runs' batman ---------------------------------------------------------------

  void watch_batman(const runner::RunState& s) {
    const auto key = std::pair{s.batman_pid, s.batman_start_time};
    if (auto it = pid_watches.find(key); it != pid_watches.end()) {
      it->second.runs.insert({s.project, s.run_id});
      return;
    }
    const int fd = static_cast<int>(::syscall(SYS_pidfd_open, s.batman_pid, 0));
    if (fd < 0) return;
    UniqueFd owner(fd);
    if (!runner::process_matches(s.batman_pid, s.batman_start_time)) {
      note_run(s.project, s.run_id);  // gone meanwhile: read again (lost)
      return;
    }
    PidWatch& w = pid_watches[key];
    w.fd = std::move(owner);
    w.runs.insert({s.project, s.run_id});
    (void)loop.watch_exit(fd, [this, key] {
      auto it = pid_watches.find(key);
      if (it == pid_watches.end()) return;
      for (const auto& [project, run] : it->second.runs) note_run(project, run);
      pid_watches.erase(it);
    });
  }

  // ---- supervisors ---------------------------------------------------------------------

  void query_supervisor(const std::string& project) {
    if (auto it = queries.find(project); it != queries.end()) {
      it->second->again = true;
      return;
    }
    const std::string path = cli::control_socket_path(config.home, project);
    struct stat st{};
    if (::lstat(path.c_str(), &st) != 0) {
      set_supervisor(project, std::nullopt, 0, true);
      return;
    }
    auto fd = cli::connect_control(path);
    if (!fd) {
      set_supervisor(project, std::nullopt, 0, true);
      return;
    }
    auto q = std::make_unique<SupervisorQuery>();
    q->project = project;
    q->fd = std::move(*fd);
    ucred peer{};
    socklen_t len = sizeof peer;
    if (::getsockopt(q->fd.get(), SOL_SOCKET, SO_PEERCRED, &peer, &len) == 0) q->peer = peer.pid;
    ::fcntl(q->fd.get(), F_SETFL, ::fcntl(q->fd.get(), F_GETFL) | O_NONBLOCK);
    const std::string request = "status --json\n";
    if (::send(q->fd.get(), request.data(), request.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(request.size())) {
      set_supervisor(project, std::nullopt, 0, true);
      return;
    }
    SupervisorQuery* raw = q.get();
    auto watched = loop.watch(raw->fd.get(), EPOLLIN | EPOLLRDHUP, [this, raw](std::uint32_t) { read_supervisor(*raw); });
    if (!watched) {
      set_supervisor(project, std::nullopt, 0, true);
      return;
    }
    raw->timer = loop.add_timer_after(kSupervisorTimeout, [this, raw] { finish_query(*raw, std::nullopt); });
    queries[project] = std::move(q);
  }

  void read_supervisor(SupervisorQuery& q) {
    if (q.done) return;
    char buf[16384];
    for (;;) {
      const ssize_t n = ::read(q.fd.get(), buf, sizeof buf);
      if (n > 0) {
        q.in.append(buf, static_cast<std::size_t>(n));
        if (q.in.size() > (16 << 20)) return finish_query(q, std::nullopt);
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && errno == EAGAIN) break;
      // EOF or an error before {"exit":...}: no answer.
      return finish_query(q, std::nullopt);
    }
    for (;;) {
      const auto nl = q.in.find('\n');
      if (nl == std::string::npos) return;
      const auto j = json::parse(q.in.substr(0, nl), nullptr, false);
      q.in.erase(0, nl + 1);
      if (!j.is_object()) return finish_query(q, std::nullopt);
      if (auto it = j.find("out"); it != j.end() && it->is_string()) q.out += it->get<std::string>();
      if (auto it = j.find("exit"); it != j.end()) {
        if (!it->is_number_integer() || it->get<int>() != 0) return finish_query(q, std::nullopt);
        const auto rows = json::parse(q.out, nullptr, false);
        return finish_query(q, parse_program_rows(rows));
      }
    }
  }

  void finish_query(SupervisorQuery& q, std::optional<std::vector<ProgramRow>> rows) {
    if (q.done) return;
    q.done = true;
    loop.unwatch(q.fd.get());
    loop.cancel_timer(q.timer);
    const std::string project = q.project;
    const bool again = q.again;
    const pid_t peer = rows ? q.peer : 0;
    set_supervisor(project, std::move(rows), peer, true);
    // Dropped after this round: the fd's callback may be the one running.
    loop.defer([this, project, again] {
      queries.erase(project);
      if (again) query_supervisor(project);
    });
  }

  void set_supervisor(const std::string& project, std::optional<std::vector<ProgramRow>> rows, pid_t pid,
                      bool announce) {
    auto it = projects.find(project);
    if (it == projects.end()) return;
    Project& p = it->second;
    p.supervisor_rows = std::move(rows);
    p.supervisor_pid = p.supervisor_rows ? pid : 0;
    // Its exit is a change too (nothing else may be written when it is killed).
    auto& [watched_pid, fd] = supervisor_exits[project];
    if (p.supervisor_pid > 0 && watched_pid != p.supervisor_pid) {
      if (fd) loop.unwatch(fd.get());
      fd.reset(static_cast<int>(::syscall(SYS_pidfd_open, p.supervisor_pid, 0)));
      watched_pid = p.supervisor_pid;
      if (fd) (void)loop.watch_exit(fd.get(), [this, project] {
        auto e = supervisor_exits.find(project);
        if (e != supervisor_exits.end()) {
          e->second.first = 0;
          e->second.second.reset();
        }
        pending_supervisors.insert(project);
        schedule_apply();
      });
    }
    if (announce) announce_project(project);
  }

  // ---- inotify -------------------------------------------------------------------------

  void note_run(const std::string& project, const std::string& stem) {
    pending_runs[project].insert(stem);
    schedule_apply();
  }

  void schedule_apply() {
    if (apply_timer) return;
    apply_timer = loop.add_timer_after(kCoalesce, [this] {
      apply_timer.reset();
      apply_changes();
    });
  }

  void on_inotify() {
    alignas(inotify_event) char buf[64 << 10];
    for (;;) {
      const ssize_t n = ::read(inotify.get(), buf, sizeof buf);
      if (n <= 0) break;
      for (char* at = buf; at < buf + n;) {
        auto* e = reinterpret_cast<inotify_event*>(at);
        at += sizeof(inotify_event) + e->len;
        on_event(*e, e->len ? std::string(e->name) : std::string());
      }
    }
  }

  void on_event(const inotify_event& e, const std::string& name) {
    if (e.mask & IN_Q_OVERFLOW) {
      // Events were lost: read everything again.
      for (const auto& [project, p] : projects) pending_rescans.insert(project);
      for (const auto& project : cli::list_projects()) pending_home_names.insert(project);
      schedule_apply();
      return;
    }
    auto it = watches.find(e.wd);
    if (it == watches.end()) return;
    if (e.mask & IN_IGNORED) {
      watches.erase(it);
      return;
    }
    const Watch w = it->second;
    if (w.roles & kHome) {
      // The home removed or moved away; or its dashboard.lock removed (an rm -rf of the home
      // starts there: the lock file's open fd keeps the directory's inode, so IN_DELETE_SELF
      // comes only once this server is gone), after which another server could start.
      if ((e.mask & (IN_DELETE_SELF | IN_MOVE_SELF)) ||
          ((e.mask & (IN_DELETE | IN_MOVED_FROM)) && name == "dashboard.lock")) {
        if (on_home_gone) loop.defer(on_home_gone);
        return;
      }
      if (!name.empty() && validate_name(name, "project")) pending_home_names.insert(name);
    }
    if ((w.roles & kProjectDir) && (name == "state" || name == "logs")) pending_rescans.insert(w.project);
    if (w.roles & kStateDir) {
      if (name.size() > 5 && name[0] != '.' && name.ends_with(".json"))
        pending_runs[w.project].insert(name.substr(0, name.size() - 5));
      else if (name == "control.sock")
        pending_supervisors.insert(w.project);
    }
    if (w.roles & kLogsDir) {
      if (name == "events.log")
        add_watch(config.home + "/" + w.project + "/logs/events.log", IN_MODIFY, kEventsLog, w.project, "events.log");
      reopen_followers(w.project, name);
    }
    if ((w.roles & kEventsLog) && (e.mask & IN_MODIFY)) {
      // A supervisor logs each transition there (backoff, fatal, running...).
      if (auto p = projects.find(w.project); p != projects.end() && p->second.supervisor_rows)
        pending_supervisors.insert(w.project);
      else if (struct stat st{}; ::lstat(cli::control_socket_path(config.home, w.project).c_str(), &st) == 0)
        pending_supervisors.insert(w.project);
    }
    if ((w.roles & kFollowedLog) && (e.mask & IN_MODIFY)) pump_followers(w.project, w.file);
    if (!pending_home_names.empty() || !pending_rescans.empty() || !pending_runs.empty() ||
        !pending_supervisors.empty())
      schedule_apply();
  }

  void apply_changes() {
    auto home_names = std::exchange(pending_home_names, {});
    auto rescans = std::exchange(pending_rescans, {});
    auto runs = std::exchange(pending_runs, {});
    auto supervisors = std::exchange(pending_supervisors, {});
    for (const auto& name : home_names) {
      UniqueFd home(::open(config.home.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
      struct stat st{};
      if (home && ::fstatat(home.get(), name.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR(st.st_mode))
        rescans.insert(name);
      else
        remove_project(name);
    }
    std::set<std::string> touched;
    for (const auto& name : rescans) {
      load_project(name, true);
      runs.erase(name);
    }
    for (const auto& [project, stems] : runs) {
      for (const auto& stem : stems) reload_run(project, stem);
      touched.insert(project);
    }
    for (const auto& project : supervisors)
      if (projects.contains(project)) query_supervisor(project);
    for (const auto& project : touched) announce_project(project);
  }

  // ---- event streams -------------------------------------------------------------------

  void emit(std::string_view event, const json& data) {
    const std::uint64_t id = ++seq;
    std::string frame = sse_frame(id, event, dump(data));
    for (auto it = streams.begin(); it != streams.end();) {
      if (!it->second.alive() || it->second.backlog() > kStreamBacklog) {
        // A client this far behind reconnects and replays from the ring (or reloads).
        it->second.end();
        it = streams.erase(it);
        continue;
      }
      it->second.write(frame);
      ++it;
    }
    ring_bytes += frame.size();
    ring.emplace_back(id, std::move(frame));
    while (ring.size() > kRingEvents || ring_bytes > kRingBytes) {
      ring_bytes -= ring.front().second.size();
      ring.pop_front();
    }
  }

  void arm_keepalive() {
    if (keepalive || (streams.empty() && followers.empty())) return;
    keepalive = loop.add_timer_after(kKeepalive, [this] {
      keepalive.reset();
      for (auto& [id, r] : streams) r.write(": keepalive\n\n");
      for (auto& [id, f] : followers) f->responder.write(": keepalive\n\n");
      arm_keepalive();
    });
  }

  void serve_events(const HttpRequest& req, HttpResponder r) {
    std::optional<std::uint64_t> since = parse_u64(req.header("last-event-id"));
    if (!since)
      if (auto p = req.param("since")) since = parse_u64(*p);
    r.start_stream(200, "text/event-stream", stream_headers());
    // How long the browser waits before it reconnects.
    r.write("retry: 1000\n\n");
    if (since) {
      if (*since > seq || (*since < seq && (ring.empty() || ring.front().first > *since + 1))) {
        // Older than what is kept (or from another server): the page reloads its data.
        r.write(sse_frame(seq, "reset", dump({{"seq", seq}})));
      } else {
        for (const auto& [id, frame] : ring)
          if (id > *since) r.write(frame);
      }
    } else {
      r.write(sse_frame(seq, "hello", dump({{"seq", seq}})));
    }
    const std::uint64_t id = next_id++;
    r.on_close([this, id] { streams.erase(id); });
    streams.emplace(id, r);
    arm_keepalive();
  }

  // ---- logs ----------------------------------------------------------------------------

  const runner::RunState* find_run(const std::string& project, const std::string& run) {
    auto p = projects.find(project);
    if (p == projects.end()) return nullptr;
    auto it = p->second.runs.find(cli::state_name(run));
    return it == p->second.runs.end() ? nullptr : &it->second;
  }

  Result<std::string> log_name_of(const runner::RunState& s, const std::string& stream) {
    if (stream != "stdout" && stream != "stderr") return fail("stream must be stdout or stderr");
    auto name = log_file_name(s, config.home + "/" + s.project, stream);
    if (!name)
      return fail("the log of " + s.project + " " + s.run_id + " is not in its project's logs/ directory (" +
                  printable(s.log) + "): the dashboard reads files inside $BATMAN_HOME only");
    return *name;
  }

  Result<UniqueFd> open_log(const std::string& project, const std::string& file) {
    auto logs = BATMAN_TRY(open_sub(project, "logs"));
    return open_regular_at(logs.get(), file, O_RDONLY);
  }

  // The run and log file a log request names (project, run, stream), or its 404 answered.
  struct LogTarget {
    std::string project;
    const runner::RunState* run = nullptr;
    std::string file;
  };
  std::optional<LogTarget> log_target(const HttpRequest& req, HttpResponder& r) {
    LogTarget t{req.param("project").value_or(""), nullptr, {}};
    const std::string run = req.param("run").value_or("");
    t.run = find_run(t.project, run);
    if (!t.run) {
      respond_error(r, 404, "no run '" + printable(run) + "' in project '" + printable(t.project) + "'");
      return std::nullopt;
    }
    auto name = log_name_of(*t.run, req.param("stream").value_or("stdout"));
    if (!name) {
      respond_error(r, 404, name.error().message);
      return std::nullopt;
    }
    t.file = std::move(*name);
    return t;
  }

  void serve_log(const HttpRequest& req, HttpResponder r) {
    const auto target = log_target(req, r);
    if (!target) return;
    const auto& [project, run, file] = *target;
    auto fd = open_log(project, file);
    if (!fd) return respond_error(r, 404, fd.error().message);
    struct stat st{};
    ::fstat(fd->get(), &st);
    const auto size = static_cast<std::uint64_t>(st.st_size);
    std::uint64_t limit = kLogTail;
    if (auto l = req.param("limit")) {
      auto v = parse_u64(*l);
      if (!v) return respond_error(r, 400, "limit must be a number of bytes");
      limit = std::min<std::uint64_t>(*v, kLogMaxLimit);
    }
    std::uint64_t offset = size > limit ? size - limit : 0;
    if (auto o = req.param("offset")) {
      auto v = parse_u64(*o);
      if (!v) return respond_error(r, 400, "offset must be a number of bytes");
      offset = std::min(*v, size);
    }
    std::string data(static_cast<std::size_t>(std::min(limit, size - offset)), '\0');
    const ssize_t n = data.empty() ? 0 : ::pread(fd->get(), data.data(), data.size(), static_cast<off_t>(offset));
    data.resize(n > 0 ? static_cast<std::size_t>(n) : 0);
    data.resize(utf8_complete_prefix(data));
    json j = {{"project", project},          {"run_id", run->run_id},  {"file", file},
              {"size", size},                {"offset", offset},     {"next_offset", offset + data.size()},
              {"data", data},                {"live", run->live_status()}};
    respond_json(r, j);
  }

  void serve_log_stream(const HttpRequest& req, HttpResponder r) {
    const auto target = log_target(req, r);
    if (!target) return;
    const auto& [project, run, file] = *target;
    auto f = std::make_unique<Follower>();
    f->project = project;
    f->run_id = run->run_id;
    f->file = file;
    f->responder = r;
    std::optional<std::uint64_t> from = parse_u64(req.header("last-event-id"));
    if (!from)
      if (auto o = req.param("offset")) from = parse_u64(*o);
    if (auto fd = open_log(project, file)) {
      f->fd = std::move(*fd);
      struct stat st{};
      ::fstat(f->fd.get(), &st);
      const auto size = static_cast<std::uint64_t>(st.st_size);
      f->offset = from ? std::min(*from, size) : (size > kLogTail ? size - kLogTail : 0);
    } else if (fd.error().code != ENOENT) {
      return respond_error(r, 404, fd.error().message);
    }
    r.start_stream(200, "text/event-stream", stream_headers());
    r.write("retry: 1000\n\n");
    const std::uint64_t id = next_id++;
    add_watch(config.home + "/" + project + "/logs/" + file, IN_MODIFY, kFollowedLog, project, file);
    for (auto& [wd, w] : watches)
      if ((w.roles & kFollowedLog) && w.project == project && w.file == file) ++w.followers;
    r.on_close([this, id] { drop_follower(id); });
    Follower* raw = f.get();
    followers.emplace(id, std::move(f));
    arm_keepalive();
    pump(*raw);
  }

  void drop_follower(std::uint64_t id) {
    auto it = followers.find(id);
    if (it == followers.end()) return;
    const std::string project = it->second->project, file = it->second->file;
    followers.erase(it);
    for (auto w = watches.begin(); w != watches.end(); ++w) {
      if (!(w->second.roles & kFollowedLog) || w->second.project != project || w->second.file != file) continue;
      if (--w->second.followers <= 0) {
        w->second.roles &= ~static_cast<unsigned>(kFollowedLog);
        w->second.followers = 0;
        if (w->second.roles == 0) ::inotify_rm_watch(inotify.get(), w->first);  // IN_IGNORED erases it
      }
    }
  }

  void pump_followers(const std::string& project, const std::string& file) {
    for (auto& [id, f] : followers)
      if (f->project == project && f->file == file) pump(*f);
  }

  void reopen_followers(const std::string& project, const std::string& file) {
    bool any = false;
    for (auto& [id, f] : followers) {
      if (f->project != project || f->file != file) continue;
      auto fd = open_log(project, file);
      if (!fd) continue;
      f->fd = std::move(*fd);
      any = true;
    }
    if (!any) return;
    // A new file (created, or rotated in): watch it, and start it over if it is shorter.
    add_watch(config.home + "/" + project + "/logs/" + file, IN_MODIFY, kFollowedLog, project, file);
    int count = 0;
    for (auto& [id, f] : followers)
      if (f->project == project && f->file == file) ++count;
    for (auto& [wd, w] : watches)
      if ((w.roles & kFollowedLog) && w.project == project && w.file == file) w.followers = count;
    pump_followers(project, file);
  }

  void pump(Follower& f) {
    if (!f.fd || !f.responder.alive()) return;
    if (f.responder.backlog() > kStreamBacklog / 4) return retry_later(f);
    struct stat st{};
    if (::fstat(f.fd.get(), &st) != 0) return;
    const auto size = static_cast<std::uint64_t>(st.st_size);
    if (size < f.offset) {
      f.offset = 0;
      f.responder.write(sse_frame(0, "truncated", dump({{"offset", 0}})));
    }
    while (f.offset < size && f.responder.backlog() <= kStreamBacklog / 4) {
      std::string data(static_cast<std::size_t>(std::min<std::uint64_t>(kLogChunk, size - f.offset)), '\0');
      const ssize_t n = ::pread(f.fd.get(), data.data(), data.size(), static_cast<off_t>(f.offset));
      if (n <= 0) break;
      data.resize(static_cast<std::size_t>(n));
      data.resize(utf8_complete_prefix(data));
      if (data.empty()) break;
      const std::uint64_t at = f.offset;
      f.offset += data.size();
      f.responder.write(sse_frame(f.offset, "log", dump({{"offset", at}, {"data", data}})));
    }
    if (f.offset < size && f.responder.backlog() > kStreamBacklog / 4) retry_later(f);
  }

  // The client is behind: read on shortly rather than queue more.
  void retry_later(Follower& f) {
    if (f.scheduled) return;
    f.scheduled = true;
    const std::uint64_t id = follower_id(&f);
    loop.add_timer_after(std::chrono::milliseconds(100), [this, id] {
      auto it = followers.find(id);
      if (it == followers.end()) return;
      it->second->scheduled = false;
      pump(*it->second);
    });
  }

  std::uint64_t follower_id(const Follower* f) const {
    for (const auto& [id, p] : followers)
      if (p.get() == f) return id;
    return 0;
  }

  // ---- actions -------------------------------------------------------------------------

  void run_action(std::vector<std::string> args, std::string what, HttpResponder r) {
    std::vector<std::string> argv{"batman"};
    argv.insert(argv.end(), args.begin(), args.end());
    // The child works in this very home, whatever the environment says.
    std::vector<std::string> env_strings{"BATMAN_HOME=" + config.home};
    for (char** e = environ; *e; ++e)
      if (!std::string_view(*e).starts_with("BATMAN_HOME=")) env_strings.emplace_back(*e);
    std::vector<char*> envp;
    for (auto& e : env_strings) envp.push_back(e.data());
    envp.push_back(nullptr);
    auto child = cli::spawn_piped(argv, config.self_exe, envp.data());
    if (!child) return respond_error(r, 500, "start " + config.self_exe + ": " + child.error().message);
    const pid_t pid = child->pid;
    UniqueFd read_end = std::move(child->output);
    auto a = std::make_unique<Action>();
    a->pid = pid;
    a->pidfd.reset(static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)));
    a->output = std::move(read_end);
    a->responder = r;
    a->what = std::move(what);
    const std::uint64_t id = next_id++;
    Action* raw = a.get();
    actions.emplace(id, std::move(a));
    ::fcntl(raw->output.get(), F_SETFL, ::fcntl(raw->output.get(), F_GETFL) | O_NONBLOCK);
    (void)loop.watch(raw->output.get(), EPOLLIN, [this, id](std::uint32_t) { read_action(id); });
    if (raw->pidfd) {
      (void)loop.watch_exit(raw->pidfd.get(), [this, id] { reap_action(id); });
    } else {
      // No pidfd (old kernel): the output's end is taken as the child's.
      raw->exited = false;
    }
    raw->timer = loop.add_timer_after(kActionTimeout, [this, id] {
      auto it = actions.find(id);
      if (it == actions.end() || it->second->answered) return;
      it->second->answered = true;
      respond_json(it->second->responder,
                   {{"ok", false}, {"error", it->second->what + ": still running after 120 s"},
                    {"output", it->second->text}},
                   504);
    });
  }

  void read_action(std::uint64_t id) {
    auto it = actions.find(id);
    if (it == actions.end()) return;
    Action& a = *it->second;
    char buf[4096];
    for (;;) {
      const ssize_t n = ::read(a.output.get(), buf, sizeof buf);
      if (n > 0) {
        if (a.text.size() < (64 << 10)) a.text.append(buf, static_cast<std::size_t>(n));
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && errno == EAGAIN) return;
      a.eof = true;
      loop.unwatch(a.output.get());
      if (!a.pidfd) {
        int status = 0;
        while (::waitpid(a.pid, &status, 0) < 0 && errno == EINTR) {
        }
        a.status = status;
        a.exited = true;
      }
      break;
    }
    finish_action(id);
  }

  void reap_action(std::uint64_t id) {
    auto it = actions.find(id);
    if (it == actions.end()) return;
    Action& a = *it->second;
    int status = 0;
    while (::waitpid(a.pid, &status, 0) < 0 && errno == EINTR) {
    }
    a.status = status;
    a.exited = true;
    finish_action(id);
  }

  void finish_action(std::uint64_t id) {
    auto it = actions.find(id);
    if (it == actions.end()) return;
    Action& a = *it->second;
    if (!a.exited || !a.eof) return;
    const int code = WIFEXITED(a.status) ? WEXITSTATUS(a.status) : 128 + WTERMSIG(a.status);
    if (!a.answered) {
      a.answered = true;
      respond_json(a.responder, {{"ok", code == 0}, {"exit_code", code}, {"output", a.text}, {"action", a.what}},
                   code == 0 ? 200 : 409);
    }
    loop.cancel_timer(a.timer);
    loop.defer([this, id] { actions.erase(id); });
  }

  // ---- HTTP ----------------------------------------------------------------------------

  HttpHeaders security_headers() const {
    return {{"X-Content-Type-Options", "nosniff"},
            {"Referrer-Policy", "no-referrer"},
            {"X-Frame-Options", "DENY"},
            {"Content-Security-Policy",
             "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; "
             "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"}};
  }
  HttpHeaders stream_headers() const {
    auto h = security_headers();
    h.emplace_back("Cache-Control", "no-store");
    h.emplace_back("X-Accel-Buffering", "no");
    return h;
  }

  void respond_json(HttpResponder& r, const json& j, int status = 200) {
    auto h = security_headers();
    h.emplace_back("Cache-Control", "no-store");
    r.respond(status, "application/json", dump(j) + "\n", h);
  }
  void respond_error(HttpResponder& r, int status, const std::string& message) {
    respond_json(r, {{"error", message}}, status);
  }

  bool authorized(const HttpRequest& req) const {
    if (config.access_token.empty()) return true;
    if (auto b = bearer_token(req.header("authorization")); b && constant_time_equal(*b, config.access_token))
      return true;
    if (auto c = cookie_value(req.header("cookie"), "batman_token"); c && constant_time_equal(*c, config.access_token))
      return true;
    return false;
  }

  // One request; whatever goes wrong in answering it is that request's 500, never the
  // server's end.
  void handle(const HttpRequest& req, HttpResponder r) {
    try {
      route(req, r);
    } catch (const std::exception& e) {
      respond_error(r, 500, std::string("internal error: ") + e.what());
    }
  }

  void route(const HttpRequest& req, HttpResponder& r) {
    const std::string& host = req.header("host");
    if (!host_allowed(host, config.listening))
      return respond_error(r, 421,
                           "this dashboard answers to " + std::string(config.listening.loopback ? "127.0.0.1, localhost or [::1]" : "its own address") +
                               " with port " + std::to_string(config.listening.port) + " only (Host: " +
                               printable(host.substr(0, 100)) + ")");
    if (!origin_allowed(req.header("origin"), host))
      return respond_error(r, 403, "cross-origin request refused (Origin: " + printable(req.header("origin").substr(0, 100)) + ")");
    if (req.header("sec-fetch-site") == "cross-site" && req.path != "/")
      return respond_error(r, 403, "cross-site request refused");
    if (!config.access_token.empty() && req.path == "/login") return login(req, r);
    if (!authorized(req))
      return respond_error(r, 401,
                           "this dashboard wants its access token: open the login URL 'batman dashboard --url' "
                           "prints, or send 'Authorization: Bearer TOKEN' (access_token in dashboard.json)");
    if (req.method == "POST") {
      const std::string& token = req.header("x-batman-token");
      if (token.empty() || !constant_time_equal(token, config.csrf_token))
        return respond_error(r, 403,
                             "POST needs the header X-Batman-Token with this server's token (token in dashboard.json)");
      return post(req, r);
    }
    if (req.method != "GET" && req.method != "HEAD") {
      auto h = security_headers();
      h.emplace_back("Allow", "GET, HEAD, POST");
      return r.respond(405, "application/json", "{\"error\":\"method not allowed\"}\n", h);
    }
    get(req, r);
  }

  void login(const HttpRequest& req, HttpResponder& r) {
    auto code = req.param("code");
    if (req.method != "GET" || !code || config.login_code.empty() || !constant_time_equal(*code, config.login_code))
      return respond_error(r, 401, "this login URL was used already or is wrong: 'batman dashboard --url' prints a fresh one");
    // One-time: the next login needs the next code (written to dashboard.json).
    config.login_code = random_token();
    if (config.on_login_code) config.on_login_code(config.login_code);
    auto h = security_headers();
    h.emplace_back("Set-Cookie", "batman_token=" + config.access_token + "; Path=/; HttpOnly; SameSite=Strict");
    h.emplace_back("Location", "/");
    h.emplace_back("Cache-Control", "no-store");
    r.respond(303, "text/plain; charset=utf-8", "logged in\n", h);
  }
  void get(const HttpRequest& req, HttpResponder& r) {
    const std::string& path = req.path;
    if (auto asset = find_web_asset(path)) {
      auto h = security_headers();
      h.emplace_back("Cache-Control", "no-store");
      std::string body(asset->body);
      if (asset->path == "/") {
        // The page's token for its POSTs: readable only by a same-origin page.
        const std::string marker = "__BATMAN_TOKEN__";
        if (auto at = body.find(marker); at != std::string::npos)
          body.replace(at, marker.size(), runner::html_escape(config.csrf_token));
      }
      return r.respond(200, asset->content_type, std::move(body), h);
    }
    if (path == "/metrics") {
      auto h = security_headers();
      h.emplace_back("Cache-Control", "no-store");
      return r.respond(200, kMetricsContentType, metrics_text(projects, now(), BATMAN_VERSION, streams.size()), h);
    }
    if (path == "/api/v1/events") return serve_events(req, r);
    if (path == "/api/v1/log") return serve_log(req, r);
    if (path == "/api/v1/log/stream") return serve_log_stream(req, r);
    if (path == "/api/v1" || path == "/api/v1/") {
      return respond_json(r, {{"version", BATMAN_VERSION},
                              {"home", config.home},
                              {"seq", seq},
                              {"endpoints",
                               {"/api/v1/overview", "/api/v1/projects", "/api/v1/runs", "/api/v1/runs/PROJECT/RUN-ID", "/api/v1/tasks",
                                "/api/v1/programs", "/api/v1/log", "/api/v1/log/stream", "/api/v1/events", "/metrics"}}});
    }
    if (path == "/api/v1/projects") {
      json items = json::array();
      for (const auto& [name, p] : projects) items.push_back(project_summary(p));
      return respond_json(r, {{"seq", seq}, {"items", items}});
    }
    if (path == "/api/v1/overview") return overview(req, r);
    if (path == "/api/v1/runs" || path == "/api/v1/tasks") {
      RunFilter f;
      f.project = req.param("project");
      f.status = req.param("status");
      f.kind = req.param("kind");
      f.text = req.param("q");
      f.live_only = req.param("live").value_or("") == "1";
      if (auto l = req.param("limit")) {
        auto v = parse_u64(*l);
        if (!v || *v == 0) return respond_error(r, 400, "limit must be a positive number");
        f.limit = static_cast<std::size_t>(std::min<std::uint64_t>(*v, 100000));
      }
      if (f.project && !projects.contains(*f.project))
        return respond_error(r, 404, "no project '" + printable(*f.project) + "'");
      const auto want = path == "/api/v1/tasks" ? std::vector<Category>{Category::Task}
                                                : std::vector<Category>{Category::Run, Category::Batch};
      json j = list_runs(projects, f, want, now());
      j["seq"] = seq;
      return respond_json(r, j);
    }
    if (path == "/api/v1/programs") {
      auto project = req.param("project");
      json items = json::array();
      for (const auto& [name, p] : projects) {
        if (project && name != *project) continue;
        for (auto& row : programs_json(p, now())) items.push_back(std::move(row));
      }
      if (project && !projects.contains(*project)) return respond_error(r, 404, "no project '" + printable(*project) + "'");
      return respond_json(r, {{"seq", seq}, {"items", items}});
    }
    const auto parts = split_path(path);
    if (parts.size() == 5 && parts[0] == "api" && parts[1] == "v1" && parts[2] == "runs") {
      const runner::RunState* s = find_run(parts[3], parts[4]);
      if (!s) return respond_error(r, 404, "no run '" + printable(parts[4]) + "' in project '" + printable(parts[3]) + "'");
      return respond_json(r, run_json(*s, now()));
    }
    respond_error(r, 404, "not found: " + printable(path.substr(0, 200)));
  }

  // What the page shows first, in one answer (one round trip instead of four): the project
  // list, and the newest runs, tasks and programs of every project or of ?project=.
  void overview(const HttpRequest& req, HttpResponder& r) {
    RunFilter f;
    f.project = req.param("project");
    f.limit = 100;
    if (auto l = req.param("limit")) {
      auto v = parse_u64(*l);
      if (!v || *v == 0) return respond_error(r, 400, "limit must be a positive number");
      f.limit = static_cast<std::size_t>(std::min<std::uint64_t>(*v, 100000));
    }
    if (f.project && !projects.contains(*f.project))
      return respond_error(r, 404, "no project '" + printable(*f.project) + "'");
    json summaries = json::array(), programs = json::array();
    for (const auto& [name, p] : projects) {
      summaries.push_back(project_summary(p));
      if (!f.project || name == *f.project)
        for (auto& row : programs_json(p, now())) programs.push_back(std::move(row));
    }
    respond_json(r, {{"seq", seq},
                     {"projects", summaries},
                     {"runs", list_runs(projects, f, {Category::Run, Category::Batch}, now())},
                     {"tasks", list_runs(projects, f, {Category::Task}, now())},
                     {"programs", programs}});
  }

  void post(const HttpRequest& req, HttpResponder& r) {
    const auto parts = split_path(req.path);
    // /api/v1/runs/PROJECT/RUN-ID/stop (a run, a batch, or a batch task)
    if (parts.size() == 6 && parts[0] == "api" && parts[1] == "v1" && parts[2] == "runs" && parts[5] == "stop") {
      const std::string& project = parts[3];
      const std::string& run = parts[4];
      if (!validate_name(project, "project") || !validate_name(cli::state_name(run), "run-id"))
        return respond_error(r, 400, "bad project or run-id");
      const runner::RunState* s = find_run(project, run);
      if (!s) return respond_error(r, 404, "no run '" + printable(run) + "' in project '" + printable(project) + "'");
      return run_action({"stop", project, s->run_id}, "stop " + project + " " + s->run_id, r);
    }
    // /api/v1/programs/PROJECT/NAME/{start,stop,restart}: through the supervisor, as `batman ctl`.
    if (parts.size() == 6 && parts[0] == "api" && parts[1] == "v1" && parts[2] == "programs" &&
        (parts[5] == "start" || parts[5] == "stop" || parts[5] == "restart")) {
      const std::string& project = parts[3];
      const std::string& name = parts[4];
      if (!validate_name(project, "project") || !valid_program_name(name))
        return respond_error(r, 400, "bad project or program name");
      auto p = projects.find(project);
      if (p == projects.end()) return respond_error(r, 404, "no project '" + printable(project) + "'");
      if (!p->second.supervisor_rows)
        return respond_error(r, 409, "no supervisor of project '" + project + "' is running: start it with 'taskmaster CONFIG'");
      const std::string socket = cli::control_socket_path(config.home, project);
      return run_action({"ctl", "--socket", socket, parts[5], name}, parts[5] + " " + project + " " + name, r);
    }
    respond_error(r, 404, "no such action: " + printable(req.path.substr(0, 200)));
  }
};

Result<std::unique_ptr<Server>> Server::start(runner::EventLoop& loop, UniqueFd listener, ServerConfig config,
                                              std::function<void()> on_home_gone) {
  auto impl = std::make_unique<Impl>(loop, std::move(config), std::move(on_home_gone));
  Impl* self = impl.get();
  self->inotify.reset(::inotify_init1(IN_NONBLOCK | IN_CLOEXEC));
  if (!self->inotify) return sys_error("inotify_init1");
  if (self->add_watch(self->config.home, IN_CREATE | IN_MOVED_TO | IN_MOVED_FROM | IN_DELETE | IN_DELETE_SELF |
                                             IN_MOVE_SELF | IN_ONLYDIR,
                      kHome, "", "") < 0)
    return sys_error("inotify on " + self->config.home);
  BATMAN_TRY(loop.watch(self->inotify.get(), EPOLLIN, [self](std::uint32_t) { self->on_inotify(); }));
  for (const auto& name : cli::list_projects()) self->load_project(name, false);
  for (const auto& [name, p] : self->projects) {
    self->last_summary[name] = dump(project_summary(p));
    self->last_programs[name] = dump(programs_json(p, self->now()));
  }
  runner::HttpServer::Options options;
  options.max_clients = 256;
  // Without --token, the dashboard is its user's alone (and root's), as the control socket
  // is: another user of this machine connecting to the loopback port gets 403, so cannot
  // read the page's CSRF token, the logs, or act.
  options.check_loopback_peer = self->config.access_token.empty();
  auto http = runner::HttpServer::serve(loop, std::move(listener), options,
                                        [self](const HttpRequest& req, HttpResponder r) { self->handle(req, r); });
  if (!http) return std::unexpected(http.error());
  self->http = std::move(*http);
  return std::unique_ptr<Server>(new Server(std::move(impl)));
}

Server::Server(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Server::~Server() {
  for (auto& [id, a] : impl_->actions) {
    if (a->output) impl_->loop.unwatch(a->output.get());
    if (a->pidfd) impl_->loop.unwatch(a->pidfd.get());
  }
  for (auto& [key, w] : impl_->pid_watches) impl_->loop.unwatch(w.fd.get());
  for (auto& [project, e] : impl_->supervisor_exits)
    if (e.second) impl_->loop.unwatch(e.second.get());
  for (auto& [project, q] : impl_->queries) impl_->loop.unwatch(q->fd.get());
  if (impl_->inotify) impl_->loop.unwatch(impl_->inotify.get());
  impl_->http.reset();
}

std::size_t Server::clients() const { return impl_->http ? impl_->http->clients() : 0; }
void Server::flush(Duration timeout) {
  if (impl_->http) impl_->http->flush(timeout);
}

}  // namespace batman::dashboard
