// State files (SPEC §5): JSON through nlohmann-json, written with write_file_atomic.
#include "runner/state_store.hpp"

#include <csignal>
#include <cstdio>

#include <nlohmann/json.hpp>

#include "common/fs.hpp"
#include "common/proc_stat.hpp"

namespace batman::runner {

using nlohmann::json;

namespace {

template <class T>
json optional_json(const std::optional<T>& v) {
  return v ? json(*v) : json(nullptr);
}

template <class T>
void read_optional(const json& j, const char* key, std::optional<T>& out) {
  if (j.contains(key) && !j.at(key).is_null()) out = j.at(key).get<T>();
}

}  // namespace

std::string to_json(const RunState& s) {
  // Member by member: an initializer list copies every value once more (this runs at the end
  // of every run, on its way out).
  json j(json::value_t::object);
  j["schema"] = s.schema;
  j["project"] = s.project;
  j["run_id"] = s.run_id;
  j["kind"] = s.kind;
  j["command"] = s.command;
  j["cwd"] = s.cwd;
  j["pid"] = s.pid;
  j["pid_start_time"] = s.pid_start_time;
  j["batman_pid"] = s.batman_pid;
  j["batman_start_time"] = s.batman_start_time;
  json& isolation = j["isolation"];
  isolation["tier"] = s.isolation.tier;
  isolation["profile"] = s.isolation.profile;
  json& skipped = isolation["skipped"] = json::array();
  for (const auto& k : s.isolation.skipped) {
    json entry(json::value_t::object);
    entry["tier"] = k.tier;
    entry["reason"] = k.reason;
    skipped.push_back(std::move(entry));
  }
  isolation["unenforced"] = s.isolation.unenforced;
  json& limits = j["limits"];
  limits["memory"] = optional_json(s.limits.memory);
  limits["cpus"] = optional_json(s.limits.cpus);
  limits["pids"] = optional_json(s.limits.pids);
  j["status"] = s.status;
  j["started_at"] = s.started_at;
  j["ended_at"] = optional_json(s.ended_at);
  j["exit_code"] = optional_json(s.exit_code);
  j["signal"] = optional_json(s.signal);
  j["restarts"] = s.restarts;
  j["log"] = s.log;
  j["monitor_url"] = optional_json(s.monitor_url);
  j["worktree"] = optional_json(s.worktree);
  if (s.slurm_job) j["slurm_job"] = *s.slurm_job;
  if (s.node) j["node"] = *s.node;
  // A command line, cwd or path need not be UTF-8, which JSON cannot carry: such bytes are
  // written as U+FFFD rather than throwing (found by tests/fuzz/fuzz_state).
  return j.dump(2, ' ', false, json::error_handler_t::replace) + "\n";
}

Result<RunState> from_json(const std::string& text, const std::string& source) {
  try {
    // A state file is a few levels deep; one nested thousands of levels (an env-tier job can
    // write one) is refused at once instead of costing every `ps` seconds and memory.
    constexpr int kMaxDepth = 16;
    json j = json::parse(text, [](int depth, json::parse_event_t event, json&) {
      if (depth > kMaxDepth && (event == json::parse_event_t::object_start || event == json::parse_event_t::array_start))
        throw std::runtime_error("nested deeper than " + std::to_string(kMaxDepth) + " levels");
      return true;
    });
    RunState s;
    s.schema = j.value("schema", 1);
    s.project = j.value("project", "");
    s.run_id = j.value("run_id", "");
    s.kind = j.value("kind", "parallel");
    s.command = j.value("command", "");
    s.cwd = j.value("cwd", "");
    s.pid = j.value("pid", 0);
    s.pid_start_time = j.value("pid_start_time", 0ULL);
    s.batman_pid = j.value("batman_pid", 0);
    s.batman_start_time = j.value("batman_start_time", 0ULL);
    if (j.contains("isolation") && j["isolation"].is_object()) {
      const auto& iso = j["isolation"];
      s.isolation.tier = iso.value("tier", "");
      s.isolation.profile = iso.value("profile", "");
      if (iso.contains("skipped"))
        for (const auto& k : iso["skipped"])
          s.isolation.skipped.push_back({k.value("tier", ""), k.value("reason", "")});
      if (iso.contains("unenforced"))
        s.isolation.unenforced = iso["unenforced"].get<std::vector<std::string>>();
    }
    if (j.contains("limits") && j["limits"].is_object()) {
      read_optional(j["limits"], "memory", s.limits.memory);
      read_optional(j["limits"], "cpus", s.limits.cpus);
      read_optional(j["limits"], "pids", s.limits.pids);
    }
    s.status = j.value("status", "starting");
    s.started_at = j.value("started_at", "");
    read_optional(j, "ended_at", s.ended_at);
    read_optional(j, "exit_code", s.exit_code);
    read_optional(j, "signal", s.signal);
    s.restarts = j.value("restarts", 0);
    s.log = j.value("log", "");
    read_optional(j, "monitor_url", s.monitor_url);
    read_optional(j, "worktree", s.worktree);
    read_optional(j, "slurm_job", s.slurm_job);
    read_optional(j, "node", s.node);
    return s;
  } catch (const std::exception& e) {
    return fail("state file " + source + " is not valid: " + e.what());
  }
}

Result<void> write_state(int state_dirfd, const RunState& s) {
  return write_file_atomic(state_dirfd, s.run_id + ".json", to_json(s), 0600);
}

bool rewrite_state_in_place(int state_dirfd, const RunState& s, const std::string& content, int err) {
  return disk_full(err) && overwrite_in_place(state_dirfd, s.run_id + ".json", content);
}

Result<void> write_state_or_in_place(int state_dirfd, const RunState& s) {
  const std::string content = to_json(s);
  auto written = write_file_atomic(state_dirfd, s.run_id + ".json", content, 0600);
  if (!written && rewrite_state_in_place(state_dirfd, s, content, written.error().code)) return {};
  return written;
}

Result<RunState> read_state(int state_dirfd, const std::string& run_id) {
  auto text = read_file_at(state_dirfd, run_id + ".json", kMaxStateBytes);
  if (!text) return std::unexpected(text.error());
  auto s = from_json(*text, run_id + ".json");
  if (!s) return s;
  mark_lost_if_dead(*s);
  return s;
}

void mark_lost_if_dead(RunState& s) {
  if (!s.live_status()) return;
  if (s.batman_pid <= 0 || !process_matches(s.batman_pid, s.batman_start_time)) s.status = "lost";
}

unsigned long long process_start_time(pid_t pid) {
  auto stat = read_proc_stat(pid);
  return stat && !stat->zombie() ? stat->start_time : 0;
}

bool process_matches(pid_t pid, unsigned long long start_time) {
  if (pid <= 0) return false;
  unsigned long long now = process_start_time(pid);
  // A start time of 0 is what a state file without one reads as: it matches nothing, or a
  // forged or truncated record would make any live pid "ours".
  if (now == 0 || start_time == 0) return false;
  return now == start_time;
}

}  // namespace batman::runner
