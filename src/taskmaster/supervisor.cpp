// The Taskmaster supervisor: one Job per program instance, commands that complete when the
// instances get where they were sent, and the per-instance reload of SPEC §9.
#include "src/taskmaster/supervisor.hpp"

#include <fcntl.h>
#include <sys/epoll.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>

#include "common/duration.hpp"
#include "common/fs.hpp"
#include "common/signals.hpp"
#include "common/time_format.hpp"
#include "isolation/cgroups.hpp"
#include "isolation/spawn.hpp"
#include "runner/launch.hpp"
#include "runner/state_store.hpp"
#include "src/taskmaster/supervisor_config.hpp"

namespace batman::runner {

// ---------------------------------------------------------------------------------------
// Pure parts: names, comparison, the reload plan, status formatting.

bool same_program(const ProgramConfig& a, const ProgramConfig& b) {
  const RestartRules& ra = a.rules;
  const RestartRules& rb = b.rules;
  return a.name == b.name && a.command == b.command && a.autostart == b.autostart &&
         ra.autorestart == rb.autorestart && ra.exitcodes == rb.exitcodes &&
         ra.startretries == rb.startretries && ra.starttime == rb.starttime &&
         ra.stopsignal == rb.stopsignal && ra.stoptime == rb.stoptime &&
         a.stdout_log == b.stdout_log && a.stderr_log == b.stderr_log && a.env == b.env &&
         a.workingdir == b.workingdir && a.umask == b.umask && a.isolation == b.isolation &&
         a.tier == b.tier && a.profile == b.profile && a.resolved_profile == b.resolved_profile &&
         a.user == b.user && a.uid == b.uid && a.gid == b.gid && a.process_name == b.process_name &&
         a.numprocs_start == b.numprocs_start && a.redirect_stderr == b.redirect_stderr && a.group == b.group;
}

const ProgramConfig* SupervisorConfig::find(const std::string& name) const {
  for (const auto& p : programs)
    if (p.name == name) return &p;
  return nullptr;
}

std::string instance_name(const std::string& program, int index, int numprocs) {
  if (numprocs <= 1 && index == 0) return program;
  char suffix[16];
  std::snprintf(suffix, sizeof suffix, ":%02d", index);
  return program + suffix;
}

std::string instance_file_stem(const InstanceKey& key) {
  char suffix[16];
  std::snprintf(suffix, sizeof suffix, "_%02d", key.index);
  return key.program + suffix;
}

namespace {
bool uses_numprocs(const ProgramConfig& p) {
  auto in = [](const std::string& text) { return cli::mentions_expansion(text, "numprocs"); };
  if (in(p.command) || in(p.workingdir) || in(p.stdout_log.path) || in(p.stderr_log.path)) return true;
  return std::any_of(p.env.begin(), p.env.end(), [&](const auto& kv) { return in(kv.second); });
}
}  // namespace

ReloadPlan plan_reload(const SupervisorConfig& before, const SupervisorConfig& after) {
  ReloadPlan plan;
  for (const auto& old : before.programs) {
    const ProgramConfig* now = after.find(old.name);
    if (!now) {
      plan.removed_programs.push_back(old.name);
      for (int i = 0; i < old.numprocs; ++i) plan.stop.push_back({old.name, i});
      continue;
    }
    // %(numprocs)d makes numprocs part of what an instance runs.
    bool changed = !same_program(old, *now) || (old.numprocs != now->numprocs && uses_numprocs(*now));
    if (changed) plan.changed_programs.push_back(old.name);
    int common = std::min(old.numprocs, now->numprocs);
    for (int i = 0; i < common; ++i) (changed ? plan.restart : plan.keep).push_back({old.name, i});
    for (int i = common; i < old.numprocs; ++i) plan.stop.push_back({old.name, i});
    for (int i = common; i < now->numprocs; ++i) plan.start.push_back({old.name, i});
    if (!changed && old.numprocs != now->numprocs) plan.changed_programs.push_back(old.name);
  }
  for (const auto& now : after.programs) {
    if (before.find(now.name)) continue;
    plan.added_programs.push_back(now.name);
    for (int i = 0; i < now.numprocs; ++i) plan.start.push_back({now.name, i});
  }
  return plan;
}

std::string ReloadPlan::summary() const {
  auto join = [](const std::vector<std::string>& names) {
    std::string out;
    for (const auto& n : names) out += (out.empty() ? "" : ", ") + n;
    return out;
  };
  std::string out;
  auto add = [&](const char* what, const std::vector<std::string>& names) {
    if (names.empty()) return;
    out += (out.empty() ? "" : "; ") + std::string(what) + ": " + join(names);
  };
  add("added", added_programs);
  add("changed", changed_programs);
  add("removed", removed_programs);
  return out.empty() ? "no changes" : out;
}

std::string status_detail(const InstanceStatus& s) {
  auto exit_text = [](const ExitInfo& e) {
    return e.signal ? "killed by SIG" + signal_name(e.signal) : "exit code " + std::to_string(e.code);
  };
  switch (s.state) {
    case ProcState::Running:
      return "pid " + std::to_string(s.pid) + ", uptime " + format_uptime(s.uptime);
    case ProcState::Starting:
    case ProcState::Stopping:
      return s.pid ? "pid " + std::to_string(s.pid) : std::string();
    case ProcState::Exited:
      return s.last_exit ? exit_text(*s.last_exit) + (s.last_exit->expected ? " (expected)" : " (not expected)")
                         : s.reason;
    case ProcState::Backoff:
    case ProcState::Fatal:
      return s.reason;
    case ProcState::Stopped:
      if (!s.started) return "not started";
      return s.last_exit ? "stopped (" + exit_text(*s.last_exit) + ")" : "stopped";
  }
  return {};
}

std::string format_status(const std::vector<InstanceStatus>& rows) {
  std::size_t width = 0;
  for (const auto& r : rows) width = std::max(width, r.name.size());
  std::string out;
  out.reserve(rows.size() * (width + 48));
  for (const auto& r : rows) {
    std::string line = r.name;
    line.append(width - r.name.size() + 2, ' ');
    std::string_view state = state_name(r.state);
    line += state;
    std::string detail = status_detail(r);
    if (!detail.empty()) {
      line.append(8 - std::min<std::size_t>(8, state.size()) + 2, ' ');
      line += detail;
    }
    out += line;
    out += '\n';
  }
  return out;
}

nlohmann::json status_json(const std::vector<InstanceStatus>& rows) {
  auto out = nlohmann::json::array();
  for (const auto& r : rows) {
    nlohmann::json row = {
        {"name", r.name},
        {"program", r.program},
        {"index", r.index},
        {"state", std::string(state_name(r.state))},
        {"pid", r.pid ? nlohmann::json(r.pid) : nlohmann::json(nullptr)},
        {"uptime_seconds", r.state == ProcState::Running
                               ? nlohmann::json(std::chrono::duration_cast<std::chrono::seconds>(r.uptime).count())
                               : nlohmann::json(nullptr)},
        {"exit_code", r.last_exit && !r.last_exit->signal ? nlohmann::json(r.last_exit->code) : nlohmann::json(nullptr)},
        {"signal", r.last_exit && r.last_exit->signal ? nlohmann::json(signal_name(r.last_exit->signal)) : nlohmann::json(nullptr)},
        {"restarts", r.restarts},
        {"detail", status_detail(r)},
    };
    out.push_back(std::move(row));
  }
  return out;
}

// ---------------------------------------------------------------------------------------
// The live supervisor.

// A sink that hands captured bytes to `tail -f` followers. When the program writes its log
// itself (`direct`), nothing passes through here: while someone follows, the log file is
// read as it grows (`follow`) and its new bytes are handed on instead.
class Supervisor::TeeSink final : public Sink {
 public:
  struct Follow {
    UniqueFd file;    // the log, read-only
    UniqueFd notify;  // inotify: IN_MODIFY of the log
    std::uint64_t offset = 0;
    bool catching_up = false;  // a read is deferred to the next loop turn
  };
  void write(std::string_view data) override {
    // A follower may unsubscribe from inside its callback: iterate over a copy of the ids.
    std::vector<SubscriptionId> ids;
    for (auto& [id, fn] : followers_) ids.push_back(id);
    for (auto id : ids)
      if (auto it = followers_.find(id); it != followers_.end()) it->second(data);
  }
  // Nobody follows: the pump may splice straight into the log file meanwhile.
  bool idle() const override { return followers_.empty(); }
  std::map<SubscriptionId, std::function<void(std::string_view)>> followers_;
  bool direct = false;
  int log_fd = -1;  // the log (the FileSink's), when direct
  std::optional<Follow> follow;
};

struct Supervisor::Instance {
  InstanceKey key;
  std::string name;
  ProgramConfig program;
  std::unique_ptr<FileSink> out_file, err_file;
  TeeSink out_tee, err_tee;
  Job* job = nullptr;                       // owned by the supervisor's JobSet
  std::optional<std::string> build_error;  // the job could not be built: shown as FATAL
  bool unexpanded = false;                  // its %(...)s could not be expanded: never built
  RunState record;
  std::string last_written;                 // the record as last submitted (JSON)
  // How many times each state has been entered: commands wait for "entered RUNNING since".
  std::uint64_t entered[8] = {};
  bool retiring = false;                    // removed by reload: stop, then free
  std::optional<ProgramConfig> replacement; // changed by reload: stop, rebuild, maybe start
  bool start_after = false;

