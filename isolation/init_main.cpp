// batman-init JOB-PID STATUS-FD: PID 1 of a namespaces-tier job's pid namespace. The sandbox's
// first process builds the sandbox and starts the job sharing batman's memory (vfork-style: no
// page tables copied, no copy-on-write faults in batman afterwards), then execs this program,
// which holds nothing of batman's. Started by batman only.
//
// PID 1 reaps every orphan, forwards the signals batman sends to all processes of the
// namespace, and when the job exits it kills and reaps what is left, reports the job's raw
// wait status (an int) to batman through STATUS-FD, and exits: batman acts on the status at
// once instead of waiting for the kernel to take the namespaces down behind PID 1.
//
// System calls only, and on x86-64 and arm64 no C library either (BATMAN_INIT_FREESTANDING,
// isolation/meson.build): a static glibc's start-up (IRELATIVE relocations, CPU feature
// probing, TLS, stdio) took 1.1 ms of CPU and 24 page faults per job here, this one 0.2 ms and
// 2 (`perf stat -r 100`, the note of issue 17). Elsewhere (and in a coverage build) the same
// steps go through glibc, with <signal.h>'s numbers.
#if defined(BATMAN_INIT_FREESTANDING)
#include <asm/unistd.h>

#include "isolation/raw_syscall.hpp"
#else
#include <csignal>
#include <cerrno>
#include <sys/wait.h>
#include <unistd.h>
#endif

namespace {

constexpr long kUsage = 125;  // what batman reports for a job that could not be started

#if defined(BATMAN_INIT_FREESTANDING)
#if !defined(__x86_64__) && !defined(__aarch64__)
#error "BATMAN_INIT_FREESTANDING is for x86-64 and arm64 (isolation/meson.build)"
#endif
long sys(long n, long a = 0, long b = 0, long c = 0, long d = 0) { return batman::isolation::raw::call(n, a, b, c, d); }
// The kernel's values on x86-64 and arm64 (other architectures take the glibc branch, with
// <signal.h>'s: SIGCHLD is 18 on mips, 20 on alpha and sparc).
constexpr long kSigchld = 17;
constexpr long kSigkill = 9;
constexpr long kEintr = 4;
// The next signal, every one blocked (the kernel's sigset is 64 bits on both); -errno.
long next_signal() {
  const unsigned long all = ~0UL;
  unsigned long info[16];  // a siginfo_t (128 bytes): only the number, returned, is used
  return sys(__NR_rt_sigtimedwait, reinterpret_cast<long>(&all), reinterpret_cast<long>(info), 0, sizeof all);
}
// A child's pid (its status in *status when given), 0 (nohang, none exited yet), or -errno.
long reap(int* status, bool nohang) { return sys(__NR_wait4, -1, reinterpret_cast<long>(status), nohang ? 1 : 0, 0); }
void signal_all(long sig) { sys(__NR_kill, -1, sig); }
void write_to(long fd, const void* data, long size) { sys(__NR_write, fd, reinterpret_cast<long>(data), size); }
long own_pid() { return sys(__NR_getpid); }
[[noreturn]] void exit_with(long code) {
  for (;;) sys(__NR_exit_group, code);
}
#else
constexpr long kSigchld = SIGCHLD;
constexpr long kSigkill = SIGKILL;
constexpr long kEintr = EINTR;
long next_signal() {
  sigset_t all;
  sigfillset(&all);
  const int sig = sigwaitinfo(&all, nullptr);
  return sig < 0 ? -errno : sig;
}
long reap(int* status, bool nohang) {
  const pid_t pid = waitpid(-1, status, nohang ? WNOHANG : 0);
  return pid < 0 ? -errno : pid;
}
void signal_all(long sig) { kill(-1, static_cast<int>(sig)); }
void write_to(long fd, const void* data, long size) {
  [[maybe_unused]] auto n = write(static_cast<int>(fd), data, static_cast<std::size_t>(size));
}
long own_pid() { return getpid(); }
[[noreturn]] void exit_with(long code) { _exit(static_cast<int>(code)); }
#endif

void say(const char* message) {
  long n = 0;
  while (message[n]) ++n;
  write_to(2, message, n);
}

// A decimal in [low, high], nothing else.
bool parse_int(const char* text, long low, long high, long& out) {
  if (!text || !*text) return false;
  bool negative = false;
  if (*text == '-') {
    negative = true;
    ++text;
    if (!*text) return false;
  }
  long value = 0;
  for (; *text; ++text) {
    if (*text < '0' || *text > '9') return false;
    const long digit = *text - '0';
    if (value > (high - digit) / 10) return false;  // past high, with no overflow of a 32-bit long either
    value = value * 10 + digit;
  }
  if (negative) value = -value;
  if (value < low || value > high) return false;
  out = value;
  return true;
}

[[noreturn]] void run_init(long job, long status_fd) {
  // Every signal is already blocked (before the job was forked, so none is lost: the mask
  // survives the execve, and so do signals already pending); init takes them one by one.
  // Signals from outside reach PID 1 only when blocked or handled.
  for (;;) {
    const long sig = next_signal();
    if (sig < 0) continue;  // EINTR
    if (sig != kSigchld) {
      signal_all(sig);  // kill(-1) from PID 1 reaches every other process of the namespace
      continue;
    }
    int status = 0;
    long pid;
    while ((pid = reap(&status, true)) > 0) {
      if (pid != job) continue;
      // The job is gone: so is the rest of the namespace, before batman hears of it, so that
      // the report means "nothing of the job is left".
      signal_all(kSigkill);
      long left;
      while ((left = reap(nullptr, false)) > 0 || left == -kEintr) {
      }
      // The raw status keeps "killed by signal N" (PID 1 cannot die of a signal itself).
      if (status_fd >= 0) write_to(status_fd, &status, sizeof status);
      const int termsig = status & 0x7f;
      exit_with(termsig == 0 ? (status >> 8) & 0xff : 128 + termsig);
    }
  }
}

[[noreturn]] void init(long argc, char** argv) {
  long job = 0, fd = 0;
  if (argc != 3 || !parse_int(argv[1], 2, 0x7fffffff, job) || !parse_int(argv[2], -1, 0x7fffffff, fd)) {
    say("batman-init: usage: batman-init JOB-PID STATUS-FD (batman starts it; not for use by hand)\n");
    exit_with(kUsage);
  }
  if (own_pid() != 1) {
    say("batman-init: runs only as PID 1 of a batman job's pid namespace\n");
    exit_with(kUsage);
  }
  run_init(job, fd);
}

}  // namespace

#if defined(BATMAN_INIT_FREESTANDING)
// The process starts here, with argc, argv, envp on the stack, and no C library to set up.
// `used`: only the asm below calls it, which link-time optimisation does not see.
extern "C" [[noreturn, gnu::used]] void batman_init_start(long* stack) {
  init(stack[0], reinterpret_cast<char**>(stack + 1));
}
#if defined(__x86_64__)
asm(".text\n.global _start\n.type _start,@function\n_start:\n"
    "  xor %ebp, %ebp\n  mov %rsp, %rdi\n  and $-16, %rsp\n  call batman_init_start\n  hlt\n");
#else
asm(".text\n.global _start\n.type _start,%function\n_start:\n"
    "  mov x29, #0\n  mov x30, #0\n  mov x0, sp\n  bl batman_init_start\n  brk #0\n");
#endif
#else
int main(int argc, char** argv) { init(argc, argv); }
#endif
