// Reading a Taskmaster config: every key of SPEC §9 checked for type and range, errors that
// name the file, the line and the key, and supervisord's defaults for what is left out.
#include "src/taskmaster/supervisor_config.hpp"

#include <pwd.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <vector>

#include "common/duration.hpp"
#include "common/fs.hpp"
#include "common/names.hpp"
#include "common/signals.hpp"
#include "common/yaml_reader.hpp"
#include "isolation/backend.hpp"
#include "isolation/profile.hpp"

namespace batman::cli {
namespace {

namespace fs = std::filesystem;
using runner::OutputTarget;
using runner::ProgramConfig;
using runner::SupervisorConfig;

using yaml::Value;

constexpr std::string_view kProgramKeys[] = {
    "cmd",         "numprocs",        "autostart",      "autorestart",    "exitcodes",
    "startretries", "starttime",      "stopsignal",     "stoptime",       "stdout",
    "stderr",      "stdout_maxbytes", "stdout_backups", "stderr_maxbytes", "stderr_backups",
    "env",         "workingdir",      "umask",          "isolation",      "profile",
    "user"};

// Paths in a config: '~' is $HOME; relative ones are the config file's directory's.
class Paths {
 public:
  explicit Paths(std::string base_dir) : base_(std::move(base_dir)) {}

  std::string resolve(const std::string& raw) const {
    std::string p = raw;
    if (p == "~" || p.starts_with("~/")) {
      const char* home = std::getenv("HOME");
      if (!home || !*home) {
        if (passwd* pw = getpwuid(getuid()); pw && pw->pw_dir) home = pw->pw_dir;
      }
      p.replace(0, 1, home ? home : "");
    }
    fs::path out(p);
    if (out.is_relative()) out = fs::path(base_) / out;
    return out.lexically_normal().string();
  }

  Result<std::string> read(const Value& v) const { return resolve(BATMAN_TRY(v.nonblank())); }

  // A path, or null to discard; absent: the project's logs/.
  Result<OutputTarget> output(const Value& v) const {
    OutputTarget target;
    if (!v) return target;
    if (v.is_null()) {
      target.kind = OutputTarget::Kind::Discard;
      return target;
    }
    target.kind = OutputTarget::Kind::Path;
    target.path = BATMAN_TRY(read(v));
    return target;
  }

