// Profiles: the shipped ones parse, and every kind of mistake names file, line and key.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <algorithm>
#include <cstdlib>
#include <filesystem>

#include "batman_config.h"
#include "isolation/profile.hpp"

using namespace batman::isolation;

namespace {

std::string profile_error_of(const std::string& yaml) {
  auto p = parse_profile(yaml, "test.yaml");
  EXPECT_FALSE(p.has_value()) << yaml;
  return p ? "" : p.error().message;
}

}  // namespace

TEST(Profile, ShippedProfilesParse) {
  for (const char* name : {"parallel", "isolated", "strict", "build", "ci"}) {
    auto p = load_profile(std::string(BATMAN_SOURCE_PROFILES) + "/" + name + ".yaml");
    ASSERT_TRUE(p.has_value()) << name << ": " << p.error().message;
    EXPECT_EQ(p->name, name);
    EXPECT_FALSE(p->description.empty()) << name;
  }
}

TEST(Profile, IsolatedHasEverything) {
  auto p = load_profile(std::string(BATMAN_SOURCE_PROFILES) + "/isolated.yaml");
  ASSERT_TRUE(p.has_value());
  for (const char* ns : {"user", "mount", "pid", "ipc", "uts", "net", "cgroup"})
    EXPECT_TRUE(p->has_namespace(ns)) << ns;
  EXPECT_EQ(p->network, Network::Loopback);
  EXPECT_EQ(p->hostname, "batman");
  EXPECT_TRUE(p->no_new_privs);
  EXPECT_TRUE(p->capabilities.drop_all);
  EXPECT_TRUE(p->seccomp.enabled);
  EXPECT_EQ(p->seccomp.action, SeccompAction::Errno);
  EXPECT_NE(std::find(p->seccomp.deny.begin(), p->seccomp.deny.end(), "kexec_load"), p->seccomp.deny.end());
  EXPECT_EQ(p->filesystem.read_only, std::vector<std::string>{"/"});
  EXPECT_EQ(p->filesystem.tmpfs, std::vector<std::string>{"/tmp"});
}

TEST(Profile, ParallelHasHostNetworkAndNoSeccomp) {
  auto p = load_profile(std::string(BATMAN_SOURCE_PROFILES) + "/parallel.yaml");
  ASSERT_TRUE(p.has_value());
  EXPECT_EQ(p->network, Network::Host);
  EXPECT_FALSE(p->seccomp.enabled);
  EXPECT_TRUE(p->has_namespace("pid"));
}

TEST(Profile, StrictHasLimits) {
  auto p = load_profile(std::string(BATMAN_SOURCE_PROFILES) + "/strict.yaml");
  ASSERT_TRUE(p.has_value());
  EXPECT_EQ(p->network, Network::None);
  EXPECT_EQ(p->limits.memory_bytes, 2ULL << 30);
  EXPECT_EQ(p->limits.pids, 512U);
  EXPECT_EQ(p->limits.nofile, 1024U);
  EXPECT_FALSE(p->limits.cpus.has_value());
}

TEST(Profile, UnknownTopLevelKeyNamesLineAndKey) {
  EXPECT_EQ(profile_error_of("name: x\nnamespacez: [pid]\n"),
            "test.yaml:2: key 'namespacez': unknown key (known: capabilities, description, die_with_parent, "
            "env, filesystem, hostname, limits, name, namespaces, network, no_new_privs, root_user, seccomp)");
}

TEST(Profile, UnknownNestedKey) {
  const auto e = profile_error_of("filesystem:\n  read_only: [/]\n  readwrite: [/x]\n");
  EXPECT_NE(e.find("test.yaml:3: key 'filesystem.readwrite': unknown key"), std::string::npos) << e;
}

TEST(Profile, UnknownSyscallNamesLine) {
  const auto e = profile_error_of("seccomp:\n  deny: [mount,\n    not_a_syscall]\n");
  EXPECT_EQ(e, "test.yaml:3: key 'seccomp.deny': unknown system call 'not_a_syscall'");
}

