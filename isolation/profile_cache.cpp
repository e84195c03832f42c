// The profile cache: one CBOR file per (version, path, text), named by their hash.
#include "isolation/profile_cache.hpp"

#include <seccomp.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <sys/utsname.h>

#include <cstdio>
#include <cstring>
#include <functional>

#include <nlohmann/json.hpp>

#include "batman_config.h"
#include "common/executables.hpp"
#include "common/fs.hpp"
#include "common/unique_fd.hpp"
#include "isolation/seccomp.hpp"

namespace batman::isolation {
namespace {

using nlohmann::json;


constexpr int kFormat = 4;

template <class T>
json optional_json(const std::optional<T>& v) {
  return v ? json(*v) : json(nullptr);
}

template <class T>
std::optional<T> optional_from(const json& j) {
  if (j.is_null()) return std::nullopt;
  return j.get<T>();
}

json to_json_value(const Profile& p) {
  json limits = {{"memory_bytes", optional_json(p.limits.memory_bytes)},
                 {"cpus", optional_json(p.limits.cpus)},
                 {"pids", optional_json(p.limits.pids)},
                 {"nofile", optional_json(p.limits.nofile)}};
  return {
      {"name", p.name},
      {"description", p.description},
      {"source", p.source},
      {"namespaces", p.namespaces},
      {"network", static_cast<int>(p.network)},
      {"hostname", p.hostname},
      {"filesystem",
       {{"read_only", p.filesystem.read_only},
        {"read_write", p.filesystem.read_write},
        {"tmpfs", p.filesystem.tmpfs},
        {"hide", p.filesystem.hide}}},
      {"capabilities", {{"drop_all", p.capabilities.drop_all}, {"keep", p.capabilities.keep}}},
      {"no_new_privs", p.no_new_privs},
      {"seccomp",
       {{"enabled", p.seccomp.enabled},
        {"default_action", p.seccomp.default_action},
        {"deny", p.seccomp.deny},
        {"action", static_cast<int>(p.seccomp.action)}}},
      {"limits", limits},
      {"env", {{"clear", p.env.clear}, {"keep", p.env.keep}, {"set", p.env.set}}},
      {"die_with_parent", p.die_with_parent},
      {"root_user", optional_json(p.root_user)},
  };
}

Profile from_json_value(const json& j) {
  Profile p;
  p.name = j.at("name").get<std::string>();
  p.description = j.at("description").get<std::string>();
  p.source = j.at("source").get<std::string>();
  p.namespaces = j.at("namespaces").get<std::vector<std::string>>();
  p.network = static_cast<isolation::Network>(j.at("network").get<int>());
  p.hostname = j.at("hostname").get<std::string>();
  const json& fs = j.at("filesystem");
  p.filesystem.read_only = fs.at("read_only").get<std::vector<std::string>>();
  p.filesystem.read_write = fs.at("read_write").get<std::vector<std::string>>();
  p.filesystem.tmpfs = fs.at("tmpfs").get<std::vector<std::string>>();
  p.filesystem.hide = fs.at("hide").get<std::vector<std::string>>();
  p.capabilities.drop_all = j.at("capabilities").at("drop_all").get<bool>();
  p.capabilities.keep = j.at("capabilities").at("keep").get<std::vector<std::string>>();
  p.no_new_privs = j.at("no_new_privs").get<bool>();
  const json& sc = j.at("seccomp");
  p.seccomp.enabled = sc.at("enabled").get<bool>();
  p.seccomp.default_action = sc.at("default_action").get<std::string>();
  p.seccomp.deny = sc.at("deny").get<std::vector<std::string>>();
  p.seccomp.action = static_cast<isolation::SeccompAction>(sc.at("action").get<int>());
  const json& l = j.at("limits");
  p.limits.memory_bytes = optional_from<std::uint64_t>(l.at("memory_bytes"));
  p.limits.cpus = optional_from<double>(l.at("cpus"));
  p.limits.pids = optional_from<std::uint64_t>(l.at("pids"));
  p.limits.nofile = optional_from<std::uint64_t>(l.at("nofile"));
  p.env.clear = j.at("env").at("clear").get<bool>();
  p.env.keep = j.at("env").at("keep").get<std::vector<std::string>>();
  p.env.set = j.at("env").at("set").get<std::map<std::string, std::string>>();
  p.die_with_parent = j.at("die_with_parent").get<bool>();
  p.root_user = optional_from<std::uint32_t>(j.at("root_user"));
  return p;
}

// What compiled an entry's seccomp program: the batman binary (a rebuild of the same version
// may have other code), the libseccomp it runs with (a shared one can be upgraded under it)
// and the kernel (libseccomp asks it which actions it has). The binary is `batman`'s, also
// in batman-services (built with it from the same libraries): else runs and batches would
// each throw away the entry the other wrote.
std::string executable_identity() {
  struct stat st{};
  if (::stat(launcher_executable().c_str(), &st) != 0) return {};
  struct utsname kernel{};
  if (::uname(&kernel) != 0) return {};
  const scmp_version* lib = seccomp_version();
  return std::to_string(st.st_dev) + ":" + std::to_string(st.st_ino) + ":" + std::to_string(st.st_size) + ":" +
         std::to_string(st.st_mtim.tv_sec) + "." + std::to_string(st.st_mtim.tv_nsec) + " libseccomp " +
         (lib ? std::to_string(lib->major) + "." + std::to_string(lib->minor) + "." + std::to_string(lib->micro)
              : std::string("?")) +
         " " + kernel.release;
}

// The seccomp program as one CBOR byte string (8 bytes a word, host order: the entry is only
// ever read by the binary that wrote it), not an array of numbers.
std::vector<std::uint8_t> bytes_from_words(const std::vector<std::uint64_t>& words) {
  std::vector<std::uint8_t> bytes(words.size() * sizeof(std::uint64_t));
  if (!words.empty()) std::memcpy(bytes.data(), words.data(), bytes.size());
  return bytes;
}

std::vector<std::uint64_t> words_from_bytes(const std::vector<std::uint8_t>& bytes) {
  if (bytes.size() % sizeof(std::uint64_t) != 0) throw json::other_error::create(501, "seccomp_bpf: not whole words", nullptr);
  std::vector<std::uint64_t> words(bytes.size() / sizeof(std::uint64_t));
  if (!words.empty()) std::memcpy(words.data(), bytes.data(), bytes.size());
  return words;
}

constexpr std::size_t kMaxEntry = 1 << 20;  // a profile's entry is a few KB

// An entry as batman itself wrote it: a regular file of batman's user, mode 0600 (no one else
// could have written it), one link (not a hard link to a file made elsewhere), a sane size.
// Anything else is not used (and is replaced by a fresh entry).
std::optional<std::string> read_trusted_entry(int dirfd, const std::string& name) {
  UniqueFd fd(::openat(dirfd, name.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC));
  if (!fd) return std::nullopt;
  struct stat st{};
  if (::fstat(fd.get(), &st) != 0 || !private_file(st) || static_cast<std::size_t>(st.st_size) > kMaxEntry)
    return std::nullopt;
  std::string out(static_cast<std::size_t>(st.st_size), '\0');
  std::size_t got = 0;
  while (got < out.size()) {
    const ssize_t n = ::read(fd.get(), out.data() + got, out.size() - got);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return std::nullopt;
    got += static_cast<std::size_t>(n);
  }
  return out;
}

std::string entry_name(const std::string& path, const std::string& text) {
  const std::size_t h = std::hash<std::string>{}(std::string(BATMAN_VERSION) + '\0' + path + '\0' + text);
  char name[32];
  std::snprintf(name, sizeof name, "%016zx.cbor", h);
  return name;
}

}  // namespace

std::string profile_to_json(const Profile& p) { return to_json_value(p).dump(); }

Result<Profile> profile_from_json(const std::string& text) {
  try {
    return from_json_value(json::parse(text));
  } catch (const json::exception& e) {
    return fail(std::string("profile cache: ") + e.what());
  }
}

namespace {

// Parsed, with its seccomp program compiled once here rather than by every job started with
// it (libseccomp takes a good part of a run's CPU): also without a cache to keep it in.
Result<Profile> parse_compiled(const isolation::ProfileSource& source) {
  auto profile = isolation::parse_profile(source.text, source.path);
  if (profile && profile->seccomp.enabled) {
    if (auto program = isolation::compile_seccomp(profile->seccomp))
      profile->seccomp.compiled = isolation::pack_seccomp(*program);
  }
  return profile;
}

Result<Profile> load_source_cached(const Result<isolation::ProfileSource>& source, const std::string& batman_home) {
  // Only inside a $BATMAN_HOME that exists already: a command refused later creates nothing.
  auto home = open_dir_path(batman_home, false);
  if (!home) return parse_compiled(*source);
  auto cache = open_dir_at(home->get(), ".cache", true);
  if (!cache || !private_dir(cache->get())) return parse_compiled(*source);
  auto dir = open_dir_at(cache->get(), "profiles", true);
  if (!dir || !private_dir(dir->get())) return parse_compiled(*source);
  const std::string name = entry_name(source->path, source->text);
  const std::string binary = executable_identity();
  if (auto cached = read_trusted_entry(dir->get(), name)) {
    try {
      const json entry = json::from_cbor(*cached);
      if (entry.at("format").get<int>() == kFormat && entry.at("version").get<std::string>() == BATMAN_VERSION &&
          entry.at("path").get<std::string>() == source->path && entry.at("text").get<std::string>() == source->text) {
        // The compiled seccomp program only from the very binary that compiled it; another
        // binary's entry is written anew below.
        if (!binary.empty() && entry.at("binary").get<std::string>() == binary) {
          Profile p = from_json_value(entry.at("profile"));
          p.seccomp.compiled = words_from_bytes(entry.at("seccomp_bpf").get_binary());
          return p;
        }
      }
    } catch (const json::exception&) {
      // A damaged entry is rewritten below.
    }
  }
  auto profile = parse_compiled(*source);
  if (!profile) return profile;
  const json entry = {{"format", kFormat},
                      {"version", BATMAN_VERSION},
                      {"path", source->path},
                      {"text", source->text},
                      {"binary", binary},
                      {"seccomp_bpf", json::binary(bytes_from_words(profile->seccomp.compiled))},
                      {"profile", to_json_value(*profile)}};
  const auto bytes = json::to_cbor(entry);
  (void)write_file_atomic(dir->get(), name, std::string_view(reinterpret_cast<const char*>(bytes.data()), bytes.size()),
                          0600);  // a cache: failing is fine
  return profile;
}

}  // namespace

Result<Profile> load_profile_cached(std::string_view name_or_path, const std::string& batman_home) {
  auto source = isolation::read_profile_source(name_or_path);
  if (!source) return std::unexpected(source.error());
  auto profile = load_source_cached(source, batman_home);
  // Found by name over another of the same name: it may only tighten that one (both cached).
  if (!profile || source->shadowed.empty()) return profile;
  auto shadowed = load_profile_cached(source->shadowed, batman_home);
  if (!shadowed) return std::unexpected(shadowed.error());
  if (auto ok = isolation::check_shadowing(name_or_path, *profile, *shadowed); !ok)
    return std::unexpected(ok.error());
  return profile;
}

}  // namespace batman::isolation
