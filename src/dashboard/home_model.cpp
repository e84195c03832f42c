// The dashboard's model of $BATMAN_HOME and its JSON views (see home_model.hpp).
#include "src/dashboard/home_model.hpp"

#include <algorithm>
#include <tuple>

#include "src/cli/runs.hpp"

namespace batman::dashboard {

using nlohmann::json;

Category category_of(const runner::RunState& s) {
  if (s.kind == "program") return Category::Program;
  if (s.kind == "batch") return cli::batch_task_name(s) ? Category::Task : Category::Batch;
  return Category::Run;
}

std::string_view category_name(Category c) {
  switch (c) {
    case Category::Run: return "run";
    case Category::Batch: return "batch";
    case Category::Task: return "task";
    case Category::Program: return "program";
  }
  return "run";
}

namespace {

template <class T>
std::optional<T> optional_field(const json& j, const char* key) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return std::nullopt;
  if constexpr (std::is_same_v<T, std::string>) {
    if (!it->is_string()) return std::nullopt;
  } else {
    if (!it->is_number_integer()) return std::nullopt;
  }
  return it->get<T>();
}

template <class T>
json or_null(const std::optional<T>& v) {
  return v ? json(*v) : json(nullptr);
}

}  // namespace

std::vector<ProgramRow> parse_program_rows(const json& rows) {
  std::vector<ProgramRow> out;
  if (!rows.is_array()) return out;
  for (const auto& r : rows) {
    if (!r.is_object()) continue;
    auto name = optional_field<std::string>(r, "name");
    auto program = optional_field<std::string>(r, "program");
    auto state = optional_field<std::string>(r, "state");
    if (!name || !program || !state) continue;
    ProgramRow row;
    row.name = *name;
    row.program = *program;
    row.state = *state;
    row.index = optional_field<int>(r, "index").value_or(0);
    row.pid = optional_field<int>(r, "pid").value_or(0);
    row.uptime_seconds = optional_field<long long>(r, "uptime_seconds");
    row.exit_code = optional_field<int>(r, "exit_code");
    row.signal = optional_field<std::string>(r, "signal");
    row.restarts = optional_field<int>(r, "restarts").value_or(0);
    row.detail = optional_field<std::string>(r, "detail").value_or("");
    out.push_back(std::move(row));
  }
  return out;
}

std::string instance_state_name(const std::string& program, int index) {
  char suffix[16];
  std::snprintf(suffix, sizeof suffix, "_%02d", index);
  return program + suffix;
}

std::optional<double> duration_seconds(const runner::RunState& s, WallTime now) {
  auto start = parse_rfc3339(s.started_at);
  if (!start) return std::nullopt;
  WallTime end = now;
  if (s.ended_at) {
    auto e = parse_rfc3339(*s.ended_at);
    if (!e) return std::nullopt;
    end = *e;
  } else if (!s.live_status()) {
    return std::nullopt;  // lost: its end is not known
  }
  const auto d = std::chrono::duration<double>(end - *start).count();
  return d < 0 ? 0.0 : d;
}

json run_json(const runner::RunState& s, WallTime now) {
  json j(json::value_t::object);
  const Category c = category_of(s);
  j["project"] = s.project;
  j["run_id"] = s.run_id;
  j["category"] = std::string(category_name(c));
  j["kind"] = s.kind;
  if (c == Category::Task) {
    j["task"] = *cli::batch_task_name(s);
    j["batch"] = s.run_id.substr(0, s.run_id.find('.'));
  }
  j["command"] = s.command;
  j["cwd"] = s.cwd;
  j["pid"] = s.pid > 0 ? json(s.pid) : json(nullptr);
  // A task of the slurm executor: its Slurm job (123 or 123_4 for an array element) and node.
  j["slurm_job"] = or_null(s.slurm_job);
  j["node"] = or_null(s.node);
  j["tier"] = s.isolation.tier;
  j["profile"] = s.isolation.profile;
  j["status"] = s.status;
  j["live"] = s.live_status();
  j["started_at"] = s.started_at;
  j["ended_at"] = or_null(s.ended_at);
  j["exit_code"] = or_null(s.exit_code);
  j["signal"] = or_null(s.signal);
  j["restarts"] = s.restarts;
  auto d = duration_seconds(s, now);
  j["duration_seconds"] = d ? json(*d) : json(nullptr);
  j["log"] = s.log;
  j["worktree"] = or_null(s.worktree);
  return j;
}

