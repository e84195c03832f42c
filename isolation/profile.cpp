// Isolation profiles: parsing and validating profiles/*.yaml (every error names file, line and
// key), and the search path of SPEC §2.
#include "isolation/profile.hpp"

#include <seccomp.h>
#include <sys/capability.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <iterator>
#include <optional>
#include <set>

#include <yaml-cpp/yaml.h>

#include "batman_config.h"
#include "common/duration.hpp"
#include "common/fs.hpp"
#include "common/yaml.hpp"
#include "isolation/cgroups.hpp"

namespace batman::isolation {

namespace fs = std::filesystem;

bool Profile::has_namespace(std::string_view ns) const {
  return std::find(namespaces.begin(), namespaces.end(), ns) != namespaces.end();
}

std::string_view network_name(Network n) {
  switch (n) {
    case Network::None: return "none";
    case Network::Loopback: return "loopback";
    case Network::Host: return "host";
  }
  return "host";
}

namespace {

const std::set<std::string, std::less<>> kNamespaceNames = {"user", "mount", "pid", "ipc",
                                                            "uts",  "net",   "cgroup"};

// Validation walks the document with a path of keys so every error can say where it is.
class Reader {
 public:
  explicit Reader(std::string source) : source_(std::move(source)) {}

  std::unexpected<Error> error(const YAML::Node& at, const std::string& key,
                               const std::string& what) const {
    std::string where = source_;
    if (at.IsDefined() && at.Mark().line >= 0) where += ":" + std::to_string(at.Mark().line + 1);
    return fail(where + ": key '" + key + "': " + what);
  }

  // A mapping whose keys are all in `allowed`.
  Result<void> check_map(const YAML::Node& node, const std::string& key,
                         std::initializer_list<std::string_view> allowed) const {
    if (!node.IsMap()) return error(node, key, "expected a mapping");
    for (const auto& item : node) {
      if (!item.first.IsScalar()) return error(item.first, key, "keys must be plain words");
      const auto name = item.first.Scalar();
      if (std::find(allowed.begin(), allowed.end(), name) == allowed.end()) {
        std::string list;
        for (auto a : allowed) list += (list.empty() ? "" : ", ") + std::string(a);
        return error(item.first, join(key, name), "unknown key (known: " + list + ")");
      }
    }
    return {};
  }

