// Isolation profiles (SPEC §7): the typed value of one profiles/*.yaml, and where to find them.
#pragma once
#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/error.hpp"

namespace batman::isolation {

enum class Network { None, Loopback, Host };
enum class SeccompAction { Errno, Kill, Log };

struct Limits {
  std::optional<std::uint64_t> memory_bytes;
  std::optional<double> cpus;
  std::optional<std::uint64_t> pids;
  std::optional<std::uint64_t> nofile;
  bool operator==(const Limits&) const = default;
};

struct Profile {
  std::string name;
  std::string description;
  std::string source;  // the file it was read from
  // Subset of: user, mount, pid, ipc, uts, net, cgroup.
  std::vector<std::string> namespaces;
  Network network = Network::Host;
  std::string hostname;
  struct Filesystem {
    std::vector<std::string> read_only;   // may hold $CWD, $PROJECT_DIR, $HOME, $TMPDIR
    std::vector<std::string> read_write;
    std::vector<std::string> tmpfs;
    std::vector<std::string> hide;
    bool operator==(const Filesystem&) const = default;
  } filesystem;
  struct Capabilities {
    bool drop_all = false;
    std::vector<std::string> keep;  // "CAP_NET_BIND_SERVICE" or "net_bind_service"
    bool operator==(const Capabilities&) const = default;
  } capabilities;
  bool no_new_privs = false;
  struct Seccomp {
    bool enabled = false;           // false when the profile has no seccomp section
    std::string default_action = "allow";
    std::vector<std::string> deny;  // syscall names, validated against libseccomp
    SeccompAction action = SeccompAction::Errno;
    // The BPF program compile_seccomp() made of the fields above, when the profile cache kept
    // it (one word per instruction: code, jt, jf, k); empty: compiled when needed. Not part of
    // what the profile says, so not compared.
    std::vector<std::uint64_t> compiled;
    bool operator==(const Seccomp& o) const {
      return enabled == o.enabled && default_action == o.default_action && deny == o.deny && action == o.action;
    }
  } seccomp;
  Limits limits;
  struct Env {
    bool clear = false;
    std::vector<std::string> keep;
    std::map<std::string, std::string> set;
    bool operator==(const Env&) const = default;
  } env;
  bool die_with_parent = true;
  // `root_user`: when batman runs as root, the job runs as this uid (and the same gid)
  // instead of uid 0; nullopt (`root_user: root`, the default) keeps uid 0. `nobody` is 65534.
  std::optional<std::uint32_t> root_user;

  bool has_namespace(std::string_view ns) const;
  bool operator==(const Profile&) const = default;
};

// Directories searched for NAME.yaml, in SPEC §2's order ($BATMAN_PROFILES,
// ~/.config/batman/profiles, /etc/batman/profiles, ../share/batman/profiles next to the
// executable, the source tree's profiles/).
std::vector<std::filesystem::path> profile_search_path();
// NAME (searched) or a path to a file (contains '/' or ends in .yaml).
Result<Profile> load_profile(std::string_view name_or_path);
// Where load_profile would read NAME_OR_PATH from, and the file's text. Found by name:
// `shadowed` is the next NAME.yaml in a later directory of the search path (empty if none),
// which the found one must not loosen (see loosenings()).
struct ProfileSource {
  std::string path, text;
  std::string shadowed;
};
Result<ProfileSource> read_profile_source(std::string_view name_or_path);
// Parse and validate one profile; errors read "FILE:LINE: key 'x': what is wrong".
Result<Profile> parse_profile(std::string_view yaml_text, const std::string& source);
// Every profile found on the search path (first one of each name wins).
std::vector<Profile> list_profiles();

std::string_view network_name(Network n);

// "Shadowing can only tighten": what SHADOWING (a profile found first by name) makes looser
// than SHADOWED (the one of the same name in a later directory), one phrase per field; empty
// when it is at least as strict on every security-relevant field.
std::vector<std::string> loosenings(const Profile& shadowing, const Profile& shadowed);
// The one-line refusal when SHADOWING loosens SHADOWED, nothing otherwise.
Result<void> check_shadowing(std::string_view name, const Profile& shadowing, const Profile& shadowed);

}  // namespace batman::isolation