TEST(Profile, WrongTypes) {
  EXPECT_NE(profile_error_of("no_new_privs: maybe\n").find("test.yaml:1: key 'no_new_privs': expected true or false"),
            std::string::npos);
  EXPECT_NE(profile_error_of("namespaces: pid\n").find("key 'namespaces': expected a list"), std::string::npos);
  EXPECT_NE(profile_error_of("hostname: [a]\n").find("key 'hostname': expected a string"), std::string::npos);
  EXPECT_NE(profile_error_of("limits: {pids: -1}\n").find("key 'limits.pids'"), std::string::npos);
  EXPECT_NE(profile_error_of("limits: {memory: lots}\n").find("key 'limits.memory'"), std::string::npos);
  EXPECT_NE(profile_error_of("limits: {cpus: fast}\n").find("key 'limits.cpus'"), std::string::npos);
  // Below 1 ms per 100 ms period the kernel cannot hold it: refused, not left unenforced.
  EXPECT_NE(profile_error_of("limits: {cpus: 0.001}\n").find("key 'limits.cpus': 0.001 is out of range (0.01 to 4096)"),
            std::string::npos);
  EXPECT_NE(profile_error_of("filesystem: {read_only: [relative/path]}\n").find("not an absolute path"),
            std::string::npos);
}

TEST(Profile, BadValues) {
  EXPECT_NE(profile_error_of("namespaces: [user, time]\n").find("unknown namespace 'time'"), std::string::npos);
  EXPECT_NE(profile_error_of("network: wifi\n").find("expected none, loopback or host"), std::string::npos);
  EXPECT_NE(profile_error_of("network: loopback\n").find("needs the net namespace"), std::string::npos);
  EXPECT_NE(profile_error_of("seccomp: {action: explode}\n").find("key 'seccomp.action'"), std::string::npos);
  EXPECT_NE(profile_error_of("capabilities: {keep: [cap_fly]}\n").find("unknown capability 'cap_fly'"),
            std::string::npos);
}

TEST(Profile, SyntaxErrorNamesLine) {
  const auto e = profile_error_of("name: x\nnamespaces: [user\n");
  EXPECT_EQ(e.rfind("test.yaml:", 0), 0U) << e;
}

TEST(Profile, NotAMapping) {
  EXPECT_EQ(profile_error_of("- a\n- b\n"), "test.yaml:1: expected a mapping of keys");
  EXPECT_EQ(profile_error_of(""), "test.yaml: expected a mapping of keys");
}

TEST(Profile, ValuesAndSubstitutions) {
  auto p = parse_profile(
      "namespaces: [mount, net]\nnetwork: none\nfilesystem: {read_write: [$CWD, $HOME/.cache]}\n"
      "capabilities: {drop: all, keep: [NET_BIND_SERVICE]}\nlimits: {memory: 512M, cpus: 1.5}\n"
      "env: {clear: true, keep: [PATH], set: {A: b}}\ndie_with_parent: false\n",
      "x.yaml");
  ASSERT_TRUE(p.has_value()) << p.error().message;
  EXPECT_EQ(p->name, "x");  // from the file name when the profile does not say
  EXPECT_EQ(p->limits.memory_bytes, 512ULL << 20);
  EXPECT_DOUBLE_EQ(*p->limits.cpus, 1.5);
  EXPECT_EQ(p->capabilities.keep, std::vector<std::string>{"NET_BIND_SERVICE"});
  EXPECT_TRUE(p->env.clear);
  EXPECT_EQ(p->env.set.at("A"), "b");
  EXPECT_FALSE(p->die_with_parent);
  EXPECT_FALSE(p->seccomp.enabled);
}

TEST(Profile, SearchPathOrder) {
  setenv("BATMAN_PROFILES", "/one:/two", 1);
  setenv("HOME", "/home/someone", 1);
  unsetenv("XDG_CONFIG_HOME");
  const auto path = profile_search_path();
  unsetenv("BATMAN_PROFILES");
  ASSERT_GE(path.size(), 6U);
  EXPECT_EQ(path[0], "/one");
  EXPECT_EQ(path[1], "/two");
  EXPECT_EQ(path[2], "/home/someone/.config/batman/profiles");
  EXPECT_EQ(path[3], "/etc/batman/profiles");
  EXPECT_TRUE(path[4].string().ends_with("share/batman/profiles")) << path[4];
  EXPECT_EQ(path.back(), BATMAN_SOURCE_PROFILES);
}

TEST(Profile, NotFoundSaysWhereItLooked) {
  auto p = load_profile("no-such-profile");
  ASSERT_FALSE(p.has_value());
  EXPECT_NE(p.error().message.find("/etc/batman/profiles"), std::string::npos);
  EXPECT_NE(p.error().message.find("batman profiles list"), std::string::npos);
}

