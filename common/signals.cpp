// Signal names as supervisord and kill(1) spell them.
#include "common/signals.hpp"

#include <csignal>
#include <algorithm>
#include <cstring>
#include <string>

namespace batman {
namespace {

struct Named {
  const char* name;
  int number;
};
constexpr Named kSignals[] = {
    {"HUP", SIGHUP},   {"INT", SIGINT},     {"QUIT", SIGQUIT}, {"ILL", SIGILL},
    {"TRAP", SIGTRAP}, {"ABRT", SIGABRT},   {"BUS", SIGBUS},   {"FPE", SIGFPE},
    {"KILL", SIGKILL}, {"USR1", SIGUSR1},   {"SEGV", SIGSEGV}, {"USR2", SIGUSR2},
    {"PIPE", SIGPIPE}, {"ALRM", SIGALRM},   {"TERM", SIGTERM}, {"CHLD", SIGCHLD},
    {"CONT", SIGCONT}, {"STOP", SIGSTOP},   {"TSTP", SIGTSTP}, {"TTIN", SIGTTIN},
    {"TTOU", SIGTTOU}, {"URG", SIGURG},     {"XCPU", SIGXCPU}, {"XFSZ", SIGXFSZ},
    {"VTALRM", SIGVTALRM}, {"PROF", SIGPROF}, {"WINCH", SIGWINCH}, {"IO", SIGIO},
    {"PWR", SIGPWR},   {"SYS", SIGSYS},
};

}  // namespace

Result<int> parse_signal(std::string_view text) {
  std::string upper(text);
  for (auto& c : upper) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  if (upper.rfind("SIG", 0) == 0) upper.erase(0, 3);
  if (!upper.empty() && std::isdigit(static_cast<unsigned char>(upper[0]))) {
    try {
      std::size_t used = 0;
      int n = std::stoi(upper, &used);
      if (used == upper.size() && n > 0 && n < 65) return n;
    } catch (...) {
    }
  }
  for (const auto& s : kSignals)
    if (upper == s.name) return s.number;
  return fail("unknown signal '" + std::string(text) +
              "': use a name such as TERM, INT, QUIT, HUP, KILL, USR1, USR2 or a number");
}

std::string signal_name(int sig) {
  for (const auto& s : kSignals)
    if (s.number == sig) return s.name;
  return std::to_string(sig);
}

}  // namespace batman

namespace batman {

namespace {
constexpr unsigned kMaxGraceField = 0xffffff;
}

int encode_stop_request(const StopRequest& request) {
  unsigned packed = static_cast<unsigned>(request.signal.value_or(0)) & 0xff;
  if (request.grace) {
    const long long tenths =
        std::max<long long>(0, std::chrono::duration_cast<std::chrono::milliseconds>(*request.grace).count() / 100);
    packed |= static_cast<unsigned>(std::min<long long>(tenths + 1, kMaxGraceField)) << 8;
  }
  return static_cast<int>(packed);
}

StopRequest decode_stop_request(int value) {
  const auto packed = static_cast<unsigned>(value);
  StopRequest request;
  if (packed & 0xff) request.signal = static_cast<int>(packed & 0xff);
  if (packed >> 8) request.grace = std::chrono::milliseconds(static_cast<long long>((packed >> 8) - 1) * 100);
  return request;
}

int task_stop_signal() { return SIGRTMIN + 2; }

std::uint32_t task_selector(std::string_view state_name) {
  std::uint32_t hash = 2166136261u;  // FNV-1a
  for (unsigned char c : state_name) {
    hash ^= c;
    hash *= 16777619u;
  }
  return hash ? hash : 1;
}

std::uint64_t encode_task_stop(const StopRequest& request, std::uint32_t selector) {
  return static_cast<std::uint64_t>(selector) << 32 | static_cast<std::uint32_t>(encode_stop_request(request));
}

TaskStopRequest decode_task_stop(std::uint64_t value) {
  TaskStopRequest out;
  out.stop = decode_stop_request(static_cast<int>(static_cast<std::uint32_t>(value & 0xffffffffu)));
  out.selector = static_cast<std::uint32_t>(value >> 32);
  return out;
}

}  // namespace batman
