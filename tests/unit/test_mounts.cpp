// The namespaces tier's mount plan: parents before children, the private /tmp backed by the
// run's tmp dir, and a work dir under /tmp kept visible over it.
#include <gtest/gtest.h>

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
  // The project dir itself, covered by the private /tmp, comes back read-only as / had it.
  const auto project = std::find_if(ops->begin(), ops->end(), [&](const MountOp& o) {
    return o.shown == (t.root / "project").string();
  });
  ASSERT_NE(project, ops->end());
  EXPECT_TRUE(project->read_only);
  EXPECT_LT(project - ops->begin(), tmpdir - ops->begin());
}
