// spawn_piped and run_capture: posix_spawn with one pipe for the output.
#include "src/cli/subprocess.hpp"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/unique_fd.hpp"

extern char** environ;

namespace batman::cli {

Result<PipedChild> spawn_piped(const std::vector<std::string>& argv, const std::string& path, char* const* envp) {
  if (argv.empty()) return fail("nothing to run");
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) return sys_error("pipe2");
  UniqueFd read_end(fds[0]), write_end(fds[1]);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&actions, write_end.get(), 1);
  posix_spawn_file_actions_adddup2(&actions, write_end.get(), 2);
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  sigset_t none, all;
  sigemptyset(&none);
  sigfillset(&all);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setsigdefault(&attr, &all);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
  std::vector<std::string> copy = argv;
  std::vector<char*> ptrs;
  for (auto& a : copy) ptrs.push_back(a.data());
  ptrs.push_back(nullptr);
  pid_t pid = 0;
  char* const* env = envp ? envp : environ;
  const int rc = path.empty() ? ::posix_spawnp(&pid, ptrs[0], &actions, &attr, ptrs.data(), env)
                              : ::posix_spawn(&pid, path.c_str(), &actions, &attr, ptrs.data(), env);
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  if (rc != 0) return sys_error("run " + (path.empty() ? argv[0] : path), rc);
  return PipedChild{pid, std::move(read_end)};
}

Result<Captured> run_capture(const std::vector<std::string>& argv, const std::string& path) {
  auto child = BATMAN_TRY(spawn_piped(argv, path));
  pid_t pid = child.pid;
  UniqueFd read_end = std::move(child.output);
  Captured result;
  char buf[4096];
  for (;;) {
    ssize_t n = ::read(read_end.get(), buf, sizeof buf);
    if (n > 0) {
      result.out.append(buf, static_cast<std::size_t>(n));
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    break;
  }
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return result;
}

}  // namespace batman::cli
