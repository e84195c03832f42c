// detach(): fork, setsid, (fork), /dev/null stdio; the reply pipe between the two sides.
#include "common/detach.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "common/fs.hpp"

namespace batman {
namespace {

constexpr char kStarted = 0;
constexpr char kFailed = 1;

void send(int fd, char status, std::string_view message) {
  if (fd < 0) return;
  std::string packet(1, status);
  packet.append(message);
  (void)write_all(fd, packet);
  ::close(fd);
}

}  // namespace

Result<Detached> detach(bool second_fork) {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) return sys_error("pipe");
  UniqueFd read_end(fds[0]), write_end(fds[1]);
  std::fflush(nullptr);
  pid_t pid = ::fork();
  if (pid < 0) return sys_error("fork");
  if (pid > 0) return Detached{false, std::move(read_end)};
  read_end.reset();
  // A fresh child is no process group leader: setsid cannot fail here.
  (void)::setsid();
  if (second_fork) {
    pid = ::fork();
    if (pid < 0) {
      const int err = errno;
      send(write_end.release(), kFailed, std::string("fork: ") + std::strerror(err));
      std::_Exit(125);
    }
    if (pid > 0) std::_Exit(0);  // the grandchild holds the write end and answers
  }
  if (int null = ::open("/dev/null", O_RDWR | O_CLOEXEC); null >= 0) {
    for (int i = 0; i < 3; ++i) ::dup2(null, i);  // dup2's copy is not close-on-exec
    if (null > 2) ::close(null);
  }
  return Detached{true, std::move(write_end)};
}

void reply_started(int fd, std::string_view message) { send(fd, kStarted, message); }

void reply_failed(int fd, std::string_view message) { send(fd, kFailed, message); }

DetachReply read_detach_reply(int fd) {
  std::string data;
  char buf[1024];
  for (;;) {
    const ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    data.append(buf, static_cast<std::size_t>(n));
  }
  DetachReply reply;
  if (data.empty()) return reply;
  reply.started = data[0] == kStarted;
  reply.message = data.substr(1);
  return reply;
}

}  // namespace batman
