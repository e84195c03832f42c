// The namespaces tier's mount plan: parents before children, the private /tmp backed by the
// run's tmp dir, and a work dir under /tmp kept visible over it.
#include <gtest/gtest.h>

#include <unistd.h>

#include <cstdlib>
#include <filesystem>

#include "isolation/backends.hpp"
#include "isolation/ns_plan.hpp"

using namespace batman::isolation;
using ns::MountOp;

namespace {

struct TempTree {
  std::filesystem::path root;
  TempTree() {
    char tmpl[] = "/tmp/batman-mounts-XXXXXX";
    root = mkdtemp(tmpl);
    std::filesystem::create_directories(root / "work");
    std::filesystem::create_directories(root / "project/tmp/r1");
  }
  ~TempTree() { std::filesystem::remove_all(root); }
};

LaunchRequest request(const TempTree& t) {
  LaunchRequest r;
  r.cwd = (t.root / "work").string();
  r.project_dir = (t.root / "project").string();
  r.tmp_dir = (t.root / "project/tmp/r1").string();
  r.profile.namespaces = {"mount", "pid"};
  r.profile.filesystem.read_only = {"/"};
  r.profile.filesystem.read_write = {"$CWD", "$PROJECT_DIR", "/no/such/dir"};
  r.profile.filesystem.tmpfs = {"/tmp"};
  return r;
}

}  // namespace

TEST(Mounts, OrderAndPrivateTmp) {
  TempTree t;
  std::vector<std::string> unenforced;
  auto ops = ns::plan_mounts(request(t), unenforced);
  ASSERT_TRUE(ops.has_value());
  ASSERT_GE(ops->size(), 5U);
  EXPECT_EQ((*ops)[0].shown, "/");
  EXPECT_TRUE((*ops)[0].read_only);
  EXPECT_EQ((*ops)[0].source, "/oldroot");
  EXPECT_EQ((*ops)[0].target, "/newroot");
  // Depth never decreases: a mount never hides one made after it.
  std::size_t last = 0;
  for (const auto& op : *ops) {
    const auto depth =
        op.shown == "/" ? 0 : static_cast<std::size_t>(std::count(op.shown.begin(), op.shown.end(), '/'));
    EXPECT_GE(depth, last) << op.shown;
    last = depth;
  }
  const auto tmp = std::find_if(ops->begin(), ops->end(), [](const MountOp& o) { return o.shown == "/tmp"; });
  ASSERT_NE(tmp, ops->end());
  // The work dir lives under /tmp here, so /tmp is a tmpfs: its mount points must not show
  // up in the run's TMPDIR.
  EXPECT_EQ(tmp->kind, MountOp::Kind::Tmpfs);
  const auto work = std::find_if(ops->begin(), ops->end(),
                                 [&](const MountOp& o) { return o.shown == (t.root / "work").string(); });
  ASSERT_NE(work, ops->end());
  EXPECT_FALSE(work->read_only);
  EXPECT_GT(work - ops->begin(), tmp - ops->begin()) << "the work dir must be mounted over /tmp";
  const auto proc = std::find_if(ops->begin(), ops->end(), [](const MountOp& o) { return o.kind == MountOp::Kind::Proc; });
  EXPECT_NE(proc, ops->end());
  ASSERT_EQ(unenforced.size(), 1U);
  EXPECT_NE(unenforced[0].find("/no/such/dir"), std::string::npos);
}

TEST(Mounts, WorkDirUnderTmpIsKeptEvenWhenOnlyRootIsBound) {
  TempTree t;
  auto r = request(t);
  r.profile.filesystem.read_write = {"/"};
  r.profile.filesystem.read_only = {};
  std::vector<std::string> unenforced;
  auto ops = ns::plan_mounts(r, unenforced);
  ASSERT_TRUE(ops.has_value());
  const auto work = std::find_if(ops->begin(), ops->end(),
                                 [&](const MountOp& o) { return o.shown == (t.root / "work").string(); });
  ASSERT_NE(work, ops->end());
  EXPECT_FALSE(work->read_only);
}

