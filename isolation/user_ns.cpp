// The user namespace, child side: the child maps batman's uid and gid to themselves inside
// its new user namespace, so a rootless job keeps its own identity. As `unshare -r` does,
// the process writes its own maps: an unprivileged process may map its own ids (one line
// each) once setgroups is denied. System calls only: the child shares batman's memory.
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "isolation/ns_plan.hpp"

namespace batman::isolation::ns {

namespace {

int write_proc_self(const char* path, const char* content, bool missing_ok) {
  const int fd = open(path, O_WRONLY | O_CLOEXEC);
  if (fd < 0) return missing_ok && errno == ENOENT ? 0 : errno;
  const std::size_t size = std::strlen(content);
  const int rc = write(fd, content, size) == static_cast<ssize_t>(size) ? 0 : errno;
  close(fd);
  return rc;
}

}  // namespace

int write_own_id_maps(const ChildPlan& plan) {
  // Kernels before 3.19 have no setgroups file; anything else is a real error.
  if (int rc = write_proc_self("/proc/self/setgroups", "deny\n", true)) return rc;
  if (int rc = write_proc_self("/proc/self/gid_map", plan.gid_map.c_str(), false)) return rc;
  return write_proc_self("/proc/self/uid_map", plan.uid_map.c_str(), false);
}

}  // namespace batman::isolation::ns
