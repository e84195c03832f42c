// Parsing and validating batch files (SPEC §10) and resolving them into a scheduler plan.
#include "src/batch/batch_config.hpp"

#include <sched.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <filesystem>
#include <set>

#include "common/duration.hpp"
#include "common/fs.hpp"
#include "common/names.hpp"
#include "common/yaml_reader.hpp"
#include "isolation/backend.hpp"

namespace batman::cli {
namespace {

using yaml::Value;


// The limits `defaults`, a batch and a task may set, with the keys each level has besides.
std::vector<std::string_view> with_limits(std::initializer_list<std::string_view> keys) {
  std::vector<std::string_view> out(keys);
  out.insert(out.end(), {"max_concurrency", "rate_limit", "timeout", "retries", "max_queue"});
  return out;
}

Result<void> read_limits(const Value& node, Limits& out) {
  if (const auto v = node["max_concurrency"]) out.max_concurrency = static_cast<int>(BATMAN_TRY(v.integer(1, 100000)));
  if (const auto v = node["rate_limit"]) out.rate_limit = BATMAN_TRY(v.number(0));
  if (const auto v = node["timeout"]) out.timeout = BATMAN_TRY(v.duration());
  if (const auto v = node["retries"]) out.retries = static_cast<int>(BATMAN_TRY(v.integer(0, 1000)));
  if (const auto v = node["max_queue"]) out.max_queue = static_cast<std::size_t>(BATMAN_TRY(v.integer(1, 100000000)));
  return {};
}

Result<void> parse_defaults(const Value& node, BatchFile& out) {
  BATMAN_TRY(node.keys(with_limits(
      {"backoff", "isolation", "profile", "executor", "partition", "account", "qos", "slurm_options"})));
  BATMAN_TRY(read_limits(node, out.defaults));
  if (const auto b = node["backoff"]) {
    BATMAN_TRY(b.keys({"initial", "factor", "max", "jitter"}));
    if (const auto v = b["initial"]) out.backoff.initial = BATMAN_TRY(v.duration());
    if (const auto v = b["factor"]) out.backoff.factor = BATMAN_TRY(v.number(1));
    if (const auto v = b["max"]) out.backoff.max = BATMAN_TRY(v.duration());
    if (const auto v = b["jitter"]) out.backoff.jitter = BATMAN_TRY(v.flag());
  }
  if (const auto v = node["isolation"]) out.isolation = BATMAN_TRY(v.choice(isolation::kTierWords));
  if (const auto v = node["profile"]) out.profile = BATMAN_TRY(v.text());
  if (const auto v = node["executor"]) out.executor = BATMAN_TRY(v.choice({"local", "slurm"}));
  // sbatch options: `slurm_options` first, then the three named keys, which win over it.
  if (const auto v = node["slurm_options"]) {
    for (const auto& [key, at_key, value] : BATMAN_TRY(v.entries())) {
      const auto text = BATMAN_TRY(value.text());
      if (auto ok = slurm::add_option(out.slurm_options, key + "=" + text, "slurm_options"); !ok)
        return value.error(ok.error().message);
    }
  }
  for (const char* key : {"partition", "account", "qos"})
    if (const auto v = node[key]) out.slurm_options[key] = BATMAN_TRY(v.text());
  return {};
}

Result<BatchTask> parse_task(const Value& at_name, const std::string& name, const Value& node) {
  BatchTask task;
  task.name = name;
  if (auto ok = validate_name(task.name, "task"); !ok) return at_name.error(ok.error().message);
  if (task.name.size() > kMaxTaskName)
    return at_name.error("a task name is at most " + std::to_string(kMaxTaskName) +
                         " characters (its files are named <run-id>.<task>)");
  if (node.is_scalar()) {  // shorthand: `name: "command"`
    task.cmd = BATMAN_TRY(node.nonblank());
    return task;
  }
  BATMAN_TRY(node.keys({"cmd", "timeout", "retries", "needs", "env", "cwd"}));
  const auto cmd = node["cmd"];
  if (!cmd) return cmd.missing("the command to run");
  task.cmd = BATMAN_TRY(cmd.nonblank());
  BATMAN_TRY(read_limits(node, task.limits));
  task.needs = BATMAN_TRY(node["needs"].strings());
  task.env = BATMAN_TRY(node["env"].variables());
  if (const auto v = node["cwd"]) task.cwd = BATMAN_TRY(v.text());
  return task;
}

Result<BatchGroup> parse_group(const Value& node, std::size_t index) {
  BatchGroup group;
  BATMAN_TRY(node.keys(with_limits({"name", "tasks"})));
  group.name = "batch " + std::to_string(index + 1);
  if (const auto v = node["name"]) group.name = BATMAN_TRY(v.text());
  const auto tasks = node["tasks"];
  if (!tasks) return tasks.missing("a batch lists its tasks");
  group.tasks = BATMAN_TRY(tasks.strings());
  BATMAN_TRY(read_limits(node, group.limits));
  return group;
}

Result<void> parse_health(const Value& node, BatchFile& out) {
  if (node.is_null()) return {};
  BATMAN_TRY(node.keys({"interval", "adjust", "min_concurrency", "max_concurrency", "check"}));
  runner::HealthPolicy health;
  if (const auto v = node["interval"]) {
    health.interval = BATMAN_TRY(v.duration());
    if (health.interval <= Duration::zero()) return v.out_of_range("more than 0");
  }
  if (const auto v = node["adjust"]) health.adjust = BATMAN_TRY(v.flag());
  if (const auto v = node["min_concurrency"]) health.min_concurrency = static_cast<int>(BATMAN_TRY(v.integer(1, 100000)));
  if (const auto v = node["max_concurrency"]) health.max_concurrency = static_cast<int>(BATMAN_TRY(v.integer(1, 100000)));
  if (health.min_concurrency > health.max_concurrency)
    return node["min_concurrency"].error("is above health.max_concurrency (" + std::to_string(health.max_concurrency) + ")");
  if (const auto v = node["check"]) {
    auto check = BATMAN_TRY(v.text());
    if (!check.empty()) out.health_check = std::move(check);
  }
  out.health = health;
  return {};
}

// needs name tasks of the file and form no cycle; a task is in at most one batch.
Result<void> check_references(const Value& root, const BatchFile& file) {
  std::map<std::string, const BatchTask*> by_name;
  for (const auto& t : file.tasks) by_name[t.name] = &t;
  const auto needs_of = [&](const BatchTask& t) { return root["tasks"][t.name]["needs"]; };
  for (const auto& t : file.tasks) {
    for (const auto& need : t.needs) {
      if (!by_name.contains(need)) return needs_of(t).error("no task named '" + need + "'");
      if (need == t.name) return needs_of(t).error("a task cannot need itself");
    }
  }
  // Depth-first search for a cycle, reporting its path.
  std::map<std::string, int> mark;  // 0 new, 1 on the path, 2 done
  std::vector<std::string> path;
  std::function<std::optional<std::string>(const std::string&)> visit =
      [&](const std::string& name) -> std::optional<std::string> {
    mark[name] = 1;
    path.push_back(name);
    for (const auto& need : by_name[name]->needs) {
      if (mark[need] == 1) {
        std::string cycle;
        auto from = std::find(path.begin(), path.end(), need);
        for (auto it = from; it != path.end(); ++it) cycle += *it + " -> ";
        return cycle + need;
      }
      if (mark[need] == 0) {
        if (auto c = visit(need)) return c;
      }
    }
    path.pop_back();
    mark[name] = 2;
    return std::nullopt;
  };
  for (const auto& t : file.tasks) {
    if (mark[t.name] != 0) continue;
    if (auto cycle = visit(t.name)) return needs_of(t).error("dependency cycle " + *cycle);
  }
  std::map<std::string, std::string> batch_of;
  const auto batches = root["batches"].items(true);
  for (std::size_t i = 0; i < file.batches.size(); ++i) {
    const auto at = batches[i]["tasks"];
    for (const auto& name : file.batches[i].tasks) {
      if (!by_name.contains(name)) return at.error("no task named '" + name + "'");
      if (auto [it, fresh] = batch_of.emplace(name, file.batches[i].name); !fresh)
        return at.error("task '" + name + "' is already in batch '" + it->second + "'");
    }
  }
  return {};
}

Result<BatchFile> parse_root(const Value& root, const std::string& source) {
  BatchFile file;
  file.source = source;
  file.project = std::filesystem::path(source).stem().string();
  BATMAN_TRY(root.keys({"project", "defaults", "tasks", "batches", "delays", "health"}));
  const auto project = root["project"];
  if (project) file.project = BATMAN_TRY(project.text());
  if (auto ok = validate_name(file.project, "project"); !ok)
    return project.error(ok.error().message + (project ? "" : " (set project: to name it)"));
  BATMAN_TRY(parse_defaults(root["defaults"], file));
  const auto tasks = root["tasks"];
  if (tasks.is_null() || (tasks.is_map() && tasks.count() == 0))
    return tasks.missing("a batch file lists at least one task");
  if (!tasks.is_map()) return tasks.expected("a mapping of task name: {cmd: ...}");
  for (const auto& [name, at_name, settings] : BATMAN_TRY(tasks.entries()))
    file.tasks.push_back(BATMAN_TRY(parse_task(at_name, name, settings)));
  if (const auto batches = root["batches"]; !batches.is_null()) {
    if (!batches.is_list()) return batches.expected("a list of batches");
    const auto items = batches.items(true);
    for (std::size_t i = 0; i < items.size(); ++i) file.batches.push_back(BATMAN_TRY(parse_group(items[i], i)));
  }
  if (const auto delays = root["delays"]; !delays.is_null()) {
    BATMAN_TRY(delays.keys({"between_batches", "between_tasks"}));
    if (const auto v = delays["between_batches"]) file.between_batches = BATMAN_TRY(v.duration());
    if (const auto v = delays["between_tasks"]) file.between_tasks = BATMAN_TRY(v.duration());
  }
  BATMAN_TRY(parse_health(root["health"], file));
  BATMAN_TRY(check_references(root, file));
  return file;
}

// The first level that sets a value wins.
template <class T>
T first_of(T fallback, std::initializer_list<const std::optional<T>*> levels) {
  for (const auto* level : levels)
    if (level->has_value()) return **level;
  return fallback;
}

}  // namespace

BuiltIns stdin_defaults(int cpus) {
  BuiltIns b;
  b.max_concurrency = std::max(1, cpus);
  b.rate_limit = 0;
  b.timeout = Duration::zero();
  b.retries = 0;
  return b;
}

int available_cpus() {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (::sched_getaffinity(0, sizeof set, &set) == 0) return std::max(1, CPU_COUNT(&set));
  const long n = ::sysconf(_SC_NPROCESSORS_ONLN);
  return n > 0 ? static_cast<int>(std::min(n, 100000L)) : 1;
}

Result<BatchFile> parse_batch_file(const std::string& yaml_text, const std::string& source) {
  return yaml::Reader(source).read(yaml_text, [&](const Value& root) { return parse_root(root, source); });
}

Result<BatchFile> load_batch_file(const std::string& path) {
  auto text = read_file(path, kMaxConfigBytes);
  if (!text) return std::unexpected(std::move(text.error()).wrap("batch file"));
  return parse_batch_file(*text, path);
}

Result<void> CommandLines::feed(std::string_view data) {
  while (!data.empty()) {
    const auto nl = data.find('\n');
    const auto part = data.substr(0, nl);
    // Checked before it is kept: a line with no end (/dev/zero) must not grow without bound.
    if (partial_.size() + part.size() > max_line_)
      return fail("<stdin>:" + std::to_string(line_ + 1) + ": a line longer than " + std::to_string(max_line_) +
                  " bytes (the kernel's limit for one command)");
    partial_.append(part);
    if (nl == std::string_view::npos) break;
    BATMAN_TRY(add_line());
    data.remove_prefix(nl + 1);
  }
  return {};
}

Result<void> CommandLines::finish() {
  if (partial_.empty()) return {};
  return add_line();
}

Result<void> CommandLines::add_line() {
  ++line_;
  std::string line = std::move(partial_);
  partial_.clear();
  if (!line.empty() && line.back() == '\r') line.pop_back();
  if (line.find_first_not_of(" \t") == std::string::npos) return {};
  if (commands_ == max_commands_)
    return fail("<stdin>: more than " + std::to_string(max_commands_) + " commands; split the input");
  ++commands_;
  ready_.push_back(std::move(line));
  return {};
}

std::string CommandLines::take() {
  std::string command = std::move(ready_.front());
  ready_.pop_front();
  ++taken_;
  return command;
}

Result<BatchFile> batch_from_lines(std::istream& in, std::size_t max_line, std::size_t max_tasks) {
  BatchFile file;
  file.source = "<stdin>";
  file.project = "batch";
  file.from_stdin = true;
  CommandLines lines(max_line, max_tasks);
  auto take_all = [&] {
    while (lines.has_command()) {
      BatchTask task;
      task.cmd = lines.take();
      task.name = std::to_string(lines.taken());
      file.tasks.push_back(std::move(task));
    }
  };
  char buf[65536];
  for (;;) {
    in.read(buf, sizeof buf);
    const auto n = static_cast<std::size_t>(in.gcount());
    if (n == 0) break;
    BATMAN_TRY(lines.feed(std::string_view(buf, n)));
    take_all();
  }
  BATMAN_TRY(lines.finish());
  take_all();
  return file;
}

Result<Limits> limits_from_environment(const std::function<const char*(const char*)>& getenv) {
  Limits out;
  auto read = [&](const char* name, long long min, long long max) -> Result<std::optional<long long>> {
    const char* value = getenv(name);
    if (!value || !*value) return std::nullopt;
    auto n = parse_integer(value, name, min, max);
    if (!n) return fail(std::string(name) + "='" + value + "' in the environment: " + n.error().message);
    return *n;
  };
  if (auto n = BATMAN_TRY(read("MAX_CONCURRENCY", 1, 100000))) out.max_concurrency = static_cast<int>(*n);
  if (const char* rate = getenv("RATE_LIMIT"); rate && *rate) {
    double r = 0;
    const std::string_view s(rate);
    auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), r);
    if (ec != std::errc{} || end != s.data() + s.size() || !std::isfinite(r) || r < 0)
      return fail(std::string("RATE_LIMIT='") + rate + "' in the environment: expected starts per second, 0 or more");
    out.rate_limit = r;
  }
  if (auto ms = BATMAN_TRY(read("TASK_TIMEOUT", 0, 1LL << 40))) out.timeout = std::chrono::milliseconds(*ms);
  return out;
}

