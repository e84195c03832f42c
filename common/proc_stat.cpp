// /proc/PID/stat read with one open and read, split by hand: this runs at every start and
// end of a run or batch task, and for every process of a tree that is signalled.
#include "common/proc_stat.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace batman {

std::optional<ProcStat> read_proc_stat(pid_t pid) {
  char path[64];
  std::snprintf(path, sizeof path, "/proc/%d/stat", pid);
  const int fd = ::open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return std::nullopt;
  char buf[1024];
  const ssize_t n = ::read(fd, buf, sizeof buf - 1);
  ::close(fd);
  if (n <= 0) return std::nullopt;
  buf[n] = 0;
  // The command (field 2) may hold anything, spaces and ')' included: the last ')' ends it.
  const char* p = std::strrchr(buf, ')');
  if (!p || p[1] != ' ' || p[2] == 0) return std::nullopt;
  p += 2;
  ProcStat stat;
  stat.state = *p++;
  // Fields 4 on, each a number after one space.
  auto next = [&p](long long& value) {
    if (*p != ' ') return false;
    char* end = nullptr;
    value = std::strtoll(p + 1, &end, 10);
    if (end == p + 1) return false;
    p = end;
    return true;
  };
  long long value = 0;
  for (int field = 4; field <= 22; ++field) {
    if (!next(value)) {
      if (field <= 6) return std::nullopt;
      break;
    }
    switch (field) {
      case 4: stat.ppid = static_cast<pid_t>(value); break;
      case 5: stat.pgid = static_cast<pid_t>(value); break;
      case 6: stat.sid = static_cast<pid_t>(value); break;
      case 9: stat.flags = static_cast<unsigned>(value); break;
      case 22: stat.start_time = static_cast<unsigned long long>(value); break;
      default: break;
    }
  }
  return stat;
}

std::map<std::string, std::string, std::less<>> process_environment(pid_t pid,
                                                                    std::initializer_list<std::string_view> keys) {
  std::map<std::string, std::string, std::less<>> out;
  char path[64];
  std::snprintf(path, sizeof path, "/proc/%d/environ", pid);
  const int fd = ::open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return out;
  std::string data;
  char buf[16384];
  while (data.size() < (4u << 20)) {
    const ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    data.append(buf, static_cast<std::size_t>(n));
  }
  ::close(fd);
  for (std::size_t start = 0; start < data.size();) {
    std::size_t end = data.find('\0', start);
    if (end == std::string::npos) end = data.size();
    const std::string_view entry(data.data() + start, end - start);
    for (const auto key : keys)
      if (entry.size() > key.size() && entry.starts_with(key) && entry[key.size()] == '=')
        out.insert_or_assign(std::string(key), std::string(entry.substr(key.size() + 1)));
    start = end + 1;
  }
  return out;
}

}  // namespace batman