TEST(Profile, DuplicateKeysAreRefused) {
  EXPECT_EQ(profile_error_of("name: x\nnetwork: none\nnetwork: host\n"),
            "test.yaml:3: key 'network': duplicate key (first on line 2)");
  EXPECT_EQ(profile_error_of("limits:\n  memory: 1G\n  pids: 10\n  memory: 2G\n"),
            "test.yaml:4: key 'limits.memory': duplicate key (first on line 2)");
}

// A profile path that is a FIFO, /dev/zero or too big is refused at once, naming the path.
TEST(Profile, HostileProfileFilesAreRefusedAtOnce) {
  char tmpl[] = "/tmp/batman-profile.XXXXXX";
  const std::string dir = ::mkdtemp(tmpl);
  const std::string fifo = dir + "/p.yaml";
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  auto p = load_profile(fifo);
  ASSERT_FALSE(p);
  EXPECT_EQ(p.error().message, "profile: " + fifo + ": not a regular file (a FIFO)");
  p = load_profile("/dev/zero");
  ASSERT_FALSE(p);
  EXPECT_NE(p.error().message.find("/dev/zero: not a regular file (a character device)"), std::string::npos);
  const std::string big = dir + "/big.yaml";
  {
    FILE* f = std::fopen(big.c_str(), "w");
    ASSERT_NE(f, nullptr);
    const std::string line = "# " + std::string(1000, 'x') + "\n";
    for (int i = 0; i < 5000; ++i) std::fputs(line.c_str(), f);
    std::fclose(f);
  }
  p = load_profile(big);
  ASSERT_FALSE(p);
  EXPECT_NE(p.error().message.find("big.yaml: larger than 4 MiB"), std::string::npos) << p.error().message;
  std::filesystem::remove_all(dir);
}

// "Shadowing can only tighten": loosenings() names every security-relevant field a profile
// found first by name makes looser than the one of the same name it shadows.
namespace {

Profile shipped_strict() {
  auto p = load_profile(std::string(BATMAN_SOURCE_PROFILES) + "/strict.yaml");
  EXPECT_TRUE(p.has_value());
  return p ? *p : Profile{};
}

// The single loosening MUTATE makes to the shipped strict profile.
std::string loosened(void (*mutate)(Profile&)) {
  const Profile base = shipped_strict();
  Profile p = base;
  mutate(p);
  const auto l = loosenings(p, base);
  EXPECT_EQ(l.size(), 1U);
  return l.empty() ? "" : l.front();
}

}  // namespace

TEST(ProfileShadowing, IdenticalAndTighterAreNotLooser) {
  const Profile base = shipped_strict();
  EXPECT_TRUE(loosenings(base, base).empty());
  Profile tighter = base;
  tighter.seccomp.deny.push_back("chmod");
  tighter.seccomp.action = SeccompAction::Kill;
  tighter.limits.pids = 100;
  tighter.limits.cpus = 1;
  tighter.filesystem.read_write.clear();
  tighter.filesystem.hide.push_back("/srv");
  tighter.env.keep = {"HOME"};
  tighter.root_user = 1000;
  EXPECT_TRUE(loosenings(tighter, base).empty());
  // The other way round, each of those is looser.
  EXPECT_EQ(loosenings(base, tighter).size(), 7U);
}

