// Parsing and validating batch files (SPEC §10) and resolving them into a scheduler plan.
#include "src/batch/batch_config.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <filesystem>
#include <set>

#include <yaml-cpp/yaml.h>

#include "common/duration.hpp"
#include "common/fs.hpp"
#include "common/names.hpp"
#include "common/yaml.hpp"
#include "isolation/backend.hpp"

namespace batman::cli {
namespace {

// Walks the document; every error carries the file, the node's line and the dotted key.
class Walker {
 public:
  explicit Walker(std::string source) : source_(std::move(source)) {}

  std::unexpected<Error> bad(const YAML::Node& at, const std::string& key,
                             const std::string& what) const {
    std::string where = source_;
    if (at.IsDefined() && at.Mark().line >= 0) where += ":" + std::to_string(at.Mark().line + 1);
    if (key.empty()) return fail(where + ": " + what);
    return fail(where + ": key '" + key + "': " + what);
  }

  Result<void> keys(const YAML::Node& node, const std::string& key,
                    const std::set<std::string>& allowed) const {
    if (!node.IsMap()) return bad(node, key, "expected a mapping");
    for (const auto& item : node) {
      const auto name = item.first.IsScalar() ? item.first.Scalar() : std::string("?");
      if (!allowed.contains(name)) {
        std::string known;
        for (const auto& a : allowed) known += (known.empty() ? "" : ", ") + a;
        return bad(item.first, dotted(key, name), "unknown key (known: " + known + ")");
      }
    }
    return {};
  }

  Result<std::string> text(const YAML::Node& node, const std::string& key) const {
    if (!node.IsScalar()) return bad(node, key, "expected a string");
    return node.Scalar();
  }

  Result<long long> integer(const YAML::Node& node, const std::string& key, long long min,
                            long long max) const {
    if (node.IsScalar()) {
      long long n = 0;
      const auto& s = node.Scalar();
      auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), n);
      if (ec == std::errc{} && end == s.data() + s.size() && n >= min && n <= max) return n;
    }
    return bad(node, key, "expected an integer from " + std::to_string(min) + " to " + std::to_string(max));
  }

  Result<double> number(const YAML::Node& node, const std::string& key, double min) const {
    if (node.IsScalar()) {
      double n = 0;
      const auto& s = node.Scalar();
      auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), n);
      if (ec == std::errc{} && end == s.data() + s.size() && std::isfinite(n) && n >= min) return n;
    }
    char shown[32];
    std::snprintf(shown, sizeof shown, "%g", min);
    return bad(node, key, std::string("expected a number of at least ") + shown);
  }

  Result<Duration> duration(const YAML::Node& node, const std::string& key) const {
    if (node.IsScalar()) {
      if (auto d = parse_duration(node.Scalar())) return *d;
    }
    return bad(node, key, "expected a duration such as 1500ms, 30s, 5m or 1h");
  }

  Result<bool> flag(const YAML::Node& node, const std::string& key) const {
    if (node.IsScalar()) {
      const auto& s = node.Scalar();
      if (s == "true" || s == "yes" || s == "on") return true;
      if (s == "false" || s == "no" || s == "off") return false;
    }
    return bad(node, key, "expected true or false");
  }

  Result<std::vector<std::string>> list(const YAML::Node& node, const std::string& key) const {
    std::vector<std::string> out;
    if (node.IsNull()) return out;
    if (!node.IsSequence()) return bad(node, key, "expected a list");
    for (const auto& item : node) {
      if (!item.IsScalar()) return bad(item, key, "expected a list of names");
      out.push_back(item.Scalar());
    }
    return out;
  }

  // The shared limits of `defaults`, a batch and a task; `allowed` says which apply here.
  Result<void> limits(const YAML::Node& node, const std::string& key, Limits& out) const {
    for (const auto& item : node) {
      const auto name = item.first.Scalar();
      const auto at = dotted(key, name);
      const YAML::Node& value = item.second;
      if (name == "max_concurrency") {
        auto n = integer(value, at, 1, 100000);
        if (!n) return std::unexpected(n.error());
        out.max_concurrency = static_cast<int>(*n);
      } else if (name == "rate_limit") {
        auto n = number(value, at, 0);
        if (!n) return std::unexpected(n.error());
        out.rate_limit = *n;
      } else if (name == "timeout") {
        auto d = duration(value, at);
        if (!d) return std::unexpected(d.error());
        out.timeout = *d;
      } else if (name == "retries") {
        auto n = integer(value, at, 0, 1000);
        if (!n) return std::unexpected(n.error());
        out.retries = static_cast<int>(*n);
      } else if (name == "max_queue") {
        auto n = integer(value, at, 1, 100000000);
        if (!n) return std::unexpected(n.error());
        out.max_queue = static_cast<std::size_t>(*n);
      }
    }
    return {};
  }

  static std::string dotted(const std::string& parent, const std::string& key) {
    return parent.empty() ? key : parent + "." + key;
  }

 private:
  std::string source_;
};

