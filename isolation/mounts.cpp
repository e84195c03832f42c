// The mount namespace: the parent turns a profile's filesystem section into an ordered mount
// list; the child builds the new root from it (bind, read-only, tmpfs, hide, /proc) and
// pivots into it, in bubblewrap's order: private /, a staging tmpfs, pivot so the old root
// sits at /oldroot, bind from /oldroot into /newroot, pivot into /newroot, drop the old tree.
#include <fcntl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <map>

#include "isolation/backends.hpp"
#include "isolation/ns_plan.hpp"
#include "isolation/raw_syscall.hpp"

namespace batman::isolation {

namespace {

std::string env_value(const std::vector<std::string>& env, std::string_view name) {
  for (const auto& kv : env) {
    if (kv.size() > name.size() && kv.starts_with(name) && kv[name.size()] == '=')
      return kv.substr(name.size() + 1);
  }
  return {};
}

}  // namespace

std::string expand_profile_path(const std::string& path, const LaunchRequest& request) {
  const std::pair<std::string_view, std::string> vars[] = {
      {"$CWD", request.cwd},
      {"$PROJECT_DIR", request.project_dir},
      {"$TMPDIR", request.tmp_dir},
      {"$HOME", env_value(request.env, "HOME")}};
  for (const auto& [name, value] : vars) {
    if (path.starts_with(name) && (path.size() == name.size() || path[name.size()] == '/'))
      return value + path.substr(name.size());
  }
  return path;
}

bool path_within(const std::string& path, const std::string& base) {
  if (base.empty() || path.empty()) return false;
  if (base == "/") return true;
  return path == base || (path.starts_with(base) && path[base.size()] == '/');
}

namespace {

namespace fs = std::filesystem;

// Symlinks resolved as far as the path exists (the run's TMPDIR may not exist yet); "" stays "".
std::string resolved(const std::string& path) {
  if (path.empty()) return {};
  std::error_code ec;
  auto out = fs::weakly_canonical(path, ec);
  if (ec) return fs::path(path).lexically_normal().string();
  std::string text = out.string();
  if (text.size() > 1 && text.back() == '/') text.pop_back();
  return text;
}

void list_hidden(const std::string& dir, const std::vector<std::string>& keep,
                 std::vector<std::string>& out, int depth) {
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    const std::string path = entry.path().string();
    bool kept = false, on_the_way = false;
    for (const auto& k : keep) {
      if (k.empty()) continue;
      if (path_within(path, k) || path == k) kept = true;
      else if (path_within(k, path)) on_the_way = true;
    }
    if (kept) continue;
    std::error_code dir_ec;
    if (on_the_way && depth < 8 && entry.is_directory(dir_ec) && !entry.is_symlink(dir_ec))
      list_hidden(path, keep, out, depth + 1);
    else
      out.push_back(path);
  }
}

}  // namespace

bool BatmanTree::owns(const std::string& path) const {
  return path_within(path, tmp_dir) || path_within(path, worktree);
}

bool BatmanTree::holds_records(const std::string& path) const {
  std::error_code ec;
  const auto canonical = fs::weakly_canonical(path, ec).string();
  return !ec && path_within(canonical, home) && !owns(canonical);
}

