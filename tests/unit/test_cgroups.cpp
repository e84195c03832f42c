// The job cgroups of the env tier and of lost runs, on this machine's real cgroups: a child
// joins before execve, batman's own names are found in every hierarchy, a lost run's empty
// directories are removed and a busy one is not. Skipped where no cgroup is writable.
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <fstream>
#include <sstream>

#include <gtest/gtest.h>

#include "common/fs.hpp"
#include "isolation/cgroups.hpp"
#include "isolation/spawn.hpp"

using namespace batman;
using namespace batman::isolation;

namespace {

std::string unit_name(const char* what) {
  return "batman-unittest-" + std::string(what) + "-" + std::to_string(getpid());
}

std::string cgroup_of(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/cgroup");
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

Result<Child> spawn_sleep(Cgroup& group) {
  LaunchRequest r;
  r.argv = {"/bin/sleep", "30"};
  r.env = {"PATH=/usr/bin:/bin"};
  r.cwd = "/";
  auto fds = group.open_procs();
  if (!fds) return std::unexpected(fds.error());
  std::vector<int> raw;
  for (const auto& fd : *fds) raw.push_back(fd.get());
  return spawn_plain(r, r.argv, raw);
}

class Cgroups : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!detect_cgroups().writable) GTEST_SKIP() << "no writable cgroup: " << detect_cgroups().note;
  }
};

}  // namespace

TEST_F(Cgroups, TheChildStartsInsideAndLimitsHold) {
  const std::string unit = unit_name("join");
  Limits limits;
  limits.pids = 3;
  limits.memory_bytes = 64 << 20;
  std::vector<std::string> unenforced;
  auto group = create_job_cgroup(unit, limits, unenforced);
  ASSERT_TRUE(group);
  EXPECT_TRUE(group->enforced.pids);
  EXPECT_TRUE(group->enforced.memory);
  EXPECT_TRUE(unenforced.empty()) << unenforced.front();
  auto child = spawn_sleep(*group);
  ASSERT_TRUE(child) << child.error().message;
  EXPECT_NE(cgroup_of(child->pid).find("/batman/" + unit), std::string::npos) << cgroup_of(child->pid);
  EXPECT_EQ(group->members(), std::vector<pid_t>{child->pid});
  // Found again by name alone, in every hierarchy it was made in, as `batman stop` would.
  const auto dirs = find_job_cgroup_dirs({unit, "batman-unittest-none"});
  EXPECT_GE(dirs.size(), 2u);
  for (const auto& d : dirs) EXPECT_TRUE(d.ends_with("/batman/" + unit)) << d;
  group->kill_all();
  int status = 0;
  ASSERT_EQ(waitpid(child->pid, &status, 0), child->pid);
  EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
  group->remove();
  EXPECT_TRUE(find_job_cgroup_dirs({unit}).empty());
}

TEST_F(Cgroups, OnlyEmptyDirectoriesOfALostRunAreRemoved) {
  const std::string unit = unit_name("stale");
  std::vector<std::string> unenforced;
  auto group = create_job_cgroup(unit, Limits{}, unenforced);
  ASSERT_TRUE(group);
  auto child = spawn_sleep(*group);
  ASSERT_TRUE(child) << child.error().message;
  const auto dirs = find_job_cgroup_dirs({unit});
  ASSERT_FALSE(dirs.empty());
  // Busy: every directory stays, and says why.
  const auto kept = remove_empty_cgroup_dirs(dirs);
  EXPECT_EQ(kept.size(), dirs.size());
  for (const auto& k : kept) EXPECT_NE(k.find("holds 1 process"), std::string::npos) << k;
  // A lost run's: what open_job_cgroup finds kills the job and removes the directories.
  auto lost = open_job_cgroup(dirs);
  ASSERT_TRUE(lost);
  EXPECT_EQ(lost->members(), std::vector<pid_t>{child->pid});
  lost->kill_all();
  ASSERT_EQ(waitpid(child->pid, nullptr, 0), child->pid);
  EXPECT_TRUE(remove_empty_cgroup_dirs(dirs).empty());
  EXPECT_TRUE(find_job_cgroup_dirs({unit}).empty());
  group->remove();  // already gone: nothing to do
}

TEST(CgroupNames, NothingIsFoundForNoName) {
  EXPECT_TRUE(find_job_cgroup_dirs({}).empty());
  EXPECT_TRUE(find_job_cgroup_dirs({"batman-unittest-never-made"}).empty());
  EXPECT_TRUE(remove_empty_cgroup_dirs({}).empty());
  EXPECT_EQ(open_job_cgroup({}), nullptr);
}
