// Profiles: the shipped ones parse, and every kind of mistake names file, line and key.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>

#include "batman_config.h"
#include "isolation/profile.hpp"

using namespace batman::isolation;

namespace {

std::string error_of(const std::string& yaml) {
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
  EXPECT_EQ(error_of("name: x\nnamespacez: [pid]\n"),
            "test.yaml:2: key 'namespacez': unknown key (known: name, description, namespaces, "
            "network, hostname, filesystem, capabilities, no_new_privs, seccomp, limits, env, "
            "die_with_parent, root_user)");
}

TEST(Profile, UnknownNestedKey) {
  const auto e = error_of("filesystem:\n  read_only: [/]\n  readwrite: [/x]\n");
  EXPECT_NE(e.find("test.yaml:3: key 'filesystem.readwrite': unknown key"), std::string::npos) << e;
}

TEST(Profile, UnknownSyscallNamesLine) {
  const auto e = error_of("seccomp:\n  deny: [mount,\n    not_a_syscall]\n");
  EXPECT_EQ(e, "test.yaml:3: key 'seccomp.deny': unknown system call 'not_a_syscall'");
}

TEST(Profile, WrongTypes) {
  EXPECT_NE(error_of("no_new_privs: maybe\n").find("test.yaml:1: key 'no_new_privs': expected true or false"),
            std::string::npos);
  EXPECT_NE(error_of("namespaces: pid\n").find("key 'namespaces': expected a list"), std::string::npos);
  EXPECT_NE(error_of("hostname: [a]\n").find("key 'hostname': expected a string"), std::string::npos);
  EXPECT_NE(error_of("limits: {pids: -1}\n").find("key 'limits.pids'"), std::string::npos);
  EXPECT_NE(error_of("limits: {memory: lots}\n").find("key 'limits.memory'"), std::string::npos);
  EXPECT_NE(error_of("limits: {cpus: fast}\n").find("key 'limits.cpus'"), std::string::npos);
  // Below 1 ms per 100 ms period the kernel cannot hold it: refused, not left unenforced.
  EXPECT_NE(error_of("limits: {cpus: 0.001}\n").find("key 'limits.cpus': below 0.01"), std::string::npos);
  EXPECT_NE(error_of("filesystem: {read_only: [relative/path]}\n").find("not an absolute path"),
            std::string::npos);
}

TEST(Profile, BadValues) {
  EXPECT_NE(error_of("namespaces: [user, time]\n").find("unknown namespace 'time'"), std::string::npos);
  EXPECT_NE(error_of("network: wifi\n").find("expected none, loopback or host"), std::string::npos);
  EXPECT_NE(error_of("network: loopback\n").find("needs the net namespace"), std::string::npos);
  EXPECT_NE(error_of("seccomp: {action: explode}\n").find("key 'seccomp.action'"), std::string::npos);
  EXPECT_NE(error_of("capabilities: {keep: [cap_fly]}\n").find("unknown capability 'cap_fly'"),
            std::string::npos);
}

TEST(Profile, SyntaxErrorNamesLine) {
  const auto e = error_of("name: x\nnamespaces: [user\n");
  EXPECT_EQ(e.rfind("test.yaml:", 0), 0U) << e;
}

TEST(Profile, NotAMapping) {
  EXPECT_NE(error_of("- a\n- b\n").find("a profile is a mapping"), std::string::npos);
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
  EXPECT_EQ(error_of("name: x\nnetwork: none\nnetwork: host\n"),
            "test.yaml:3: key 'network': duplicate key (first on line 2)");
  EXPECT_EQ(error_of("limits:\n  memory: 1G\n  pids: 10\n  memory: 2G\n"),
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
