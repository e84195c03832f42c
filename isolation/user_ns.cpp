// The user namespace, parent side: map this process's uid and gid to themselves inside the
// child's new user namespace, so a rootless job keeps its own identity. setgroups must be
// denied before an unprivileged process may write gid_map.
#include <fcntl.h>
#include <unistd.h>

#include <string>

#include "common/fs.hpp"
#include "common/unique_fd.hpp"
#include "isolation/ns_plan.hpp"

namespace batman::isolation::ns {

namespace {

Result<void> write_proc(pid_t pid, const char* name, const std::string& content) {
  const std::string path = "/proc/" + std::to_string(pid) + "/" + name;
  UniqueFd fd(open(path.c_str(), O_WRONLY | O_CLOEXEC));
  if (!fd) return sys_error("user namespace: open " + path);
  if (write(fd.get(), content.data(), content.size()) != static_cast<ssize_t>(content.size()))
    return sys_error("user namespace: write " + path + " '" + content.substr(0, content.size() - 1) + "'");
  return {};
}

}  // namespace

Result<void> write_id_maps(pid_t pid, uid_t uid, gid_t gid) {
  if (auto ok = write_proc(pid, "setgroups", "deny\n"); !ok) {
    // Kernels before 3.19 have no setgroups file; anything else is a real error.
    if (ok.error().code != ENOENT) return ok;
  }
  if (auto ok = write_proc(pid, "gid_map", std::to_string(gid) + " " + std::to_string(gid) + " 1\n");
      !ok)
    return ok;
  return write_proc(pid, "uid_map", std::to_string(uid) + " " + std::to_string(uid) + " 1\n");
}

}  // namespace batman::isolation::ns
