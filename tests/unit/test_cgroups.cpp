// The job cgroups of the env tier and of lost runs, on this machine's real cgroups: a child
// joins before execve, batman's own names are found in every hierarchy, a lost run's empty
// directories are removed and a busy one is not. Skipped where no cgroup is writable.
#include <sched.h>
#include <sys/mount.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <fstream>
#include <set>
#include <thread>
#include <sstream>

#include <gtest/gtest.h>

#include <filesystem>

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
  // Whatever an ASSERT left behind: the sleep killed and reaped, the directories removed.
  void TearDown() override {
    if (child_ > 0) {
      kill(child_, SIGKILL);
      waitpid(child_, nullptr, 0);
    }
    for (auto* group : {&group_, &other_})
      if (*group) (*group)->remove();
  }
  pid_t child_ = -1;
  std::unique_ptr<Cgroup> group_, other_;
};


// The cgroup mounts are read from /proc/self/mountinfo once, and again only after the mount
// table changed: a child in a mount namespace of its own unmounts every cgroup hierarchy, and
// the next look finds none (a cache that missed the change would still find them).
TEST(CgroupDetect, AChangedMountTableIsReadAgain) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root (a mount namespace and umount)";
  if (detect_cgroups().version == 0) GTEST_SKIP() << "no cgroups mounted here";
  const pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    if (unshare(CLONE_NEWNS) != 0 || mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) _exit(2);
    if (detect_cgroups().version == 0) _exit(3);  // the child's own first look (its cache)
    if (detect_cgroups().version == 0) _exit(4);  // again, unchanged
    std::vector<std::string> points;
    std::ifstream in("/proc/self/mountinfo");
    for (std::string line; std::getline(in, line);) {
      const auto dash = line.find(" - ");
      if (dash == std::string::npos) continue;
      std::istringstream left(line.substr(0, dash)), right(line.substr(dash + 3));
      std::string field, point, type;
      for (int i = 0; i < 5 && left >> field; ++i) point = field;
      right >> type;
      if (type == "cgroup" || type == "cgroup2") points.push_back(point);
    }
    for (auto it = points.rbegin(); it != points.rend(); ++it) umount2(it->c_str(), MNT_DETACH);
    _exit(detect_cgroups().version == 0 ? 0 : 5);
  }
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0) << "2: no mount namespace, 3-4: no cgroups, 5: the unmount went unseen";
  EXPECT_NE(detect_cgroups().version, 0) << "ours are still there";
}

// Two homes' jobs of the same project and program never share a cgroup: the unit name ends in
// the home's tag, the same for any spelling of one home and another for another home.
TEST(CgroupNames, TheHomeTagNamesTheHomeWhateverItsSpelling) {
  char tmpl[] = "/tmp/batman-tag.XXXXXX";
  const std::string dir = ::mkdtemp(tmpl);
  ASSERT_EQ(::mkdir((dir + "/a").c_str(), 0700), 0);
  ASSERT_EQ(::mkdir((dir + "/b").c_str(), 0700), 0);
  ASSERT_EQ(::symlink((dir + "/a").c_str(), (dir + "/link").c_str()), 0);
  const std::string a = home_tag(dir + "/a");
  EXPECT_EQ(a.size(), 8u);
  EXPECT_EQ(a.find_first_not_of("0123456789abcdef"), std::string::npos) << a;
  EXPECT_EQ(home_tag(dir + "/a/"), a);
  EXPECT_EQ(home_tag(dir + "/link"), a);
  EXPECT_EQ(home_tag(dir + "/./b/../a"), a);
  EXPECT_NE(home_tag(dir + "/b"), a);
  EXPECT_EQ(home_tag(dir + "/b"), home_tag(dir + "/b"));
  std::filesystem::remove_all(dir);
}

}  // namespace

TEST_F(Cgroups, TheChildStartsInsideAndLimitsHold) {
  const std::string unit = unit_name("join");
  Limits limits;
  limits.pids = 3;
  limits.memory_bytes = 64 << 20;
  std::vector<std::string> unenforced;
  group_ = create_job_cgroup(unit, limits, unenforced);
  auto& group = group_;
  ASSERT_TRUE(group);
  EXPECT_TRUE(group->enforced.pids);
  EXPECT_TRUE(group->enforced.memory);
  EXPECT_TRUE(unenforced.empty()) << unenforced.front();
  auto child = spawn_sleep(*group);
  ASSERT_TRUE(child) << child.error().message;
  child_ = child->pid;
  EXPECT_NE(cgroup_of(child->pid).find("/batman/" + unit), std::string::npos) << cgroup_of(child->pid);
  EXPECT_EQ(group->members(), std::vector<pid_t>{child->pid});
  // Found again by name alone, in every hierarchy it was made in, as `batman stop` would.
  const auto dirs = find_job_cgroup_dirs({unit, "batman-unittest-none"});
  EXPECT_EQ(dirs.size(), group->directories().size());
  EXPECT_EQ(std::set<std::string>(dirs.begin(), dirs.end()),
            std::set<std::string>(group->directories().begin(), group->directories().end()));
  for (const auto& d : dirs) EXPECT_TRUE(d.ends_with("/batman/" + unit)) << d;
  group->kill_all();
  int status = 0;
  ASSERT_EQ(waitpid(child->pid, &status, 0), child->pid);
  child_ = -1;
  EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
  group->remove();
  EXPECT_TRUE(find_job_cgroup_dirs({unit}).empty());
}

