// The firejail tier's command line, built from a profile.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <unistd.h>

#include "batman_config.h"
#include "isolation/firejail.hpp"

using namespace batman::isolation;

namespace {

LaunchRequest request_for(const char* profile) {
  LaunchRequest r;
  auto p = load_profile(std::string(BATMAN_SOURCE_PROFILES) + "/" + profile + ".yaml");
  EXPECT_TRUE(p.has_value());
  r.profile = *p;
  r.limits = p->limits;
  r.argv = {"/bin/sh", "-c", "make test"};
  r.env = {"HOME=/home/u", "PATH=/usr/bin"};
  r.cwd = "/tmp/work";
  r.batman_home = "/home/u/.batman-parallel";
  r.project_dir = "/home/u/.batman-parallel/p";
  r.tmp_dir = "/home/u/.batman-parallel/p/tmp/r1";
  return r;
}

bool has(const std::vector<std::string>& argv, const std::string& item) {
  return std::find(argv.begin(), argv.end(), item) != argv.end();
}

}  // namespace

TEST(Firejail, IsolatedProfile) {
  std::vector<std::string> unenforced;
  const auto argv = firejail_argv("/usr/bin/firejail", request_for("isolated"), unenforced);
  ASSERT_GE(argv.size(), 6U);
  EXPECT_EQ(argv[0], "/usr/bin/firejail");
  EXPECT_EQ(argv[1], "--quiet");
  EXPECT_EQ(argv[2], "--noprofile");
  for (const char* option :
       {"--net=none", "--ipc-namespace", "--hostname=batman", "--read-only=/", "--read-write=/tmp/work",
        "--private-tmp", "--whitelist=/tmp/work", "--deterministic-shutdown",
        "--read-only=/home/u/.batman-parallel", "--read-write=/home/u/.batman-parallel/p/tmp/r1",
        "--caps.drop=all", "--nonewprivs", "--seccomp.block-secondary", "--seccomp-error-action=EPERM"})
    EXPECT_TRUE(has(argv, option)) << option;
  const auto drop = std::find_if(argv.begin(), argv.end(),
                                 [](const std::string& a) { return a.starts_with("--seccomp.drop="); });
  ASSERT_NE(drop, argv.end());
  EXPECT_NE(drop->find("kexec_load"), std::string::npos);
  EXPECT_NE(drop->find(",mount,"), std::string::npos);
  // The command comes last, after "--", untouched.
  ASSERT_GE(argv.size(), 4U);
  EXPECT_EQ(argv[argv.size() - 4], "--");
  EXPECT_EQ(argv.back(), "make test");
  EXPECT_TRUE(has(unenforced, "cgroup namespace (firejail tier)"));
}

TEST(Firejail, ParallelProfileKeepsHostNetwork) {
  std::vector<std::string> unenforced;
  const auto argv = firejail_argv("firejail", request_for("parallel"), unenforced);
  EXPECT_FALSE(has(argv, "--net=none"));
  EXPECT_FALSE(has(argv, "--nonewprivs"));
  EXPECT_FALSE(has(argv, "--caps.drop=all"));
  EXPECT_TRUE(has(argv, "--private-tmp"));
}

TEST(Firejail, StrictLimitsAndNoNetwork) {
  std::vector<std::string> unenforced;
  const auto argv = firejail_argv("firejail", request_for("strict"), unenforced);
  EXPECT_TRUE(has(argv, "--rlimit-nofile=1024"));
  EXPECT_TRUE(has(argv, "--net=none"));
  EXPECT_TRUE(has(unenforced, "network none: firejail keeps lo up"));
}

TEST(Firejail, KeptCapabilities) {
  auto r = request_for("isolated");
  r.profile.capabilities.keep = {"CAP_NET_BIND_SERVICE", "chown"};
  std::vector<std::string> unenforced;
  const auto argv = firejail_argv("firejail", r, unenforced);
  EXPECT_TRUE(has(argv, "--caps.keep=net_bind_service,chown"));
  EXPECT_FALSE(has(argv, "--caps.drop=all"));
}

// SPEC §7 under firejail: a profile's path inside batman's tree is dropped; after the profile
// the tree is read-only (firejail: last one wins), the job's TMPDIR and worktree writable,
// and every other entry (other projects, .cache, this project's state) blacklisted.
TEST(Firejail, BatmanTreeIsReadOnlyAndOtherEntriesBlacklisted) {
  char tmpl[] = "/tmp/batman-firejail-XXXXXX";
  const std::filesystem::path root = mkdtemp(tmpl);
  const auto home = root / "home";
  for (const char* dir : {"p/tmp/r1", "p/tmp/r2", "p/state", "p/worktrees/r1", "other/logs", ".cache/profiles"})
    std::filesystem::create_directories(home / dir);
  auto r = request_for("isolated");
  r.batman_home = home.string();
  r.project_dir = (home / "p").string();
  r.tmp_dir = (home / "p/tmp/r1").string();
  r.worktree = (home / "p/worktrees/r1").string();
  r.cwd = r.worktree;
  r.profile.filesystem.read_write = {"$CWD", "$PROJECT_DIR"};
  std::vector<std::string> unenforced;
  const auto argv = firejail_argv("firejail", r, unenforced);
  std::filesystem::remove_all(root);
  EXPECT_FALSE(has(argv, "--read-write=" + (home / "p").string()));
  // The last occurrence: firejail's read-only/read-write are last-wins.
  const auto at = [&](const std::string& item) {
    const auto it = std::find(argv.rbegin(), argv.rend(), item);
    return it == argv.rend() ? std::ptrdiff_t(-1) : argv.rend() - it - 1;
  };
  const auto read_only = at("--read-only=" + home.string());
  ASSERT_GE(read_only, 0);
  EXPECT_GT(at("--read-write=" + (home / "p/tmp/r1").string()), read_only);
  EXPECT_GT(at("--read-write=" + (home / "p/worktrees/r1").string()), read_only);
  for (const char* hidden : {"other", ".cache", "p/state", "p/tmp/r2"})
    EXPECT_TRUE(has(argv, "--blacklist=" + (home / hidden).string())) << hidden;
  for (const char* shown : {"p", "p/tmp", "p/tmp/r1", "p/worktrees", "p/worktrees/r1"})
    EXPECT_FALSE(has(argv, "--blacklist=" + (home / shown).string())) << shown;
  EXPECT_TRUE(std::any_of(unenforced.begin(), unenforced.end(), [](const std::string& u) {
    return u.starts_with("read_write $PROJECT_DIR: inside batman's own tree");
  }));
}
