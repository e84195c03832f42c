// batman-init JOB-PID STATUS-FD: PID 1 of a namespaces-tier job (pid_init.cpp). The
// sandbox's first process builds the sandbox and starts the job sharing batman's memory
// (vfork-style: no page tables copied, no copy-on-write faults in batman afterwards), then
// execs this program, which holds nothing of batman's. Started by batman only.
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstdlib>
#include <cstring>

#include "isolation/pid_init.hpp"

namespace {

bool parse_int(const char* text, long low, long high, long& out) {
  if (!text || !*text) return false;
  char* end = nullptr;
  errno = 0;
  const long value = std::strtol(text, &end, 10);
  if (errno || *end || value < low || value > high) return false;
  out = value;
  return true;
}

void say(const char* message) { [[maybe_unused]] auto n = ::write(2, message, std::strlen(message)); }

}  // namespace

int main(int argc, char** argv) {
  long job = 0, fd = 0;
  if (argc != 3 || !parse_int(argv[1], 2, INT_MAX, job) || !parse_int(argv[2], -1, INT_MAX, fd)) {
    say("batman-init: usage: batman-init JOB-PID STATUS-FD (batman starts it; not for use by hand)\n");
    return 125;
  }
  if (::getpid() != 1) {
    say("batman-init: runs only as PID 1 of a batman job's pid namespace\n");
    return 125;
  }
  batman::isolation::ns::run_init(static_cast<pid_t>(job), static_cast<int>(fd));
}
