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

#include "batman_config.h"
#include "common/executables.hpp"
#include "common/duration.hpp"
#include "common/fs.hpp"
#include "common/yaml_reader.hpp"
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

using yaml::Value;

// Absolute paths or paths starting with one of the substitutions the backends understand.
bool valid_fs_path(const std::string& p) {
  if (p.empty()) return false;
  if (p[0] == '/') return true;
  for (std::string_view var : {"$CWD", "$PROJECT_DIR", "$TMPDIR", "$HOME"}) {
    if (p.starts_with(var) && (p.size() == var.size() || p[var.size()] == '/')) return true;
  }
  return false;
}

// A list of strings, each of which CHECK accepts (else says why).
template <class Check>
Result<std::vector<std::string>> checked_list(const Value& v, Check&& check) {
  auto list = BATMAN_TRY(v.strings());
  const auto items = v.items();
  for (std::size_t i = 0; i < list.size(); ++i) {
    if (auto why = check(list[i]); !why.empty()) return items[i].error(why);
  }
  return list;
}

Result<void> parse_filesystem(const Value& node, Profile::Filesystem& out) {
  BATMAN_TRY(node.keys({"read_only", "read_write", "tmpfs", "hide"}));
  const std::pair<const char*, std::vector<std::string>*> fields[] = {
      {"read_only", &out.read_only}, {"read_write", &out.read_write}, {"tmpfs", &out.tmpfs}, {"hide", &out.hide}};
  for (const auto& [key, target] : fields) {
    *target = BATMAN_TRY(checked_list(node[key], [](const std::string& p) {
      return valid_fs_path(p) ? std::string()
                              : "'" + p + "' is not an absolute path (or $CWD, $PROJECT_DIR, $TMPDIR, $HOME)";
    }));
  }
  return {};
}

Result<void> parse_capabilities(const Value& node, Profile::Capabilities& out) {
  BATMAN_TRY(node.keys({"drop", "keep"}));
  if (const auto drop = node["drop"]) out.drop_all = BATMAN_TRY(drop.choice({"all", "none"})) == "all";
  out.keep = BATMAN_TRY(checked_list(node["keep"], [](const std::string& name) {
    std::string lower;
    for (char c : name) lower += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    cap_value_t value;
    if (cap_from_name(lower.c_str(), &value) == 0) return std::string();
    lower.insert(0, "cap_");
    if (cap_from_name(lower.c_str(), &value) == 0) return std::string();
    return "unknown capability '" + name + "'";
  }));
  return {};
}

Result<void> parse_seccomp(const Value& node, Profile::Seccomp& out) {
  if (node.is_null()) return {};
  BATMAN_TRY(node.keys({"default", "deny", "action"}));
  out.enabled = true;
  // batman's filters are deny lists: everything not named is allowed.
  if (const auto d = node["default"]) out.default_action = BATMAN_TRY(d.choice({"allow"}));
  if (const auto a = node["action"]) {
    const auto action = BATMAN_TRY(a.choice({"errno", "kill", "log"}));
    out.action = action == "kill" ? SeccompAction::Kill : action == "log" ? SeccompAction::Log : SeccompAction::Errno;
  }
  out.deny = BATMAN_TRY(checked_list(node["deny"], [](const std::string& name) {
    if (seccomp_syscall_resolve_name(name.c_str()) != __NR_SCMP_ERROR) return std::string();
    return "unknown system call '" + name + "'";
  }));
  return {};
}

Result<void> parse_limits(const Value& node, Limits& out) {
  BATMAN_TRY(node.keys({"memory", "cpus", "pids", "nofile"}));
  if (const auto m = node["memory"]; !m.is_null()) out.memory_bytes = BATMAN_TRY(m.size());
  // Below 0.01 the kernel enforces nothing: 1 ms per 100 ms period is its smallest quota.
  if (const auto c = node["cpus"]; !c.is_null()) out.cpus = BATMAN_TRY(c.number(kMinCpus, 4096));
  for (auto [key, target] : {std::pair{"pids", &out.pids}, std::pair{"nofile", &out.nofile}}) {
    if (const auto n = node[key]; !n.is_null()) *target = static_cast<std::uint64_t>(BATMAN_TRY(n.integer(1, 1LL << 40)));
  }
  return {};
}

Result<void> parse_env(const Value& node, Profile::Env& out) {
  BATMAN_TRY(node.keys({"clear", "keep", "set"}));
  if (const auto clear = node["clear"]) out.clear = BATMAN_TRY(clear.flag());
  out.keep = BATMAN_TRY(node["keep"].strings());
  out.set = BATMAN_TRY(node["set"].variables());
  return {};
}