TEST_F(Cgroups, OnlyEmptyDirectoriesOfALostRunAreRemoved) {
  const std::string unit = unit_name("stale");
  std::vector<std::string> unenforced;
  group_ = create_job_cgroup(unit, Limits{}, unenforced);
  auto& group = group_;
  ASSERT_TRUE(group);
  auto child = spawn_sleep(*group);
  ASSERT_TRUE(child) << child.error().message;
  child_ = child->pid;
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
  child_ = -1;
  EXPECT_TRUE(remove_empty_cgroup_dirs(dirs).empty());
  EXPECT_TRUE(find_job_cgroup_dirs({unit}).empty());
  group->remove();  // already gone: nothing to do
}

TEST_F(Cgroups, WithoutLimitsOnlyTheHierarchyThatFindsTheJob) {
  std::vector<std::string> unenforced;
  group_ = create_job_cgroup(unit_name("plain"), Limits{}, unenforced);
  ASSERT_TRUE(group_);
  EXPECT_TRUE(unenforced.empty()) << unenforced.front();
  ASSERT_EQ(group_->directories().size(), 1u) << group_->describe();
  if (detect_cgroups().version == 1) {
    for (const char* c : {"/memory/", "/cpu/", "/cpu,cpuacct/"})
      EXPECT_EQ(group_->directories().front().find(c), std::string::npos) << group_->describe();
  }
}

// Project "a" run "b-1" and project "a-b" run "1": the names differ, and killing what one
// finds leaves the other's process alive.
TEST_F(Cgroups, TwoRunsWhoseNamesJoinAlikeNeverShareACgroup) {
  const std::string a = "ut" + std::to_string(getpid());
  const std::string first = job_unit_name({a, "b-1"});
  const std::string second = job_unit_name({a + "-b", "1"});
  EXPECT_NE(first, second);
  EXPECT_EQ(first, "batman:" + a + ":b-1");
  std::vector<std::string> unenforced;
  group_ = create_job_cgroup(first, Limits{}, unenforced);
  ASSERT_TRUE(group_);
  auto child = spawn_sleep(*group_);
  ASSERT_TRUE(child) << child.error().message;
  child_ = child->pid;
  // `stop` of the other run finds nothing, so its kill_all cannot reach this sleep.
  EXPECT_TRUE(find_job_cgroup_dirs({second}).empty());
  other_ = create_job_cgroup(second, Limits{}, unenforced);
  ASSERT_TRUE(other_);
  auto lost = open_job_cgroup(find_job_cgroup_dirs({second}));
  ASSERT_TRUE(lost);
  lost->kill_all();
  EXPECT_EQ(kill(child->pid, 0), 0);  // still alive
  EXPECT_EQ(group_->members(), std::vector<pid_t>{child->pid});
}

TEST(CgroupNames, NothingIsFoundForNoName) {
  EXPECT_TRUE(find_job_cgroup_dirs({}).empty());
  EXPECT_TRUE(find_job_cgroup_dirs({"batman-unittest-never-made"}).empty());
  EXPECT_TRUE(remove_empty_cgroup_dirs({}).empty());
  EXPECT_EQ(open_job_cgroup({}), nullptr);
}

// The event loop's removal: try_remove never waits. While the job's process is alive (or not
// yet out of the cgroup) it says "not yet" at once and keeps the directories; once the
// process is gone it removes them. The blocking remove() is for callers with no loop.
TEST_F(Cgroups, TryRemoveDoesNotWaitForTheCgroupToEmpty) {
  const std::string unit = unit_name("tryremove");
  std::vector<std::string> unenforced;
  group_ = create_job_cgroup(unit, Limits{}, unenforced);
  ASSERT_TRUE(group_);
  auto child = spawn_sleep(*group_);
  ASSERT_TRUE(child) << child.error().message;
  child_ = child->pid;
  const auto before = std::chrono::steady_clock::now();
  EXPECT_FALSE(group_->try_remove()) << "a live member keeps the cgroup";
  EXPECT_LT(std::chrono::steady_clock::now() - before, std::chrono::milliseconds(50)) << "and no wait for it";
  EXPECT_EQ(find_job_cgroup_dirs({unit}).size(), group_->directories().size());
  EXPECT_FALSE(group_->directories().empty());
  EXPECT_FALSE(release_cgroup(group_, false)) << "a backend's try_release: not yet";
  ASSERT_TRUE(group_) << "kept for the next try";
  group_->kill_all();
  ASSERT_EQ(waitpid(child->pid, nullptr, 0), child->pid);
  child_ = -1;
  // Reaped: it has left the cgroup, or does so a moment later on some kernels; the loop's
  // caller would come back from a timer, this test asks again.
  bool done = false;
  for (int i = 0; i < 2000 && !(done = group_->try_remove()); ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  EXPECT_TRUE(done);
  EXPECT_TRUE(group_->directories().empty());
  EXPECT_TRUE(find_job_cgroup_dirs({unit}).empty());
  EXPECT_TRUE(group_->try_remove()) << "done stays done";
  EXPECT_TRUE(release_cgroup(group_, false));
  EXPECT_FALSE(group_);
  EXPECT_TRUE(release_cgroup(group_, false)) << "released already";
}