 private:
  std::string base_;
};

// Always octal, as supervisord reads it, whether written 022, "022" or 0o22.
Result<mode_t> read_umask(const Value& v) {
  std::string s = v.scalar();
  if (s.starts_with("0o")) s.erase(0, 2);
  const bool octal = !s.empty() && s.size() <= 4 && s.find_first_not_of("01234567") == std::string::npos;
  if (!octal) return v.expected("an octal mask such as \"022\"");
  const unsigned long mask = std::strtoul(s.c_str(), nullptr, 8);
  if (mask > 0777) return v.out_of_range("000 to 777");
  return static_cast<mode_t>(mask);
}

Result<void> read_user(const Value& v, ProgramConfig& p) {
  const auto name = BATMAN_TRY(v.text());
  passwd* pw = getpwnam(name.c_str());
  if (!pw && !name.empty() && name.find_first_not_of("0123456789") == std::string::npos)
    pw = getpwuid(static_cast<uid_t>(std::strtoul(name.c_str(), nullptr, 10)));
  if (!pw) return v.error("no such user '" + name + "'");
  if (pw->pw_uid != geteuid() && geteuid() != 0) return v.error("running as '" + name + "' needs batman to run as root");
  p.user = name;
  p.uid = pw->pw_uid;
  p.gid = pw->pw_gid;
  return {};
}

Result<ProgramConfig> read_program(const Value& node, const std::string& name, const Paths& paths) {
  ProgramConfig p;
  p.name = name;
  BATMAN_TRY(node.keys(kProgramKeys));

  const auto cmd = node["cmd"];
  if (!cmd) return cmd.missing("the command to run");
  p.command = BATMAN_TRY(cmd.nonblank());

  if (const auto v = node["numprocs"]) p.numprocs = static_cast<int>(BATMAN_TRY(v.integer(1, kMaxNumprocs)));
  if (const auto v = node["autostart"]) p.autostart = BATMAN_TRY(v.flag());
  if (const auto v = node["autorestart"]) {
    // true and false are supervisord's spellings of always and never.
    p.rules.autorestart = *runner::parse_autorestart(BATMAN_TRY(v.choice({"always", "never", "unexpected", "true", "false"})));
  }
  if (const auto v = node["exitcodes"]) {
    p.rules.exitcodes.clear();
    const auto items = v.items();
    if (v.is_scalar()) p.rules.exitcodes.push_back(static_cast<int>(BATMAN_TRY(v.integer(0, 255))));
    else if (items.empty()) return v.expected("an exit code or a list of at least one");
    for (const auto& item : items) p.rules.exitcodes.push_back(static_cast<int>(BATMAN_TRY(item.integer(0, 255))));
  }
  if (const auto v = node["startretries"]) p.rules.startretries = static_cast<int>(BATMAN_TRY(v.integer(0, 1000)));
  if (const auto v = node["starttime"]) p.rules.starttime = BATMAN_TRY(v.duration());
  if (const auto v = node["stopsignal"]) p.rules.stopsignal = BATMAN_TRY(v.signal());
  if (const auto v = node["stoptime"]) p.rules.stoptime = BATMAN_TRY(v.duration());
  p.stdout_log = BATMAN_TRY(paths.output(node["stdout"]));
  p.stderr_log = BATMAN_TRY(paths.output(node["stderr"]));
  for (auto [target, stream] : {std::pair{&p.stdout_log, "stdout"}, std::pair{&p.stderr_log, "stderr"}}) {
    const std::string s(stream);
    if (const auto v = node[s + "_maxbytes"]) target->max_bytes = BATMAN_TRY(v.size());
    if (const auto v = node[s + "_backups"]) target->backups = static_cast<int>(BATMAN_TRY(v.integer(0, 1000)));
  }
  if (const auto v = node["env"]) p.env = BATMAN_TRY(v.variables());
  if (const auto v = node["workingdir"]) {
    auto dir = BATMAN_TRY(paths.read(v));
    std::error_code ec;
    if (!fs::is_directory(dir, ec)) return v.error("no such directory: " + dir);
    p.workingdir = std::move(dir);
  }
  if (const auto v = node["umask"]) p.umask = BATMAN_TRY(read_umask(v));
  std::optional<isolation::Tier> requested;
  const auto tier = node["isolation"];
  if (tier) {
    p.isolation = BATMAN_TRY(tier.choice(isolation::kTierWords));
    requested = *isolation::parse_tier(*p.isolation);
  }
  const auto profile = node["profile"];
  if (profile) p.profile = BATMAN_TRY(profile.text());
  if (p.isolation || p.profile) {
    // Isolated programs get a job's defaults: the strongest tier and the `parallel` profile.
    auto choice = isolation::choose_tier(requested);
    if (!choice) return tier.error(choice.error().message);
    p.tier = choice->tier;
    std::string profile_name = p.profile.value_or("parallel");
    if (p.profile && profile_name.find('/') != std::string::npos) profile_name = paths.resolve(profile_name);
    auto loaded = isolation::load_profile(profile_name);
    if (!loaded) return profile.error(loaded.error().message);
    p.resolved_profile = std::move(*loaded);
  }
  if (const auto v = node["user"]) BATMAN_TRY(read_user(v, p));
  return p;
}

Result<SupervisorConfig> read_config(const Value& root, const std::string& source, const Paths& paths) {
  SupervisorConfig config;
  config.source = source;
  BATMAN_TRY(root.keys({"logfile", "socket", "programs"}));
  if (const auto v = root["logfile"]) config.logfile = BATMAN_TRY(paths.read(v));
  if (const auto v = root["socket"]) {
    auto socket = BATMAN_TRY(paths.read(v));
    if (socket.size() > 107) return v.error("path longer than 107 bytes, the limit of a Unix socket");
    config.socket = std::move(socket);
  }
  const auto programs = root["programs"];
  if (!programs) return programs.missing("a mapping of program names to their settings");
  if (programs.is_null()) return config;  // no programs yet is a valid, idle supervisor
  if (!programs.is_map()) return programs.expected("a mapping of program names");
  for (const auto& [name, at_name, settings] : BATMAN_TRY(programs.entries())) {
    if (auto ok = validate_name(name, "program"); !ok || name.size() > 60 || name == "all")
      return at_name.error("invalid program name: use letters, digits, '.', '_' or '-' (at most 60, not 'all')");
    config.programs.push_back(BATMAN_TRY(read_program(settings, name, paths)));
  }
  return config;
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
  const Paths paths(base_dir);
  return yaml::Reader(source).read(yaml_text, [&](const Value& root) { return read_config(root, source, paths); });
}

Result<SupervisorConfig> load_supervisor_config(const std::string& path) {
  auto project = BATMAN_TRY(config_project(path));
  auto text = read_file(path, kMaxConfigBytes);
  if (!text) return std::unexpected(text.error().wrap("config"));
  std::error_code ec;
  fs::path absolute = fs::absolute(path, ec);
  std::string base = ec ? std::string(".") : absolute.parent_path().string();
  auto config = parse_supervisor_config(*text, path, base);
  if (!config) return config;
  config->project = std::move(project);
  return config;
}

}  // namespace batman::cli