TEST(Mounts, PrivateTmpIsTheRunsTmpDirWhenNothingUnderTmpMustStay) {
  LaunchRequest r;
  r.cwd = "/";
  r.project_dir = "/usr";  // anything outside /tmp that exists
  r.tmp_dir = "/usr/share";
  r.profile.namespaces = {"mount"};
  r.profile.filesystem.read_write = {"/"};
  r.profile.filesystem.tmpfs = {"/tmp"};
  std::vector<std::string> unenforced;
  auto ops = ns::plan_mounts(r, unenforced);
  ASSERT_TRUE(ops.has_value());
  const auto tmp = std::find_if(ops->begin(), ops->end(), [](const MountOp& o) { return o.shown == "/tmp"; });
  ASSERT_NE(tmp, ops->end());
  EXPECT_EQ(tmp->kind, MountOp::Kind::Bind);
  EXPECT_EQ(tmp->source, "/oldroot/usr/share");
}

TEST(Mounts, SubstitutesVariables) {
  LaunchRequest r;
  r.cwd = "/c";
  r.project_dir = "/p";
  r.tmp_dir = "/p/tmp/1";
  r.env = {"HOME=/home/x"};
  EXPECT_EQ(expand_profile_path("$CWD/sub", r), "/c/sub");
  EXPECT_EQ(expand_profile_path("$PROJECT_DIR", r), "/p");
  EXPECT_EQ(expand_profile_path("$TMPDIR", r), "/p/tmp/1");
  EXPECT_EQ(expand_profile_path("$HOME/.cache", r), "/home/x/.cache");
  EXPECT_EQ(expand_profile_path("$CWDX", r), "$CWDX");
}

TEST(Mounts, TmpdirStaysVisibleAndWritableUnderAReadOnlyRoot) {
  TempTree t;
  auto r = request(t);
  r.profile.filesystem.read_write = {"$CWD"};  // strict: the project dir is not writable
  std::vector<std::string> unenforced;
  auto ops = ns::plan_mounts(r, unenforced);
  ASSERT_TRUE(ops.has_value());
  const auto tmpdir = std::find_if(ops->begin(), ops->end(), [&](const MountOp& o) {
    return o.shown == (t.root / "project/tmp/r1").string();
  });
  ASSERT_NE(tmpdir, ops->end()) << "TMPDIR must be bound at its own path";
  EXPECT_FALSE(tmpdir->read_only);
  // The project dir itself is batman's records: not brought back over the private /tmp.
  const auto project = std::find_if(ops->begin(), ops->end(), [&](const MountOp& o) {
    return o.shown == (t.root / "project").string();
  });
  EXPECT_EQ(project, ops->end());
}

namespace {

// $BATMAN_HOME with a project, the run's TMPDIR and worktree, another project's log, and a
// work dir outside it.
struct HomeTree {
  std::filesystem::path root, home;
  HomeTree() {
    char tmpl[] = "/tmp/batman-mounts-XXXXXX";
    root = mkdtemp(tmpl);
    home = root / "home";
    std::filesystem::create_directories(root / "work");
    std::filesystem::create_directories(home / "p/tmp/r1");
    std::filesystem::create_directories(home / "p/tmp/r2");
    std::filesystem::create_directories(home / "p/worktrees/r1/src");
    std::filesystem::create_directories(home / "p/state");
    std::filesystem::create_directories(home / "other/logs");
    std::filesystem::create_directories(home / ".cache/profiles");
  }
  ~HomeTree() { std::filesystem::remove_all(root); }
  LaunchRequest request(const std::filesystem::path& via) const {
    LaunchRequest r;
    r.cwd = (root / "work").string();
    r.batman_home = via.string();
    r.project_dir = (via / "p").string();
    r.tmp_dir = (via / "p/tmp/r1").string();
    r.profile.namespaces = {"mount", "pid"};
    r.profile.filesystem.read_only = {"/"};
    r.profile.filesystem.read_write = {"$CWD", "$PROJECT_DIR"};
    r.profile.filesystem.tmpfs = {"/tmp"};
    r.profile.capabilities.drop_all = true;
    return r;
  }
};

const MountOp* find_op(const std::vector<MountOp>& ops, const std::filesystem::path& shown) {
  for (const auto& op : ops)
    if (op.shown == shown.string()) return &op;
  return nullptr;
}

std::ptrdiff_t index_of(const std::vector<MountOp>& ops, const MountOp* op) { return op - ops.data(); }

}  // namespace

