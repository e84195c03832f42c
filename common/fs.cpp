// Symlink-proof file system helpers built on openat/mkdirat/unlinkat.
#include "common/fs.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>

namespace batman {

Result<UniqueFd> open_dir_at(int dirfd, std::string_view name, bool create, mode_t mode) {
  std::string n(name);
  if (create && ::mkdirat(dirfd, n.c_str(), mode) != 0 && errno != EEXIST)
    return sys_error("create directory " + n);
  int fd = ::openat(dirfd, n.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ELOOP || errno == ENOTDIR)
      return fail(n + " is a symlink or not a directory; batman never follows links here: remove it");
    return sys_error("open directory " + n);
  }
  return UniqueFd(fd);
}

Result<UniqueFd> open_dir_path(const std::string& path, bool create, mode_t mode) {
  if (path.empty()) return fail("empty directory path");
  if (create) {
    // Create each missing component in turn (like mkdir -p), then open the whole path.
    for (std::size_t pos = 1; pos <= path.size(); ++pos) {
      if (pos == path.size() || path[pos] == '/') {
        std::string prefix = path.substr(0, pos);
        if (::mkdir(prefix.c_str(), mode) != 0 && errno != EEXIST)
          return sys_error("create directory " + prefix);
      }
    }
  }
  int fd = ::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return sys_error("open directory " + path);
  return UniqueFd(fd);
}

bool private_dir(int fd) {
  struct stat st{};
  return ::fstat(fd, &st) == 0 && S_ISDIR(st.st_mode) && st.st_uid == ::geteuid() &&
         (st.st_mode & (S_IWGRP | S_IWOTH)) == 0;
}

bool private_file(const struct stat& st) {
  return S_ISREG(st.st_mode) && st.st_uid == ::geteuid() && (st.st_mode & 077) == 0 && st.st_nlink == 1;
}

Result<void> write_all(int fd, std::string_view data) {
  while (!data.empty()) {
    ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return sys_error("write");
    }
    data.remove_prefix(static_cast<std::size_t>(n));
  }
  return {};
}

std::string temp_name(std::string_view target) {
  unsigned int rnd = 0;
  // Without entropy yet (early boot), the thread id: it differs between racing writers.
  if (getrandom(&rnd, sizeof rnd, GRND_NONBLOCK) < 0) rnd = static_cast<unsigned int>(::gettid());
  char suffix[40];
  std::snprintf(suffix, sizeof suffix, ".tmp.%d.%08x", ::getpid(), rnd);
  // Appended, not "." + std::string(...): GCC 12 at -O3 warns (-Wrestrict) on the latter.
  std::string name(".");
  name += target;
  name += suffix;
  return name;
}

Result<void> write_file_atomic(int dirfd, std::string_view name, std::string_view content,
                               mode_t mode) {
  auto file = PendingFile::create(dirfd, name, mode);
  if (!file) return std::unexpected(file.error());
  return file->commit(content);
}

Result<PendingFile> PendingFile::create(int dirfd, std::string_view name, mode_t mode) {
  PendingFile f;
  f.dirfd_ = dirfd;
  f.target_ = std::string(name);
  // Linked in through /proc/self/fd later: without /proc (a chroot), a named file from the
  // start. O_RDWR: read back if it cannot be linked in after all (link_unnamed).
  static const bool proc_fd = ::access("/proc/self/fd", X_OK) == 0;
  if (proc_fd) f.fd_.reset(::openat(dirfd, ".", O_TMPFILE | O_RDWR | O_CLOEXEC, mode));
  if (f.fd_) {
    f.unnamed_ = true;
    return f;
  }
  f.temp_ = temp_name(f.target_);
  f.fd_.reset(::openat(dirfd, f.temp_.c_str(), O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode));
  if (!f.fd_) return sys_error("create " + f.temp_);
  return f;
}

PendingFile::PendingFile(PendingFile&& other) noexcept
    : dirfd_(other.dirfd_), target_(std::move(other.target_)), temp_(std::move(other.temp_)),
      fd_(std::move(other.fd_)), reserved_(other.reserved_), written_(other.written_),
      unnamed_(other.unnamed_), synced_(other.synced_) {
  other.temp_.clear();
  other.written_ = other.unnamed_ = other.synced_ = false;
}

