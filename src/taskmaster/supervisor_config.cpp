// Reading a Taskmaster config: every key of SPEC §9 checked for type and range, errors that
// name the file, the line and the key, and supervisord's defaults for what is left out.
#include "src/taskmaster/supervisor_config.hpp"

#include <pwd.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <vector>

#include <yaml-cpp/yaml.h>

#include "common/duration.hpp"
#include "common/fs.hpp"
#include "common/names.hpp"
#include "common/signals.hpp"
#include "common/yaml.hpp"
#include "isolation/profile.hpp"

namespace batman::cli {
namespace {

namespace fs = std::filesystem;
using runner::OutputTarget;
using runner::ProgramConfig;
using runner::SupervisorConfig;

const std::vector<std::string_view> kTopKeys = {"logfile", "socket", "programs"};
const std::vector<std::string_view> kProgramKeys = {
    "cmd",         "numprocs",        "autostart",      "autorestart",    "exitcodes",
    "startretries", "starttime",      "stopsignal",     "stoptime",       "stdout",
    "stderr",      "stdout_maxbytes", "stdout_backups", "stderr_maxbytes", "stderr_backups",
    "env",         "workingdir",      "umask",          "isolation",      "profile",
    "user"};

std::string join_keys(const std::vector<std::string_view>& keys) {
  std::string out;
  for (auto k : keys) out += (out.empty() ? "" : ", ") + std::string(k);
  return out;
}

class Reader {
 public:
  Reader(std::string source, std::string base_dir) : source_(std::move(source)), base_(std::move(base_dir)) {}

  std::unexpected<Error> error(const YAML::Node& at, const std::string& key, const std::string& what) const {
    std::string where = source_;
    if (at.IsDefined() && at.Mark().line >= 0) where += ":" + std::to_string(at.Mark().line + 1);
    return fail(where + ": key '" + key + "': " + what);
  }

  Result<void> check_keys(const YAML::Node& node, const std::string& key,
                          const std::vector<std::string_view>& allowed) const {
    if (!node.IsMap()) return error(node, key, "expected a mapping");
    for (const auto& item : node) {
      if (!item.first.IsScalar()) return error(item.first, key, "keys must be plain words");
      std::string name = item.first.Scalar();
      if (std::find(allowed.begin(), allowed.end(), name) == allowed.end())
        return error(item.first, join(key, name), "unknown key (known: " + join_keys(allowed) + ")");
    }
    return {};
  }

  static std::string join(const std::string& a, const std::string& b) { return a.empty() ? b : a + "." + b; }

  Result<std::string> text(const YAML::Node& node, const std::string& key) const {
    if (!node.IsScalar()) return error(node, key, "expected a string");
    return node.Scalar();
  }

  Result<bool> boolean(const YAML::Node& node, const std::string& key) const {
    if (node.IsScalar()) {
      const auto& s = node.Scalar();
      if (s == "true" || s == "yes" || s == "on") return true;
      if (s == "false" || s == "no" || s == "off") return false;
    }
    return error(node, key, "expected true or false");
  }

  Result<long long> integer(const YAML::Node& node, const std::string& key, long long min, long long max) const {
    if (!node.IsScalar()) return error(node, key, "expected a number");
    auto n = parse_integer(node.Scalar(), key, min, max);
    if (!n) return error(node, key, n.error().message);
    return *n;
  }

  // Seconds as a number ("5", "2.5") or a duration ("1500ms", "1m").
  Result<Duration> seconds(const YAML::Node& node, const std::string& key) const {
    if (!node.IsScalar()) return error(node, key, "expected seconds (5) or a duration (1500ms, 1m)");
    auto d = parse_duration(node.Scalar());
    if (!d) return error(node, key, d.error().message);
    if (*d < Duration::zero()) return error(node, key, "must not be negative");
    return *d;
  }

  Result<std::uint64_t> size(const YAML::Node& node, const std::string& key) const {
    if (!node.IsScalar()) return error(node, key, "expected a size such as 50MB or 0");
    auto n = parse_size(node.Scalar());
    if (!n) return error(node, key, n.error().message);
    return *n;
  }

