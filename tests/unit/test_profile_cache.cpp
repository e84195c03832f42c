// The profile cache: a round trip keeps every field, an entry is used only for the same text
// at the same path, and a broken entry or a missing $BATMAN_HOME falls back to the YAML.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "batman_config.h"
#include "isolation/profile.hpp"
#include "isolation/seccomp.hpp"
#include "isolation/profile_cache.hpp"

using namespace batman;
using namespace batman::isolation;
namespace fs = std::filesystem;

namespace {

// Every field away from its default, so that a field the cache forgets shows.
const char* kEverything = R"(name: everything
description: every field set
namespaces: [user, mount, pid, net]
network: loopback
hostname: box
filesystem: {read_only: [/usr], read_write: [$CWD], tmpfs: [/tmp, /run], hide: [/etc/shadow]}
capabilities: {drop: all, keep: [net_bind_service]}
no_new_privs: true
seccomp: {default: allow, action: kill, deny: [reboot, kexec_load]}
limits: {memory: 1G, cpus: 1.5, pids: 64, nofile: 256}
env: {clear: true, keep: [TERM], set: {A: b}}
die_with_parent: false
root_user: 4242
)";

struct TempHome {
  fs::path dir;
  TempHome() {
    char tmpl[] = "/tmp/batman-cache-test.XXXXXX";
    dir = ::mkdtemp(tmpl);
  }
  ~TempHome() { fs::remove_all(dir); }
  fs::path write(const std::string& name, const std::string& text) const {
    std::ofstream(dir / name) << text;
    return dir / name;
  }
  std::vector<fs::path> entries() const {
    std::vector<fs::path> out;
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(dir / ".cache" / "profiles", ec)) out.push_back(e.path());
    return out;
  }
};

}  // namespace

TEST(ProfileCache, RoundTripKeepsEveryField) {
  auto p = parse_profile(kEverything, "everything.yaml");
  ASSERT_TRUE(p.has_value()) << p.error().message;
  auto back = isolation::profile_from_json(isolation::profile_to_json(*p));
  ASSERT_TRUE(back.has_value()) << back.error().message;
  EXPECT_TRUE(*back == *p);
  for (const char* name : {"parallel", "isolated", "strict", "build", "ci"}) {
    auto shipped = load_profile(std::string(BATMAN_SOURCE_PROFILES) + "/" + name + ".yaml");
    ASSERT_TRUE(shipped.has_value()) << name;
    auto again = isolation::profile_from_json(isolation::profile_to_json(*shipped));
    ASSERT_TRUE(again.has_value()) << name;
    EXPECT_TRUE(*again == *shipped) << name;
  }
}

TEST(ProfileCache, UsedOnlyForTheSameTextAndPath) {
  TempHome home;
  const auto path = home.write("p.yaml", kEverything).string();
  auto first = isolation::load_profile_cached(path, home.dir.string());
  ASSERT_TRUE(first.has_value()) << first.error().message;
  ASSERT_EQ(home.entries().size(), 1u);
  auto second = isolation::load_profile_cached(path, home.dir.string());
  ASSERT_TRUE(second.has_value());
  EXPECT_TRUE(*second == *first);

  // The file changes: the old entry is not used, a new one is written.
  std::string edited = kEverything;
  edited.replace(edited.find("hostname: box"), 13, "hostname: other");
  home.write("p.yaml", edited);
  auto third = isolation::load_profile_cached(path, home.dir.string());
  ASSERT_TRUE(third.has_value());
  EXPECT_EQ(third->hostname, "other");
  EXPECT_EQ(home.entries().size(), 2u);

  // A damaged entry is parsed around and rewritten.
  for (const auto& e : home.entries()) std::ofstream(e) << "{not json";
  auto fourth = isolation::load_profile_cached(path, home.dir.string());
  ASSERT_TRUE(fourth.has_value());
  EXPECT_EQ(fourth->hostname, "other");
  auto fifth = isolation::load_profile_cached(path, home.dir.string());
  ASSERT_TRUE(fifth.has_value());
  EXPECT_TRUE(*fifth == *fourth);
}

TEST(ProfileCache, ErrorsAreNotCachedAndNoHomeMeansNoCache) {
  TempHome home;
  const auto bad = home.write("bad.yaml", "name: bad\nnetwork: sideways\n").string();
  auto p = isolation::load_profile_cached(bad, home.dir.string());
  ASSERT_FALSE(p.has_value());
  EXPECT_NE(p.error().message.find("network"), std::string::npos) << p.error().message;
  EXPECT_TRUE(home.entries().empty());

  const auto good = home.write("good.yaml", kEverything).string();
  const auto missing = (home.dir / "no-such-home").string();
  auto q = isolation::load_profile_cached(good, missing);
  ASSERT_TRUE(q.has_value());
  EXPECT_FALSE(fs::exists(missing));
}