json programs_json(const Project& p, WallTime now) {
  json out = json::array();
  auto state_of = [&](const std::string& stem) -> const runner::RunState* {
    auto it = p.runs.find(stem);
    return it == p.runs.end() || it->second.kind != "program" ? nullptr : &it->second;
  };
  if (p.supervisor_rows) {
    for (const auto& r : *p.supervisor_rows) {
      const std::string stem = instance_state_name(r.program, r.index);
      const runner::RunState* s = state_of(stem);
      json j(json::value_t::object);
      j["project"] = p.name;
      j["name"] = r.name;
      j["program"] = r.program;
      j["instance"] = stem;
      j["state"] = r.state;
      j["pid"] = r.pid > 0 ? json(r.pid) : json(nullptr);
      j["uptime_seconds"] = or_null(r.uptime_seconds);
      j["exit_code"] = or_null(r.exit_code);
      j["signal"] = or_null(r.signal);
      j["restarts"] = r.restarts;
      j["detail"] = r.detail;
      j["tier"] = s ? s->isolation.tier : std::string();
      j["command"] = s ? s->command : std::string();
      j["supervised"] = true;
      out.push_back(std::move(j));
    }
    return out;
  }
  // No supervisor answers: the records it left, in SPEC §5's statuses.
  for (const auto& [stem, s] : p.runs) {
    if (s.kind != "program") continue;
    auto parts = cli::split_instance(stem);
    json j(json::value_t::object);
    j["project"] = p.name;
    j["name"] = stem;
    j["program"] = parts ? parts->first : stem;
    j["instance"] = stem;
    std::string state = s.status;
    std::transform(state.begin(), state.end(), state.begin(), [](unsigned char ch) { return std::toupper(ch); });
    j["state"] = state;
    j["pid"] = s.live_status() && s.pid > 0 ? json(s.pid) : json(nullptr);
    auto d = s.live_status() ? duration_seconds(s, now) : std::nullopt;
    j["uptime_seconds"] = d ? json(static_cast<long long>(*d)) : json(nullptr);
    j["exit_code"] = or_null(s.exit_code);
    j["signal"] = or_null(s.signal);
    j["restarts"] = s.restarts;
    j["detail"] = "no supervisor running";
    j["tier"] = s.isolation.tier;
    j["command"] = s.command;
    j["supervised"] = false;
    out.push_back(std::move(j));
  }
  return out;
}

json project_summary(const Project& p) {
  json runs = json::object(), tasks = json::object(), programs = json::object();
  long long runs_total = 0, runs_live = 0, tasks_total = 0, tasks_live = 0, programs_total = 0, programs_up = 0;
  std::string newest;
  for (const auto& [stem, s] : p.runs) {
    const Category c = category_of(s);
    if (c == Category::Program) {
      if (!p.supervisor_rows) {
        ++programs_total;
        if (s.live_status()) ++programs_up;
        std::string state = s.status;
        std::transform(state.begin(), state.end(), state.begin(), [](unsigned char ch) { return std::toupper(ch); });
        programs[state] = programs.value(state, 0) + 1;
      }
      continue;
    }
    if (s.started_at > newest) newest = s.started_at;
    json& counts = c == Category::Task ? tasks : runs;
    counts[s.status] = counts.value(s.status, 0) + 1;
    if (c == Category::Task) {
      ++tasks_total;
      if (s.live_status()) ++tasks_live;
    } else {
      ++runs_total;
      if (s.live_status()) ++runs_live;
    }
  }
  if (p.supervisor_rows) {
    for (const auto& r : *p.supervisor_rows) {
      ++programs_total;
      if (r.state == "RUNNING" || r.state == "STARTING" || r.state == "BACKOFF" || r.state == "STOPPING") ++programs_up;
      programs[r.state] = programs.value(r.state, 0) + 1;
    }
  }
  json j(json::value_t::object);
  j["name"] = p.name;
  j["runs"] = {{"total", runs_total}, {"live", runs_live}, {"by_status", runs}};
  j["tasks"] = {{"total", tasks_total}, {"live", tasks_live}, {"by_status", tasks}};
  j["programs"] = {{"total", programs_total}, {"up", programs_up}, {"by_state", programs}};
  j["supervisor_pid"] = p.supervisor_pid > 0 && p.supervisor_rows ? json(p.supervisor_pid) : json(nullptr);
  j["newest_start"] = newest.empty() ? json(nullptr) : json(newest);
  return j;
}