PendingFile& PendingFile::operator=(PendingFile&& other) noexcept {
  if (this != &other) {
    discard();
    dirfd_ = other.dirfd_;
    target_ = std::move(other.target_);
    temp_ = std::move(other.temp_);
    fd_ = std::move(other.fd_);
    reserved_ = other.reserved_;
    written_ = other.written_;
    unnamed_ = other.unnamed_;
    synced_ = other.synced_;
    other.temp_.clear();
    other.written_ = other.unnamed_ = other.synced_ = false;
  }
  return *this;
}

PendingFile::~PendingFile() { discard(); }

void PendingFile::discard() {
  fd_.reset();  // an unnamed file is gone with its last descriptor
  if (!temp_.empty()) ::unlinkat(dirfd_, temp_.c_str(), 0);
  temp_.clear();
  synced_ = false;
}

Result<void> PendingFile::commit(std::string_view content) {
  if (auto s = sync(content); !s) return s;
  return publish();
}

Result<void> PendingFile::sync(std::string_view content) {
  if (auto w = write(content, false); !w) return w;
  return sync();
}

Result<void> PendingFile::write(std::string_view content, bool start_disk) {
  if (!fd_ || written_) return fail("write " + target_ + ": nothing pending");
  const int fd = fd_.get();
  if (auto w = write_all(fd, content); !w) {
    auto e = w.error().wrap("write " + shown_temp());
    discard();
    return std::unexpected(e);
  }
  // The reservation's rest goes (a shrink needs no new block), and whatever was written past
  // the content meanwhile through the file's name (publish()).
  if (reserved_ > 0 && ::ftruncate(fd, static_cast<off_t>(content.size())) != 0) {
    auto e = sys_error("truncate " + shown_temp());
    discard();
    return e;
  }
  // Only a start (sync() is what makes it durable): the data goes to the disk while the
  // caller goes on. A file system that cannot (EINVAL, ESPIPE) is left to fsync alone. Not
  // for a sync that follows at once (sync(content), the state writer's): a system call and
  // an I/O of its own more, with nothing to overlap.
  if (start_disk) (void)::sync_file_range(fd, 0, 0, SYNC_FILE_RANGE_WRITE);
  written_ = true;
  return {};
}

Result<void> PendingFile::sync() {
  if (!fd_ || !written_ || synced_) return fail("sync " + target_ + ": nothing written");
  if (::fsync(fd_.get()) != 0) {
    auto e = sys_error("fsync " + shown_temp());
    discard();
    return e;
  }
  synced_ = true;  // open until published: an unnamed file to be linked in, a named one checked
  return {};
}

Result<void> PendingFile::reserve(std::size_t bytes) {
  if (!fd_ || written_) return fail("reserve " + target_ + ": nothing pending");
  if (bytes <= reserved_) return {};
  // Mode 0 (the size grows too): a block reserved past the end of a file (KEEP_SIZE) would
  // stay allocated after the content is written on some file systems.
  if (::fallocate(fd_.get(), 0, 0, static_cast<off_t>(bytes)) != 0) {
    if (errno != EOPNOTSUPP && errno != ENOSYS) return sys_error("reserve " + shown_temp());
    const std::string zeros(bytes, '\0');
    const ssize_t n = ::pwrite(fd_.get(), zeros.data(), zeros.size(), 0);
    if (n != static_cast<ssize_t>(zeros.size())) return sys_error("reserve " + shown_temp(), n < 0 ? errno : ENOSPC);
  }
  reserved_ = bytes;
  return {};
}

Result<void> overwrite_in_place(int dirfd, std::string_view name, std::string_view content) {
  auto fd = open_regular_at(dirfd, name, O_WRONLY);
  if (!fd) return std::unexpected(fd.error());
  struct stat st{};
  if (::fstat(fd->get(), &st) != 0) return sys_error("stat " + std::string(name));
  if (st.st_nlink != 1) return fail(std::string(name) + ": has other hard links: not rewritten in place");
  // Only into space the file already holds, so the write needs no new block and cannot stop
  // half way (a half-written record would read as garbage, worse than the old one). A shorter
  // record is padded with spaces, which JSON readers skip: no truncate, and a crash between
  // two steps cannot leave the old record's tail behind the new one.
  const auto size = static_cast<std::size_t>(st.st_size);
  const auto allocated = static_cast<std::size_t>(st.st_blocks) * 512;
  if (content.size() > std::max(size, allocated))
    return sys_error("rewrite " + std::string(name) + " in place: it holds " + std::to_string(std::max(size, allocated)) +
                     " bytes, the record needs " + std::to_string(content.size()), ENOSPC);
  std::string padded(content);
  if (padded.size() < size) padded.append(size - padded.size(), ' ');
  const ssize_t n = ::pwrite(fd->get(), padded.data(), padded.size(), 0);
  if (n < 0) return sys_error("rewrite " + std::string(name));
  if (static_cast<std::size_t>(n) != padded.size()) return sys_error("rewrite " + std::string(name), ENOSPC);
  if (::fsync(fd->get()) != 0) return sys_error("rewrite " + std::string(name));
  return {};
}