BatmanTree batman_tree(const LaunchRequest& request, bool with_hidden) {
  BatmanTree tree;
  tree.home = resolved(request.batman_home);
  if (tree.home == "/") tree.home.clear();  // nonsense, and nothing could be kept from it
  tree.tmp_dir = resolved(request.tmp_dir);
  tree.worktree = resolved(request.worktree);
  tree.cwd = resolved(request.cwd);
  // A work dir inside batman's tree stays reachable (read-only) for the tiers that hide.
  if (with_hidden && !tree.home.empty())
    list_hidden(tree.home, {tree.tmp_dir, tree.worktree, path_within(tree.cwd, tree.home) ? tree.cwd : ""},
                tree.hidden, 0);
  // batman's profile directories: the user's own (~/.config/batman as a whole, so that a
  // missing profiles/ cannot be created either), $BATMAN_PROFILES', and the system's. Only
  // for a job without capabilities: one with them could unmount what covers them.
  const auto& caps = request.profile.capabilities;
  if (!caps.drop_all || !caps.keep.empty()) return tree;
  std::vector<fs::path> dirs = profile_search_path();
  for (auto& dir : dirs) {
    if (dir.filename() == "profiles" && dir.parent_path().filename() == "batman")
      dir = dir.parent_path();
  }
  for (const auto& dir : dirs) {
    std::error_code ec;
    const auto canonical = fs::canonical(dir, ec);
    if (ec || !fs::is_directory(canonical, ec)) continue;
    const std::string path = canonical.string();
    if (path == "/" || path_within(path, tree.home)) continue;
    if (std::find(tree.config_dirs.begin(), tree.config_dirs.end(), path) == tree.config_dirs.end())
      tree.config_dirs.push_back(path);
  }
  return tree;
}

std::optional<JobIds> job_ids(const LaunchRequest& request) {
  if (request.uid) return JobIds{*request.uid, request.gid.value_or(*request.uid)};
  if (request.profile.root_user && geteuid() == 0)
    return JobIds{*request.profile.root_user, *request.profile.root_user};
  return std::nullopt;
}

}  // namespace batman::isolation