const std::set<std::string> kLimitKeys = {"max_concurrency", "rate_limit", "timeout", "retries",
                                          "max_queue"};

std::set<std::string> with_limits(std::set<std::string> keys) {
  keys.insert(kLimitKeys.begin(), kLimitKeys.end());
  return keys;
}

Result<void> parse_defaults(const Walker& w, const YAML::Node& node, BatchFile& out) {
  if (auto ok = w.keys(node, "defaults", with_limits({"backoff", "isolation", "profile"})); !ok) return ok;
  if (auto ok = w.limits(node, "defaults", out.defaults); !ok) return ok;
  if (const auto b = node["backoff"]) {
    if (auto ok = w.keys(b, "defaults.backoff", {"initial", "factor", "max", "jitter"}); !ok) return ok;
    if (b["initial"]) {
      auto d = w.duration(b["initial"], "defaults.backoff.initial");
      if (!d) return std::unexpected(d.error());
      out.backoff.initial = *d;
    }
    if (b["factor"]) {
      auto f = w.number(b["factor"], "defaults.backoff.factor", 1);
      if (!f) return std::unexpected(f.error());
      out.backoff.factor = *f;
    }
    if (b["max"]) {
      auto d = w.duration(b["max"], "defaults.backoff.max");
      if (!d) return std::unexpected(d.error());
      out.backoff.max = *d;
    }
    if (b["jitter"]) {
      auto j = w.flag(b["jitter"], "defaults.backoff.jitter");
      if (!j) return std::unexpected(j.error());
      out.backoff.jitter = *j;
    }
  }
  if (const auto i = node["isolation"]) {
    auto name = w.text(i, "defaults.isolation");
    if (!name) return std::unexpected(name.error());
    if (auto tier = isolation::parse_tier(*name); !tier)
      return w.bad(i, "defaults.isolation", tier.error().message);
    out.isolation = *name;
  }
  if (const auto p = node["profile"]) {
    auto name = w.text(p, "defaults.profile");
    if (!name) return std::unexpected(name.error());
    out.profile = *name;
  }
  return {};
}

Result<BatchTask> parse_task(const Walker& w, const YAML::Node& key_node, const YAML::Node& node) {
  BatchTask task;
  task.name = key_node.Scalar();
  const auto key = "tasks." + task.name;
  if (auto ok = validate_name(task.name, "task"); !ok) return w.bad(key_node, key, ok.error().message);
  if (node.IsScalar()) {  // shorthand: `name: "command"`
    task.cmd = node.Scalar();
    return task;
  }
  if (auto ok = w.keys(node, key, {"cmd", "timeout", "retries", "needs", "env", "cwd"}); !ok)
    return std::unexpected(ok.error());
  if (!node["cmd"]) return w.bad(node, key + ".cmd", "missing: every task needs a command");
  auto cmd = w.text(node["cmd"], key + ".cmd");
  if (!cmd) return std::unexpected(cmd.error());
  if (cmd->find_first_not_of(" \t\n") == std::string::npos)
    return w.bad(node["cmd"], key + ".cmd", "empty command");
  task.cmd = *cmd;
  if (auto ok = w.limits(node, key, task.limits); !ok) return std::unexpected(ok.error());
  if (node["needs"]) {
    auto needs = w.list(node["needs"], key + ".needs");
    if (!needs) return std::unexpected(needs.error());
    task.needs = *needs;
  }
  if (const auto env = node["env"]) {
    if (!env.IsMap() && !env.IsNull()) return w.bad(env, key + ".env", "expected a mapping of NAME: value");
    for (const auto& item : env) {
      const auto name = item.first.Scalar();
      if (name.empty() || name.find('=') != std::string::npos)
        return w.bad(item.first, key + ".env", "'" + name + "' is not a variable name");
      if (!item.second.IsScalar()) return w.bad(item.second, key + ".env." + name, "expected a string");
      task.env[name] = item.second.Scalar();
    }
  }
  if (node["cwd"]) {
    auto cwd = w.text(node["cwd"], key + ".cwd");
    if (!cwd) return std::unexpected(cwd.error());
    task.cwd = *cwd;
  }
  return task;
}

