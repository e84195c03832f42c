// The one launch path: spec → request and environment, outcome → status, state records.
#include "runner/launch.hpp"

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <map>

#include "common/exit_codes.hpp"
#include "isolation/cgroups.hpp"

extern char** environ;

namespace batman::runner {

std::vector<std::string> current_environment() {
  std::vector<std::string> out;
  for (char** e = environ; e && *e; ++e) out.emplace_back(*e);
  return out;
}

std::vector<std::string> job_environment(const LaunchSpec& spec) {
  const auto& penv = spec.profile.env;
  auto kept = [&](std::string_view key) {
    return !penv.clear || key == "PATH" || std::find(penv.keep.begin(), penv.keep.end(), key) != penv.keep.end();
  };
  std::map<std::string, std::string, std::less<>> env;
  for (const auto& entry : spec.base_env) {
    auto eq = entry.find('=');
    if (eq == std::string::npos || eq == 0) continue;
    std::string_view key(entry.data(), eq);
    if (kept(key)) env.insert_or_assign(std::string(key), entry.substr(eq + 1));
  }
  for (const auto& [k, v] : penv.set) env[k] = v;
  for (const auto& [k, v] : spec.env) env[k] = v;
  env["BATMAN_PROJECT"] = spec.project;
  env["BATMAN_RUN_ID"] = spec.run_id;
  env["BATMAN_HOME"] = spec.home;
  env["BATMAN_PROJECT_DIR"] = spec.project_dir;
  env["BATMAN_ISOLATION"] = std::string(isolation::tier_name(spec.tier));
  for (const auto& [k, v] : spec.batman_vars) env[k] = v;
  env["TMPDIR"] = spec.tmp_dir;
  std::vector<std::string> out;
  out.reserve(env.size());
  for (const auto& [k, v] : env) out.push_back(k + "=" + v);
  return out;
}

std::optional<std::vector<std::string>> direct_argv(std::string_view command) {
  auto plain = [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           std::string_view("_-./,:=+@%^").find(c) != std::string_view::npos;
  };
  std::vector<std::string> words;
  std::string word;
  for (char c : command) {
    if (c == ' ' || c == '\t') {
      if (!word.empty()) words.push_back(std::move(word));
      word.clear();
    } else if (plain(c)) {
      word += c;
    } else {
      return std::nullopt;  // quotes, $, globs, redirections, operators, ~, \\, newlines, #
    }
  }
  if (!word.empty()) words.push_back(std::move(word));
  if (words.empty()) return std::nullopt;
  const std::string& first = words.front();
  if (first.find('=') != std::string::npos) return std::nullopt;  // an assignment
  // dash's builtins and keywords: the shell runs these itself, and the programs of the same
  // name (/usr/bin/echo, /usr/bin/kill...) do not always behave the same.
  static constexpr std::string_view kShellWords[] = {
      ".", ":", "[", "alias", "bg", "break", "case", "cd", "command", "continue", "do", "done", "echo", "elif",
      "else", "esac", "eval", "exec", "exit", "export", "false", "fc", "fg", "fi", "for", "getopts", "hash",
      "if", "in", "jobs", "kill", "local", "printf", "pwd", "read", "readonly", "return", "set", "shift",
      "test", "then", "times", "trap", "true", "type", "ulimit", "umask", "unalias", "unset", "until",
      "wait", "while"};
  bool bare_true_false = words.size() == 1 && (first == "true" || first == "false");
  for (auto shell_word : kShellWords)
    if (first == shell_word && !bare_true_false) return std::nullopt;
  return words;
}

bool shell_passes_environment(const std::vector<std::string>& env) {
  bool has_path = false;
  for (const auto& entry : env) {
    const std::string_view kv(entry);
    const auto eq = kv.find('=');
    const std::string_view name = kv.substr(0, eq);
    // dash passes on only variables whose names it could itself set.
    if (name.empty() || (name[0] >= '0' && name[0] <= '9')) return false;
    for (char c : name)
      if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_')) return false;
    if (name == "PATH" && eq != std::string_view::npos) {
      // Relative or empty entries are searched from the job's directory, and with PATH unset
      // dash has its own list: both are the shell's to do.
      has_path = true;
      std::string_view rest = kv.substr(eq + 1);
      while (true) {
        const auto colon = rest.find(':');
        if (!rest.substr(0, colon).starts_with('/')) return false;
        if (colon == std::string_view::npos) break;
        rest.remove_prefix(colon + 1);
      }
    }
  }
  return has_path;
}

isolation::LaunchRequest launch_request(const LaunchSpec& spec) {
  isolation::LaunchRequest request;
  request.env = job_environment(spec);
  auto words = direct_argv(spec.command);
  if (words && shell_passes_environment(request.env)) {
    request.argv = std::move(*words);
    request.shell_argv = {"/bin/sh", "-c", spec.command};
  } else {
    request.argv = {"/bin/sh", "-c", spec.command};
  }
  request.cwd = spec.cwd;
  request.project_dir = spec.project_dir;
  request.batman_home = spec.home;
  request.worktree = spec.worktree;
  request.tmp_dir = spec.tmp_dir;
  request.run_id = spec.run_id;
  std::string unit = isolation::job_unit_name({spec.project});
  if (spec.unit_parts.empty()) {
    unit += ':' + spec.run_id;
  } else {
    for (const auto& part : spec.unit_parts) unit += ':' + part;
  }
  unit += ':' + isolation::home_tag(spec.home);  // another home's job of the same names is not ours
  request.unit_name = std::move(unit);
  request.profile = spec.profile;
  request.limits = spec.limits;
  request.uid = spec.uid;
  request.gid = spec.gid;
  request.umask = spec.umask;
  return request;
}

std::string_view status_name(JobStatus s) {
  switch (s) {
    case JobStatus::Starting: return "starting";
    case JobStatus::Running: return "running";
    case JobStatus::Succeeded: return "succeeded";
    case JobStatus::Failed: return "failed";
    case JobStatus::Killed: return "killed";
    case JobStatus::Timeout: return "timeout";
    case JobStatus::Oom: return "oom";
  }
  return "failed";
}

JobStatus end_status(const JobEnd& end) {
  if (end.timed_out) return JobStatus::Timeout;
  if (!end.exit) return JobStatus::Failed;
  if (end.oom_killed && (end.exit->signal || end.exit->code != 0)) return JobStatus::Oom;
  if (end.exit->signal) return JobStatus::Killed;
  if (end.stopped) return JobStatus::Killed;
  return end.exit->code == 0 ? JobStatus::Succeeded : JobStatus::Failed;
}

JobStatus status_of(ProcState state, const std::optional<ExitInfo>& last) {
  switch (state) {
    case ProcState::Starting:
    case ProcState::Backoff: return JobStatus::Starting;
    case ProcState::Running:
    case ProcState::Stopping: return JobStatus::Running;
    case ProcState::Exited: return end_status(JobEnd{last, false, false});
    case ProcState::Stopped: return JobStatus::Killed;
    case ProcState::Fatal:
    default: return JobStatus::Failed;
  }
}

int exit_code_of(const JobEnd& end) {
  if (end.timed_out) return kExitTimeout;
  if (!end.exit) return kExitBatmanError;
  return end.exit->shell_code();
}

std::string format_cpus(double cpus) {
  char text[32];
  std::snprintf(text, sizeof text, "%g", cpus);
  return text;
}

RunState state_record(const LaunchSpec& spec, std::string kind, const std::vector<isolation::Availability>& skipped,
                      std::string log) {
  RunState s;
  s.project = spec.project;
  s.run_id = spec.run_id;
  s.kind = std::move(kind);
  s.command = spec.command;
  s.cwd = spec.cwd;
  s.batman_pid = ::getpid();
  s.batman_start_time = process_start_time(s.batman_pid);
  s.isolation.tier = std::string(isolation::tier_name(spec.tier));
  s.isolation.profile = spec.profile.name;
  for (const auto& a : skipped) s.isolation.skipped.push_back({std::string(isolation::tier_name(a.tier)), a.reason});
  if (spec.limits.memory_bytes) s.limits.memory = std::to_string(*spec.limits.memory_bytes);
  if (spec.limits.cpus) s.limits.cpus = format_cpus(*spec.limits.cpus);
  if (spec.limits.pids) s.limits.pids = std::to_string(*spec.limits.pids);
  if (!spec.worktree.empty()) s.worktree = spec.worktree;
  s.status = std::string(status_name(JobStatus::Starting));
  s.started_at = format_rfc3339(std::chrono::system_clock::now());
  s.log = std::move(log);
  return s;
}

void record_started(RunState& state, pid_t pid, WallTime now) {
  state.pid = pid;
  state.pid_start_time = pid > 0 ? process_start_time(pid) : 0;
  state.status = std::string(status_name(JobStatus::Running));
  if (state.started_at.empty() || state.ended_at) state.started_at = format_rfc3339(now);
  state.ended_at.reset();
  state.exit_code.reset();
  state.signal.reset();
}

void record_ended(RunState& state, const JobEnd& end, WallTime now) {
  state.status = std::string(status_name(end_status(end)));
  state.ended_at = format_rfc3339(now);
  state.exit_code.reset();
  state.signal.reset();
  if (!end.exit)
    state.exit_code = kExitBatmanError;  // never ran: batman's own error
  else if (end.exit->signal)
    state.signal = end.exit->signal;
  else
    state.exit_code = end.exit->code;
}

}  // namespace batman::runner
