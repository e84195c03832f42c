// Seccomp deny lists: compiled with libseccomp in the parent, exported as BPF into memory,
// loaded by the child with a bare prctl so nothing between clone and execve allocates.
#include "isolation/seccomp.hpp"

#include <linux/seccomp.h>
#include <sched.h>
#include <seccomp.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <memory>

#include "common/fs.hpp"
#include "common/unique_fd.hpp"

namespace batman::isolation {

namespace {

struct ContextDeleter {
  void operator()(void* ctx) const { seccomp_release(ctx); }
};
using Context = std::unique_ptr<void, ContextDeleter>;

std::uint32_t action_for(SeccompAction action) {
  switch (action) {
    case SeccompAction::Errno: return SCMP_ACT_ERRNO(EPERM);
    case SeccompAction::Kill: return SCMP_ACT_KILL_PROCESS;
    case SeccompAction::Log: return SCMP_ACT_LOG;
  }
  return SCMP_ACT_ERRNO(EPERM);
}

std::unexpected<Error> seccomp_error(const std::string& what, int rc) {
  return sys_error("seccomp: " + what, -rc);
}

}  // namespace

std::vector<std::uint64_t> pack_seccomp(const SeccompProgram& program) {
  std::vector<std::uint64_t> words;
  words.reserve(program.instructions.size());
  for (const auto& i : program.instructions)
    words.push_back(std::uint64_t{i.code} << 48 | std::uint64_t{i.jt} << 40 | std::uint64_t{i.jf} << 32 | i.k);
  return words;
}

SeccompProgram unpack_seccomp(const std::vector<std::uint64_t>& words) {
  SeccompProgram program;
  program.instructions.reserve(words.size());
  for (const auto w : words)
    program.instructions.push_back(sock_filter{static_cast<std::uint16_t>(w >> 48), static_cast<std::uint8_t>(w >> 40),
                                               static_cast<std::uint8_t>(w >> 32), static_cast<std::uint32_t>(w)});
  return program;
}

Result<SeccompProgram> compile_seccomp(const Profile::Seccomp& seccomp) {
  SeccompProgram program;
  if (!seccomp.enabled) return program;
  if (!seccomp.compiled.empty()) return unpack_seccomp(seccomp.compiled);
  Context ctx(seccomp_init(SCMP_ACT_ALLOW));
  if (!ctx) return fail("seccomp: seccomp_init failed (is libseccomp usable on this kernel?)");
#if SCMP_VER_MAJOR > 2 || (SCMP_VER_MAJOR == 2 && SCMP_VER_MINOR >= 5)
  // A binary search over the call numbers instead of one comparison per denied call after
  // another: the kernel checks every call the job makes against it, and at load it runs the
  // filter once per call number to cache what is always allowed. For the `isolated` list it
  // loads in 26-28 us instead of 62-68 (84 instructions instead of 74; scripts/bench/seccomp).
  // Only from libseccomp 2.5.4 (the library running, which a shared build may change): 2.5.0
  // to 2.5.3 could build a tree that kills every call (libseccomp issue 370). Elsewhere the
  // linear filter, which denies the same calls.
  if (const scmp_version* v = seccomp_version();
      v && (v->major > 2 || (v->major == 2 && (v->minor > 5 || (v->minor == 5 && v->micro >= 4)))))
    (void)seccomp_attr_set(ctx.get(), SCMP_FLTATR_CTL_OPTIMIZE, 2);
#endif
  const auto action = action_for(seccomp.action);
  bool deny_unshare = false;
  for (const auto& name : seccomp.deny) {
    const int nr = seccomp_syscall_resolve_name(name.c_str());
    if (nr == __NR_SCMP_ERROR) return fail("seccomp: unknown system call '" + name + "'");
    if (name == "unshare") deny_unshare = true;
    if (name == "clone3") continue;  // always ENOSYS below
    // A call that does not exist on this architecture is not an error: nothing can make it.
    if (int rc = seccomp_rule_add(ctx.get(), action, nr, 0); rc < 0 && rc != -EDOM)
      return seccomp_error("deny " + name, rc);
  }
  // The filter cannot look inside clone3's struct; ENOSYS makes glibc retry with clone.
  if (int rc = seccomp_rule_add(ctx.get(), SCMP_ACT_ERRNO(ENOSYS), SCMP_SYS(clone3), 0); rc < 0)
    return seccomp_error("clone3", rc);
  if (deny_unshare) {
    for (unsigned long flag : {CLONE_NEWUSER, CLONE_NEWNS, CLONE_NEWPID, CLONE_NEWNET, CLONE_NEWUTS,
                               CLONE_NEWIPC, CLONE_NEWCGROUP, CLONE_NEWTIME}) {
      if (int rc = seccomp_rule_add(ctx.get(), action, SCMP_SYS(clone), 1,
                                    SCMP_A0(SCMP_CMP_MASKED_EQ, flag, flag));
          rc < 0)
        return seccomp_error("clone flags", rc);
    }
  }
  // Export into a memfd and read it back: libseccomp 2.5 has no export-to-memory call.
  UniqueFd memfd(memfd_create("batman-seccomp", MFD_CLOEXEC));
  if (!memfd) return sys_error("seccomp: memfd_create");
  if (int rc = seccomp_export_bpf(ctx.get(), memfd.get()); rc < 0)
    return seccomp_error("export", rc);
  const off_t size = lseek(memfd.get(), 0, SEEK_END);
  if (size <= 0 || size % sizeof(sock_filter) != 0) return fail("seccomp: bad exported program");
  program.instructions.resize(static_cast<std::size_t>(size) / sizeof(sock_filter));
  if (pread(memfd.get(), program.instructions.data(), static_cast<std::size_t>(size), 0) != size)
    return sys_error("seccomp: read exported program");
  return program;
}

int load_seccomp(const SeccompProgram& program) {
  if (program.empty()) return 0;
  sock_fprog prog{};
  prog.len = static_cast<unsigned short>(program.instructions.size());
  prog.filter = const_cast<sock_filter*>(program.instructions.data());
  if (prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog, 0, 0) != 0) return errno;
  return 0;
}

bool seccomp_supported() {
  auto status = read_file("/proc/self/status");
  return status && status->find("\nSeccomp:") != std::string::npos &&
         prctl(PR_GET_SECCOMP, 0, 0, 0, 0) >= 0;
}

}  // namespace batman::isolation