Result<void> PendingFile::publish() {
  if (!synced_) return fail("rename to " + target_ + ": nothing written");
  synced_ = false;
  if (unnamed_) return link_unnamed();
  // The temporary name in a directory a job of the env tier may write (its project's state/):
  // only the very file written and synced here is renamed into place. Anything else found at
  // that name (the job is gone by the end, so this is no race) is left there, and the file
  // is published from its descriptor as an unnamed one would be (copied if it has no link).
  struct stat ours{}, there{};
  if (::fstat(fd_.get(), &ours) != 0 || ::fstatat(dirfd_, temp_.c_str(), &there, AT_SYMLINK_NOFOLLOW) != 0 ||
      ours.st_dev != there.st_dev || ours.st_ino != there.st_ino) {
    temp_.clear();
    unnamed_ = true;
    return link_unnamed();
  }
  fd_.reset();
  if (::renameat(dirfd_, temp_.c_str(), dirfd_, target_.c_str()) != 0) {
    int err = errno;
    ::unlinkat(dirfd_, temp_.c_str(), 0);
    auto e = sys_error("rename " + temp_ + " to " + target_, err);
    temp_.clear();
    return e;
  }
  temp_.clear();
  return {};
}

namespace {

// Errors of a link that say nothing about the file system: the descriptor just cannot be
// linked this way (no /proc, a nosymfollow one, no CAP_DAC_READ_SEARCH for AT_EMPTY_PATH).
bool cannot_link(int err) { return err != EEXIST && err != ENOSPC && err != EDQUOT && err != EIO && err != EROFS; }

// The open unnamed file `fd` linked as dirfd/name: through /proc/self/fd (no capability
// needed), else with AT_EMPTY_PATH. 0 or the more telling errno of the two.
int link_descriptor(int fd, int dirfd, const std::string& name) {
  char proc[48];
  std::snprintf(proc, sizeof proc, "/proc/self/fd/%d", fd);
  if (::linkat(AT_FDCWD, proc, dirfd, name.c_str(), AT_SYMLINK_FOLLOW) == 0) return 0;
  const int err = errno;
  if (!cannot_link(err)) return err;
  if (::linkat(fd, "", dirfd, name.c_str(), AT_EMPTY_PATH) == 0) return 0;
  return errno == ENOENT ? err : errno;
}

}  // namespace

Result<void> PendingFile::name() {
  if (!unnamed_ || !fd_) return {};
  const std::string temp = temp_name(target_);
  if (const int err = link_descriptor(fd_.get(), dirfd_, temp); err != 0) return sys_error("link " + temp, err);
  unnamed_ = false;
  temp_ = temp;
  return {};
}