  Result<std::string> string(const YAML::Node& node, const std::string& key) const {
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

  Result<std::vector<std::string>> strings(const YAML::Node& node, const std::string& key) const {
    std::vector<std::string> out;
    if (!node || node.IsNull()) return out;
    if (!node.IsSequence()) return error(node, key, "expected a list of strings");
    for (const auto& item : node) {
      if (!item.IsScalar()) return error(item, key, "expected a list of strings");
      out.push_back(item.Scalar());
    }
    return out;
  }

  // A null (no limit) or a positive integer.
  Result<std::optional<std::uint64_t>> count(const YAML::Node& node, const std::string& key) const {
    if (!node || node.IsNull()) return std::nullopt;
    if (node.IsScalar()) {
      auto n = parse_integer(node.Scalar(), key, 1, 1LL << 40);
      if (n) return static_cast<std::uint64_t>(*n);
      // parse_integer names the key itself; the error already says which key it is.
      std::string why = n.error().message;
      if (why.starts_with(key + ": ")) why.erase(0, key.size() + 2);
      return error(node, key, why);
    }
    return error(node, key, "expected a positive integer or null");
  }

  static std::string join(const std::string& parent, std::string_view key) {
    return parent.empty() ? std::string(key) : parent + "." + std::string(key);
  }

 private:
  std::string source_;
};

// Absolute paths or paths starting with one of the substitutions the backends understand.
bool valid_fs_path(const std::string& p) {
  if (p.empty()) return false;
  if (p[0] == '/') return true;
  for (std::string_view var : {"$CWD", "$PROJECT_DIR", "$TMPDIR", "$HOME"}) {
    if (p.starts_with(var) && (p.size() == var.size() || p[var.size()] == '/')) return true;
  }
  return false;
}

Result<void> parse_filesystem(const Reader& r, const YAML::Node& node, Profile::Filesystem& out) {
  if (!node || node.IsNull()) return {};
  if (auto ok = r.check_map(node, "filesystem", {"read_only", "read_write", "tmpfs", "hide"}); !ok)
    return ok;
  struct Field {
    const char* key;
    std::vector<std::string>* target;
  } fields[] = {{"read_only", &out.read_only},
                {"read_write", &out.read_write},
                {"tmpfs", &out.tmpfs},
                {"hide", &out.hide}};
  for (auto& f : fields) {
    const auto key = std::string("filesystem.") + f.key;
    if (!node[f.key]) continue;
    auto list = r.strings(node[f.key], key);
    if (!list) return std::unexpected(list.error());
    std::size_t i = 0;
    for (const auto& p : *list) {
      if (!valid_fs_path(p))
        return r.error(node[f.key][i], key,
                       "'" + p + "' is not an absolute path (or $CWD, $PROJECT_DIR, $TMPDIR, $HOME)");
      ++i;
    }
    *f.target = std::move(*list);
  }
  return {};
}

Result<void> parse_capabilities(const Reader& r, const YAML::Node& node, Profile::Capabilities& out) {
  if (!node || node.IsNull()) return {};
  if (auto ok = r.check_map(node, "capabilities", {"drop", "keep"}); !ok) return ok;
  if (node["drop"]) {
    auto drop = r.string(node["drop"], "capabilities.drop");
    if (!drop) return std::unexpected(drop.error());
    if (*drop == "all") out.drop_all = true;
    else if (*drop == "none") out.drop_all = false;
    else return r.error(node["drop"], "capabilities.drop", "expected 'all' or 'none'");
  }
  if (node["keep"]) {
    auto keep = r.strings(node["keep"], "capabilities.keep");
    if (!keep) return std::unexpected(keep.error());
    std::size_t i = 0;
    for (const auto& name : *keep) {
      std::string lower;
      for (char c : name) lower += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      cap_value_t value;
      if (cap_from_name(lower.c_str(), &value) != 0 &&
          cap_from_name(("cap_" + lower).c_str(), &value) != 0)
        return r.error(node["keep"][i], "capabilities.keep", "unknown capability '" + name + "'");
      ++i;
    }
    out.keep = std::move(*keep);
  }
  return {};
}

Result<void> parse_seccomp(const Reader& r, const YAML::Node& node, Profile::Seccomp& out) {
  if (!node || node.IsNull()) return {};
  if (auto ok = r.check_map(node, "seccomp", {"default", "deny", "action"}); !ok) return ok;
  out.enabled = true;
  if (node["default"]) {
    auto d = r.string(node["default"], "seccomp.default");
    if (!d) return std::unexpected(d.error());
    // batman's filters are deny lists: everything not named is allowed.
    if (*d != "allow")
      return r.error(node["default"], "seccomp.default", "only 'allow' is supported (a deny list)");
    out.default_action = *d;
  }
  if (node["action"]) {
    auto a = r.string(node["action"], "seccomp.action");
    if (!a) return std::unexpected(a.error());
    if (*a == "errno") out.action = SeccompAction::Errno;
    else if (*a == "kill") out.action = SeccompAction::Kill;
    else if (*a == "log") out.action = SeccompAction::Log;
    else return r.error(node["action"], "seccomp.action", "expected errno, kill or log");
  }
  if (node["deny"]) {
    auto deny = r.strings(node["deny"], "seccomp.deny");
    if (!deny) return std::unexpected(deny.error());
    std::size_t i = 0;
    for (const auto& name : *deny) {
      if (seccomp_syscall_resolve_name(name.c_str()) == __NR_SCMP_ERROR)
        return r.error(node["deny"][i], "seccomp.deny", "unknown system call '" + name + "'");
      ++i;
    }
    out.deny = std::move(*deny);
  }
  return {};
}

Result<void> parse_limits(const Reader& r, const YAML::Node& node, Limits& out) {
  if (!node || node.IsNull()) return {};
  if (auto ok = r.check_map(node, "limits", {"memory", "cpus", "pids", "nofile"}); !ok) return ok;
  if (const auto m = node["memory"]; m && !m.IsNull()) {
    if (!m.IsScalar()) return r.error(m, "limits.memory", "expected a size like 512M or null");
    auto size = parse_size(m.Scalar());
    if (!size) return r.error(m, "limits.memory", size.error().message);
    out.memory_bytes = *size;
  }
  if (const auto c = node["cpus"]; c && !c.IsNull()) {
    char* end = nullptr;
    const std::string s = c.IsScalar() ? c.Scalar() : "";
    const double v = std::strtod(s.c_str(), &end);
    if (s.empty() || *end != '\0' || !std::isfinite(v) || v <= 0 || v > 4096)
      return r.error(c, "limits.cpus", "expected a positive number of CPUs like 1.5, or null");
    if (v < kMinCpus)
      return r.error(c, "limits.cpus", "below 0.01, the smallest CPU limit the kernel enforces (1 ms per 100 ms period)");
    out.cpus = v;
  }
  for (auto [key, target] : {std::pair{"pids", &out.pids}, std::pair{"nofile", &out.nofile}}) {
    auto n = r.count(node[key], std::string("limits.") + key);
    if (!n) return std::unexpected(n.error());
    *target = *n;
  }
  return {};
}

Result<void> parse_env(const Reader& r, const YAML::Node& node, Profile::Env& out) {
  if (!node || node.IsNull()) return {};
  if (auto ok = r.check_map(node, "env", {"clear", "keep", "set"}); !ok) return ok;
  if (node["clear"]) {
    auto b = r.boolean(node["clear"], "env.clear");
    if (!b) return std::unexpected(b.error());
    out.clear = *b;
  }
  if (node["keep"]) {
    auto keep = r.strings(node["keep"], "env.keep");
    if (!keep) return std::unexpected(keep.error());
    out.keep = std::move(*keep);
  }
  if (const auto set = node["set"]; set && !set.IsNull()) {
    if (!set.IsMap()) return r.error(set, "env.set", "expected a mapping of NAME: value");
    for (const auto& item : set) {
      const auto name = item.first.Scalar();
      if (name.empty() || name.find('=') != std::string::npos)
        return r.error(item.first, "env.set", "'" + name + "' is not a variable name");
      if (!item.second.IsScalar())
        return r.error(item.second, "env.set." + name, "expected a string value");
      out.set[name] = item.second.Scalar();
    }
  }
  return {};
}

Result<Profile> parse_document(const Reader& r, const YAML::Node& root, const std::string& source) {
  Profile p;
  p.source = source;
  p.name = fs::path(source).stem().string();
  if (!root.IsMap()) return r.error(root, "(top level)", "a profile is a mapping of keys");
  if (auto ok = r.check_map(root, "",
                            {"name", "description", "namespaces", "network", "hostname",
                             "filesystem", "capabilities", "no_new_privs", "seccomp", "limits",
                             "env", "die_with_parent", "root_user"});
      !ok)
    return std::unexpected(ok.error());

  auto take_string = [&](const char* key, std::string& target) -> Result<void> {
    if (!root[key]) return {};
    auto s = r.string(root[key], key);
    if (!s) return std::unexpected(s.error());
    target = *s;
    return {};
  };
  auto take_bool = [&](const char* key, bool& target) -> Result<void> {
    if (!root[key]) return {};
    auto b = r.boolean(root[key], key);
    if (!b) return std::unexpected(b.error());
    target = *b;
    return {};
  };
  if (auto ok = take_string("name", p.name); !ok) return std::unexpected(ok.error());
  if (auto ok = take_string("description", p.description); !ok) return std::unexpected(ok.error());
  if (auto ok = take_string("hostname", p.hostname); !ok) return std::unexpected(ok.error());
  if (p.hostname.size() > 64)
    return r.error(root["hostname"], "hostname", "longer than 64 characters");
  if (auto ok = take_bool("no_new_privs", p.no_new_privs); !ok) return std::unexpected(ok.error());
  if (auto ok = take_bool("die_with_parent", p.die_with_parent); !ok)
    return std::unexpected(ok.error());

  if (root["namespaces"]) {
    auto list = r.strings(root["namespaces"], "namespaces");
    if (!list) return std::unexpected(list.error());
    std::size_t i = 0;
    for (const auto& ns : *list) {
      if (!kNamespaceNames.contains(ns))
        return r.error(root["namespaces"][i], "namespaces",
                       "unknown namespace '" + ns + "' (known: user, mount, pid, ipc, uts, net, cgroup)");
      if (!p.has_namespace(ns)) p.namespaces.push_back(ns);
      ++i;
    }
  }
  if (root["network"]) {
    auto n = r.string(root["network"], "network");
    if (!n) return std::unexpected(n.error());
    if (*n == "none") p.network = Network::None;
    else if (*n == "loopback") p.network = Network::Loopback;
    else if (*n == "host") p.network = Network::Host;
    else return r.error(root["network"], "network", "expected none, loopback or host");
  }
  if (p.network != Network::Host && !p.has_namespace("net"))
    return r.error(root["network"], "network",
                   "'" + std::string(network_name(p.network)) +
                       "' needs the net namespace in 'namespaces'");
  if (auto ok = parse_filesystem(r, root["filesystem"], p.filesystem); !ok)
    return std::unexpected(ok.error());
  if (auto ok = parse_capabilities(r, root["capabilities"], p.capabilities); !ok)
    return std::unexpected(ok.error());
  if (auto ok = parse_seccomp(r, root["seccomp"], p.seccomp); !ok) return std::unexpected(ok.error());
  if (auto ok = parse_limits(r, root["limits"], p.limits); !ok) return std::unexpected(ok.error());
  if (auto ok = parse_env(r, root["env"], p.env); !ok) return std::unexpected(ok.error());
  if (const auto user = root["root_user"]; user && !user.IsNull()) {
    const std::string text = user.IsScalar() ? user.Scalar() : "";
    if (text == "nobody") {
      p.root_user = 65534;
    } else if (text != "root") {
      auto n = parse_integer(text, "root_user", 1, 4294967294LL);
      if (!n) return r.error(user, "root_user", "expected root, nobody or a uid (1-4294967294)");
      p.root_user = static_cast<std::uint32_t>(*n);
    }
  }
  return p;
}

// ../share/batman/profiles next to the executable.
std::optional<fs::path> installed_profiles_dir() {
  std::error_code ec;
  const auto exe = fs::read_symlink("/proc/self/exe", ec);
  if (ec) return std::nullopt;
  return (exe.parent_path() / "../share/batman/profiles").lexically_normal();
}

// The profiles batman ships (installed, or the source tree's): the last of the search path.
// One found there shadows nothing that needs checking (an installed copy over the source
// tree's is the same profile), so the usual run parses one file.
bool shipped_dir(const fs::path& dir) {
  return dir == fs::path(BATMAN_SOURCE_PROFILES) || dir == installed_profiles_dir();
}

bool looks_like_path(std::string_view s) {
  return s.find('/') != std::string_view::npos || s.ends_with(".yaml") || s.ends_with(".yml");
}

}  // namespace

Result<Profile> parse_profile(std::string_view yaml_text, const std::string& source) {
  Reader reader(source);
  YAML::Node root;
  try {
    root = YAML::Load(std::string(yaml_text));
  } catch (const YAML::Exception& e) {
    return fail(source + ":" + std::to_string(e.mark.line + 1) + ": " + e.msg);
  }
  if (auto unique = check_duplicate_keys(yaml_text, source); !unique) return std::unexpected(unique.error());
  try {
    return parse_document(reader, root, source);
  } catch (const YAML::Exception& e) {
    // yaml-cpp throws on some malformed shapes (e.g. a sequence indexed as a map).
    return fail(source + ":" + std::to_string(e.mark.line + 1) + ": " + e.msg);
  }
}

std::vector<fs::path> profile_search_path() {
  std::vector<fs::path> dirs;
  if (const char* env = std::getenv("BATMAN_PROFILES"); env && *env) {
    std::string_view rest = env;
    while (!rest.empty()) {
      const auto colon = rest.find(':');
      const auto part = rest.substr(0, colon);
      if (!part.empty()) dirs.emplace_back(part);
      if (colon == std::string_view::npos) break;
      rest.remove_prefix(colon + 1);
    }
  }
  if (const char* xdg = std::getenv("XDG_CONFIG_HOME"); xdg && *xdg == '/') {
    dirs.emplace_back(fs::path(xdg) / "batman/profiles");
  } else if (const char* home = std::getenv("HOME"); home && *home) {
    dirs.emplace_back(fs::path(home) / ".config/batman/profiles");
  }
  dirs.emplace_back("/etc/batman/profiles");
  if (auto shipped = installed_profiles_dir()) dirs.push_back(std::move(*shipped));
  dirs.emplace_back(BATMAN_SOURCE_PROFILES);
  return dirs;
}

Result<Profile> load_profile(std::string_view name_or_path) {
  auto source = read_profile_source(name_or_path);
  if (!source) return std::unexpected(source.error());
  auto profile = parse_profile(source->text, source->path);
  if (!profile || source->shadowed.empty()) return profile;
  auto shadowed = load_profile(source->shadowed);  // a path: not searched, not checked again
  if (!shadowed) return std::unexpected(shadowed.error());
  if (auto ok = check_shadowing(name_or_path, *profile, *shadowed); !ok) return std::unexpected(ok.error());
  return profile;
}

namespace {

std::string lower_cap(std::string_view name) {
  std::string out;
  for (char c : name) out += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (out.starts_with("cap_")) out.erase(0, 4);
  return out;
}

// The entries of WANT that HAVE lacks, joined with ", " (empty: none).
std::string missing(const std::vector<std::string>& have, const std::vector<std::string>& want) {
  std::string out;
  for (const auto& w : want)
    if (std::find(have.begin(), have.end(), w) == have.end()) out += (out.empty() ? "" : ", ") + w;
  return out;
}

int network_rank(Network n) { return n == Network::None ? 0 : n == Network::Loopback ? 1 : 2; }
int action_rank(SeccompAction a) { return a == SeccompAction::Log ? 0 : a == SeccompAction::Errno ? 1 : 2; }
std::string_view action_name(SeccompAction a) {
  return a == SeccompAction::Log ? "log" : a == SeccompAction::Errno ? "errno" : "kill";
}

}  // namespace

std::vector<std::string> loosenings(const Profile& a, const Profile& b) {
  std::vector<std::string> out;
  auto lacks = [&out](const std::vector<std::string>& have, const std::vector<std::string>& want,
                      const std::string& what) {
    if (auto m = missing(have, want); !m.empty()) out.push_back(what + " lacks " + m);
  };
  auto extra = [&out](const std::vector<std::string>& have, const std::vector<std::string>& allowed,
                      const std::string& what) {
    if (auto m = missing(allowed, have); !m.empty()) out.push_back(what + " adds " + m);
  };
  lacks(a.namespaces, b.namespaces, "namespaces");
  if (network_rank(a.network) > network_rank(b.network))
    out.push_back("network " + std::string(network_name(a.network)) + " instead of " +
                  std::string(network_name(b.network)));
  lacks(a.filesystem.read_only, b.filesystem.read_only, "filesystem.read_only");
  extra(a.filesystem.read_write, b.filesystem.read_write, "filesystem.read_write");
  lacks(a.filesystem.hide, b.filesystem.hide, "filesystem.hide");
  lacks(a.filesystem.tmpfs, b.filesystem.tmpfs, "filesystem.tmpfs");
  if (b.capabilities.drop_all) {
    if (!a.capabilities.drop_all) {
      out.push_back("capabilities kept: all");
    } else {
      std::vector<std::string> ak, bk;
      for (const auto& c : a.capabilities.keep) ak.push_back(lower_cap(c));
      for (const auto& c : b.capabilities.keep) bk.push_back(lower_cap(c));
      extra(ak, bk, "capabilities.keep");
    }
  }
  if (b.no_new_privs && !a.no_new_privs) out.push_back("no_new_privs off");
  if (b.seccomp.enabled) {
    if (!a.seccomp.enabled) {
      out.push_back("no seccomp");
    } else {
      if (action_rank(a.seccomp.action) < action_rank(b.seccomp.action))
        out.push_back("seccomp action " + std::string(action_name(a.seccomp.action)) + " instead of " +
                      std::string(action_name(b.seccomp.action)));
      // Only deny lists (default: allow) exist; another default than the shadowed one's
      // counts as looser until batman can compare two kinds of filter.
      if (a.seccomp.default_action != b.seccomp.default_action)
        out.push_back("seccomp default " + a.seccomp.default_action + " instead of " + b.seccomp.default_action);
      else
        lacks(a.seccomp.deny, b.seccomp.deny, "seccomp deny list");
    }
  }
  auto limit = [&out](const auto& mine, const auto& theirs, const char* key) {
    if (!theirs) return;
    if (!mine) out.push_back(std::string("limits.") + key + " removed");
    else if (*mine > *theirs) out.push_back(std::string("limits.") + key + " raised");
  };
  limit(a.limits.memory_bytes, b.limits.memory_bytes, "memory");
  limit(a.limits.cpus, b.limits.cpus, "cpus");
  limit(a.limits.pids, b.limits.pids, "pids");
  limit(a.limits.nofile, b.limits.nofile, "nofile");
  if (b.env.clear) {
    if (!a.env.clear) out.push_back("env.clear off");
    else extra(a.env.keep, b.env.keep, "env.keep");
  }
  if (b.root_user && !a.root_user) out.push_back("root_user root");
  if (b.die_with_parent && !a.die_with_parent) out.push_back("die_with_parent off");
  return out;
}

Result<void> check_shadowing(std::string_view name, const Profile& shadowing, const Profile& shadowed) {
  const auto looser = loosenings(shadowing, shadowed);
  if (looser.empty()) return {};
  std::string why;
  for (const auto& l : looser) why += (why.empty() ? "" : "; ") + l;
  return fail("profile '" + std::string(name) + "' in " + shadowing.source + " loosens the one in " +
              shadowed.source + " (" + why + "): give it another name");
}

Result<ProfileSource> read_profile_source(std::string_view name_or_path) {
  if (name_or_path.empty()) return fail("profile: an empty name (try 'batman profiles list')");
  if (looks_like_path(name_or_path)) {
    const std::string path(name_or_path);
    auto text = read_file(path, kMaxConfigBytes);
    if (!text) return std::unexpected(text.error().wrap("profile"));
    return ProfileSource{path, std::move(*text), {}};
  }
  std::string tried;
  const auto dirs = profile_search_path();
  for (auto dir = dirs.begin(); dir != dirs.end(); ++dir) {
    const auto path = *dir / (std::string(name_or_path) + ".yaml");
    std::error_code ec;
    if (!fs::is_regular_file(path, ec)) {
      tried += (tried.empty() ? "" : ", ") + dir->string();
      continue;
    }
    auto text = read_file(path.string(), kMaxConfigBytes);
    if (!text) return std::unexpected(text.error().wrap("profile"));
    ProfileSource out{path.string(), std::move(*text), {}};
    // The profile of the same name this one shadows (one stat per later directory; the file
    // is read only by the caller that checks it).
    if (!shipped_dir(*dir)) {
      for (auto later = std::next(dir); later != dirs.end(); ++later) {
        const auto next = *later / path.filename();
        if (!fs::is_regular_file(next, ec) || fs::equivalent(path, next, ec)) continue;
        out.shadowed = next.string();
        break;
      }
    }
    return out;
  }
  return fail("profile '" + std::string(name_or_path) + "' not found in " + tried +
              " (see 'batman profiles list', or pass a path to a .yaml file)");
}

std::vector<Profile> list_profiles() {
  std::vector<Profile> out;
  std::set<std::string> seen;
  for (const auto& dir : profile_search_path()) {
    std::error_code ec;
    std::vector<fs::path> files;
    for (const auto& entry : fs::directory_iterator(dir, ec)) {
      if (entry.path().extension() == ".yaml") files.push_back(entry.path());
    }
    std::sort(files.begin(), files.end());
    for (const auto& file : files) {
      const auto stem = file.stem().string();
      if (seen.contains(stem)) continue;
      seen.insert(stem);
      auto text = read_file(file.string(), kMaxConfigBytes);
      if (!text) continue;
      auto profile = parse_profile(*text, file.string());
      if (profile) {
        profile->name = stem;  // what `--profile NAME` finds it by
        out.push_back(std::move(*profile));
      } else {
        Profile broken;
        broken.name = stem;
        broken.source = file.string();
        broken.description = "INVALID: " + profile.error().message;
        out.push_back(std::move(broken));
      }
    }
  }
  return out;
}

}  // namespace batman::isolation
