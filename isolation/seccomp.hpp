// Seccomp: a profile's deny list compiled to a BPF program in the parent (libseccomp), and
// loaded in the child with one system call just before execve.
#pragma once
#include <linux/filter.h>

#include <vector>

#include "common/error.hpp"
#include "isolation/profile.hpp"

namespace batman::isolation {

struct SeccompProgram {
  std::vector<sock_filter> instructions;  // empty: no filter
  bool empty() const { return instructions.empty(); }
};

// Compile the profile's seccomp section for the native architecture only. Every denied call
// gets the profile's action (errno EPERM, kill the process, or log); clone3 always answers
// ENOSYS, so that libc falls back to clone, whose flags the filter can see; when `unshare` is
// denied, clone with any CLONE_NEW* flag is denied as well.
// A program kept in `seccomp.compiled` is taken as it is.
Result<SeccompProgram> compile_seccomp(const Profile::Seccomp& seccomp);
// The program as Profile::Seccomp::compiled keeps it, and back.
std::vector<std::uint64_t> pack_seccomp(const SeccompProgram& program);
SeccompProgram unpack_seccomp(const std::vector<std::uint64_t>& words);

// Child side (system calls only): install the program. Needs no_new_privs or CAP_SYS_ADMIN.
// Returns 0 or an errno.
int load_seccomp(const SeccompProgram& program);

// Whether this kernel has seccomp filters at all ("Seccomp:" in /proc/self/status).
bool seccomp_supported();

}  // namespace batman::isolation