Result<BatchRun> resolve_batch(const BatchFile& file, const std::vector<std::string>& selected,
                               const Limits& flags, const Limits& environment, bool no_deps) {
  const BuiltIns builtin = file.from_stdin ? stdin_defaults(available_cpus()) : BuiltIns{};
  BatchRun run;
  run.project = file.project;
  run.health_check = file.health_check;
  std::map<std::string, std::size_t> index_of;  // file task name -> scheduler index
  std::map<std::string_view, const BatchTask*> by_name;
  for (const auto& t : file.tasks) by_name.emplace(t.name, &t);

  std::vector<BatchGroup> groups;
  if (!selected.empty()) {
    BatchGroup group{"", selected, {}};
    for (const auto& name : selected) {
      if (!by_name.contains(name)) {
        std::string names;
        for (const auto& t : file.tasks) names += (names.empty() ? "" : ", ") + t.name;
        return fail(file.source + ": no task named '" + name + "' (tasks: " + names + ")");
      }
      group.name += (group.name.empty() ? "" : " ") + name;
    }
    std::set<std::string> seen;
    std::erase_if(group.tasks, [&](const std::string& n) { return !seen.insert(n).second; });
    if (!no_deps) {
      // What the named tasks need, transitively, follows them in file order.
      std::set<std::string> wanted(seen);
      std::vector<std::string> stack(group.tasks.begin(), group.tasks.end());
      while (!stack.empty()) {
        const auto name = std::move(stack.back());
        stack.pop_back();
        auto it = by_name.find(name);
        if (it == by_name.end()) continue;
        for (const auto& need : it->second->needs)
          if (wanted.insert(need).second) stack.push_back(need);
      }
      for (const auto& t : file.tasks)
        if (wanted.contains(t.name) && !seen.contains(t.name)) group.tasks.push_back(t.name);
    }
    groups.push_back(std::move(group));
  } else if (!file.batches.empty()) {
    groups = file.batches;
  } else {
    BatchGroup all{file.from_stdin ? "stdin" : file.project, {}, {}};
    for (const auto& t : file.tasks) all.tasks.push_back(t.name);
    groups.push_back(std::move(all));
  }

  auto& plan = run.plan;
  plan.between_batches = file.between_batches;
  plan.between_tasks = file.between_tasks;
  if (file.health) {
    plan.health = *file.health;
  } else {
    plan.health.adjust = false;
  }
  for (const auto& group : groups) {
    runner::BatchPlan batch;
    batch.name = group.name;
    batch.max_concurrency = first_of(builtin.max_concurrency, {&flags.max_concurrency, &environment.max_concurrency,
                                                           &group.limits.max_concurrency, &file.defaults.max_concurrency});
    batch.rate_limit = first_of(builtin.rate_limit, {&flags.rate_limit, &environment.rate_limit,
                                                    &group.limits.rate_limit, &file.defaults.rate_limit});
    batch.max_queue = first_of(builtin.max_queue, {&flags.max_queue, &environment.max_queue,
                                                  &group.limits.max_queue, &file.defaults.max_queue});
    batch.queue_overflow_waits = file.from_stdin;
    for (const auto& name : group.tasks) {
      const auto& task = *by_name.at(name);
      runner::TaskPlan tp;
      tp.name = task.name;
      tp.timeout = first_of(builtin.timeout, {&flags.timeout, &environment.timeout, &task.limits.timeout,
                                              &group.limits.timeout, &file.defaults.timeout});
      tp.retries = first_of(builtin.retries, {&flags.retries, &environment.retries, &task.limits.retries,
                                              &group.limits.retries, &file.defaults.retries});
      tp.backoff = file.backoff;
      index_of[task.name] = plan.tasks.size();
      batch.tasks.push_back(plan.tasks.size());
      plan.tasks.push_back(std::move(tp));
      run.tasks.push_back(ResolvedTask{task.name, task.cmd, task.env, task.cwd});
    }
    plan.batches.push_back(std::move(batch));
  }
  // Needs resolve once every scheduled task has its index.
  for (const auto& task : file.tasks) {
    auto self = index_of.find(task.name);
    if (self == index_of.end()) continue;
    for (const auto& need : task.needs) {
      if (auto dep = index_of.find(need); dep != index_of.end()) {
        plan.tasks[self->second].needs.push_back(dep->second);
      } else {
        plan.tasks[self->second].unmet_needs.push_back(need);
      }
    }
  }
  return run;
}

}  // namespace batman::cli