  ProcState state() const {
    if (!job) return build_error ? ProcState::Fatal : ProcState::Stopped;
    return job->process().state();
  }
  bool settled() const { return !job || job->process().settled(); }
  bool active() const {
    ProcState s = state();
    return s == ProcState::Starting || s == ProcState::Running || s == ProcState::Backoff ||
           s == ProcState::Stopping;
  }
  std::uint64_t count(ProcState s) const { return entered[static_cast<int>(s)]; }
};

std::pair<std::vector<Sink*>, std::vector<Sink*>> Supervisor::sinks_of(Instance& instance) {
  // The tee rides along with the file so `tail -f` can join a running process: the Job
  // cannot swap sinks under a live child without breaking its pipe. A direct stream has
  // no sinks: the program writes the file.
  std::vector<Sink*> out, err;
  if (instance.out_file && !instance.out_tee.direct) out = {instance.out_file.get(), &instance.out_tee};
  if (instance.err_file && !instance.err_tee.direct) err = {instance.err_file.get(), &instance.err_tee};
  // redirect_stderr: both pipes feed the stdout log (and its followers), as supervisord's.
  if (instance.program.redirect_stderr) err = out;
  return {std::move(out), std::move(err)};
}

Supervisor::Supervisor(EventLoop& loop, SupervisorContext context, SupervisorConfig config)
    : loop_(loop), context_(std::move(context)), config_(std::move(config)), jobs_(loop, *this) {
  for (const auto& program : config_.programs)
    for (int i = 0; i < program.numprocs; ++i)
      instances_.emplace(InstanceKey{program.name, i}, make_instance(program, i));
}

Supervisor::~Supervisor() {
  jobs_.clear();
  for (auto& [key, instance] : instances_) {
    stop_follow(instance->out_tee);
    stop_follow(instance->err_tee);
  }
}

// Finished (its output read dry into the instance's logs, which may go next) and destroyed
// now: called only outside the job's own callbacks (commands, reload, after_changes).
// An instance's TMPDIR goes when the instance does (reload removed it, the supervisor shuts
// down), on the state writer's thread as a finished run's does; its errors are the writer's.
void Supervisor::remove_tmp(const Instance& instance) {
  if (context_.state_writer && context_.tmp_fd >= 0)
    context_.state_writer->remove_tree(context_.tmp_fd, instance_file_stem(instance.key));
}

void Supervisor::drop_job(Instance& instance) {
  if (instance.job) {
    by_job_.erase(instance.job);
    jobs_.remove(*instance.job, true);
  }
  instance.job = nullptr;
}

void Supervisor::log_event(const std::string& line, bool warning) {
  if (!context_.events) return;
  if (warning)
    context_.events->warn(line);
  else
    context_.events->info(line);
}


std::unique_ptr<Supervisor::Instance> Supervisor::make_instance(const ProgramConfig& program, int index) {
  auto instance = std::make_unique<Instance>();
  instance->key = {program.name, index};
  instance->name = instance_name(program.name, index, program.numprocs);
  // The instance's own copy, with its %(process_num)d and the rest expanded.
  auto expanded = cli::expand_instance(program, index);
  instance->program = expanded ? std::move(*expanded) : program;
  auto& r = instance->record;
  r.project = context_.project;
  r.run_id = instance_file_stem(instance->key);
  r.kind = "program";
  r.command = program.command;
  r.cwd = program.workingdir.empty() ? context_.default_cwd : program.workingdir;
  r.batman_pid = ::getpid();
  r.batman_start_time = process_start_time(r.batman_pid);
  r.status = "starting";
  if (!expanded) {
    instance->unexpanded = true;
    instance->build_error = expanded.error().message;
    log_event(instance->name + " cannot be started: " + expanded.error().message);
  } else if (auto built = build_job(*instance); !built) {
    instance->build_error = built.error().message;
    log_event(instance->name + " cannot be started: " + built.error().message);
  }
  return instance;
}

namespace {

// "/var/log/web.out" → "/var/log/web_01.out" for instance 1 of several.
std::string numbered_path(const std::string& path, const InstanceKey& key, int numprocs) {
  if (numprocs <= 1) return path;  // (a path with %(process_num)d is not numbered again)
  char suffix[16];
  std::snprintf(suffix, sizeof suffix, "_%02d", key.index);
  auto slash = path.rfind('/');
  auto dot = path.rfind('.');
  if (dot == std::string::npos || (slash != std::string::npos && dot < slash) || dot == slash + 1)
    return path + suffix;
  return path.substr(0, dot) + suffix + path.substr(dot);
}

std::string target_path(const OutputTarget& target, const std::string& logs_dir, const InstanceKey& key,
                        int numprocs, const char* stream) {
  switch (target.kind) {
    case OutputTarget::Kind::Discard: return {};
    case OutputTarget::Kind::Path: return target.per_instance ? target.path : numbered_path(target.path, key, numprocs);
    case OutputTarget::Kind::Default: break;
  }
  return logs_dir + "/" + instance_file_stem(key) + "." + stream + ".log";
}

}  // namespace

Result<void> Supervisor::build_job(Instance& instance) {
  const ProgramConfig& program = instance.program;
  instance.out_file.reset();
  instance.err_file.reset();
  for (TeeSink* tee : {&instance.out_tee, &instance.err_tee}) {
    tee->direct = false;
    tee->log_fd = -1;
  }
  auto open_sink = [&](const OutputTarget& target, const char* stream,
                       std::unique_ptr<FileSink>& into) -> Result<void> {
    std::string path = target_path(target, context_.logs_dir, instance.key, program.numprocs, stream);
    if (path.empty()) return {};
    auto sink = FileSink::open(path, target.max_bytes, target.backups);
    if (!sink) return std::unexpected(sink.error().wrap(std::string(stream) + " log"));
    into = std::move(*sink);
    // A log the disk could not take (ENOSPC) is said once per file in the events log.
    into->set_on_error([this, name = instance.name](const std::string& message) { log_event(name + ": " + message, true); });
    return {};
  };
  if (auto ok = open_sink(program.stdout_log, "out", instance.out_file); !ok) return ok;
  if (!program.redirect_stderr)
    if (auto ok = open_sink(program.stderr_log, "err", instance.err_file); !ok) return ok;
  // A log that never rotates (maxbytes 0) needs nothing of the bytes here: the program gets
  // the file itself, as `yes >> file` would, instead of a pipe pumped into it. Measured with
  // scripts/bench/supervisor (PARTS=capture, a `yes` program, load 3-8): the supervisor
  // used 41-74% of a core splicing 0.9-1 GB/s from the pipe into the file (the copy into the
  // page cache is in its context, whatever moves it), and 0% with the file; the program went
  // from 1.05-1.08x to 1.4-1.54x of `yes | cat > file`. A rotating log keeps the pipe.
  auto direct = [](TeeSink& tee, const std::unique_ptr<FileSink>& file, const OutputTarget& target) {
    tee.direct = file && target.max_bytes == 0;
    tee.log_fd = tee.direct ? file->fd() : -1;
  };
  direct(instance.out_tee, instance.out_file, program.stdout_log);
  direct(instance.err_tee, instance.err_file, program.stderr_log);

  LaunchSpec spec;
  spec.project = context_.project;
  spec.home = context_.home;
  spec.project_dir = context_.project_dir;
  spec.run_id = instance_file_stem(instance.key);
  spec.tmp_dir = context_.tmp_dir + "/" + spec.run_id;
  if (::mkdir(spec.tmp_dir.c_str(), 0700) != 0 && errno != EEXIST) return sys_error("create " + spec.tmp_dir);
  spec.command = program.command;
  spec.cwd = program.workingdir.empty() ? context_.default_cwd : program.workingdir;
  spec.tier = program.tier;
  if (program.profile) {
    spec.profile = program.resolved_profile;
    spec.limits = program.resolved_profile.limits;
  } else {
    spec.profile.name = "host";
    spec.profile.die_with_parent = true;
  }
  spec.uid = program.uid;
  spec.gid = program.gid;
  spec.umask = program.umask;
  spec.base_env = context_.base_env;
  spec.env.assign(program.env.begin(), program.env.end());
  spec.batman_vars = {{"BATMAN_PROGRAM", program.name},
                      {"BATMAN_PROCESS_NAME", instance.name},
                      {"BATMAN_PROCESS_NUM", std::to_string(instance.key.index)}};
  isolation::LaunchRequest request = launch_request(spec);

  instance.record.isolation.tier = std::string(isolation::tier_name(program.tier));
  instance.record.isolation.profile = request.profile.name;
  instance.record.command = program.command;
  instance.record.cwd = request.cwd;
  std::string out_path = target_path(program.stdout_log, context_.logs_dir, instance.key, program.numprocs, "out");
  if (out_path.rfind(context_.project_dir + "/", 0) == 0) out_path.erase(0, context_.project_dir.size() + 1);
  instance.record.log = out_path;

  auto [out, err] = sinks_of(instance);
  instance.job = &jobs_.add(isolation::make_backend(program.tier), std::move(request), program.rules, std::move(out),
                            std::move(err));
  by_job_[instance.job] = &instance;
  // redirect_stderr: both streams into the stdout log, through the pipes or both direct.
  const int out_fd = instance.out_tee.log_fd;
  instance.job->set_output_fds(out_fd, program.redirect_stderr ? out_fd : instance.err_tee.log_fd);
  // Followers of the instance keep following the log of the new build.
  for (bool err : {false, true}) {
    TeeSink& tee = err ? instance.err_tee : instance.out_tee;
    stop_follow(tee);
    if (!tee.followers_.empty()) start_follow(instance, err, std::nullopt);
  }
  auto unenforced = instance.job->prepare();
  if (!unenforced) {
    drop_job(instance);
    return std::unexpected(unenforced.error().wrap("prepare isolation"));
  }
  instance.record.isolation.unenforced = *unenforced;
  for (const auto& what : *unenforced) log_event(instance.name + ": not enforced: " + what);
  instance.build_error.reset();
  return {};
}

void Supervisor::write_state(Instance& instance) {
  if (!context_.state_writer) return;
  RunState& r = instance.record;
  ProcState s = instance.state();
  const SupervisedProcess* p = instance.job ? &instance.job->process() : nullptr;
  r.pid = p ? p->pid() : 0;
  r.pid_start_time = r.pid ? process_start_time(r.pid) : 0;
  r.restarts = p ? p->restarts() : 0;
  auto last = p ? p->last_exit() : std::nullopt;
  r.exit_code = last && !last->signal ? std::optional<int>(last->code) : std::nullopt;
  r.signal = last && last->signal ? std::optional<int>(last->signal) : std::nullopt;
  switch (s) {
    case ProcState::Starting:
    case ProcState::Backoff: r.status = "starting"; break;
    case ProcState::Running:
    case ProcState::Stopping: r.status = "running"; break;
    case ProcState::Exited: r.status = last && !last->signal && last->code == 0 ? "succeeded"
                                       : last && last->signal ? "killed" : "failed"; break;
    case ProcState::Fatal: r.status = "failed"; break;
    case ProcState::Stopped: r.status = "killed"; break;
  }
  auto now = format_rfc3339(std::chrono::system_clock::now());
  if (s == ProcState::Starting && (r.started_at.empty() || r.ended_at)) {
    r.started_at = now;
    r.ended_at.reset();
  }
  if (r.started_at.empty()) r.started_at = now;
  if (instance.settled() && !instance.active()) r.ended_at = now;
  // RUNNING -> STOPPING changes nothing the file says: one fsync'd write fewer per program
  // stopped (of two; the writer's thread competes with the stop for the CPU).
  std::string json = to_json(r);
  if (json == instance.last_written) return;
  instance.last_written = std::move(json);
  // The disk is the writer thread's: a restart does not wait for an fsync.
  context_.state_writer->submit(r);
}

void Supervisor::on_spawned(Job& job, pid_t pid) {
  if (Instance* instance = find(job)) log_event(instance->name + " spawned pid " + std::to_string(pid));
}

void Supervisor::on_transition(Job& job, ProcState from, ProcState to, const std::string& why) {
  Instance* instance = find(job);
  if (!instance) return;
  if (from == to) {
    // The machine reports SIGKILL after stoptime as a self-transition.
    log_event(instance->name + " " + why);
    return;
  }
  ++instance->entered[static_cast<int>(to)];
  std::string line = instance->name + " " + std::string(state_name(from)) + " -> " +
                     std::string(state_name(to));
  if (!why.empty()) line += ": " + why;
  bool bad = to == ProcState::Fatal || to == ProcState::Backoff ||
             (to == ProcState::Exited && job.process().last_exit() && !job.process().last_exit()->expected);
  log_event(line, bad);
  write_state(*instance);
  if (observer_) observer_(instance->key, from, to);
  // Commands and rebuilds wait for after_changes(): the Job is still inside its own method.
}

Supervisor::Instance* Supervisor::find(const InstanceKey& key) const {
  auto it = instances_.find(key);
  return it == instances_.end() ? nullptr : it->second.get();
}

Supervisor::Instance* Supervisor::find(const Job& job) const {
  // Every transition asks: a walk of the instances made a stop of n programs O(n^2).
  auto it = by_job_.find(&job);
  return it == by_job_.end() ? nullptr : it->second;
}

Result<std::vector<InstanceKey>> Supervisor::select(const std::vector<std::string>& names) const {
  std::vector<InstanceKey> out;
  std::set<InstanceKey> seen;
  auto add = [&](const InstanceKey& k) {
    if (seen.insert(k).second) out.push_back(k);
  };
  for (const auto& name : names) {
    if (name == "all") {
      for (const auto& [key, instance] : instances_)
        if (!instance->retiring) add(key);
      continue;
    }
    auto colon = name.find(':');
    // web_01 (as ps, logs and state files name it) is web:01, unless a program is so named.
    if (colon == std::string::npos && !config_.find(name)) {
      const auto us = name.rfind('_');
      if (us != std::string::npos && us + 1 < name.size() &&
          name.find_first_not_of("0123456789", us + 1) == std::string::npos && config_.find(name.substr(0, us)))
        colon = us;
    }
    std::string program = name.substr(0, colon);
    const ProgramConfig* config = config_.find(program);
    if (!config) return fail("no such program '" + program + "': see 'status' for the names");
    if (colon == std::string::npos) {
      for (int i = 0; i < config->numprocs; ++i) add({program, i});
      continue;
    }
    std::string digits = name.substr(colon + 1);
    bool numeric = !digits.empty() && digits.size() <= 4 &&
                   std::all_of(digits.begin(), digits.end(), [](char c) { return c >= '0' && c <= '9'; });
    int index = numeric ? std::stoi(digits) : -1;
    if (index < 0 || index >= config->numprocs)
      return fail("no such instance '" + name + "': " + program + " has " + std::to_string(config->numprocs) +
                  " instance(s), " + program + ":00 to " + instance_name(program, config->numprocs - 1, 2));
    add({program, index});
  }
  return out;
}

void Supervisor::start_instance(Instance& instance) {
  if (!instance.job && instance.unexpanded) return;  // FATAL with the expansion's error
  if (!instance.job) {
    if (auto built = build_job(instance); !built) {
      instance.build_error = built.error().message;
      log_event(instance.name + " cannot be started: " + built.error().message);
      return;
    }
  }
  instance.job->process().start();
}

void Supervisor::start_autostart() {
  // In the config's order: supervisord.conf's are sorted by priority.
  for (const auto& program : config_.programs)
    for (int i = 0; i < program.numprocs; ++i)
      if (Instance* instance = find(InstanceKey{program.name, i}); instance && instance->program.autostart)
        start_instance(*instance);
}

Result<void> Supervisor::signal(const InstanceKey& key, int sig) {
  Instance* instance = find(key);
  if (!instance || !instance->job || !instance->job->process().pid())
    return fail((instance ? instance->name : key.program) + " has no process to signal");
  instance->job->signal_tree(sig);
  return {};
}

void Supervisor::start(const std::vector<InstanceKey>& keys, Done done) {
  begin(Operation::Kind::Start, keys, std::move(done));
}

void Supervisor::stop(const std::vector<InstanceKey>& keys, Done done) {
  begin(Operation::Kind::Stop, keys, std::move(done));
}

void Supervisor::restart(const std::vector<InstanceKey>& keys, Done done) {
  begin(Operation::Kind::Restart, keys, std::move(done));
}

// Start one instance for a command, noting how often it has been RUNNING, FATAL and STOPPED
// so far: the command is answered when one of those counts moves.
void Supervisor::start_for(Instance& instance, Operation::Item& item) {
  item.running_mark = instance.count(ProcState::Running);
  item.fatal_mark = instance.count(ProcState::Fatal);
  item.stopped_mark = instance.count(ProcState::Stopped);
  start_instance(instance);
  if (!instance.job) item.line = item.name + ": ERROR (" + instance.build_error.value_or("cannot start") + ")";
}

void Supervisor::begin(Operation::Kind kind, const std::vector<InstanceKey>& keys, Done done) {
  auto op = std::make_unique<Operation>();
  op->kind = kind;
  op->done = std::move(done);
  // The stop signals of many programs at once read batman's children once (quit, stop all).
  const isolation::SignalBatch signals_together;
  for (const auto& key : keys) {
    Instance* instance = find(key);
    if (!instance) continue;
    Operation::Item item;
    item.key = key;
    item.name = instance->name;
    ProcState s = instance->state();
    switch (kind) {
      case Operation::Kind::Start:
        if (s == ProcState::Running || s == ProcState::Starting)
          item.line = item.name + ": ERROR (already started)";
        else if (s == ProcState::Stopping)
          item.line = item.name + ": ERROR (stopping; wait, then start again)";
        else
          start_for(*instance, item);
        break;
      case Operation::Kind::Stop:
        instance->start_after = false;
        if (!instance->active())
          item.line = item.name + ": ERROR (not running)";
        else
          instance->job->process().stop();
        break;
      case Operation::Kind::Restart:
        item.stopping_phase = true;
        if (instance->active()) instance->job->process().stop();
        break;
    }
    op->items.push_back(std::move(item));
  }
  operations_.push_back(std::move(op));
  check_operations();
}

void Supervisor::check_operations() {
  // Reload's retirements and rebuilds first: they run once their instance has settled.
  for (auto it = instances_.begin(); it != instances_.end();) {
    Instance& instance = *it->second;
    if (instance.active()) {
      ++it;
      continue;
    }
    if (instance.retiring) {
      log_event(instance.name + " removed");
      stop_follow(instance.out_tee);
      stop_follow(instance.err_tee);
      drop_job(instance);
      remove_tmp(instance);
      it = instances_.erase(it);
      continue;
    }
    if (instance.replacement) {
      auto expanded = cli::expand_instance(*instance.replacement, instance.key.index);
      instance.program = expanded ? std::move(*expanded) : std::move(*instance.replacement);
      instance.unexpanded = !expanded;
      instance.replacement.reset();
      instance.name = instance_name(instance.key.program, instance.key.index, instance.program.numprocs);
      drop_job(instance);
      bool start = instance.start_after;
      instance.start_after = false;
      if (!expanded) {
        instance.build_error = expanded.error().message;
        log_event(instance.name + " cannot be started: " + expanded.error().message);
      } else if (auto built = build_job(instance); !built) {
        instance.build_error = built.error().message;
        log_event(instance.name + " cannot be started: " + built.error().message);
      } else if (start) {
        instance.job->process().start();
      }
      write_state(instance);
    }
    ++it;
  }

  for (auto op_it = operations_.begin(); op_it != operations_.end();) {
    Operation& op = **op_it;
    bool all = true;
    for (auto& item : op.items) {
      if (item.line) continue;
      Instance* instance = find(item.key);
      if (!instance || instance->retiring) {
        item.line = item.name + ": ERROR (removed by reload)";
        continue;
      }
      if (item.stopping_phase) {
        if (instance->active() && instance->state() != ProcState::Backoff) {
          all = false;
          continue;
        }
        if (instance->state() == ProcState::Backoff) instance->job->process().stop();
        item.stopping_phase = false;
        start_for(*instance, item);
        if (item.line) continue;
      }
      if (op.kind == Operation::Kind::Stop) {
        if (instance->active()) {
          all = false;
        } else {
          item.line = item.name + ": stopped";
        }
        continue;
      }
      // Start, or restart's second half.
      if (instance->count(ProcState::Running) > item.running_mark) {
        item.line = item.name + ": started";
      } else if (instance->count(ProcState::Fatal) > item.fatal_mark) {
        item.line = item.name + ": ERROR (spawn error: " + instance->job->process().reason() + ")";
      } else if (instance->count(ProcState::Stopped) > item.stopped_mark) {
        item.line = item.name + ": ERROR (stopped before it was running)";
      } else {
        all = false;
      }
    }
    if (!all) {
      ++op_it;
      continue;
    }
    std::vector<std::string> lines;
    for (auto& item : op.items) lines.push_back(std::move(*item.line));
    auto done = std::move(op.done);
    op_it = operations_.erase(op_it);
    if (done) done(std::move(lines));
  }
}

std::vector<InstanceStatus> Supervisor::status(const std::vector<InstanceKey>& keys) const {
  std::vector<InstanceStatus> rows;
  rows.reserve(keys.size());
  TimePoint now = loop_.now();
  for (const auto& key : keys) {
    Instance* instance = find(key);
    if (!instance) continue;
    InstanceStatus s;
    s.name = instance->name;
    s.program = key.program;
    s.index = key.index;
    s.state = instance->state();
    if (instance->job) {
      const SupervisedProcess& p = instance->job->process();
      s.pid = p.pid();
      if (s.state == ProcState::Running) s.uptime = now - p.started_at();
      s.last_exit = p.last_exit();
      s.reason = p.reason();
      s.restarts = p.restarts();
      s.started = instance->count(ProcState::Starting) > 0;
    } else {
      s.reason = instance->build_error.value_or("");
    }
    rows.push_back(std::move(s));
  }
  return rows;
}

std::vector<InstanceStatus> Supervisor::status() const {
  std::vector<InstanceKey> keys;
  keys.reserve(instances_.size());
  for (const auto& [key, instance] : instances_) keys.push_back(key);
  return status(keys);
}

ReloadPlan Supervisor::reload(SupervisorConfig next) {
  ReloadPlan plan = plan_reload(config_, next);
  for (const auto& key : plan.stop) {
    Instance* instance = find(key);
    if (!instance) continue;
    instance->retiring = true;
    instance->start_after = false;
    if (instance->active()) instance->job->process().stop();
  }
  for (const auto& key : plan.restart) {
    Instance* instance = find(key);
    const ProgramConfig* program = next.find(key.program);
    if (!instance || !program) continue;
    instance->start_after = program->autostart || instance->active();
    instance->replacement = *program;
    if (instance->active()) instance->job->process().stop();
  }
  for (const auto& key : plan.keep) {
    Instance* instance = find(key);
    const ProgramConfig* program = next.find(key.program);
    if (!instance || !program) continue;
    instance->program.numprocs = program->numprocs;
    instance->name = instance_name(key.program, key.index, program->numprocs);
  }
  std::vector<Instance*> fresh;
  for (const auto& key : plan.start) {
    const ProgramConfig* program = next.find(key.program);
    if (!program) continue;
    // An instance of the same key may still be retiring from an earlier reload.
    if (Instance* old = find(key)) {
      old->retiring = false;
      old->replacement = *program;
      old->start_after = program->autostart;
      if (old->active()) old->job->process().stop();
      continue;
    }
    auto [it, inserted] = instances_.emplace(key, make_instance(*program, key.index));
    if (program->autostart) fresh.push_back(it->second.get());
  }
  log_event("reload: " + plan.summary());
  config_ = std::move(next);
  for (Instance* instance : fresh) start_instance(*instance);
  check_operations();
  return plan;
}

void Supervisor::shutdown(std::function<void()> done) {
  // By priority, highest first, one priority after the other (supervisord's order; a YAML
  // config has one priority: everything stops at once).
  std::map<int, std::vector<InstanceKey>, std::greater<>> tiers;
  for (auto& [key, instance] : instances_) {
    instance->replacement.reset();
    instance->start_after = false;
    tiers[instance->program.priority].push_back(key);
  }
  log_event("stopping every program");
  auto order = std::make_shared<std::vector<std::vector<InstanceKey>>>();
  for (auto& [priority, keys] : tiers) order->push_back(std::move(keys));
  stop_tiers(std::move(order), 0, std::move(done));
}

void Supervisor::stop_tiers(std::shared_ptr<std::vector<std::vector<InstanceKey>>> tiers, std::size_t at,
                            std::function<void()> done) {
  if (at >= tiers->size()) {
    for (const auto& [key, instance] : instances_) remove_tmp(*instance);
    done();
    return;
  }
  auto keys = (*tiers)[at];
  // The next tier starts from the loop: a command's completion runs inside check_operations.
  stop(keys, [this, tiers = std::move(tiers), at, done = std::move(done)](std::vector<std::string>) mutable {
    loop_.defer([this, tiers = std::move(tiers), at, done = std::move(done)]() mutable {
      stop_tiers(std::move(tiers), at + 1, std::move(done));
    });
  });
}

void Supervisor::reap_orphans() {
  // Every Job reaps its own, after reading its pidfd.
  isolation::reap_strays(jobs_.live_pids());
}

std::vector<std::string> Supervisor::names() const {
  std::vector<std::string> out;
  for (const auto& program : config_.programs) {
    out.push_back(program.name);
    if (program.numprocs > 1)
      for (int i = 0; i < program.numprocs; ++i) out.push_back(instance_name(program.name, i, program.numprocs));
  }
  return out;
}

std::optional<std::string> Supervisor::log_path(const InstanceKey& key, const std::string& stream) const {
  Instance* instance = find(key);
  if (!instance) return std::nullopt;
  if (stream == "stderr" && instance->program.redirect_stderr) return std::nullopt;
  const OutputTarget& target = stream == "stderr" ? instance->program.stderr_log : instance->program.stdout_log;
  std::string path = target_path(target, context_.logs_dir, key, instance->program.numprocs,
                                 stream == "stderr" ? "err" : "out");
  if (path.empty()) return std::nullopt;
  return path;
}

Result<Supervisor::SubscriptionId> Supervisor::subscribe(const InstanceKey& key, const std::string& stream,
                                                         std::function<void(std::string_view)> on_data,
                                                         std::optional<std::uint64_t> from) {
  Instance* instance = find(key);
  if (!instance) return fail("no such instance");
  if (!instance->job) return fail(instance->name + " has no process: " + instance->build_error.value_or("not built"));
  SubscriptionId id = next_subscription_++;
  bool err = stream == "stderr";
  TeeSink& tee = err ? instance->err_tee : instance->out_tee;
  tee.followers_[id] = std::move(on_data);
  subscriptions_[id] = {key, stream};
  if (tee.direct) start_follow(*instance, err, from);
  return id;
}

void Supervisor::unsubscribe(SubscriptionId id) {
  auto it = subscriptions_.find(id);
  if (it == subscriptions_.end()) return;
  auto [key, stream] = it->second;
  subscriptions_.erase(it);
  Instance* instance = find(key);
  if (!instance) return;
  TeeSink& tee = stream == "stderr" ? instance->err_tee : instance->out_tee;
  tee.followers_.erase(id);
  if (tee.followers_.empty()) stop_follow(tee);
}

void Supervisor::start_follow(Instance& instance, bool err, std::optional<std::uint64_t> from) {
  TeeSink& tee = err ? instance.err_tee : instance.out_tee;
  if (tee.follow || !tee.direct || tee.log_fd < 0) return;
  // The log's own inode, through our fd: a file renamed or replaced behind us is not followed.
  const std::string self = "/proc/self/fd/" + std::to_string(tee.log_fd);
  TeeSink::Follow f;
  f.file.reset(::open(self.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK));
  f.notify.reset(::inotify_init1(IN_NONBLOCK | IN_CLOEXEC));
  if (!f.file || !f.notify || ::inotify_add_watch(f.notify.get(), self.c_str(), IN_MODIFY) < 0) {
    log_event(instance.name + ": cannot follow its log: " + std::strerror(errno), true);
    return;
  }
  struct stat st{};
  const std::uint64_t size = ::fstat(f.file.get(), &st) == 0 ? static_cast<std::uint64_t>(st.st_size) : 0;
  f.offset = std::min(from.value_or(size), size);
  const int notify = f.notify.get();
  tee.follow = std::move(f);
  const InstanceKey key = instance.key;
  if (auto watched = loop_.watch(notify, EPOLLIN, [this, key, err](std::uint32_t) { catch_up(key, err); }); !watched) {
    log_event(instance.name + ": cannot follow its log: " + watched.error().message, true);
    tee.follow.reset();
    return;
  }
  // What was written between `from` and the watch is read on the next turn.
  tee.follow->catching_up = true;
  loop_.defer([this, key, err] { catch_up(key, err); });
}

void Supervisor::stop_follow(TeeSink& tee) {
  if (!tee.follow) return;
  loop_.unwatch(tee.follow->notify.get());
  tee.follow.reset();
}

void Supervisor::catch_up(const InstanceKey& key, bool err) {
  Instance* instance = find(key);
  if (!instance) return;
  TeeSink& tee = err ? instance->err_tee : instance->out_tee;
  if (!tee.follow) return;
  tee.follow->catching_up = false;
  char events[4096];
  while (::read(tee.follow->notify.get(), events, sizeof events) > 0) {
  }
  struct stat st{};
  if (::fstat(tee.follow->file.get(), &st) == 0 && static_cast<std::uint64_t>(st.st_size) < tee.follow->offset)
    tee.follow->offset = 0;  // truncated behind us: from its new start
  // A bounded amount per turn, as the pump reads a pipe: one busy log cannot starve the loop.
  char buf[65536];
  for (std::uint64_t budget = 4 << 20; budget > 0;) {
    const ssize_t n = ::pread(tee.follow->file.get(), buf, sizeof buf, static_cast<off_t>(tee.follow->offset));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;
    tee.follow->offset += static_cast<std::uint64_t>(n);
    budget -= std::min<std::uint64_t>(budget, static_cast<std::uint64_t>(n));
    tee.write(std::string_view(buf, static_cast<std::size_t>(n)));
    if (!tee.follow) return;  // the last follower left from its callback
  }
  if (!tee.follow->catching_up) {
    tee.follow->catching_up = true;
    loop_.defer([this, key, err] { catch_up(key, err); });
  }
}

}  // namespace batman::runner