// SPEC §7: whatever the profile says ($PROJECT_DIR writable, or all of / writable), batman's
// tree is covered by an empty tmpfs, sealed read-only after the job's own TMPDIR and worktree
// are bound back writable below it; nothing else of it (state/, other projects, .cache) is
// bound.
TEST(Mounts, BatmanHomeIsCoveredAndOnlyTheJobsOwnPartsAreWritable) {
  HomeTree t;
  for (const auto& read_write : {std::vector<std::string>{"$CWD", "$PROJECT_DIR"}, std::vector<std::string>{"/"}}) {
    auto r = t.request(t.home);
    r.profile.filesystem.read_write = read_write;
    r.worktree = (t.home / "p/worktrees/r1").string();
    r.cwd = (t.home / "p/worktrees/r1/src").string();
    std::vector<std::string> unenforced;
    auto ops = ns::plan_mounts(r, unenforced);
    ASSERT_TRUE(ops.has_value());
    const MountOp* cover = find_op(*ops, t.home);
    ASSERT_NE(cover, nullptr);
    EXPECT_EQ(cover->kind, MountOp::Kind::Hide);
    EXPECT_TRUE(cover->is_dir);
    EXPECT_TRUE(cover->seal_later);
    const MountOp* tmpdir = find_op(*ops, t.home / "p/tmp/r1");
    ASSERT_NE(tmpdir, nullptr);
    EXPECT_EQ(tmpdir->kind, MountOp::Kind::Bind);
    EXPECT_FALSE(tmpdir->read_only);
    EXPECT_GT(index_of(*ops, tmpdir), index_of(*ops, cover));
    const MountOp* worktree = find_op(*ops, t.home / "p/worktrees/r1");
    ASSERT_NE(worktree, nullptr);
    EXPECT_FALSE(worktree->read_only);
    EXPECT_GT(index_of(*ops, worktree), index_of(*ops, cover));
    for (const auto& op : *ops) {
      if (op.kind != MountOp::Kind::Bind || op.shown == "/" || op.shown == "/tmp") continue;
      if (!path_within(op.shown, t.home.string())) continue;
      EXPECT_TRUE(path_within(op.shown, tmpdir->shown) || path_within(op.shown, worktree->shown)) << op.shown;
    }
    if (read_write.size() == 2) {
      ASSERT_EQ(unenforced.size(), 1U);
      EXPECT_NE(unenforced[0].find("read_write $PROJECT_DIR: inside batman's own tree"), std::string::npos);
    }
  }
}

// A work dir inside batman's tree (not the job's own) is shown, read-only.
TEST(Mounts, WorkDirInsideBatmanHomeIsReadOnly) {
  HomeTree t;
  auto r = t.request(t.home);
  r.cwd = (t.home / "p/state").string();
  std::vector<std::string> unenforced;
  auto ops = ns::plan_mounts(r, unenforced);
  ASSERT_TRUE(ops.has_value());
  const MountOp* cwd = find_op(*ops, t.home / "p/state");
  ASSERT_NE(cwd, nullptr);
  EXPECT_TRUE(cwd->read_only);
  EXPECT_GT(index_of(*ops, cwd), index_of(*ops, find_op(*ops, t.home)));
}

// Issue 11: a symlink in $BATMAN_HOME's path made the private /tmp's source
// "/oldroot/<the link>", which does not exist once the old root is under /oldroot. Every
// path is planned canonical.
TEST(Mounts, SymlinkedBatmanHomeIsPlannedCanonical) {
  HomeTree t;
  std::filesystem::create_directory_symlink(t.root, t.root / "link");
  auto r = t.request(t.root / "link/home");
  r.cwd = (t.root / "link/work").string();
  std::vector<std::string> unenforced;
  auto ops = ns::plan_mounts(r, unenforced);
  ASSERT_TRUE(ops.has_value());
  for (const auto& op : *ops) {
    EXPECT_EQ(op.shown.find("/link"), std::string::npos) << op.shown;
    EXPECT_EQ(op.source.find("/link"), std::string::npos) << op.source;
  }
  EXPECT_NE(find_op(*ops, t.home), nullptr);
  EXPECT_NE(find_op(*ops, t.home / "p/tmp/r1"), nullptr);
  EXPECT_NE(find_op(*ops, t.root / "work"), nullptr);
}