// The unnamed file, synced, linked in as target_: at once where there is none yet, else under
// a temporary name renamed over it. Where it cannot be linked at all, its bytes are copied
// into a named temporary file, synced and renamed as SPEC §5 says.
Result<void> PendingFile::link_unnamed() {
  UniqueFd fd = std::move(fd_);
  int err = link_descriptor(fd.get(), dirfd_, target_);
  if (err == 0) return {};
  const std::string temp = temp_name(target_);
  if (err == EEXIST) {
    err = link_descriptor(fd.get(), dirfd_, temp);
    if (err == 0) {
      if (::renameat(dirfd_, temp.c_str(), dirfd_, target_.c_str()) == 0) return {};
      err = errno;
      ::unlinkat(dirfd_, temp.c_str(), 0);
      return sys_error("rename " + temp + " to " + target_, err);
    }
    if (!cannot_link(err)) return sys_error("link " + temp + " (to rename over " + target_ + ")", err);
  } else if (!cannot_link(err)) {
    return sys_error("link " + target_, err);
  }
  // No way to link it: copy it.
  UniqueFd copy(::openat(dirfd_, temp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600));
  if (!copy) return sys_error("create " + temp);
  struct stat st{};
  if (::fstat(fd.get(), &st) == 0) (void)::fchmod(copy.get(), st.st_mode & 07777);
  char buf[16384];
  for (off_t at = 0;;) {
    const ssize_t n = ::pread(fd.get(), buf, sizeof buf, at);
    if (n < 0 && errno == EINTR) continue;
    Result<void> w = n < 0 ? sys_error("read back " + target_)
                           : write_all(copy.get(), std::string_view(buf, static_cast<std::size_t>(n)));
    if (!w) w = std::unexpected(w.error().wrap("copy to " + temp));
    if (w && n > 0) {
      at += n;
      continue;
    }
    if (w && ::fsync(copy.get()) != 0) w = sys_error("fsync " + temp);
    if (w && ::renameat(dirfd_, temp.c_str(), dirfd_, target_.c_str()) != 0) w = sys_error("rename " + temp + " to " + target_);
    if (!w) ::unlinkat(dirfd_, temp.c_str(), 0);
    return w;
  }
}

std::string PendingFile::shown_temp() const { return unnamed_ ? "a temporary file for " + target_ : temp_; }

std::string file_type_name(mode_t mode) {
  switch (mode & S_IFMT) {
    case S_IFREG: return "a regular file";
    case S_IFDIR: return "a directory";
    case S_IFIFO: return "a FIFO";
    case S_IFSOCK: return "a socket";
    case S_IFCHR: return "a character device";
    case S_IFBLK: return "a block device";
    case S_IFLNK: return "a symlink";
    default: return "not a file";
  }
}

namespace {

constexpr int kRegularFlags = O_NONBLOCK | O_NOCTTY | O_CLOEXEC;

Result<UniqueFd> check_regular(UniqueFd fd, std::string_view shown, bool allow_char_device) {
  struct stat st{};
  if (::fstat(fd.get(), &st) != 0) return sys_error("stat " + std::string(shown));
  if (S_ISREG(st.st_mode)) return fd;
  if (allow_char_device && S_ISCHR(st.st_mode)) {
    // O_NONBLOCK was only for the open (a FIFO must not block it); a terminal or console
    // written without it would answer EAGAIN and lose bytes.
    const int fl = ::fcntl(fd.get(), F_GETFL);
    if (fl < 0 || ::fcntl(fd.get(), F_SETFL, fl & ~O_NONBLOCK) != 0) return sys_error("fcntl " + std::string(shown));
    return fd;
  }
  return fail(std::string(shown) + ": not a regular file (" + file_type_name(st.st_mode) +
              ")");
}

Result<std::string> read_fd(int fd, const std::string& shown, std::size_t max_bytes) {
  auto too_big = [&] {
    const std::size_t mib = max_bytes >> 20;
    return fail(shown + ": larger than " +
                (mib > 0 ? std::to_string(mib) + " MiB" : std::to_string(max_bytes) + " bytes") +
                ", the most batman reads of such a file");
  };
  struct stat st{};
  if (::fstat(fd, &st) == 0 && st.st_size > 0 && static_cast<std::uint64_t>(st.st_size) > max_bytes)
    return too_big();
  std::string out;
  char buf[65536];
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) continue;
      return sys_error("read " + shown);
    }
    if (n == 0) break;
    // Checked as it grows too: /proc files say size 0, and a file may grow while it is read.
    if (static_cast<std::size_t>(n) > max_bytes - out.size()) return too_big();
    out.append(buf, static_cast<std::size_t>(n));
  }
  return out;
}

}  // namespace

