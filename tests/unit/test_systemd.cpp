// The systemd tier's systemd-run command line, built from a profile.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <unistd.h>
#include <fstream>

#include "batman_config.h"
#include "isolation/systemd.hpp"

using namespace batman::isolation;

namespace {

LaunchRequest systemd_request_for(const char* profile) {
  LaunchRequest r;
  auto p = load_profile(std::string(BATMAN_SOURCE_PROFILES) + "/" + profile + ".yaml");
  EXPECT_TRUE(p.has_value());
  r.profile = *p;
  r.limits = p->limits;
  r.argv = {"/bin/sh", "-c", "echo hi"};
  r.env = {"HOME=/home/u", "BATMAN_RUN_ID=r1"};
  r.cwd = "/home/u/src";
  r.batman_home = "/home/u/.batman-parallel";
  r.project_dir = "/home/u/.batman-parallel/p";
  r.tmp_dir = "/home/u/.batman-parallel/p/tmp/r1";
  r.run_id = "r1";
  r.unit_name = "p-r1";
  return r;
}

bool has_arg(const std::vector<std::string>& argv, const std::string& item) {
  return std::find(argv.begin(), argv.end(), item) != argv.end();
}

}  // namespace

TEST(Systemd, UnitName) { EXPECT_EQ(systemd_unit(systemd_request_for("parallel")), "batman-p-r1.service"); }

TEST(Systemd, IsolatedProfileAsProperties) {
  std::vector<std::string> unenforced;
  const auto argv = systemd_run_argv("/usr/bin/systemd-run", systemd_request_for("isolated"), false, unenforced);
  EXPECT_EQ(argv[0], "/usr/bin/systemd-run");
  EXPECT_FALSE(has_arg(argv, "--user"));
  for (const char* option :
       {"--quiet", "--collect", "--pipe", "--wait", "--unit=batman-p-r1.service",
        "--working-directory=/home/u/src", "--setenv=HOME=/home/u", "--setenv=BATMAN_RUN_ID=r1",
        "--property=PrivateNetwork=yes", "--property=PrivateIPC=yes", "--property=ProtectHostname=yes",
        "--property=ProtectSystem=strict", "--property=ReadWritePaths=/home/u/src",
        "--property=ReadOnlyPaths=/home/u/.batman-parallel",
        "--property=ReadWritePaths=-/home/u/.batman-parallel/p/tmp/r1", "--property=PrivateTmp=yes",
        "--property=CapabilityBoundingSet=", "--property=NoNewPrivileges=yes",
        "--property=SystemCallArchitectures=native", "--property=SystemCallErrorNumber=EPERM",
        "--property=KillMode=control-group"})
    EXPECT_TRUE(has_arg(argv, option)) << option;
  EXPECT_FALSE(has_arg(argv, "--property=ReadWritePaths=/home/u/.batman-parallel/p"));
  const auto filter = std::find_if(argv.begin(), argv.end(), [](const std::string& a) {
    return a.starts_with("--property=SystemCallFilter=~");
  });
  ASSERT_NE(filter, argv.end());
  EXPECT_NE(filter->find("=~kexec_load kexec_file_load "), std::string::npos);
  EXPECT_NE(filter->find(" mount "), std::string::npos);
  EXPECT_EQ(argv[argv.size() - 4], "--");
  EXPECT_EQ(argv.back(), "echo hi");
}

TEST(Systemd, LimitsAndUserManager) {
  auto r = systemd_request_for("strict");
  r.limits.cpus = 1.5;
  std::vector<std::string> unenforced;
  const auto argv = systemd_run_argv("systemd-run", r, true, unenforced);
  EXPECT_EQ(argv[1], "--user");
  EXPECT_TRUE(has_arg(argv, "--property=MemoryMax=2147483648"));
  EXPECT_TRUE(has_arg(argv, "--property=TasksMax=512"));
  EXPECT_TRUE(has_arg(argv, "--property=LimitNOFILE=1024"));
  EXPECT_TRUE(has_arg(argv, "--property=CPUQuota=150%"));
}

TEST(Systemd, ParallelProfileIsLight) {
  std::vector<std::string> unenforced;
  const auto argv = systemd_run_argv("systemd-run", systemd_request_for("parallel"), false, unenforced);
  EXPECT_FALSE(has_arg(argv, "--property=PrivateNetwork=yes"));
  EXPECT_FALSE(has_arg(argv, "--property=NoNewPrivileges=yes"));
  EXPECT_TRUE(has_arg(argv, "--property=PrivateTmp=yes"));
}

TEST(Systemd, ProbeSaysWhyNotWhenSystemdIsNotInit) {
  std::ifstream comm("/proc/1/comm");
  std::string init;
  std::getline(comm, init);
  const auto a = probe_systemd();
  if (init == "systemd") {
    GTEST_SKIP() << "systemd is PID 1 here; the reason for its absence cannot be checked";
  }
  EXPECT_FALSE(a.available);
  EXPECT_EQ(a.reason, "systemd is not PID 1 (init is " + init + ")");
}

// SPEC §7 under systemd: batman's tree read-only, the job's TMPDIR and worktree writable,
// every other entry inaccessible; as root, strict's root_user runs the job as nobody.
TEST(Systemd, BatmanTreeAndRootUser) {
  char tmpl[] = "/tmp/batman-systemd-XXXXXX";
  const std::filesystem::path root = mkdtemp(tmpl);
  const auto home = root / "home";
  for (const char* dir : {"p/tmp/r1", "p/tmp/r2", "p/logs", "p/worktrees/r1", "other/state", ".cache"})
    std::filesystem::create_directories(home / dir);
  auto r = systemd_request_for("strict");
  r.batman_home = home.string();
  r.project_dir = (home / "p").string();
  r.tmp_dir = (home / "p/tmp/r1").string();
  r.worktree = (home / "p/worktrees/r1").string();
  r.profile.filesystem.read_write = {"$CWD", "$PROJECT_DIR"};
  std::vector<std::string> unenforced;
  const auto argv = systemd_run_argv("systemd-run", r, geteuid() != 0, unenforced);
  std::filesystem::remove_all(root);
  EXPECT_TRUE(has_arg(argv, "--property=ReadOnlyPaths=" + home.string()));
  EXPECT_FALSE(has_arg(argv, "--property=ReadWritePaths=" + (home / "p").string()));
  EXPECT_TRUE(has_arg(argv, "--property=ReadWritePaths=-" + (home / "p/tmp/r1").string()));
  EXPECT_TRUE(has_arg(argv, "--property=ReadWritePaths=-" + (home / "p/worktrees/r1").string()));
  for (const char* hidden : {"other", ".cache", "p/logs", "p/tmp/r2"})
    EXPECT_TRUE(has_arg(argv, "--property=InaccessiblePaths=-" + (home / hidden).string())) << hidden;
  for (const char* shown : {"p", "p/tmp", "p/tmp/r1", "p/worktrees/r1"})
    EXPECT_FALSE(has_arg(argv, "--property=InaccessiblePaths=-" + (home / shown).string())) << shown;
  if (geteuid() == 0) {
    EXPECT_TRUE(has_arg(argv, "--property=User=65534"));
    EXPECT_TRUE(has_arg(argv, "--property=Group=65534"));
  }
  EXPECT_TRUE(has_arg(argv, "--setenv=BATMAN_RUN_ID=r1"));
}