  // '~' is $HOME; relative paths are the config file's directory's.
  std::string path(const std::string& raw) const {
    std::string p = raw;
    if (p == "~" || p.rfind("~/", 0) == 0) {
      const char* home = std::getenv("HOME");
      if (!home || !*home) {
        if (passwd* pw = getpwuid(getuid()); pw && pw->pw_dir) home = pw->pw_dir;
      }
      p = std::string(home ? home : "") + p.substr(1);
    }
    fs::path out(p);
    if (out.is_relative()) out = fs::path(base_) / out;
    return out.lexically_normal().string();
  }

  Result<std::string> path_value(const YAML::Node& node, const std::string& key) const {
    auto raw = text(node, key);
    if (!raw) return std::unexpected(raw.error());
    if (raw->empty()) return error(node, key, "expected a path");
    return path(*raw);
  }

  Result<ProgramConfig> program(const std::string& name, const YAML::Node& node) const;
  Result<OutputTarget> output(const YAML::Node& node, const std::string& key) const;

 private:
  std::string source_;
  std::string base_;
};

Result<OutputTarget> Reader::output(const YAML::Node& node, const std::string& key) const {
  OutputTarget target;
  if (!node.IsDefined()) return target;
  if (node.IsNull()) {
    target.kind = OutputTarget::Kind::Discard;
    return target;
  }
  auto p = path_value(node, key);
  if (!p) return std::unexpected(p.error());
  target.kind = OutputTarget::Kind::Path;
  target.path = *p;
  return target;
}

Result<ProgramConfig> Reader::program(const std::string& name, const YAML::Node& node) const {
  const std::string base = "programs." + name;
  ProgramConfig p;
  p.name = name;
  if (!node.IsMap()) return error(node, base, "expected a mapping with at least 'cmd'");
  if (auto ok = check_keys(node, base, kProgramKeys); !ok) return std::unexpected(ok.error());
  auto key = [&](const char* k) { return base + "." + k; };

  const YAML::Node cmd = node["cmd"];
  if (!cmd.IsDefined()) return error(node, key("cmd"), "missing: the command to run, e.g. cmd: \"python3 -m http.server\"");
  auto command = text(cmd, key("cmd"));
  if (!command) return std::unexpected(command.error());
  if (command->find_first_not_of(" \t") == std::string::npos) return error(cmd, key("cmd"), "must not be empty");
  p.command = *command;

  if (auto n = node["numprocs"]) {
    auto v = integer(n, key("numprocs"), 1, 100);
    if (!v) return std::unexpected(v.error());
    p.numprocs = static_cast<int>(*v);
  }
  if (auto n = node["autostart"]) {
    auto v = boolean(n, key("autostart"));
    if (!v) return std::unexpected(v.error());
    p.autostart = *v;
  }
  if (auto n = node["autorestart"]) {
    if (!n.IsScalar()) return error(n, key("autorestart"), "expected always, never or unexpected");
    auto v = runner::parse_autorestart(n.Scalar());
    if (!v) return error(n, key("autorestart"), v.error().message);
    p.rules.autorestart = *v;
  }
  if (auto n = node["exitcodes"]) {
    p.rules.exitcodes.clear();
    if (n.IsSequence()) {
      if (n.size() == 0) return error(n, key("exitcodes"), "expected at least one exit code");
      for (const auto& item : n) {
        auto v = integer(item, key("exitcodes"), 0, 255);
        if (!v) return std::unexpected(v.error());
        p.rules.exitcodes.push_back(static_cast<int>(*v));
      }
    } else {
      auto v = integer(n, key("exitcodes"), 0, 255);
      if (!v) return std::unexpected(v.error());
      p.rules.exitcodes.push_back(static_cast<int>(*v));
    }
  }
  if (auto n = node["startretries"]) {
    auto v = integer(n, key("startretries"), 0, 1000);
    if (!v) return std::unexpected(v.error());
    p.rules.startretries = static_cast<int>(*v);
  }
  if (auto n = node["starttime"]) {
    auto v = seconds(n, key("starttime"));
    if (!v) return std::unexpected(v.error());
    p.rules.starttime = *v;
  }
  if (auto n = node["stopsignal"]) {
    if (!n.IsScalar()) return error(n, key("stopsignal"), "expected a signal name such as TERM");
    auto v = parse_signal(n.Scalar());
    if (!v) return error(n, key("stopsignal"), v.error().message);
    p.rules.stopsignal = *v;
  }
  if (auto n = node["stoptime"]) {
    auto v = seconds(n, key("stoptime"));
    if (!v) return std::unexpected(v.error());
    p.rules.stoptime = *v;
  }
  auto out = output(node["stdout"], key("stdout"));
  if (!out) return std::unexpected(out.error());
  p.stdout_log = *out;
  auto err = output(node["stderr"], key("stderr"));
  if (!err) return std::unexpected(err.error());
  p.stderr_log = *err;
  for (auto [target, stream] : {std::pair{&p.stdout_log, "stdout"}, std::pair{&p.stderr_log, "stderr"}}) {
    std::string s(stream);
    if (auto n = node[s + "_maxbytes"]) {
      auto v = size(n, key((s + "_maxbytes").c_str()));
      if (!v) return std::unexpected(v.error());
      target->max_bytes = *v;
    }
    if (auto n = node[s + "_backups"]) {
      auto v = integer(n, key((s + "_backups").c_str()), 0, 1000);
      if (!v) return std::unexpected(v.error());
      target->backups = static_cast<int>(*v);
    }
  }
  if (auto n = node["env"]) {
    if (!n.IsMap()) return error(n, key("env"), "expected a mapping of NAME: value");
    for (const auto& item : n) {
      std::string k = item.first.IsScalar() ? item.first.Scalar() : "";
      if (k.empty() || k.find('=') != std::string::npos || k.find('\0') != std::string::npos)
        return error(item.first, key("env"), "variable names must be non-empty and hold no '='");
      if (!item.second.IsScalar() && !item.second.IsNull())
        return error(item.second, key("env") + "." + k, "expected a string value");
      p.env[k] = item.second.IsNull() ? "" : item.second.Scalar();
    }
  }
  if (auto n = node["workingdir"]) {
    auto v = path_value(n, key("workingdir"));
    if (!v) return std::unexpected(v.error());
    std::error_code ec;
    if (!fs::is_directory(*v, ec)) return error(n, key("workingdir"), "no such directory: " + *v);
    p.workingdir = *v;
  }
  if (auto n = node["umask"]) {
    // Always octal, as supervisord reads it, whether written 022, "022" or 0o22.
    std::string s = n.IsScalar() ? n.Scalar() : "";
    if (s.rfind("0o", 0) == 0) s.erase(0, 2);
    bool octal = !s.empty() && s.size() <= 4 && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '7'; });
    if (!octal) return error(n, key("umask"), "expected an octal mask such as \"022\"");
    unsigned long v = std::strtoul(s.c_str(), nullptr, 8);
    if (v > 0777) return error(n, key("umask"), "expected an octal mask between 000 and 777");
    p.umask = static_cast<mode_t>(v);
  }
  std::optional<isolation::Tier> requested;
  if (auto n = node["isolation"]) {
    if (!n.IsScalar()) return error(n, key("isolation"), "expected auto, namespaces, firejail, systemd or env");
    auto t = isolation::parse_tier(n.Scalar());
    if (!t) return error(n, key("isolation"), t.error().message);
    requested = *t;
    p.isolation = n.Scalar();
  }
  if (auto n = node["profile"]) {
    auto v = text(n, key("profile"));
    if (!v) return std::unexpected(v.error());
    p.profile = *v;
  }
  if (p.isolation || p.profile) {
    // Isolated programs get a job's defaults: the strongest tier and the `parallel` profile.
    auto choice = isolation::choose_tier(requested);
    if (!choice) return error(node["isolation"].IsDefined() ? node["isolation"] : node, key("isolation"), choice.error().message);
    p.tier = choice->tier;
    std::string profile_name = p.profile.value_or("parallel");
    if (p.profile && (profile_name.find('/') != std::string::npos)) profile_name = path(profile_name);
    auto profile = isolation::load_profile(profile_name);
    if (!profile) return error(node["profile"].IsDefined() ? node["profile"] : node, key("profile"), profile.error().message);
    p.resolved_profile = *profile;
  }
  if (auto n = node["user"]) {
    auto v = text(n, key("user"));
    if (!v) return std::unexpected(v.error());
    passwd* pw = getpwnam(v->c_str());
    if (!pw && !v->empty() && std::all_of(v->begin(), v->end(), [](char c) { return c >= '0' && c <= '9'; }))
      pw = getpwuid(static_cast<uid_t>(std::strtoul(v->c_str(), nullptr, 10)));
    if (!pw) return error(n, key("user"), "no such user '" + *v + "'");
    if (pw->pw_uid != geteuid() && geteuid() != 0)
      return error(n, key("user"), "running as '" + *v + "' needs batman to run as root");
    p.user = *v;
    p.uid = pw->pw_uid;
    p.gid = pw->pw_gid;
  }
  return p;
}

}  // namespace