Result<BatchGroup> parse_group(const Walker& w, const YAML::Node& node, std::size_t index) {
  const auto key = "batches[" + std::to_string(index) + "]";
  BatchGroup group;
  if (auto ok = w.keys(node, key, with_limits({"name", "tasks"})); !ok) return std::unexpected(ok.error());
  group.name = "batch " + std::to_string(index + 1);
  if (node["name"]) {
    auto name = w.text(node["name"], key + ".name");
    if (!name) return std::unexpected(name.error());
    group.name = *name;
  }
  if (!node["tasks"]) return w.bad(node, key + ".tasks", "missing: a batch lists its tasks");
  auto tasks = w.list(node["tasks"], key + ".tasks");
  if (!tasks) return std::unexpected(tasks.error());
  group.tasks = *tasks;
  if (auto ok = w.limits(node, key, group.limits); !ok) return std::unexpected(ok.error());
  return group;
}

Result<void> parse_health(const Walker& w, const YAML::Node& node, BatchFile& out) {
  if (node.IsNull()) return {};
  if (auto ok = w.keys(node, "health", {"interval", "adjust", "min_concurrency", "max_concurrency", "check"}); !ok)
    return ok;
  runner::HealthPolicy health;
  if (node["interval"]) {
    auto d = w.duration(node["interval"], "health.interval");
    if (!d) return std::unexpected(d.error());
    if (*d <= Duration::zero()) return w.bad(node["interval"], "health.interval", "must be more than 0");
    health.interval = *d;
  }
  if (node["adjust"]) {
    auto a = w.flag(node["adjust"], "health.adjust");
    if (!a) return std::unexpected(a.error());
    health.adjust = *a;
  }
  if (node["min_concurrency"]) {
    auto n = w.integer(node["min_concurrency"], "health.min_concurrency", 1, 100000);
    if (!n) return std::unexpected(n.error());
    health.min_concurrency = static_cast<int>(*n);
  }
  if (node["max_concurrency"]) {
    auto n = w.integer(node["max_concurrency"], "health.max_concurrency", 1, 100000);
    if (!n) return std::unexpected(n.error());
    health.max_concurrency = static_cast<int>(*n);
  }
  if (health.min_concurrency > health.max_concurrency)
    return w.bad(node["min_concurrency"] ? node["min_concurrency"] : node, "health.min_concurrency",
                 "is above health.max_concurrency (" + std::to_string(health.max_concurrency) + ")");
  if (node["check"]) {
    auto check = w.text(node["check"], "health.check");
    if (!check) return std::unexpected(check.error());
    if (!check->empty()) out.health_check = *check;
  }
  out.health = health;
  return {};
}

