// Reading a Taskmaster config: every key of SPEC §9 checked for type and range, errors that
// name the file, the line and the key, and supervisord's defaults for what is left out.
#include "src/taskmaster/supervisor_config.hpp"

#include <pwd.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
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

  // A path that starts with an expansion is resolved once expanded (expand_instance).
  Result<std::string> read(const Value& v) const {
    auto raw = BATMAN_TRY(v.nonblank());
    return raw.starts_with("%(") ? raw : resolve(raw);
  }
  const std::string& base() const { return base_; }

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

  p.here = paths.base();
  const auto cmd = node["cmd"];
  if (!cmd) return cmd.missing("the command to run");
  p.command = BATMAN_TRY(cmd.nonblank());

  if (const auto v = node["numprocs"]) p.numprocs = static_cast<int>(BATMAN_TRY(v.integer(1, kMaxNumprocs)));
  // Every %(...)s is checked here, where the error can name the line: instances expand the
  // same text later (expand_instance) and cannot meet an error this did not.
  Expansions vars{name, p.here, 0, p.numprocs, std::string()};
  auto check = [&](const Value& v, const std::string& text) -> Result<void> {
    if (auto e = expand_percent(text, vars); !e) return v.error(e.error().message);
    return {};
  };
  BATMAN_TRY(check(cmd, p.command));
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
  for (auto [target, key] : {std::pair{&p.stdout_log, "stdout"}, std::pair{&p.stderr_log, "stderr"}}) {
    if (target->kind != OutputTarget::Kind::Path) continue;
    BATMAN_TRY(check(node[key], target->path));
    target->per_instance = mentions_expansion(target->path, "process_num");
  }
  for (auto [target, stream] : {std::pair{&p.stdout_log, "stdout"}, std::pair{&p.stderr_log, "stderr"}}) {
    const std::string s(stream);
    if (const auto v = node[s + "_maxbytes"]) target->max_bytes = BATMAN_TRY(v.size());
    if (const auto v = node[s + "_backups"]) target->backups = static_cast<int>(BATMAN_TRY(v.integer(0, 1000)));
  }
  if (const auto v = node["env"]) {
    p.env = BATMAN_TRY(v.variables());
    for (const auto& entry : BATMAN_TRY(v.entries()))
      if (auto e = expand_percent(p.env[entry.name], vars); !e)
        return entry.value.error(e.error().message);
  }
  if (const auto v = node["workingdir"]) {
    auto dir = BATMAN_TRY(paths.read(v));
    BATMAN_TRY(check(v, dir));
    // Each instance's own, when it differs per instance.
    const int count = mentions_expansion(dir, "process_num") ? p.numprocs : 1;
    for (int i = 0; i < count; ++i) {
      vars.process_num = i;
      const auto expanded = paths.resolve(*expand_percent(dir, vars));
      std::error_code ec;
      if (!fs::is_directory(expanded, ec)) return v.error("no such directory: " + expanded);
    }
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

bool mentions_expansion(std::string_view text, std::string_view key) {
  const std::string needle = "%(" + std::string(key) + ")";
  return text.find(needle) != std::string_view::npos;
}

Result<std::string> expand_percent(std::string_view text, const Expansions& vars) {
  std::string out;
  out.reserve(text.size());
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (text[i] != '%' || i + 1 >= text.size() || (text[i + 1] != '(' && text[i + 1] != '%')) {
      out += text[i];
      continue;
    }
    if (text[i + 1] == '%') {
      out += '%';
      ++i;
      continue;
    }
    const std::size_t close = text.find(')', i + 2);
    if (close == std::string_view::npos)
      return fail("unterminated expansion '" + std::string(text.substr(i, 20)) + "': write %(NAME)s, or %% for '%'");
    const std::string key(text.substr(i + 2, close - i - 2));
    // [flags][width][.precision]conversion, as Python's %-format.
    std::size_t at = close + 1;
    bool left = false, zero = false, plus = false, space = false;
    for (; at < text.size() && std::string_view("-0+ #").find(text[at]) != std::string_view::npos; ++at) {
      left |= text[at] == '-';
      zero |= text[at] == '0';
      plus |= text[at] == '+';
      space |= text[at] == ' ';
    }
    std::size_t width = 0, precision = 0;
    bool has_precision = false;
    // Widths past kMaxWidth are cut to it: a config cannot make a gigabyte string.
    constexpr std::size_t kMaxWidth = 4096;
    auto digits_at = [&](std::size_t& into) {
      for (; at < text.size() && text[at] >= '0' && text[at] <= '9'; ++at)
        into = std::min(kMaxWidth, into * 10 + static_cast<std::size_t>(text[at] - '0'));
    };
    digits_at(width);
    if (at < text.size() && text[at] == '.') {
      has_precision = true;
      ++at;
      digits_at(precision);
    }
    const std::string spec(text.substr(i, std::min(at + 1, text.size()) - i));
    if (at >= text.size() || std::string_view("sdi").find(text[at]) == std::string_view::npos)
      return fail("expansion '" + spec + "' needs a conversion: s (text) or d (number), as in %(" + key + ")s");
    const char conversion = text[at];
    std::optional<long long> number;
    std::string value;
    if (key == "program_name" || (key == "group_name" && vars.group_name.empty())) {
      value = vars.program_name;
    } else if (key == "group_name") {
      value = vars.group_name;
    } else if (key == "here") {
      value = vars.here;
    } else if (key == "process_num") {
      number = vars.process_num;
    } else if (key == "numprocs") {
      number = vars.numprocs;
    } else if (key == "host_node_name") {
      utsname u{};
      value = ::uname(&u) == 0 ? u.nodename : "";
    } else if (key.starts_with("ENV_") && key.size() > 4) {
      const char* env = std::getenv(key.c_str() + 4);
      if (!env) return fail("expansion '" + spec + "': the environment variable " + key.substr(4) + " is not set");
      value = env;
    } else {
      return fail("unknown expansion '" + spec +
                  "': use program_name, process_num, numprocs, group_name, here, host_node_name or ENV_NAME");
    }
    std::string piece;
    if (conversion == 's') {
      piece = number ? std::to_string(*number) : value;
      if (has_precision && piece.size() > precision) piece.resize(precision);
      if (piece.size() < width) piece.insert(left ? piece.end() : piece.begin(), width - piece.size(), ' ');
    } else {
      if (!number) {
        // Python takes a numeric string for %d only if it is an int; supervisord's are not.
        return fail("expansion '" + spec + "': " + key + " is text, write %(" + key + ")s");
      }
      std::string digits = std::to_string(*number < 0 ? -*number : *number);
      if (has_precision && digits.size() < precision) digits.insert(0, precision - digits.size(), '0');
      std::string sign = *number < 0 ? "-" : plus ? "+" : space ? " " : "";
      if (zero && !left && !has_precision && sign.size() + digits.size() < width)
        digits.insert(0, width - sign.size() - digits.size(), '0');
      piece = sign + digits;
      if (piece.size() < width) piece.insert(left ? piece.end() : piece.begin(), width - piece.size(), ' ');
    }
    out += piece;
    i = at;
  }
  return out;
}

Result<ProgramConfig> expand_instance(const ProgramConfig& program, int index) {
  const Paths paths(program.here.empty() ? std::string(".") : program.here);
  const Expansions vars{program.name, program.here, index + program.numprocs_start, program.numprocs, program.group};
  ProgramConfig out = program;
  out.command = BATMAN_TRY(expand_percent(program.command, vars));
  for (auto& [name, value] : out.env) value = BATMAN_TRY(expand_percent(value, vars));
  for (auto* target : {&out.stdout_log, &out.stderr_log})
    if (target->kind == OutputTarget::Kind::Path) target->path = paths.resolve(BATMAN_TRY(expand_percent(target->path, vars)));
  if (!out.workingdir.empty()) out.workingdir = paths.resolve(BATMAN_TRY(expand_percent(out.workingdir, vars)));
  return out;
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