Result<std::string> config_project(const std::string& path) {
  std::string stem = fs::path(path).stem().string();
  if (auto ok = validate_name(stem, "project"); !ok)
    return fail("config " + path + ": its file name gives the project name: " + ok.error().message);
  return stem;
}

Result<SupervisorConfig> parse_supervisor_config(std::string_view yaml_text, const std::string& source,
                                                 const std::string& base_dir) {
  YAML::Node root;
  try {
    root = YAML::Load(std::string(yaml_text));
  } catch (const YAML::Exception& e) {
    return fail(source + ":" + std::to_string(e.mark.line + 1) + ": invalid YAML: " + e.msg);
  }
  if (auto unique = check_duplicate_keys(yaml_text, source); !unique) return std::unexpected(unique.error());
  Reader reader(source, base_dir);
  SupervisorConfig config;
  config.source = source;
  try {
    if (!root.IsMap()) return fail(source + ": expected a mapping with 'programs:' at the top");
    if (auto ok = reader.check_keys(root, "", kTopKeys); !ok) return std::unexpected(ok.error());
    if (auto n = root["logfile"]) {
      auto v = reader.path_value(n, "logfile");
      if (!v) return std::unexpected(v.error());
      config.logfile = *v;
    }
    if (auto n = root["socket"]) {
      auto v = reader.path_value(n, "socket");
      if (!v) return std::unexpected(v.error());
      if (v->size() > 107) return reader.error(n, "socket", "path longer than 107 bytes, the limit of a Unix socket");
      config.socket = *v;
    }
    const YAML::Node programs = root["programs"];
    if (!programs.IsDefined()) return fail(source + ": key 'programs': missing: a mapping of program names to their settings");
    if (programs.IsNull()) return config;  // no programs yet is a valid, idle supervisor
    if (!programs.IsMap()) return reader.error(programs, "programs", "expected a mapping of program names");
    for (const auto& item : programs) {
      std::string name = item.first.IsScalar() ? item.first.Scalar() : "";
      if (auto ok = validate_name(name, "program"); !ok || name.size() > 60 || name == "all")
        return reader.error(item.first, "programs." + name,
                            "invalid program name: use letters, digits, '.', '_' or '-' (at most 60, not 'all')");
      auto program = reader.program(name, item.second);
      if (!program) return std::unexpected(program.error());
      config.programs.push_back(std::move(*program));
    }
  } catch (const YAML::Exception& e) {
    return fail(source + ":" + std::to_string(e.mark.line + 1) + ": " + e.msg);
  }
  return config;
}

Result<SupervisorConfig> load_supervisor_config(const std::string& path) {
  auto project = config_project(path);
  if (!project) return std::unexpected(project.error());
  auto text = read_file(path, kMaxConfigBytes);
  if (!text) return std::unexpected(text.error().wrap("config"));
  std::error_code ec;
  fs::path absolute = fs::absolute(path, ec);
  std::string base = ec ? std::string(".") : absolute.parent_path().string();
  auto config = parse_supervisor_config(*text, path, base);
  if (!config) return config;
  config->project = *project;
  return config;
}

}  // namespace batman::cli