Result<Profile> parse_document(const Value& root, const std::string& source) {
  Profile p;
  p.source = source;
  p.name = fs::path(source).stem().string();
  BATMAN_TRY(root.keys({"name", "description", "namespaces", "network", "hostname", "filesystem", "capabilities",
                        "no_new_privs", "seccomp", "limits", "env", "die_with_parent", "root_user"}));
  if (const auto v = root["name"]) p.name = BATMAN_TRY(v.text());
  if (const auto v = root["description"]) p.description = BATMAN_TRY(v.text());
  if (const auto v = root["hostname"]) {
    p.hostname = BATMAN_TRY(v.text());
    if (p.hostname.size() > 64) return v.error("longer than 64 characters");
  }
  if (const auto v = root["no_new_privs"]) p.no_new_privs = BATMAN_TRY(v.flag());
  if (const auto v = root["die_with_parent"]) p.die_with_parent = BATMAN_TRY(v.flag());

  for (const auto& ns : BATMAN_TRY(checked_list(root["namespaces"], [](const std::string& ns) {
         if (kNamespaceNames.contains(ns)) return std::string();
         return "unknown namespace '" + ns + "' (known: user, mount, pid, ipc, uts, net, cgroup)";
       }))) {
    if (!p.has_namespace(ns)) p.namespaces.push_back(ns);
  }
  const auto network = root["network"];
  if (network) {
    const auto n = BATMAN_TRY(network.choice({"none", "loopback", "host"}));
    p.network = n == "none" ? Network::None : n == "loopback" ? Network::Loopback : Network::Host;
  }
  if (p.network != Network::Host && !p.has_namespace("net")) {
    std::string why = "'";
    why += network_name(p.network);
    why += "' needs the net namespace in 'namespaces'";
    return network.error(why);
  }
  BATMAN_TRY(parse_filesystem(root["filesystem"], p.filesystem));
  BATMAN_TRY(parse_capabilities(root["capabilities"], p.capabilities));
  BATMAN_TRY(parse_seccomp(root["seccomp"], p.seccomp));
  BATMAN_TRY(parse_limits(root["limits"], p.limits));
  BATMAN_TRY(parse_env(root["env"], p.env));
  if (const auto user = root["root_user"]; !user.is_null()) {
    // root (uid 0, the default), nobody (65534) or a uid.
    const std::string text = user.scalar();
    if (text == "nobody") {
      p.root_user = 65534;
    } else if (text != "root") {
      if (text.empty() || text.find_first_not_of("0123456789") != std::string::npos)
        return user.expected("root, nobody or a uid from 1 to 4294967294");
      p.root_user = static_cast<std::uint32_t>(BATMAN_TRY(user.integer(1, 4294967294LL)));
    }
  }
  return p;
}

// ../share/batman/profiles next to the executable (read once: every launch asks, some twice).
std::optional<fs::path> installed_profiles_dir() {
  static const std::optional<fs::path> dir = []() -> std::optional<fs::path> {
    const fs::path exe = launcher_executable();  // `batman`'s, also from batman-services
    if (exe.empty()) return std::nullopt;
    return (exe.parent_path() / "../share/batman/profiles").lexically_normal();
  }();
  return dir;
}

// The profiles batman ships (installed, or the source tree's): the last of the search path.
// One found there shadows nothing that needs checking (an installed copy over the source
// tree's is the same profile), so the usual run parses one file.
bool shipped_dir(const fs::path& dir) {
  return (*BATMAN_SOURCE_PROFILES && dir == fs::path(BATMAN_SOURCE_PROFILES)) || dir == installed_profiles_dir();
}

bool looks_like_path(std::string_view s) {
  return s.find('/') != std::string_view::npos || s.ends_with(".yaml") || s.ends_with(".yml");
}

}  // namespace

Result<Profile> parse_profile(std::string_view yaml_text, const std::string& source) {
  return yaml::Reader(source).read(yaml_text, [&](const Value& root) { return parse_document(root, source); });
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
  if (*BATMAN_SOURCE_PROFILES) dirs.emplace_back(BATMAN_SOURCE_PROFILES);  // none in a package
  return dirs;
}

Result<Profile> load_profile(std::string_view name_or_path) {
  const auto source = BATMAN_TRY(read_profile_source(name_or_path));
  auto profile = parse_profile(source.text, source.path);
  if (!profile || source.shadowed.empty()) return profile;
  const auto shadowed = BATMAN_TRY(load_profile(source.shadowed));  // a path: not searched, not checked again
  BATMAN_TRY(check_shadowing(name_or_path, *profile, shadowed));
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