Result<UniqueFd> open_regular_at(int dirfd, std::string_view name, int flags, mode_t mode,
                                 std::string_view shown) {
  const std::string n(name);
  if (shown.empty()) shown = name;
  UniqueFd fd(::openat(dirfd, n.c_str(), flags | kRegularFlags | O_NOFOLLOW, mode));
  if (!fd) {
    if (errno == ELOOP) return fail(std::string(shown) + ": a symlink; batman never follows links here: remove it");
    // O_WRONLY on a FIFO nobody reads: ENXIO; on a directory: EISDIR.
    if (errno == ENXIO || errno == EISDIR) {
      struct stat st{};
      if (::fstatat(dirfd, n.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0 && !S_ISREG(st.st_mode))
        return fail(std::string(shown) + ": not a regular file (" + file_type_name(st.st_mode) +
                    ")");
    }
    return sys_error("open " + std::string(shown));
  }
  return check_regular(std::move(fd), shown, false);
}

Result<UniqueFd> open_regular(const std::string& path, int flags, mode_t mode, bool allow_char_device) {
  UniqueFd fd(::open(path.c_str(), flags | kRegularFlags, mode));
  if (!fd) {
    if (errno == ENXIO || errno == EISDIR) {
      struct stat st{};
      if (::stat(path.c_str(), &st) == 0 && !S_ISREG(st.st_mode))
        return fail(path + ": not a regular file (" + file_type_name(st.st_mode) +
                    ")");
    }
    return sys_error("open " + path);
  }
  return check_regular(std::move(fd), path, allow_char_device);
}

Result<std::string> read_file_at(int dirfd, std::string_view name, std::size_t max_bytes) {
  auto fd = open_regular_at(dirfd, name, O_RDONLY);
  if (!fd) return std::unexpected(fd.error());
  return read_fd(fd->get(), std::string(name), max_bytes);
}

Result<std::string> read_file(const std::string& path, std::size_t max_bytes) {
  auto fd = open_regular(path, O_RDONLY);
  if (!fd) return std::unexpected(fd.error());
  return read_fd(fd->get(), path, max_bytes);
}

Result<std::vector<std::string>> list_dir(int dirfd) {
  int copy = ::openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (copy < 0) return sys_error("open directory");
  DIR* dir = ::fdopendir(copy);
  if (!dir) {
    int err = errno;
    ::close(copy);
    return sys_error("read directory", err);
  }
  std::vector<std::string> names;
  while (dirent* entry = ::readdir(dir)) {
    std::string_view n(entry->d_name);
    if (n == "." || n == "..") continue;
    names.emplace_back(n);
  }
  ::closedir(dir);
  return names;
}

static Result<void> remove_walk(int dirfd, const std::string& n);

// Everything inside the open directory `fd` (shown as `name` in errors), not the directory.
static Result<void> remove_children(int fd, const std::string& name) {
  auto names = list_dir(fd);
  if (!names) return std::unexpected(names.error().wrap(name));
  for (const auto& child : *names) {
    // Directories we may not write into (a job's chmod 0500) are opened up first.
    ::fchmodat(fd, ".", 0700, 0);
    if (auto r = remove_walk(fd, child); !r) return std::unexpected(r.error().wrap(name));
  }
  return {};
}

Result<void> remove_tree_at(int dirfd, std::string_view name) {
  std::string n(name);
  // Most trees removed are a finished run's empty TMPDIR: one rmdir, where the walk takes
  // ten calls (stat, two opens, getdents, closes, rmdir). A file or a symlink answers
  // ENOTDIR, a tree with entries ENOTEMPTY: both go the long way (whose entries are not
  // tried this way: most of them are files).
  if (::unlinkat(dirfd, n.c_str(), AT_REMOVEDIR) == 0 || errno == ENOENT) return {};
  return remove_walk(dirfd, n);
}

static Result<void> remove_walk(int dirfd, const std::string& n) {
  struct stat st{};
  if (::fstatat(dirfd, n.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
    if (errno == ENOENT) return {};
    return sys_error("stat " + n);
  }
  if (S_ISDIR(st.st_mode)) {
    auto sub = open_dir_at(dirfd, n, false);
    if (!sub) return std::unexpected(sub.error());
    if (auto r = remove_children(sub->get(), n); !r) return r;
    if (::unlinkat(dirfd, n.c_str(), AT_REMOVEDIR) != 0 && errno != ENOENT)
      return sys_error("remove directory " + n);
  } else if (::unlinkat(dirfd, n.c_str(), 0) != 0 && errno != ENOENT) {
    return sys_error("remove " + n);
  }
  return {};
}

Result<void> make_dir_at(int dirfd, std::string_view name, mode_t mode) {
  const std::string n(name);
  if (::mkdirat(dirfd, n.c_str(), mode) != 0) return sys_error("create directory " + n);
  return {};
}

Result<void> remove_legacy_parked_dirs(int dirfd) {
  for (int slot = 0; slot < 8; ++slot)
    if (auto r = remove_tree_at(dirfd, ".spare." + std::to_string(slot)); !r) return r;
  return {};
}

}  // namespace batman