bool run_matches(const runner::RunState& s, const RunFilter& f) {
  if (f.project && s.project != *f.project) return false;
  if (f.live_only && !s.live_status()) return false;
  if (f.status && s.status != *f.status) return false;
  if (f.kind && s.kind != *f.kind) return false;
  if (f.text && !f.text->empty() && s.run_id.find(*f.text) == std::string::npos &&
      s.command.find(*f.text) == std::string::npos && s.project.find(*f.text) == std::string::npos)
    return false;
  return true;
}

json list_runs(const std::map<std::string, Project>& projects, const RunFilter& f, const std::vector<Category>& want,
               WallTime now) {
  std::vector<const runner::RunState*> found;
  auto scan = [&](const Project& p) {
    for (const auto& [stem, s] : p.runs) {
      if (std::find(want.begin(), want.end(), category_of(s)) == want.end()) continue;
      if (run_matches(s, f)) found.push_back(&s);
    }
  };
  if (f.project) {
    if (auto it = projects.find(*f.project); it != projects.end()) scan(it->second);
  } else {
    for (const auto& [name, p] : projects) scan(p);
  }
  auto newer = [](const runner::RunState* a, const runner::RunState* b) {
    return std::tie(a->started_at, a->project, a->run_id) > std::tie(b->started_at, b->project, b->run_id);
  };
  const std::size_t keep = std::min(found.size(), f.limit);
  std::partial_sort(found.begin(), found.begin() + static_cast<std::ptrdiff_t>(keep), found.end(), newer);
  json items = json::array();
  for (std::size_t i = 0; i < keep; ++i) items.push_back(run_json(*found[i], now));
  return {{"total", found.size()}, {"items", std::move(items)}};
}

std::size_t utf8_complete_prefix(std::string_view bytes) {
  const std::size_t n = bytes.size();
  // Look back at most 3 bytes for the lead byte of the last sequence.
  for (std::size_t back = 1; back <= 4 && back <= n; ++back) {
    const auto c = static_cast<unsigned char>(bytes[n - back]);
    if ((c & 0xC0) == 0x80) continue;  // a continuation byte: keep looking
    std::size_t want = c < 0x80 ? 1 : (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3 : (c & 0xF8) == 0xF0 ? 4 : 1;
    return back < want ? n - back : n;
  }
  return n;
}

std::optional<std::string> log_file_name(const runner::RunState& s, std::string_view project_dir,
                                         std::string_view stream) {
  std::string_view log = s.log;
  std::string prefix = std::string(project_dir) + "/logs/";
  std::string_view name;
  if (log.starts_with("logs/")) name = log.substr(5);
  else if (!project_dir.empty() && log.starts_with(prefix)) name = log.substr(prefix.size());
  else return std::nullopt;
  if (name.empty() || name.front() == '.' || name.find('/') != std::string_view::npos ||
      name.find('\0') != std::string_view::npos)
    return std::nullopt;
  std::string file(name);
  if (stream == "stderr") {
    if (!file.ends_with(".out.log")) return std::nullopt;
    file.replace(file.size() - 8, 8, ".err.log");
  }
  return file;
}

}  // namespace batman::dashboard