namespace batman::isolation::ns {

namespace {

namespace fs = std::filesystem;

std::size_t depth(const std::string& path) {
  return static_cast<std::size_t>(std::count(path.begin(), path.end(), '/')) - (path == "/" ? 1 : 0);
}

bool within(const std::string& path, const std::string& base) { return path_within(path, base); }

// Whether `ids` may pass through (search) the directory `st`.
bool searchable(const struct stat& st, const JobIds& ids) {
  if (st.st_uid == ids.uid) return st.st_mode & S_IXUSR;
  if (st.st_gid == ids.gid) return st.st_mode & S_IXGRP;
  return st.st_mode & S_IXOTH;
}

}  // namespace

Result<std::vector<MountOp>> plan_mounts(const LaunchRequest& request,
                                         std::vector<std::string>& unenforced) {
  return plan_mounts(request, batman_tree(request, false), unenforced);
}

Result<std::vector<MountOp>> plan_mounts(const LaunchRequest& request, const BatmanTree& tree,
                                         std::vector<std::string>& unenforced) {
  const auto& filesystem = request.profile.filesystem;
  // Every path is planned in its canonical form: binds name the same host path on both sides,
  // so no symlink is followed inside the half-built new root (an absolute link would resolve
  // against the staging root), and a symlink in $BATMAN_HOME's path is no special case.
  std::vector<MountOp> ops;
  // The run's TMPDIR may not exist yet when the plan is made (a batch task's or a program's
  // is made by its prepare_start, after prepare()): paths in it resolve through its parent.
  const auto in_tmp_dir = [&](const std::string& path) {
    return !request.tmp_dir.empty() &&
           (path == request.tmp_dir || path.starts_with(request.tmp_dir + "/"));
  };
  // Each path resolved once (a resolution is a stat and a readlink per component): the work
  // dir is asked for by its read_write bind and again by keep_visible. The TMPDIR and the
  // profile directories are resolved by batman_tree already (tree.tmp_dir, tree.config_dirs).
  std::map<std::string, std::pair<fs::path, std::error_code>> canonicals;
  const auto canonical_of = [&](const std::string& path, std::error_code& ec) {
    auto [it, fresh] = canonicals.try_emplace(path);
    if (fresh)
      it->second.first = in_tmp_dir(path) ? fs::weakly_canonical(path, it->second.second)
                                          : fs::canonical(path, it->second.second);
    ec = it->second.second;
    return it->second.first;
  };
  // Inside batman's tree and not the job's own: no profile reaches it (SPEC §7). Paths here
  // are canonical already (BatmanTree::holds_records would resolve them again).
  const auto batmans = [&](const std::string& path) { return within(path, tree.home) && !tree.owns(path); };
  auto add_bind = [&](const std::string& raw, bool read_only) {
    const std::string path = expand_profile_path(raw, request);
    std::error_code ec;
    const auto canonical = canonical_of(path, ec);
    if (path.empty() || ec) {
      unenforced.push_back(std::string(read_only ? "read_only " : "read_write ") + raw +
                           (path.empty() || path == raw ? "" : " (" + path + ")") +
                           ": does not exist, not mounted");
      return;
    }
    MountOp op;
    op.kind = MountOp::Kind::Bind;
    op.read_only = read_only;
    op.shown = canonical.string();
    if (batmans(op.shown)) {
      if (!read_only)
        unenforced.push_back("read_write " + raw + ": inside batman's own tree, which a job never "
                             "writes (only its TMPDIR and --worktree)");
      return;
    }
    op.is_dir = op.shown == tree.tmp_dir || fs::is_directory(canonical, ec);
    op.source = "/oldroot" + (op.shown == "/" ? std::string() : op.shown);
    op.target = "/newroot" + (op.shown == "/" ? std::string() : op.shown);
    ops.push_back(std::move(op));
  };
  for (const auto& p : filesystem.read_only) add_bind(p, true);
  for (const auto& p : filesystem.read_write) add_bind(p, false);

  const std::string tmp_backed = "/oldroot" + tree.tmp_dir;
  for (const auto& raw : filesystem.tmpfs) {
    const std::string path = resolved(expand_profile_path(raw, request));
    if (batmans(path)) continue;
    MountOp op;
    op.shown = path;
    op.target = "/newroot" + path;
    if (path == "/tmp") {
      // The private /tmp is the run's own tmp dir, so --keep-tmp can keep what the job left.
      op.kind = MountOp::Kind::Bind;
      op.source = tmp_backed;
    } else {
      op.kind = MountOp::Kind::Tmpfs;
    }
    ops.push_back(std::move(op));
  }
  auto add_hide = [&](const std::string& path) {
    std::error_code ec;
    MountOp op;
    op.kind = MountOp::Kind::Hide;
    op.is_dir = fs::is_directory(path, ec);
    op.shown = path;
    op.source = "/oldroot/dev/null";
    op.target = "/newroot" + op.shown;
    ops.push_back(std::move(op));
  };
  for (const auto& raw : filesystem.hide) {
    const std::string path = expand_profile_path(raw, request);
    std::error_code ec;
    const auto canonical = fs::canonical(path, ec);
    if (ec) continue;  // nothing there to hide
    if (batmans(canonical.string())) continue;  // hidden below anyway
    add_hide(canonical.string());
  }
  // batman's tree: an empty tmpfs over all of it, read-only once the job's own TMPDIR and
  // worktree are bound back below it. The job sees no project's records, its own included.
  if (!tree.home.empty()) add_hide(tree.home);

  // As another user (root_user, taskmaster's user:), the job must reach its TMPDIR and work
  // dir: the first directory on the way that it could not pass (/root, a 0700 mkdtemp) is
  // replaced by an empty one, and what the job needs below it is bound back (it could not
  // have seen the rest anyway).
  if (const auto ids = job_ids(request)) {
    for (const std::string& target : {tree.tmp_dir, tree.worktree, tree.cwd}) {
      if (target.empty()) continue;
      std::string way;
      for (const auto& part : fs::path(target).parent_path()) {
        way = part == "/" ? "/" : (way == "/" ? "" : way) + "/" + part.string();
        if (way == "/" || within(way, tree.home)) continue;
        struct stat st{};
        if (::stat(way.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) break;
        if (!searchable(st, *ids)) {
          const bool have = std::any_of(ops.begin(), ops.end(), [&](const MountOp& op) {
            return op.kind == MountOp::Kind::Hide && within(way, op.shown);
          });
          if (!have) add_hide(way);
          break;
        }
      }
    }
  }

  // What the job needs at its own path when a cover (a private /tmp, a hidden path, batman's
  // tree) hides it: bound again over the cover, with the access it had (`writable`: always
  // writable; `read_only`: never). `path` is canonical.
  auto keep_visible = [&](const std::string& path, bool writable, bool read_only) {
    if (path.empty()) return;
    std::size_t cover_depth = 0;
    bool covered = false;
    const MountOp* holder = nullptr;  // the deepest bind that shows `path`
    for (const auto& op : ops) {
      const bool cover = op.kind != MountOp::Kind::Bind || op.source == tmp_backed;
      if (cover && within(path, op.shown) && (path != op.shown || op.kind == MountOp::Kind::Hide)) {
        covered = true;
        cover_depth = std::max(cover_depth, depth(op.shown));
      }
      if (!cover && within(path, op.shown) && (!holder || depth(op.shown) >= depth(holder->shown)))
        holder = &op;
    }
    const bool shown = holder && (!covered || depth(holder->shown) > cover_depth);
    bool need = writable ? !(shown && !holder->read_only) : (covered && holder && !shown);
    if (read_only && shown && !holder->read_only) need = true;
    if (!need) return;
    MountOp op;
    op.kind = MountOp::Kind::Bind;
    op.read_only = read_only || (!writable && holder->read_only);
    op.is_dir = true;
    op.shown = path;
    op.source = "/oldroot" + path;
    op.target = "/newroot" + path;
    ops.push_back(std::move(op));
  };
  // The TMPDIR and the profile directories as the tree resolved them; the worktree and the
  // work dir only if they exist (the work dir's resolution is its bind's, memoised).
  const auto existing = [&](const std::string& raw) {
    std::error_code ec;
    std::string path = raw.empty() ? std::string() : canonical_of(raw, ec).string();
    return ec ? std::string() : path;
  };
  keep_visible(tree.tmp_dir, true, false);
  keep_visible(existing(request.worktree), true, false);
  // A work dir inside batman's tree (not its own TMPDIR or worktree) is shown read-only.
  keep_visible(existing(request.cwd), false, batmans(tree.cwd));
  // batman's profile directories, where the job could write them and cannot unmount what
  // covers them (it keeps no capabilities): read-only, so that no job plants a profile.
  for (const auto& dir : tree.config_dirs) keep_visible(dir, false, true);
  // Mount points for paths kept visible under the private /tmp would be directories made
  // inside the run's tmp dir, and the job would find them in its TMPDIR. Then /tmp is a
  // tmpfs of its own instead (TMPDIR, at its own path, still holds what --keep-tmp keeps).
  for (auto& tmp : ops) {
    if (tmp.kind != MountOp::Kind::Bind || tmp.source != tmp_backed) continue;
    const bool nested = std::any_of(ops.begin(), ops.end(), [&](const MountOp& op) {
      return &op != &tmp && within(op.shown, tmp.shown) && op.shown != tmp.shown;
    });
    if (nested) {
      tmp.kind = MountOp::Kind::Tmpfs;
      tmp.source.clear();
    }
  }
  // A hidden directory with mounts below it is made read-only only after them.
  for (auto& hide : ops) {
    if (hide.kind != MountOp::Kind::Hide || !hide.is_dir) continue;
    hide.seal_later = std::any_of(ops.begin(), ops.end(), [&](const MountOp& op) {
      return within(op.shown, hide.shown) && op.shown != hide.shown;
    });
  }

  if (request.profile.has_namespace("pid")) {
    MountOp proc;
    proc.kind = MountOp::Kind::Proc;
    proc.shown = "/proc";
    proc.target = "/newroot/proc";
    ops.push_back(std::move(proc));
  }
  if (request.profile.has_namespace("ipc") && access("/dev/shm", X_OK) == 0) {
    MountOp shm;
    shm.kind = MountOp::Kind::DevShm;
    shm.shown = "/dev/shm";
    shm.target = "/newroot/dev/shm";
    shm.optional = true;  // a root without /dev is fine
    ops.push_back(std::move(shm));
  }
  // Parents before children; among equals, the profile's order (read_write after read_only).
  std::stable_sort(ops.begin(), ops.end(),
                   [](const MountOp& a, const MountOp& b) { return depth(a.shown) < depth(b.shown); });
  return ops;
}

// From here on, the child's side: raw system calls only (isolation/raw_syscall.hpp), as the
// early child may mount before batman hands it the rest of the plan, while batman's own
// thread runs beside it on the same errno (prestart_mounts in namespaces.cpp). Each returns 0
// or an errno value.
namespace {

int err_of(long rc) { return rc < 0 ? static_cast<int>(-rc) : 0; }
int sys_mount(const char* source, const char* target, const char* type, unsigned long flags, const char* data) {
  return err_of(raw::call(SYS_mount, raw::arg(source), raw::arg(target), raw::arg(type), static_cast<long>(flags), raw::arg(data)));
}
int sys_mkdir(const char* path) { return err_of(raw::call(SYS_mkdirat, AT_FDCWD, raw::arg(path), 0755)); }
int sys_chdir(const char* path) { return err_of(raw::call(SYS_chdir, raw::arg(path))); }
bool sys_exists(const char* path) {
  struct stat st;
  return raw::call(SYS_newfstatat, AT_FDCWD, raw::arg(path), raw::arg(&st), 0) == 0;
}
// mkdir of a path that may be there: 0 when it is, whatever mkdir said (EEXIST, or on NFS
// without the entry cached EROFS or EACCES, the kernel skipping the lookup).
int sys_mkdir_p1(const char* path) {
  const int rc = sys_mkdir(path);
  return rc == 0 || rc == ENOENT || !sys_exists(path) ? rc : 0;
}
int sys_pivot_root(const char* new_root, const char* put_old) {
  return err_of(raw::call(SYS_pivot_root, raw::arg(new_root), raw::arg(put_old)));
}

// mkdir -p in the child: `path` is edited in place (no allocation) and restored. One call
// when the directory is there (most mount points are, in the host's tree); the components one
// by one only when one is missing.
int make_directories(std::string& path, bool last_too) {
  char* p = path.data();
  std::size_t n = path.size();
  if (!last_too) {
    while (n > 0 && p[n] != '/') --n;
    if (n == 0) return 0;
  }
  const char end = p[n];
  p[n] = '\0';
  int rc = sys_mkdir_p1(p);
  if (rc == ENOENT) {
    rc = 0;
    for (std::size_t i = 1; i <= n && rc == 0; ++i) {
      if (i < n && p[i] != '/') continue;
      const char saved = p[i];
      p[i] = '\0';
      rc = sys_mkdir_p1(p);
      p[i] = saved;
    }
  }
  p[n] = end;
  return rc;
}

int make_mount_point(MountOp& op) {
  if (op.is_dir) return make_directories(op.target, true);
  if (int rc = make_directories(op.target, false)) return rc;
  const long fd = raw::call(SYS_openat, AT_FDCWD, raw::arg(op.target.c_str()), O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0644);
  if (fd < 0) return sys_exists(op.target.c_str()) ? 0 : err_of(fd);
  raw::call(SYS_close, fd);
  return 0;
}

int set_read_only(const char* target, unsigned int at_flags, unsigned long remount_flags) {
  mount_attr attr{};
  attr.attr_set = MOUNT_ATTR_RDONLY;
  const long rc = raw::call(SYS_mount_setattr, AT_FDCWD, raw::arg(target), at_flags, raw::arg(&attr), sizeof attr);
  if (rc != -ENOSYS) return err_of(rc);
  // Before Linux 5.12: only the top mount can be made read-only.
  return sys_mount(nullptr, target, nullptr, MS_REMOUNT | MS_BIND | MS_RDONLY | remount_flags, nullptr);
}
int make_read_only(const char* target) { return set_read_only(target, AT_RECURSIVE, 0); }
// Read-only, this mount only: the binds below it keep their own access.
int seal(const char* target) { return set_read_only(target, 0, MS_NOSUID | MS_NODEV); }

int fail_at(Failure& failure, Step step, int index, int err) {
  failure = Failure{static_cast<int>(step), index, err};
  return err;
}

int apply_mounts_masked(ChildPlan& plan, Failure& failure) {
  if (int rc = sys_mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr))
    return fail_at(failure, Step::MountPrivate, -1, rc);
  const char* base = plan.base.c_str();
  if (int rc = sys_mount("tmpfs", base, "tmpfs", MS_NODEV | MS_NOSUID, "mode=0755"))
    return fail_at(failure, Step::MountBase, -1, rc);
  int rc = sys_chdir(base);
  if (!rc) rc = sys_mkdir("newroot");
  if (!rc) rc = sys_mkdir("oldroot");
  if (!rc) rc = sys_pivot_root(base, "oldroot");
  if (!rc) rc = sys_chdir("/");
  // The staging tmpfs is not a mount point of its own for pivot_root's purposes until bound.
  if (!rc) rc = sys_mount("newroot", "newroot", nullptr, MS_BIND | MS_REC, nullptr);
  if (rc) return fail_at(failure, Step::PivotBase, -1, rc);

  for (std::size_t i = 0; i < plan.mounts.size(); ++i) {
    MountOp& op = plan.mounts[i];
    const int index = static_cast<int>(i);
    if (int made = make_mount_point(op)) {
      if (op.optional) continue;
      return fail_at(failure, Step::MakeMountPoint, index, made);
    }
    const char* target = op.target.c_str();
    switch (op.kind) {
      case MountOp::Kind::Bind:
        if (int err = sys_mount(op.source.c_str(), target, nullptr, MS_BIND | MS_REC, nullptr))
          return fail_at(failure, Step::Bind, index, err);
        if (op.read_only) {
          if (int err = make_read_only(target)) return fail_at(failure, Step::ReadOnly, index, err);
        }
        break;
      case MountOp::Kind::Tmpfs:
      case MountOp::Kind::DevShm:
        if (int err = sys_mount("tmpfs", target, "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777")) {
          if (op.optional) break;
          return fail_at(failure, op.kind == MountOp::Kind::Tmpfs ? Step::Tmpfs : Step::DevShm, index, err);
        }
        break;
      case MountOp::Kind::Hide:
        // With mounts to come below it, the empty directory is made read-only after them.
        if (int err = op.is_dir ? sys_mount("tmpfs", target, "tmpfs",
                                            MS_NOSUID | MS_NODEV | (op.seal_later ? 0 : MS_RDONLY), "mode=0755")
                                : sys_mount(op.source.c_str(), target, nullptr, MS_BIND, nullptr))
          return fail_at(failure, Step::Hide, index, err);
        break;
      case MountOp::Kind::Proc:
        if (int err = sys_mount("proc", target, "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, nullptr))
          return fail_at(failure, Step::Proc, index, err);
        break;
    }
  }

  for (std::size_t i = 0; i < plan.mounts.size(); ++i) {
    const MountOp& op = plan.mounts[i];
    if (op.kind != MountOp::Kind::Hide || !op.seal_later) continue;
    if (int err = seal(op.target.c_str())) return fail_at(failure, Step::Hide, static_cast<int>(i), err);
  }

  // pivot_root(".", ".") stacks the staging tmpfs (with /oldroot, the host's tree, below it)
  // over the new root; one lazy detach of "." drops both. bubblewrap detaches /oldroot first,
  // a second umount: each one waits for an RCU grace period, the dearest step of the setup.
  rc = sys_chdir("/newroot");
  if (!rc) rc = sys_pivot_root(".", ".");
  if (rc) return fail_at(failure, Step::PivotRoot, -1, rc);
  if (int err = err_of(raw::call(SYS_umount2, raw::arg("."), MNT_DETACH)))
    return fail_at(failure, Step::DetachOldRoot, -1, err);
  if (int err = sys_chdir("/")) return fail_at(failure, Step::PivotRoot, -1, err);
  return 0;
}

}  // namespace

int apply_mounts(ChildPlan& plan, Failure& failure) {
  // Mount points are made 0755 whatever batman's umask: a job run as another user passes them.
  const long saved_umask = raw::call(SYS_umask, 022);
  const int rc = apply_mounts_masked(plan, failure);
  raw::call(SYS_umask, saved_umask);
  return rc;
}

}  // namespace batman::isolation::ns