// needs name tasks of the file and form no cycle; a task is in at most one batch.
Result<void> check_references(const Walker& w, const YAML::Node& root, const BatchFile& file) {
  std::map<std::string, const BatchTask*> by_name;
  for (const auto& t : file.tasks) by_name[t.name] = &t;
  const auto tasks_node = root["tasks"];
  for (const auto& t : file.tasks) {
    for (const auto& need : t.needs) {
      if (!by_name.contains(need))
        return w.bad(tasks_node[t.name]["needs"], "tasks." + t.name + ".needs", "no task named '" + need + "'");
      if (need == t.name)
        return w.bad(tasks_node[t.name]["needs"], "tasks." + t.name + ".needs", "a task cannot need itself");
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
    if (auto cycle = visit(t.name))
      return w.bad(tasks_node[t.name]["needs"], "tasks." + t.name + ".needs", "dependency cycle " + *cycle);
  }
  std::map<std::string, std::string> batch_of;
  const auto batches_node = root["batches"];
  for (std::size_t i = 0; i < file.batches.size(); ++i) {
    const auto key = "batches[" + std::to_string(i) + "].tasks";
    const auto at = batches_node[i]["tasks"];
    for (const auto& name : file.batches[i].tasks) {
      if (!by_name.contains(name)) return w.bad(at, key, "no task named '" + name + "'");
      if (auto [it, fresh] = batch_of.emplace(name, file.batches[i].name); !fresh)
        return w.bad(at, key, "task '" + name + "' is already in batch '" + it->second + "'");
    }
  }
  return {};
}

Result<BatchFile> parse_root(const Walker& w, const YAML::Node& root, const std::string& source) {
  BatchFile file;
  file.source = source;
  file.project = std::filesystem::path(source).stem().string();
  if (!root.IsMap()) return w.bad(root, "", "expected a mapping with tasks:");
  if (auto ok = w.keys(root, "", {"project", "defaults", "tasks", "batches", "delays", "health"}); !ok)
    return std::unexpected(ok.error());
  if (root["project"]) {
    auto p = w.text(root["project"], "project");
    if (!p) return std::unexpected(p.error());
    file.project = *p;
  }
  if (auto ok = validate_name(file.project, "project"); !ok) {
    const auto at = root["project"] ? root["project"] : root;
    return w.bad(at, "project", ok.error().message + (root["project"] ? "" : " (set project: to name it)"));
  }
  if (root["defaults"] && !root["defaults"].IsNull()) {
    if (auto ok = parse_defaults(w, root["defaults"], file); !ok) return std::unexpected(ok.error());
  }
  const auto tasks = root["tasks"];
  if (!tasks || tasks.IsNull() || (tasks.IsMap() && tasks.size() == 0))
    return w.bad(tasks ? tasks : root, "tasks", "missing: a batch file lists at least one task");
  if (!tasks.IsMap()) return w.bad(tasks, "tasks", "expected a mapping of task name: {cmd: ...}");
  for (const auto& item : tasks) {
    auto task = parse_task(w, item.first, item.second);
    if (!task) return std::unexpected(task.error());
    file.tasks.push_back(std::move(*task));
  }
  if (const auto batches = root["batches"]; batches && !batches.IsNull()) {
    if (!batches.IsSequence()) return w.bad(batches, "batches", "expected a list of batches");
    for (std::size_t i = 0; i < batches.size(); ++i) {
      auto group = parse_group(w, batches[i], i);
      if (!group) return std::unexpected(group.error());
      file.batches.push_back(std::move(*group));
    }
  }
  if (const auto delays = root["delays"]; delays && !delays.IsNull()) {
    if (auto ok = w.keys(delays, "delays", {"between_batches", "between_tasks"}); !ok) return std::unexpected(ok.error());
    for (auto [name, target] : {std::pair{"between_batches", &file.between_batches},
                                std::pair{"between_tasks", &file.between_tasks}}) {
      if (!delays[name]) continue;
      auto d = w.duration(delays[name], std::string("delays.") + name);
      if (!d) return std::unexpected(d.error());
      *target = *d;
    }
  }
  if (root["health"]) {
    if (auto ok = parse_health(w, root["health"], file); !ok) return std::unexpected(ok.error());
  }
  if (auto ok = check_references(w, root, file); !ok) return std::unexpected(ok.error());
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

Result<BatchFile> parse_batch_file(const std::string& yaml_text, const std::string& source) {
  const Walker w(source);
  try {
    const YAML::Node root = YAML::Load(yaml_text);
    if (auto unique = check_duplicate_keys(yaml_text, source); !unique) return std::unexpected(unique.error());
    return parse_root(w, root, source);
  } catch (const YAML::Exception& e) {
    std::string where = source;
    if (e.mark.line >= 0) where += ":" + std::to_string(e.mark.line + 1);
    return fail(where + ": " + e.msg);
  }
}

Result<BatchFile> load_batch_file(const std::string& path) {
  auto text = read_file(path, kMaxConfigBytes);
  if (!text) return std::unexpected(std::move(text.error()).wrap("batch file"));
  return parse_batch_file(*text, path);
}

Result<BatchFile> batch_from_lines(std::istream& in, std::size_t max_line, std::size_t max_tasks) {
  BatchFile file;
  file.source = "<stdin>";
  file.project = "batch";
  file.from_stdin = true;
  std::string line;
  std::size_t number = 0;
  auto add = [&]() -> Result<void> {
    ++number;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.find_first_not_of(" \t") == std::string::npos) return {};
    if (file.tasks.size() == max_tasks)
      return fail("<stdin>: more than " + std::to_string(max_tasks) + " commands; split the input");
    BatchTask task;
    task.name = std::to_string(file.tasks.size() + 1);
    task.cmd = std::move(line);
    file.tasks.push_back(std::move(task));
    return {};
  };
  // Read by hand, not with getline: a line with no end (/dev/zero) must not grow without bound.
  std::streambuf* buf = in.rdbuf();
  for (int c = buf->sbumpc(); c != std::char_traits<char>::eof(); c = buf->sbumpc()) {
    if (c == '\n') {
      if (auto a = add(); !a) return std::unexpected(a.error());
      line.clear();
      continue;
    }
    if (line.size() == max_line)
      return fail("<stdin>:" + std::to_string(number + 1) + ": a line longer than " + std::to_string(max_line) +
                  " bytes (the kernel's limit for one command)");
    line.push_back(static_cast<char>(c));
  }
  if (!line.empty())
    if (auto a = add(); !a) return std::unexpected(a.error());
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
  auto concurrency = read("MAX_CONCURRENCY", 1, 100000);
  if (!concurrency) return std::unexpected(concurrency.error());
  if (*concurrency) out.max_concurrency = static_cast<int>(**concurrency);
  if (const char* rate = getenv("RATE_LIMIT"); rate && *rate) {
    double r = 0;
    const std::string_view s(rate);
    auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), r);
    if (ec != std::errc{} || end != s.data() + s.size() || !std::isfinite(r) || r < 0)
      return fail(std::string("RATE_LIMIT='") + rate + "' in the environment: expected starts per second, 0 or more");
    out.rate_limit = r;
  }
  auto timeout = read("TASK_TIMEOUT", 0, 1LL << 40);
  if (!timeout) return std::unexpected(timeout.error());
  if (*timeout) out.timeout = std::chrono::milliseconds(**timeout);
  return out;
}