// batman's profile directories under a writable path ($HOME in `build`) are bound read-only
// when the job keeps no capabilities (so it cannot unmount them).
TEST(Mounts, ProfileDirectoriesUnderAWritablePathAreReadOnly) {
  HomeTree t;
  std::filesystem::create_directories(t.root / "work/.config/batman/profiles");
  const char* old = std::getenv("XDG_CONFIG_HOME");
  const std::string saved = old ? old : "";
  setenv("XDG_CONFIG_HOME", (t.root / "work/.config").c_str(), 1);
  auto r = t.request(t.home);
  std::vector<std::string> unenforced;
  auto ops = ns::plan_mounts(r, unenforced);
  r.profile.capabilities.drop_all = false;
  std::vector<std::string> unenforced_caps;
  auto with_caps = ns::plan_mounts(r, unenforced_caps);
  if (old) setenv("XDG_CONFIG_HOME", saved.c_str(), 1);
  else unsetenv("XDG_CONFIG_HOME");
  ASSERT_TRUE(ops.has_value());
  const MountOp* config = find_op(*ops, t.root / "work/.config/batman");
  ASSERT_NE(config, nullptr);
  EXPECT_EQ(config->kind, MountOp::Kind::Bind);
  EXPECT_TRUE(config->read_only);
  EXPECT_GT(index_of(*ops, config), index_of(*ops, find_op(*ops, t.root / "work")));
  ASSERT_TRUE(with_caps.has_value());
  EXPECT_EQ(find_op(*with_caps, t.root / "work/.config/batman"), nullptr);
}

// As root with root_user: the job runs as another uid, so a directory on the way to its
// TMPDIR or work dir that it could not pass is covered, and the work dir bound back.
TEST(Mounts, DirectoriesTheJobsUserCannotPassAreCovered) {
  if (geteuid() != 0) GTEST_SKIP() << "root_user applies to root only";
  HomeTree t;
  std::filesystem::create_directories(t.root / "closed/work");
  std::filesystem::permissions(t.root, std::filesystem::perms(0755));
  std::filesystem::permissions(t.root / "closed", std::filesystem::perms::owner_all);
  auto r = t.request(t.home);
  r.cwd = (t.root / "closed/work").string();
  r.profile.root_user = 65534;
  std::vector<std::string> unenforced;
  auto ops = ns::plan_mounts(r, unenforced);
  ASSERT_TRUE(ops.has_value());
  const MountOp* closed = find_op(*ops, t.root / "closed");
  ASSERT_NE(closed, nullptr);
  EXPECT_EQ(closed->kind, MountOp::Kind::Hide);
  const MountOp* work = find_op(*ops, t.root / "closed/work");
  ASSERT_NE(work, nullptr);
  EXPECT_GT(index_of(*ops, work), index_of(*ops, closed));
}

// batman-init is PID 1 with the sandbox's capabilities (root's, for root): a candidate that
// another user could have written is never it.
TEST(InitProgram, OnlyAnExecutableNoOtherUserCouldChange) {
  struct stat st{};
  st.st_mode = S_IFREG | 0755;
  st.st_uid = 0;
  EXPECT_EQ(ns::init_program_problem(st, 0), nullptr);
  EXPECT_EQ(ns::init_program_problem(st, 1000), nullptr) << "root's own file, for any user";
  st.st_uid = 1000;
  EXPECT_EQ(ns::init_program_problem(st, 1000), nullptr) << "the user's own build";
  EXPECT_STREQ(ns::init_program_problem(st, 0), "another user could change it") << "root runs no user's program";
  EXPECT_STREQ(ns::init_program_problem(st, 1001), "another user could change it");
  st.st_uid = 0;
  st.st_mode = S_IFREG | 0775;
  EXPECT_STREQ(ns::init_program_problem(st, 0), "another user could change it");
  st.st_mode = S_IFREG | 0757;
  EXPECT_STREQ(ns::init_program_problem(st, 0), "another user could change it");
  st.st_mode = S_IFREG | 0644;
  EXPECT_STREQ(ns::init_program_problem(st, 0), "not an executable file");
  st.st_mode = S_IFDIR | 0755;
  EXPECT_STREQ(ns::init_program_problem(st, 0), "not an executable file");
}
