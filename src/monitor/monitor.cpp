// Starting and stopping batman-monitor, the --monitor helper.
#include "src/monitor/monitor.hpp"

#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <filesystem>
#include <vector>

extern char** environ;

namespace batman::cli {
namespace {

// libexec/batman/batman-monitor beside bin/ (installed, relocatable), or the build tree's
// batman-monitor next to batman.
std::string helper_path() {
  std::error_code ec;
  auto self = std::filesystem::read_symlink("/proc/self/exe", ec);
  if (ec) return "batman-monitor";
  auto dir = self.parent_path();
  for (auto candidate : {dir / "../libexec/batman/batman-monitor", dir / "batman-monitor"}) {
    if (::access(candidate.c_str(), X_OK) == 0) return candidate.lexically_normal().string();
  }
  return "batman-monitor";
}

}  // namespace

Result<std::unique_ptr<Monitor>> Monitor::start(int port, const std::string& state_file, const std::string& title) {
  if (port < 0 || port > 65535) return fail("--monitor port " + std::to_string(port) + " is not in 0-65535");
  int life[2], reply[2];
  if (::pipe2(life, O_CLOEXEC) != 0 || ::pipe2(reply, O_CLOEXEC) != 0) return sys_error("--monitor: pipe");
  UniqueFd life_read(life[0]), life_write(life[1]), reply_read(reply[0]), reply_write(reply[1]);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, life_read.get(), 0);
  posix_spawn_file_actions_adddup2(&actions, reply_write.get(), 1);
  std::string path = helper_path();
  std::string port_text = std::to_string(port);
  std::vector<std::string> args{path, port_text, state_file, title};
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  sigset_t none;
  sigemptyset(&none);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK);
  pid_t pid = -1;
  int rc = ::posix_spawn(&pid, path.c_str(), &actions, &attr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  if (rc != 0) return sys_error("--monitor: start " + path, rc);
  life_read.reset();
  reply_write.reset();
  std::unique_ptr<Monitor> m(new Monitor());
  m->pid_ = pid;
  m->lifeline_ = std::move(life_write);
  // One line back: "PORT" once listening, or "error: ..." when it could not.
  std::string line;
  char buf[512];
  for (;;) {
    pollfd p{reply_read.get(), POLLIN, 0};
    if (::poll(&p, 1, 10'000) <= 0) break;
    ssize_t n = ::read(reply_read.get(), buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    line.append(buf, static_cast<std::size_t>(n));
    if (line.find('\n') != std::string::npos) break;
  }
  if (auto nl = line.find('\n'); nl != std::string::npos) line.resize(nl);
  if (line.empty() || line.rfind("error: ", 0) == 0) {
    return fail("--monitor: " + (line.empty() ? std::string("the status page helper did not start") : line.substr(7)));
  }
  m->url_ = "http://127.0.0.1:" + line + "/";
  return m;
}

Monitor::~Monitor() {
  lifeline_.reset();
  if (pid_ > 0) {
    ::kill(pid_, SIGTERM);
    while (::waitpid(pid_, nullptr, 0) < 0 && errno == EINTR) {
    }
  }
}

}  // namespace batman::cli