Result<BatchRun> resolve_batch(const BatchFile& file, const std::vector<std::string>& selected,
                               const Limits& flags, const Limits& environment) {
  BatchRun run;
  run.project = file.project;
  run.health_check = file.health_check;
  std::map<std::string, std::size_t> index_of;  // file task name -> scheduler index

  std::vector<BatchGroup> groups;
  if (!selected.empty()) {
    BatchGroup group{"", selected, {}};
    for (const auto& name : selected) {
      const bool known = std::any_of(file.tasks.begin(), file.tasks.end(),
                                     [&](const BatchTask& t) { return t.name == name; });
      if (!known) {
        std::string names;
        for (const auto& t : file.tasks) names += (names.empty() ? "" : ", ") + t.name;
        return fail(file.source + ": no task named '" + name + "' (tasks: " + names + ")");
      }
      group.name += (group.name.empty() ? "" : " ") + name;
    }
    std::set<std::string> seen;
    std::erase_if(group.tasks, [&](const std::string& n) { return !seen.insert(n).second; });
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
    batch.max_concurrency = first_of(kDefaultConcurrency, {&flags.max_concurrency, &environment.max_concurrency,
                                                           &group.limits.max_concurrency, &file.defaults.max_concurrency});
    batch.rate_limit = first_of(kDefaultRateLimit, {&flags.rate_limit, &environment.rate_limit,
                                                    &group.limits.rate_limit, &file.defaults.rate_limit});
    batch.max_queue = first_of(kDefaultMaxQueue, {&flags.max_queue, &environment.max_queue,
                                                  &group.limits.max_queue, &file.defaults.max_queue});
    batch.queue_overflow_waits = file.from_stdin;
    for (const auto& name : group.tasks) {
      const auto& task = *std::find_if(file.tasks.begin(), file.tasks.end(),
                                       [&](const BatchTask& t) { return t.name == name; });
      runner::TaskPlan tp;
      tp.name = task.name;
      tp.timeout = first_of(kDefaultTimeout, {&flags.timeout, &environment.timeout, &task.limits.timeout,
                                              &group.limits.timeout, &file.defaults.timeout});
      tp.retries = first_of(kDefaultRetries, {&flags.retries, &environment.retries, &task.limits.retries,
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