// The compiled seccomp program is kept in the entry: a cached profile carries the very program
// libseccomp makes for it, and compile_seccomp takes it as it is; an entry written by another
// binary brings the profile but not the program.
TEST(ProfileCache, KeepsTheCompiledSeccompProgram) {
  TempHome home;
  const auto path = home.write("p.yaml", kEverything).string();
  auto first = isolation::load_profile_cached(path, home.dir.string());
  ASSERT_TRUE(first.has_value()) << first.error().message;
  auto fresh = parse_profile(kEverything, path);
  ASSERT_TRUE(fresh.has_value());
  ASSERT_TRUE(fresh->seccomp.compiled.empty());
  auto compiled = compile_seccomp(fresh->seccomp);
  ASSERT_TRUE(compiled.has_value()) << compiled.error().message;
  ASSERT_FALSE(compiled->empty());

  auto cached = isolation::load_profile_cached(path, home.dir.string());
  ASSERT_TRUE(cached.has_value());
  EXPECT_EQ(cached->seccomp.compiled, pack_seccomp(*compiled));
  auto program = compile_seccomp(cached->seccomp);
  ASSERT_TRUE(program.has_value());
  ASSERT_EQ(program->instructions.size(), compiled->instructions.size());
  for (std::size_t i = 0; i < compiled->instructions.size(); ++i) {
    const auto& a = program->instructions[i];
    const auto& b = compiled->instructions[i];
    EXPECT_TRUE(a.code == b.code && a.jt == b.jt && a.jf == b.jf && a.k == b.k) << "instruction " << i;
  }

  // Another binary's entry: the profile is read and its program compiled anew, and the entry
  // rewritten for this binary.
  ASSERT_EQ(home.entries().size(), 1u);
  const auto entry = home.entries().front();
  auto read_entry = [&] {
    std::ifstream in(entry, std::ios::binary);
    const std::string bytes{std::istreambuf_iterator<char>(in), {}};
    return nlohmann::json::from_cbor(bytes);
  };
  auto write_entry = [&](const nlohmann::json& j) {
    const auto bytes = nlohmann::json::to_cbor(j);
    std::ofstream(entry, std::ios::binary).write(reinterpret_cast<const char*>(bytes.data()),
                                                 static_cast<std::streamsize>(bytes.size()));
  };
  auto changed = read_entry();
  changed["binary"] = "other-" + changed.at("binary").get<std::string>();
  write_entry(changed);
  auto other = isolation::load_profile_cached(path, home.dir.string());
  ASSERT_TRUE(other.has_value());
  EXPECT_EQ(other->seccomp.compiled, pack_seccomp(*compiled));
  EXPECT_TRUE(*other == *fresh);
  EXPECT_EQ(read_entry().at("binary").get<std::string>().find("other-"), std::string::npos)
      << "the entry is this binary's again";

  // The program is kept as one byte string (8 bytes a word); one that is not whole words is a
  // damaged entry: the profile is compiled anew and the entry rewritten.
  auto stored = read_entry();
  ASSERT_TRUE(stored.at("seccomp_bpf").is_binary());
  EXPECT_EQ(stored.at("seccomp_bpf").get_binary().size(), compiled->instructions.size() * 8);
  stored["seccomp_bpf"].get_binary().pop_back();
  write_entry(stored);
  auto repaired = isolation::load_profile_cached(path, home.dir.string());
  ASSERT_TRUE(repaired.has_value());
  EXPECT_EQ(repaired->seccomp.compiled, pack_seccomp(*compiled));
  EXPECT_EQ(read_entry().at("seccomp_bpf").get_binary().size(), compiled->instructions.size() * 8);
}

// Issue 11: a job rewrote a strict profile's entry with the same version/path/text and a
// profile of its own. The cache lives where no job can write (batman's tree is hidden from
// every mount-namespace tier); and an entry is used only as batman itself writes it: a
// regular file of batman's user, mode 0600, one link, in directories no one else may write.
TEST(ProfileCache, AnEntryNotAsBatmanWroteItIsNotUsed) {
  TempHome home;
  const auto path = home.write("p.yaml", kEverything).string();
  ASSERT_TRUE(isolation::load_profile_cached(path, home.dir.string()).has_value());
  ASSERT_EQ(home.entries().size(), 1u);
  const fs::path entry = home.entries().front();
  auto poison = [&](mode_t mode) {
    std::ifstream in(entry, std::ios::binary);
    std::vector<std::uint8_t> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    auto j = nlohmann::json::from_cbor(bytes);
    j["profile"]["capabilities"]["drop_all"] = false;
    j["profile"]["namespaces"] = nlohmann::json::array();
    j["profile"]["seccomp"]["enabled"] = false;
    j["seccomp_bpf"] = nlohmann::json::binary({});
    const auto out = nlohmann::json::to_cbor(j);
    fs::remove(entry);
    std::ofstream(entry, std::ios::binary).write(reinterpret_cast<const char*>(out.data()),
                                                 static_cast<std::streamsize>(out.size()));
    ::chmod(entry.c_str(), mode);
  };
  auto strong = [&] {
    auto p = isolation::load_profile_cached(path, home.dir.string());
    EXPECT_TRUE(p.has_value());
    return p && p->capabilities.drop_all && p->seccomp.enabled && !p->namespaces.empty();
  };
  // Written as batman writes it: used (the env tier's job is the user itself; see README).
  poison(0600);
  EXPECT_FALSE(strong()) << "the check below must be able to fail";
  // Readable or writable by others: not used, and replaced.
  poison(0644);
  EXPECT_TRUE(strong());
  EXPECT_TRUE(strong());
  // A hard link to a file made elsewhere: not used.
  poison(0600);
  fs::create_hard_link(entry, home.dir / "elsewhere");
  EXPECT_TRUE(strong());
  fs::remove(home.dir / "elsewhere");
  // Another user's file: not used.
  if (::geteuid() == 0) {
    poison(0600);
    ASSERT_EQ(::chown(entry.c_str(), 65534, 65534), 0);
    EXPECT_TRUE(strong());
  }
  // A cache directory others may write into: not used at all.
  poison(0600);
  ::chmod((home.dir / ".cache" / "profiles").c_str(), 0777);
  EXPECT_TRUE(strong());
}