TEST(ProfileShadowing, EachFieldLoosened) {
  EXPECT_EQ(loosened([](Profile& p) { p.namespaces = {"user", "mount"}; }), "namespaces lacks pid, ipc, uts, net, cgroup");
  EXPECT_EQ(loosened([](Profile& p) { p.network = Network::Loopback; }), "network loopback instead of none");
  EXPECT_EQ(loosened([](Profile& p) { p.filesystem.read_only.clear(); }), "filesystem.read_only lacks /");
  EXPECT_EQ(loosened([](Profile& p) { p.filesystem.read_write.push_back("/usr"); }), "filesystem.read_write adds /usr");
  EXPECT_EQ(loosened([](Profile& p) { p.filesystem.tmpfs.clear(); }), "filesystem.tmpfs lacks /tmp");
  EXPECT_EQ(loosened([](Profile& p) { p.capabilities.drop_all = false; }), "capabilities kept: all");
  EXPECT_EQ(loosened([](Profile& p) { p.capabilities.keep = {"CAP_SYS_ADMIN"}; }), "capabilities.keep adds sys_admin");
  EXPECT_EQ(loosened([](Profile& p) { p.no_new_privs = false; }), "no_new_privs off");
  EXPECT_EQ(loosened([](Profile& p) { p.seccomp.enabled = false; }), "no seccomp");
  EXPECT_EQ(loosened([](Profile& p) { p.seccomp.action = SeccompAction::Log; }), "seccomp action log instead of errno");
  EXPECT_EQ(loosened([](Profile& p) { std::erase(p.seccomp.deny, "ptrace"); }), "seccomp deny list lacks ptrace");
  EXPECT_EQ(loosened([](Profile& p) { p.seccomp.default_action = "kill"; }), "seccomp default kill instead of allow");
  EXPECT_EQ(loosened([](Profile& p) { p.limits.memory_bytes.reset(); }), "limits.memory removed");
  EXPECT_EQ(loosened([](Profile& p) { p.limits.pids = 513; }), "limits.pids raised");
  EXPECT_EQ(loosened([](Profile& p) { p.limits.nofile = 1U << 20; }), "limits.nofile raised");
  EXPECT_EQ(loosened([](Profile& p) { p.env.clear = false; }), "env.clear off");
  EXPECT_EQ(loosened([](Profile& p) { p.env.keep.push_back("LD_PRELOAD"); }), "env.keep adds LD_PRELOAD");
  EXPECT_EQ(loosened([](Profile& p) { p.root_user.reset(); }), "root_user root");
  EXPECT_EQ(loosened([](Profile& p) { p.die_with_parent = false; }), "die_with_parent off");
  // A limit the shadowed one does not set (cpus) may be anything; a hide entry too.
  Profile base = shipped_strict();
  Profile cpus = base;
  base.limits.cpus = 2;
  cpus.limits.cpus = 4;
  EXPECT_EQ(loosenings(cpus, base), std::vector<std::string>{"limits.cpus raised"});
  base.filesystem.hide = {"/root"};
  EXPECT_EQ(loosenings(shipped_strict(), base), std::vector<std::string>({"filesystem.hide lacks /root", "limits.cpus removed"}));
}

// By name: a weaker strict.yaml in an earlier directory is refused in one line naming both
// files; one that only tightens is used; by path nothing is compared.
TEST(ProfileShadowing, ByNameRefusesALooserShadow) {
  char tmpl[] = "/tmp/batman-shadow.XXXXXX";
  const std::string dir = ::mkdtemp(tmpl);
  const std::string file = dir + "/strict.yaml";
  FILE* f = std::fopen(file.c_str(), "w");
  ASSERT_NE(f, nullptr);
  std::fputs("name: strict\nnamespaces: []\ncapabilities: {drop: none}\n", f);
  std::fclose(f);
  setenv("BATMAN_PROFILES", dir.c_str(), 1);
  setenv("HOME", dir.c_str(), 1);
  auto p = load_profile("strict");
  ASSERT_FALSE(p);
  EXPECT_TRUE(p.error().message.starts_with("profile 'strict' in " + file + " loosens the one in ")) << p.error().message;
  EXPECT_NE(p.error().message.find("capabilities kept: all; no_new_privs off; no seccomp"), std::string::npos)
      << p.error().message;
  EXPECT_TRUE(p.error().message.ends_with("): give it another name"));
  EXPECT_TRUE(load_profile(file).has_value());  // a path is the caller's explicit choice
  // A copy of the shipped one with one more denied call: accepted and used.
  auto shipped = read_profile_source(std::string(BATMAN_SOURCE_PROFILES) + "/strict.yaml");
  ASSERT_TRUE(shipped);
  std::string text = shipped->text;
  const auto at = text.find("chroot,");
  ASSERT_NE(at, std::string::npos);
  text.insert(at, "chmod, ");
  f = std::fopen(file.c_str(), "w");
  std::fputs(text.c_str(), f);
  std::fclose(f);
  p = load_profile("strict");
  unsetenv("BATMAN_PROFILES");
  ASSERT_TRUE(p) << p.error().message;
  EXPECT_EQ(p->source, file);
  EXPECT_NE(std::find(p->seccomp.deny.begin(), p->seccomp.deny.end(), "chmod"), p->seccomp.deny.end());
  std::filesystem::remove_all(dir);
}
