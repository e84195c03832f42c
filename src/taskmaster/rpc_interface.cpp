// supervisord's XML-RPC methods over the Supervisor. Process names are supervisord's
// GROUP:NAME (a program is its own group unless a [group:x] holds it; NAME is process_name,
// or the program for one instance, or 00, 01... for several), answers are what
// rpcinterface.py returns, and every wait is a callback, never a blocked loop.
#include "src/taskmaster/rpc_interface.hpp"

#include <sha1.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <chrono>
#include <set>
#include <cstdio>

#include "common/signals.hpp"
#include "common/unique_fd.hpp"
#include "src/taskmaster/supervisor_config.hpp"

namespace batman::cli {

using runner::InstanceKey;
using runner::ProcState;
// Aliases with names of their own: a unity build merges this file's namespace with others'.
using XArray = xmlrpc::Array;
using XStruct = xmlrpc::Struct;
using XValue = xmlrpc::Value;

std::string_view fault_name(int code) {
  switch (code) {
    case faults::kUnknownMethod: return "UNKNOWN_METHOD";
    case faults::kIncorrectParameters: return "INCORRECT_PARAMETERS";
    case faults::kBadArguments: return "BAD_ARGUMENTS";
    case faults::kSignatureUnsupported: return "SIGNATURE_UNSUPPORTED";
    case faults::kShutdownState: return "SHUTDOWN_STATE";
    case faults::kBadName: return "BAD_NAME";
    case faults::kBadSignal: return "BAD_SIGNAL";
    case faults::kNoFile: return "NO_FILE";
    case faults::kNotExecutable: return "NOT_EXECUTABLE";
    case faults::kFailed: return "FAILED";
    case faults::kAbnormalTermination: return "ABNORMAL_TERMINATION";
    case faults::kSpawnError: return "SPAWN_ERROR";
    case faults::kAlreadyStarted: return "ALREADY_STARTED";
    case faults::kNotRunning: return "NOT_RUNNING";
    case faults::kSuccess: return "SUCCESS";
    case faults::kAlreadyAdded: return "ALREADY_ADDED";
    case faults::kStillRunning: return "STILL_RUNNING";
    case faults::kCantReread: return "CANT_REREAD";
  }
  return "UNKNOWN";
}

Fault make_fault(int code, std::string_view extra) {
  std::string text(fault_name(code));
  if (!extra.empty()) {
    text += ": ";
    text += extra;
  }
  return Fault{code, std::move(text)};
}

int state_code(ProcState state) {
  switch (state) {
    case ProcState::Stopped: return 0;
    case ProcState::Starting: return 10;
    case ProcState::Running: return 20;
    case ProcState::Backoff: return 30;
    case ProcState::Stopping: return 40;
    case ProcState::Exited: return 100;
    case ProcState::Fatal: return 200;
  }
  return 1000;
}

std::string python_timedelta(long long seconds) {
  if (seconds < 0) seconds = 0;
  const long long days = seconds / 86400;
  seconds %= 86400;
  char hms[32];
  std::snprintf(hms, sizeof hms, "%lld:%02lld:%02lld", seconds / 3600, seconds / 60 % 60, seconds % 60);
  if (days == 0) return hms;
  return std::to_string(days) + (days == 1 ? " day, " : " days, ") + hms;
}

// Named (not anonymous): RpcInterface::Impl holds these types.
namespace rpc_detail {

bool running_state(ProcState s) { return s == ProcState::Running || s == ProcState::Backoff || s == ProcState::Starting; }
bool stopped_state(ProcState s) { return s == ProcState::Stopped || s == ProcState::Exited || s == ProcState::Fatal; }
bool signallable_state(ProcState s) {
  return s == ProcState::Running || s == ProcState::Starting || s == ProcState::Stopping;
}

std::time_t wall_now() { return std::time(nullptr); }

// One process as supervisord names it.
struct Proc {
  std::string group, name;
  InstanceKey key;
  const runner::ProgramConfig* program = nullptr;
  int group_priority = 999;
  std::string namespec() const { return group == name ? name : group + ":" + name; }
};

std::vector<Proc> processes_of(const runner::SupervisorConfig& config) {
  std::map<std::string, int> group_priority;
  for (const auto& g : config.groups) group_priority[g.name] = g.priority;
  std::vector<Proc> out;
  for (const auto& p : config.programs) {
    const std::string group = p.group.empty() ? p.name : p.group;
    const auto gp = group_priority.find(group);
    for (int i = 0; i < p.numprocs; ++i) {
      Proc proc;
      proc.group = group;
      proc.key = {p.name, i};
      proc.program = &p;
      proc.group_priority = gp == group_priority.end() ? p.priority : gp->second;
      if (!p.process_name.empty()) {
        auto name = expand_percent(p.process_name, Expansions{p.name, p.here, i + p.numprocs_start, p.numprocs, p.group});
        proc.name = name ? *name : p.name;
      } else if (p.numprocs > 1) {
        char digits[16];
        std::snprintf(digits, sizeof digits, "%02d", i);
        proc.name = digits;
      } else {
        proc.name = p.name;
      }
      out.push_back(std::move(proc));
    }
  }
  return out;
}

// supervisord's split_namespec: "g:n" → (g, n), "g:" and "g:*" → (g, none), "n" → (n, n).
std::pair<std::string, std::optional<std::string>> split_namespec(const std::string& spec) {
  const auto colon = spec.find(':');
  if (colon == std::string::npos) return {spec, spec};
  std::string process = spec.substr(colon + 1);
  if (process.empty() || process == "*") return {spec.substr(0, colon), std::nullopt};
  return {spec.substr(0, colon), process};
}

// supervisor.options.readFile: a negative offset reads the last |offset| bytes (length must
// then be 0); length 0 reads to the end. What is read at once is capped (a client that wants
// a 50 MB log asks for it in pieces).
constexpr long long kMaxRead = 4ll << 20;

Outcome read_range(const std::string& path, long long offset, long long length) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY));
  if (!fd) return Outcome::failed(faults::kFailed);
  struct stat st{};
  if (::fstat(fd.get(), &st) != 0) return Outcome::failed(faults::kFailed);
  const long long size = st.st_size;
  long long from = 0, count = 0;
  if (offset < 0) {
    if (length != 0) return Outcome::failed(faults::kBadArguments);
    from = std::max(0ll, size + offset);
    count = size - from;
  } else {
    if (length < 0) return Outcome::failed(faults::kBadArguments);
    from = offset;
    count = length == 0 ? std::max(0ll, size - offset) : length;
  }
  count = std::min({count, kMaxRead, std::max(0ll, size - from)});
  std::string data;
  data.resize(static_cast<std::size_t>(std::max(0ll, count)));
  std::size_t got = 0;
  while (got < data.size()) {
    const ssize_t n = ::pread(fd.get(), data.data() + got, data.size() - got, static_cast<off_t>(from) + static_cast<off_t>(got));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Outcome::failed(faults::kFailed);
    if (n == 0) break;
    got += static_cast<std::size_t>(n);
  }
  data.resize(got);
  return Outcome::of(XValue(std::move(data)));
}

// supervisor.options.tailFile: [bytes, offset, overflow].
XValue tail_range(const std::string& path, long long offset, long long length) {
  struct stat st{};
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY));
  if (!fd || ::fstat(fd.get(), &st) != 0) return XValue(XArray{XValue(""), XValue(static_cast<std::int64_t>(offset)), XValue(false)});
  const long long size = st.st_size;
  bool overflow = false;
  // A client's numbers, kept where the sums below cannot overflow.
  length = std::clamp(length, 0ll, kMaxRead);
  offset = std::clamp(offset, 0ll, 1ll << 62);
  if (size > offset + length) {
    overflow = true;
    offset = size - 1;
  }
  if (offset + length > size) {
    if (offset > size - 1) length = 0;
    offset = size - length;
  }
  offset = std::max(0ll, offset);
  length = std::max(0ll, length);
  std::string data(static_cast<std::size_t>(length), '\0');
  std::size_t got = 0;
  while (got < data.size()) {
    const ssize_t n = ::pread(fd.get(), data.data() + got, data.size() - got, static_cast<off_t>(offset) + static_cast<off_t>(got));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    got += static_cast<std::size_t>(n);
  }
  data.resize(got);
  return XValue(XArray{XValue(std::move(data)), XValue(static_cast<std::int64_t>(size)), XValue(overflow)});
}

bool truncate_file(const std::string& path) {
  UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CLOEXEC | O_NOCTTY | O_NOFOLLOW));
  if (!fd) return errno == ENOENT;
  return ::ftruncate(fd.get(), 0) == 0;
}

std::optional<std::string> decode_base64(std::string_view text) {
  static constexpr std::string_view kAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  unsigned bits = 0;
  int count = 0;
  for (char c : text) {
    if (c == '=') break;
    const auto at = kAlphabet.find(c);
    if (at == std::string_view::npos) return std::nullopt;
    bits = (bits << 6) | static_cast<unsigned>(at);
    count += 6;
    if (count >= 8) {
      count -= 8;
      out += static_cast<char>((bits >> count) & 0xff);
    }
  }
  return out;
}

}  // namespace rpc_detail
using namespace rpc_detail;

// ---------------------------------------------------------------------------------------

struct RpcInterface::Impl {
  RpcInterface& self;
  runner::EventLoop& loop;
  runner::Supervisor& supervisor;
  Hooks hooks;
  // What reloadConfig read last: addProcessGroup takes groups from it (supervisord's
  // process_group_configs); the running config until the first reread.
  std::optional<runner::SupervisorConfig> pending;
  struct Times {
    std::time_t start = 0, stop = 0;
  };
  std::map<InstanceKey, Times> times;
  // Calls waiting for a process to get somewhere (startProcess/stopProcess with wait).
  struct Waiter {
    InstanceKey key;
    bool start = true;
    std::string name;
    Reply reply;
    std::optional<Outcome> outcome;
  };
  std::vector<std::shared_ptr<Waiter>> waiters;
  bool check_queued = false;
  std::set<runner::Supervisor::SubscriptionId> subscriptions;
  std::shared_ptr<bool> alive = std::make_shared<bool>(true);

  using Method = void (Impl::*)(const XArray&, Reply);
  struct Entry {
    std::string_view name;
    Method method;
    std::string_view signature;  // "return param..."
    std::string_view help;
  };
  static const std::vector<Entry>& table();

  Impl(RpcInterface& s, runner::EventLoop& l, runner::Supervisor& sup, Hooks h)
      : self(s), loop(l), supervisor(sup), hooks(std::move(h)) {}

  // Run `fn` after the current callback (a supervisor transition, a command's completion).
  void later(std::function<void()> fn) {
    loop.defer([alive = std::weak_ptr<bool>(alive), fn = std::move(fn)] {
      if (alive.lock()) fn();
    });
  }

  std::vector<Proc> procs() const { return processes_of(supervisor.config()); }

  // The process named by SPEC, its group's processes, or BAD_NAME.
  struct Found {
    std::vector<Proc> group;   // every process of the group
    std::optional<Proc> proc;  // the one named, when a process was named
    std::string group_name;
  };
  std::optional<Found> find(const std::string& spec) const {
    auto [group, process] = split_namespec(spec);
    Found f;
    f.group_name = group;
    for (auto& p : procs())
      if (p.group == group) f.group.push_back(p);
    if (f.group.empty()) return std::nullopt;
    if (process) {
      for (auto& p : f.group)
        if (p.name == *process) f.proc = p;
      if (!f.proc) return std::nullopt;
    }
    return f;
  }

  std::optional<runner::InstanceStatus> status_of(const InstanceKey& key) const {
    auto rows = supervisor.status({key});
    if (rows.empty()) return std::nullopt;
    return rows.front();
  }

  XValue process_info(const Proc& p) const {
    const auto s = status_of(p.key).value_or(runner::InstanceStatus{});
    const std::time_t now = wall_now();
    auto t = times.count(p.key) ? times.at(p.key) : Times{};
    if (s.state == ProcState::Running) t.start = now - std::chrono::duration_cast<std::chrono::seconds>(s.uptime).count();
    std::string spawnerr = (s.state == ProcState::Backoff || s.state == ProcState::Fatal) ? s.reason : std::string();
    const int exitstatus = s.last_exit ? (s.last_exit->signal ? -1 : s.last_exit->code) : 0;
    const std::string out = supervisor.log_path(p.key, "stdout").value_or("");
    const std::string err = supervisor.log_path(p.key, "stderr").value_or("");
    std::string description;
    switch (s.state) {
      case ProcState::Running:
        description = "pid " + std::to_string(s.pid) + ", uptime " + python_timedelta(now - t.start);
        break;
      case ProcState::Backoff:
      case ProcState::Fatal:
        description = spawnerr.empty() ? "unknown error (try \"tail " + p.name + "\")" : spawnerr;
        break;
      case ProcState::Stopped:
      case ProcState::Exited:
        if (t.start) {
          std::tm tm{};
          const std::time_t stop = t.stop;
          ::localtime_r(&stop, &tm);
          char buffer[64];
          std::strftime(buffer, sizeof buffer, "%b %d %I:%M %p", &tm);
          description = buffer;
        } else {
          description = "Not started";
        }
        break;
      default:
        break;
    }
    return XValue(XStruct{
        {"name", XValue(p.name)},
        {"group", XValue(p.group)},
        {"start", XValue(static_cast<std::int64_t>(t.start))},
        {"stop", XValue(static_cast<std::int64_t>(t.stop))},
        {"now", XValue(static_cast<std::int64_t>(now))},
        {"state", XValue(state_code(s.state))},
        {"statename", XValue(std::string(runner::state_name(s.state)))},
        {"spawnerr", XValue(spawnerr)},
        {"exitstatus", XValue(exitstatus)},
        {"logfile", XValue(out)},
        {"stdout_logfile", XValue(out)},
        {"stderr_logfile", XValue(err)},
        {"pid", XValue(static_cast<std::int64_t>(s.pid))},
        {"description", XValue(description)},
    });
  }

  static XValue result_struct(const Proc& p, const Outcome& o) {
    return XValue(XStruct{{"name", XValue(p.name)},
                        {"group", XValue(p.group)},
                        {"status", XValue(o.value ? faults::kSuccess : o.fault.code)},
                        {"description", XValue(o.value ? std::string("OK") : o.fault.text)}});
  }

  // ---- parameters ----------------------------------------------------------------------
  static std::optional<std::string> text(const XArray& a, std::size_t i) {
    if (i >= a.size()) return std::nullopt;
    if (const auto* s = a[i].get<std::string>()) return *s;
    if (const auto* n = a[i].get<std::int64_t>()) return std::to_string(*n);
    return std::nullopt;
  }
  static std::optional<long long> integer(const XArray& a, std::size_t i) {
    if (i >= a.size()) return std::nullopt;
    if (const auto* n = a[i].get<std::int64_t>()) return *n;
    if (const auto* b = a[i].get<bool>()) return *b ? 1 : 0;
    if (const auto* s = a[i].get<std::string>()) {
      char* end = nullptr;
      errno = 0;
      const long long n = std::strtoll(s->c_str(), &end, 10);
      if (!s->empty() && *end == '\0' && errno == 0) return n;
    }
    return std::nullopt;
  }
  static bool flag(const XArray& a, std::size_t i, bool fallback) {
    if (i >= a.size()) return fallback;
    if (const auto* b = a[i].get<bool>()) return *b;
    if (const auto* n = a[i].get<std::int64_t>()) return *n != 0;
    if (const auto* s = a[i].get<std::string>()) return !s->empty();
    return true;
  }
  static bool arity(const XArray& a, std::size_t min, std::size_t max, const Reply& reply) {
    if (a.size() >= min && a.size() <= max) return true;
    reply(Outcome::failed(faults::kIncorrectParameters));
    return false;
  }
  bool up(const Reply& reply) const {
    if (!self.shutting_down_) return true;
    reply(Outcome::failed(faults::kShutdownState));
    return false;
  }

  // ---- waiting -------------------------------------------------------------------------
  void on_transition(const InstanceKey& key, ProcState from, ProcState to) {
    if (to == ProcState::Starting && from != ProcState::Starting) times[key].start = wall_now();
    if (stopped_state(to) || to == ProcState::Backoff) times[key].stop = wall_now();
    bool decided = false;
    for (auto& w : waiters) {
      if (w->outcome || !(w->key == key)) continue;
      if (w->start) {
        if (to == ProcState::Running) w->outcome = Outcome::of(XValue(true));
        // Out before starttime: supervisord's spawnerr "Exited too quickly", a SPAWN_ERROR.
        else if (to == ProcState::Backoff || to == ProcState::Fatal)
          w->outcome = Outcome::failed(faults::kSpawnError, w->name);
        else if (to == ProcState::Exited || to == ProcState::Stopped)
          w->outcome = Outcome::failed(faults::kAbnormalTermination, w->name);
      } else if (stopped_state(to)) {
        w->outcome = Outcome::of(XValue(true));
      }
      decided |= w->outcome.has_value();
    }
    if (decided) queue_check();
  }
  void queue_check() {
    if (check_queued) return;
    check_queued = true;
    later([this] {
      check_queued = false;
      auto ready = std::move(waiters);
      waiters.clear();
      for (auto& w : ready) {
        // Its instance went away (a reload removed it): a start failed, a stop is done.
        if (!w->outcome && !status_of(w->key))
          w->outcome = w->start ? Outcome::failed(faults::kAbnormalTermination, w->name) : Outcome::of(XValue(true));
        if (w->outcome) w->reply(std::move(*w->outcome));
        else waiters.push_back(std::move(w));
      }
    });
  }

  // Start one process; `reply` gets true, or the fault (wait: once RUNNING or failed).
  void start_one(const Proc& p, bool wait, Reply reply) {
    const auto s = status_of(p.key);
    const std::string spec = p.namespec();
    if (!s) return reply(Outcome::failed(faults::kBadName, spec));
    if (running_state(s->state)) return reply(Outcome::failed(faults::kAlreadyStarted, spec));
    if (s->state == ProcState::Stopping) return reply(Outcome::failed(faults::kAbnormalTermination, spec));
    auto w = std::make_shared<Waiter>(Waiter{p.key, true, spec, std::move(reply), std::nullopt});
    waiters.push_back(w);  // before the start: a start time of 0 is RUNNING at once
    supervisor.start({p.key}, [](std::vector<std::string>) {});
    const auto now = status_of(p.key);
    if (!w->outcome && (!now || !running_state(now->state))) {
      // Never spawned (its command or log could not be prepared): supervisord's spawnerr.
      w->outcome = now && now->state == ProcState::Fatal && !now->started
                       ? Outcome::failed(faults::kSpawnError, spec)
                       : Outcome::failed(faults::kAbnormalTermination, spec);
    }
    if (!wait && !w->outcome) w->outcome = Outcome::of(XValue(true));
    if (w->outcome) queue_check();
  }

  void stop_one(const Proc& p, bool wait, Reply reply) {
    const auto s = status_of(p.key);
    const std::string spec = p.namespec();
    if (!s) return reply(Outcome::failed(faults::kBadName, spec));
    if (!running_state(s->state)) return reply(Outcome::failed(faults::kNotRunning, spec));
    auto w = std::make_shared<Waiter>(Waiter{p.key, false, spec, std::move(reply), std::nullopt});
    waiters.push_back(w);
    supervisor.stop({p.key}, [](std::vector<std::string>) {});
    const auto now = status_of(p.key);
    if (!w->outcome && (!now || stopped_state(now->state))) w->outcome = Outcome::of(XValue(true));
    if (!wait && !w->outcome) w->outcome = Outcome::of(XValue(true));
    if (w->outcome) queue_check();
  }

  // make_allfunc: run `one` on every process `wanted` keeps, answer the results in order.
  void for_each(std::vector<Proc> list, bool (*wanted)(ProcState), std::function<void(const Proc&, Reply)> one,
                Reply reply) {
    struct Gather {
      std::vector<Proc> procs;
      std::vector<std::optional<XValue>> results;
      std::size_t left = 0;
      Reply reply;
    };
    auto g = std::make_shared<Gather>();
    for (auto& p : list) {
      const auto s = status_of(p.key);
      if (s && wanted(s->state)) g->procs.push_back(std::move(p));
    }
    g->results.resize(g->procs.size());
    g->left = g->procs.size() + 1;
    g->reply = std::move(reply);
    auto finish = [g] {
      if (--g->left > 0) return;
      XArray out;
      for (auto& r : g->results)
        if (r) out.push_back(std::move(*r));
      g->reply(Outcome::of(XValue(std::move(out))));
    };
    for (std::size_t i = 0; i < g->procs.size(); ++i)
      one(g->procs[i], [g, i, finish](Outcome o) {
        g->results[i] = result_struct(g->procs[i], o);
        finish();
      });
    finish();
  }

  std::vector<Proc> sorted_by_priority(std::vector<Proc> list) const {
    std::stable_sort(list.begin(), list.end(), [](const Proc& a, const Proc& b) {
      if (a.group_priority != b.group_priority) return a.group_priority < b.group_priority;
      return a.program->priority < b.program->priority;
    });
    return list;
  }

  // ---- config groups -------------------------------------------------------------------
  static std::map<std::string, std::vector<const runner::ProgramConfig*>> groups_of(const runner::SupervisorConfig& c) {
    std::map<std::string, std::vector<const runner::ProgramConfig*>> out;
    for (const auto& p : c.programs) out[p.group.empty() ? p.name : p.group].push_back(&p);
    return out;
  }
  static bool same_group(const std::vector<const runner::ProgramConfig*>& a, const std::vector<const runner::ProgramConfig*>& b) {
    if (a.size() != b.size()) return false;
    for (std::size_t i = 0; i < a.size(); ++i)
      if (!runner::same_program(*a[i], *b[i]) || a[i]->numprocs != b[i]->numprocs) return false;
    return true;
  }
  Outcome apply(runner::SupervisorConfig next) {
    std::stable_sort(next.programs.begin(), next.programs.end(),
                     [](const runner::ProgramConfig& a, const runner::ProgramConfig& b) { return a.priority < b.priority; });
    auto done = hooks.apply ? hooks.apply(std::move(next)) : Result<void>(fail("reload is not available"));
    if (!done) return Outcome::failed(faults::kFailed, done.error().message);
    if (!waiters.empty()) queue_check();
    return Outcome::of(XValue(true));
  }

  // ---- methods -------------------------------------------------------------------------
  void list_methods(const XArray& a, Reply reply) {
    if (!arity(a, 0, 0, reply)) return;
    XArray names;
    for (const auto& n : RpcInterface::method_names()) names.emplace_back(n);
    reply(Outcome::of(XValue(std::move(names))));
  }
  void method_help(const XArray& a, Reply reply) {
    if (!arity(a, 1, 1, reply)) return;
    const auto name = text(a, 0).value_or("");
    for (const auto& e : table())
      if (e.name == name) return reply(Outcome::of(XValue(std::string(e.help))));
    reply(Outcome::failed(faults::kSignatureUnsupported));
  }
  void method_signature(const XArray& a, Reply reply) {
    if (!arity(a, 1, 1, reply)) return;
    const auto name = text(a, 0).value_or("");
    for (const auto& e : table()) {
      if (e.name != name) continue;
      XArray types;
      std::string_view sig = e.signature;
      while (!sig.empty()) {
        const auto space = sig.find(' ');
        types.emplace_back(std::string(sig.substr(0, space)));
        sig = space == std::string_view::npos ? std::string_view() : sig.substr(space + 1);
      }
      return reply(Outcome::of(XValue(std::move(types))));
    }
    reply(Outcome::failed(faults::kSignatureUnsupported));
  }
  void multicall(const XArray& a, Reply reply) {
    if (!arity(a, 1, 1, reply)) return;
    const auto* calls = a[0].get<XArray>();
    if (!calls) return reply(Outcome::failed(faults::kIncorrectParameters));
    struct Run {
      XArray calls;
      std::size_t next = 0;
      XArray results;
      Reply reply;
      bool inside = false, finished_inside = false;
    };
    auto run = std::make_shared<Run>(Run{*calls, 0, {}, std::move(reply)});
    step(run);
  }
  template <class Run>
  void step(std::shared_ptr<Run> run) {
    while (run->next < run->calls.size()) {
      const XValue& c = run->calls[run->next++];
      const auto* name = c.member("methodName") ? c.member("methodName")->get<std::string>() : nullptr;
      const auto* params = c.member("params") ? c.member("params")->get<XArray>() : nullptr;
      auto as_value = [](const Outcome& o) {
        return o.value ? *o.value
                       : XValue(XStruct{{"faultCode", XValue(o.fault.code)}, {"faultString", XValue(o.fault.text)}});
      };
      if (!name) {
        run->results.push_back(as_value(Outcome::failed(faults::kIncorrectParameters, "No methodName")));
        continue;
      }
      if (*name == "system.multicall") {
        run->results.push_back(as_value(Outcome::failed(faults::kIncorrectParameters, "Recursive system.multicall forbidden")));
        continue;
      }
      run->inside = true;
      run->finished_inside = false;
      dispatch(*name, params ? *params : XArray{}, [this, run, as_value](Outcome o) {
        run->results.push_back(as_value(o));
        if (run->inside) run->finished_inside = true;
        else step(run);
      });
      run->inside = false;
      if (!run->finished_inside) return;  // answered later: the callback goes on
    }
    run->reply(Outcome::of(XValue(std::move(run->results))));
  }

  void get_api_version(const XArray& a, Reply reply) {
    if (!arity(a, 0, 0, reply) || !up(reply)) return;
    reply(Outcome::of(XValue("3.0")));
  }
  void get_supervisor_version(const XArray& a, Reply reply) {
    if (!arity(a, 0, 0, reply) || !up(reply)) return;
    reply(Outcome::of(XValue(hooks.version)));
  }
  void get_identification(const XArray& a, Reply reply) {
    if (!arity(a, 0, 0, reply) || !up(reply)) return;
    reply(Outcome::of(XValue("supervisor")));
  }
  void get_state(const XArray& a, Reply reply) {
    if (!arity(a, 0, 0, reply)) return;
    if (self.shutting_down_) return reply(Outcome::of(XValue(XStruct{{"statecode", XValue(-1)}, {"statename", XValue("SHUTDOWN")}})));
    reply(Outcome::of(XValue(XStruct{{"statecode", XValue(1)}, {"statename", XValue("RUNNING")}})));
  }
  void get_pid(const XArray& a, Reply reply) {
    if (!arity(a, 0, 0, reply) || !up(reply)) return;
    reply(Outcome::of(XValue(static_cast<int>(::getpid()))));
  }
  void read_log(const XArray& a, Reply reply) {
    if (!arity(a, 2, 2, reply) || !up(reply)) return;
    const auto offset = integer(a, 0), length = integer(a, 1);
    if (!offset || !length) return reply(Outcome::failed(faults::kIncorrectParameters));
    if (hooks.main_log.empty() || ::access(hooks.main_log.c_str(), F_OK) != 0)
      return reply(Outcome::failed(faults::kNoFile, hooks.main_log));
    reply(read_range(hooks.main_log, *offset, *length));
  }
  void clear_log(const XArray& a, Reply reply) {
    if (!arity(a, 0, 0, reply) || !up(reply)) return;
    if (hooks.main_log.empty()) return reply(Outcome::failed(faults::kNoFile));
    if (!truncate_file(hooks.main_log)) return reply(Outcome::failed(faults::kFailed));
    reply(Outcome::of(XValue(true)));
  }
  void shutdown(const XArray& a, Reply reply) {
    if (!arity(a, 0, 0, reply) || !up(reply)) return;
    self.shutting_down_ = true;
    reply(Outcome::of(XValue(true)));
    later([this] {
      if (hooks.quit) hooks.quit();
    });
  }
  void restart(const XArray& a, Reply reply) {
    if (!arity(a, 0, 0, reply) || !up(reply)) return;
    reply(Outcome::of(XValue(true)));
    later([this] {
      if (hooks.restart) hooks.restart();
    });
  }
  void reload_config(const XArray& a, Reply reply) {
    if (!arity(a, 0, 0, reply) || !up(reply)) return;
    if (!hooks.load) return reply(Outcome::failed(faults::kCantReread, "no config file"));
    auto next = hooks.load();
    if (!next) return reply(Outcome::failed(faults::kCantReread, next.error().message));
    const auto before = groups_of(supervisor.config());
    const auto after = groups_of(*next);
    XArray added, changed, removed;
    for (const auto& [name, programs] : after) {
      auto it = before.find(name);
      if (it == before.end()) added.emplace_back(name);
      else if (!same_group(it->second, programs)) changed.emplace_back(name);
    }
    for (const auto& [name, programs] : before)
      if (!after.count(name)) removed.emplace_back(name);
    pending = std::move(*next);
    reply(Outcome::of(XValue(XArray{XValue(XArray{XValue(std::move(added)), XValue(std::move(changed)), XValue(std::move(removed))})})));
  }
  void add_process_group(const XArray& a, Reply reply) {
    if (!arity(a, 1, 1, reply) || !up(reply)) return;
    const auto name = text(a, 0).value_or("");
    const runner::SupervisorConfig& source = pending ? *pending : supervisor.config();
    const auto wanted = groups_of(source);
    auto it = wanted.find(name);
    if (it == wanted.end()) return reply(Outcome::failed(faults::kBadName, name));
    if (groups_of(supervisor.config()).count(name)) return reply(Outcome::failed(faults::kAlreadyAdded, name));
    runner::SupervisorConfig next = supervisor.config();
    for (const auto* p : it->second) next.programs.push_back(*p);
    for (const auto& g : source.groups)
      if (g.name == name) next.groups.push_back(g);
    reply(apply(std::move(next)));
  }
  void remove_process_group(const XArray& a, Reply reply) {
    if (!arity(a, 1, 1, reply) || !up(reply)) return;
    const auto name = text(a, 0).value_or("");
    const auto active = groups_of(supervisor.config());
    if (!active.count(name)) return reply(Outcome::failed(faults::kBadName, name));
    for (const auto& p : procs()) {
      if (p.group != name) continue;
      const auto s = status_of(p.key);
      if (s && !stopped_state(s->state)) return reply(Outcome::failed(faults::kStillRunning, name));
    }
    runner::SupervisorConfig next = supervisor.config();
    std::erase_if(next.programs, [&](const runner::ProgramConfig& p) { return (p.group.empty() ? p.name : p.group) == name; });
    std::erase_if(next.groups, [&](const runner::ProgramGroup& g) { return g.name == name; });
    reply(apply(std::move(next)));
  }

  // startProcess / stopProcess, *ProcessGroup and *AllProcesses: the same arguments, checks
  // and order (priority, as supervisord), one action each. Start: true for start.
  template <bool Start>
  void act_one(const Proc& p, bool wait, Reply reply) {
    if constexpr (Start)
      start_one(p, wait, std::move(reply));
    else
      stop_one(p, wait, std::move(reply));
  }
  template <bool Start>
  void act_on(std::vector<Proc> list, bool wait, Reply reply) {
    // Only those it changes: a start skips the running ones, a stop the others.
    for_each(sorted_by_priority(std::move(list)), [](ProcState s) { return running_state(s) != Start; },
             [this, wait](const Proc& p, Reply r) { act_one<Start>(p, wait, std::move(r)); }, std::move(reply));
  }
  template <bool Start>
  void act_process(const XArray& a, Reply reply) {
    if (!arity(a, 1, 2, reply) || !up(reply)) return;
    const auto name = text(a, 0);
    if (!name) return reply(Outcome::failed(faults::kIncorrectParameters));
    const bool wait = flag(a, 1, true);
    auto f = find(*name);
    if (!f) return reply(Outcome::failed(faults::kBadName, *name));
    if (!f->proc) return act_on<Start>(f->group, wait, std::move(reply));
    act_one<Start>(*f->proc, wait, std::move(reply));
  }
  template <bool Start>
  void act_process_group(const XArray& a, Reply reply) {
    if (!arity(a, 1, 2, reply) || !up(reply)) return;
    const auto name = text(a, 0).value_or("");
    auto f = find(name + ":*");
    if (!f) return reply(Outcome::failed(faults::kBadName, name));
    act_on<Start>(f->group, flag(a, 1, true), std::move(reply));
  }
  template <bool Start>
  void act_all_processes(const XArray& a, Reply reply) {
    if (!arity(a, 0, 1, reply) || !up(reply)) return;
    act_on<Start>(procs(), flag(a, 0, true), std::move(reply));
  }

  static std::optional<int> signal_number(const std::string& text) {
    std::string upper;
    for (char c : text) upper += static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    auto sig = parse_signal(upper);
    if (!sig || *sig <= 0 || *sig >= 65) return std::nullopt;
    return *sig;
  }
  Outcome signal_one(const Proc& p, int sig) {
    const auto s = status_of(p.key);
    if (!s || !signallable_state(s->state)) return Outcome::failed(faults::kNotRunning, p.namespec());
    if (auto sent = supervisor.signal(p.key, sig); !sent) return Outcome::failed(faults::kFailed, sent.error().message);
    return Outcome::of(XValue(true));
  }
  void signal_group(std::vector<Proc> list, const std::string& signal, Reply reply) {
    const auto sig = signal_number(signal);
    if (!sig) return reply(Outcome::failed(faults::kBadSignal, signal));
    for_each(sorted_by_priority(std::move(list)), signallable_state,
             [this, sig](const Proc& p, Reply r) { r(signal_one(p, *sig)); }, std::move(reply));
  }
  void signal_process(const XArray& a, Reply reply) {
    if (!arity(a, 2, 2, reply) || !up(reply)) return;
    const auto name = text(a, 0), signal = text(a, 1);
    if (!name || !signal) return reply(Outcome::failed(faults::kIncorrectParameters));
    auto f = find(*name);
    if (!f) return reply(Outcome::failed(faults::kBadName, *name));
    if (!f->proc) return signal_group(f->group, *signal, std::move(reply));
    const auto sig = signal_number(*signal);
    if (!sig) return reply(Outcome::failed(faults::kBadSignal, *signal));
    reply(signal_one(*f->proc, *sig));
  }
  void signal_process_group(const XArray& a, Reply reply) {
    if (!arity(a, 2, 2, reply) || !up(reply)) return;
    const auto name = text(a, 0).value_or(""), signal = text(a, 1).value_or("");
    auto f = find(name + ":*");
    if (!f) return reply(Outcome::failed(faults::kBadName, name));
    signal_group(f->group, signal, std::move(reply));
  }
  void signal_all_processes(const XArray& a, Reply reply) {
    if (!arity(a, 1, 1, reply) || !up(reply)) return;
    signal_group(procs(), text(a, 0).value_or(""), std::move(reply));
  }

  void get_all_config_info(const XArray& a, Reply reply) {
    if (!arity(a, 0, 0, reply) || !up(reply)) return;
    const runner::SupervisorConfig& source = pending ? *pending : supervisor.config();
    const auto active = groups_of(supervisor.config());
    XArray out;
    std::map<std::string, int> group_priority;
    for (const auto& g : source.groups) group_priority[g.name] = g.priority;
    std::vector<std::pair<std::string, XValue>> rows;
    for (const auto& p : processes_of(source)) {
      const auto& c = *p.program;
      auto log = [&](const runner::OutputTarget& t) -> std::string {
        if (t.kind == runner::OutputTarget::Kind::Discard) return "none";
        if (t.kind == runner::OutputTarget::Kind::Default) return "auto";
        return t.path;
      };
      XArray codes;
      for (int code : c.rules.exitcodes) codes.emplace_back(code);
      const auto seconds = [](Duration d) { return static_cast<int>(std::chrono::duration_cast<std::chrono::seconds>(d).count()); };
      rows.emplace_back(p.name, XValue(XStruct{
          {"autostart", XValue(c.autostart)},
          {"directory", XValue(c.workingdir.empty() ? std::string("none") : c.workingdir)},
          {"uid", c.uid ? XValue(static_cast<int>(*c.uid)) : XValue("none")},
          {"command", XValue(c.command)},
          {"exitcodes", XValue(std::move(codes))},
          {"group", XValue(p.group)},
          {"group_prio", XValue(p.group_priority)},
          {"inuse", XValue(active.count(p.group) > 0)},
          {"killasgroup", XValue(true)},
          {"name", XValue(p.name)},
          {"process_prio", XValue(c.priority)},
          {"redirect_stderr", XValue(c.redirect_stderr)},
          {"startretries", XValue(c.rules.startretries)},
          {"startsecs", XValue(seconds(c.rules.starttime))},
          {"stdout_capture_maxbytes", XValue(0)},
          {"stdout_events_enabled", XValue(false)},
          {"stdout_logfile", XValue(log(c.stdout_log))},
          {"stdout_logfile_backups", XValue(c.stdout_log.backups)},
          {"stdout_logfile_maxbytes", XValue(static_cast<std::int64_t>(c.stdout_log.max_bytes))},
          {"stdout_syslog", XValue(false)},
          {"stopsignal", XValue(c.rules.stopsignal)},
          {"stopwaitsecs", XValue(seconds(c.rules.stoptime))},
          {"stderr_capture_maxbytes", XValue(0)},
          {"stderr_events_enabled", XValue(false)},
          {"stderr_logfile", XValue(c.redirect_stderr ? std::string("none") : log(c.stderr_log))},
          {"stderr_logfile_backups", XValue(c.stderr_log.backups)},
          {"stderr_logfile_maxbytes", XValue(static_cast<std::int64_t>(c.stderr_log.max_bytes))},
          {"stderr_syslog", XValue(false)},
          {"serverurl", XValue("auto")},
      }));
    }
    std::stable_sort(rows.begin(), rows.end(), [](const auto& x, const auto& y) { return x.first < y.first; });
    for (auto& [name, row] : rows) out.push_back(std::move(row));
    reply(Outcome::of(XValue(std::move(out))));
  }
  void get_process_info(const XArray& a, Reply reply) {
    if (!arity(a, 1, 1, reply) || !up(reply)) return;
    const auto name = text(a, 0).value_or("");
    auto f = find(name);
    if (!f || !f->proc) return reply(Outcome::failed(faults::kBadName, name));
    reply(Outcome::of(process_info(*f->proc)));
  }
  void get_all_process_info(const XArray& a, Reply reply) {
    if (!arity(a, 0, 0, reply) || !up(reply)) return;
    auto list = procs();
    std::stable_sort(list.begin(), list.end(), [](const Proc& x, const Proc& y) {
      return x.group != y.group ? x.group < y.group : x.name < y.name;
    });
    XArray out;
    for (const auto& p : list) out.push_back(process_info(p));
    reply(Outcome::of(XValue(std::move(out))));
  }

  std::optional<std::string> log_of(const Proc& p, const std::string& channel) const {
    if (channel == "stderr" && p.program->redirect_stderr) return std::nullopt;
    return supervisor.log_path(p.key, channel);
  }
  void read_process_log(const XArray& a, Reply reply, const std::string& channel) {
    if (!arity(a, 3, 3, reply) || !up(reply)) return;
    const auto name = text(a, 0).value_or("");
    const auto offset = integer(a, 1), length = integer(a, 2);
    if (!offset || !length) return reply(Outcome::failed(faults::kIncorrectParameters));
    auto f = find(name);
    if (!f || !f->proc) return reply(Outcome::failed(faults::kBadName, name));
    const auto path = log_of(*f->proc, channel);
    if (!path || ::access(path->c_str(), F_OK) != 0) return reply(Outcome::failed(faults::kNoFile, path.value_or("None")));
    reply(read_range(*path, *offset, *length));
  }
  void read_stdout(const XArray& a, Reply reply) { read_process_log(a, std::move(reply), "stdout"); }
  void read_stderr(const XArray& a, Reply reply) { read_process_log(a, std::move(reply), "stderr"); }
  void tail_process_log(const XArray& a, Reply reply, const std::string& channel) {
    if (!arity(a, 3, 3, reply) || !up(reply)) return;
    const auto name = text(a, 0).value_or("");
    const auto offset = integer(a, 1), length = integer(a, 2);
    if (!offset || !length) return reply(Outcome::failed(faults::kIncorrectParameters));
    auto f = find(name);
    if (!f || !f->proc) return reply(Outcome::failed(faults::kBadName, name));
    const auto path = log_of(*f->proc, channel);
    if (!path) return reply(Outcome::of(XValue(XArray{XValue(""), XValue(0), XValue(false)})));
    reply(Outcome::of(tail_range(*path, *offset, *length)));
  }
  void tail_stdout(const XArray& a, Reply reply) { tail_process_log(a, std::move(reply), "stdout"); }
  void tail_stderr(const XArray& a, Reply reply) { tail_process_log(a, std::move(reply), "stderr"); }
  Outcome clear_one(const Proc& p) {
    bool ok = true;
    for (const char* channel : {"stdout", "stderr"})
      if (auto path = log_of(p, channel)) ok &= truncate_file(*path);
    return ok ? Outcome::of(XValue(true)) : Outcome::failed(faults::kFailed, p.namespec());
  }
  void clear_process_logs(const XArray& a, Reply reply) {
    if (!arity(a, 1, 1, reply) || !up(reply)) return;
    const auto name = text(a, 0).value_or("");
    auto f = find(name);
    if (!f || !f->proc) return reply(Outcome::failed(faults::kBadName, name));
    reply(clear_one(*f->proc));
  }
  void clear_all_process_logs(const XArray& a, Reply reply) {
    if (!arity(a, 0, 0, reply) || !up(reply)) return;
    XArray out;
    for (const auto& p : sorted_by_priority(procs())) out.push_back(result_struct(p, clear_one(p)));
    reply(Outcome::of(XValue(std::move(out))));
  }
  void send_process_stdin(const XArray& a, Reply reply) {
    if (!arity(a, 2, 2, reply) || !up(reply)) return;
    const auto name = text(a, 0).value_or("");
    if (!a[1].get<std::string>()) return reply(Outcome::failed(faults::kIncorrectParameters));
    auto f = find(name);
    if (!f || !f->proc) return reply(Outcome::failed(faults::kBadName, name));
    const auto s = status_of(f->proc->key);
    if (!s || !s->pid) return reply(Outcome::failed(faults::kNotRunning, name));
    // Programs' stdin is /dev/null under batman: there is no pipe to write to.
    reply(Outcome::failed(faults::kNoFile, name));
  }
  void send_remote_comm_event(const XArray& a, Reply reply) {
    if (!arity(a, 2, 2, reply) || !up(reply)) return;
    // No event listeners under batman: the event reaches nobody, as in a supervisord without any.
    reply(Outcome::of(XValue(true)));
  }

  void dispatch(const std::string& method, const XArray& params, Reply reply) {
    for (const auto& e : table())
      if (e.name == method) return (this->*e.method)(params, std::move(reply));
    reply(Outcome::failed(faults::kUnknownMethod));
  }
};

const std::vector<RpcInterface::Impl::Entry>& RpcInterface::Impl::table() {
  using I = Impl;
  static const std::vector<Entry> entries = {
      {"system.listMethods", &I::list_methods, "array", "Return an array listing the available method names"},
      {"system.methodHelp", &I::method_help, "string string", "Return a string showing the method's documentation"},
      {"system.methodSignature", &I::method_signature, "array string", "Return an array describing the method signature"},
      {"system.multicall", &I::multicall, "array array", "Process an array of calls, and return an array of results"},
      {"supervisor.getAPIVersion", &I::get_api_version, "string", "Return the version of the RPC API used by supervisord"},
      {"supervisor.getVersion", &I::get_api_version, "string", "Return the version of the RPC API used by supervisord"},
      {"supervisor.getSupervisorVersion", &I::get_supervisor_version, "string", "Return the version of the supervisor package in use"},
      {"supervisor.getIdentification", &I::get_identification, "string", "Return identifying string of supervisord"},
      {"supervisor.getState", &I::get_state, "struct", "Return current state of supervisord as a struct"},
      {"supervisor.getPID", &I::get_pid, "int", "Return the PID of supervisord"},
      {"supervisor.readLog", &I::read_log, "string int int", "Read length bytes from the main log starting at offset"},
      {"supervisor.readMainLog", &I::read_log, "string int int", "Read length bytes from the main log starting at offset"},
      {"supervisor.clearLog", &I::clear_log, "boolean", "Clear the main log"},
      {"supervisor.shutdown", &I::shutdown, "boolean", "Shut down the supervisor process"},
      {"supervisor.restart", &I::restart, "boolean", "Restart the supervisor process"},
      {"supervisor.reloadConfig", &I::reload_config, "array", "Reload the configuration"},
      {"supervisor.addProcessGroup", &I::add_process_group, "boolean string", "Update the config for a running process from config file"},
      {"supervisor.removeProcessGroup", &I::remove_process_group, "boolean string", "Remove a stopped process from the active configuration"},
      {"supervisor.startProcess", &I::act_process<true>, "boolean string boolean", "Start a process"},
      {"supervisor.startProcessGroup", &I::act_process_group<true>, "array string boolean", "Start all processes in the group named 'name'"},
      {"supervisor.startAllProcesses", &I::act_all_processes<true>, "array boolean", "Start all processes listed in the configuration file"},
      {"supervisor.stopProcess", &I::act_process<false>, "boolean string boolean", "Stop a process named by name"},
      {"supervisor.stopProcessGroup", &I::act_process_group<false>, "array string boolean", "Stop all processes in the process group named 'name'"},
      {"supervisor.stopAllProcesses", &I::act_all_processes<false>, "array boolean", "Stop all processes in the process list"},
      {"supervisor.signalProcess", &I::signal_process, "boolean string string", "Send an arbitrary UNIX signal to the process named by name"},
      {"supervisor.signalProcessGroup", &I::signal_process_group, "array string string", "Send a signal to all processes in the group named 'name'"},
      {"supervisor.signalAllProcesses", &I::signal_all_processes, "array string", "Send a signal to all processes in the process list"},
      {"supervisor.getAllConfigInfo", &I::get_all_config_info, "array", "Get info about all available process configurations"},
      {"supervisor.getProcessInfo", &I::get_process_info, "struct string", "Get info about a process named name"},
      {"supervisor.getAllProcessInfo", &I::get_all_process_info, "array", "Get info about all processes"},
      {"supervisor.readProcessStdoutLog", &I::read_stdout, "string string int int", "Read length bytes from name's stdout log starting at offset"},
      {"supervisor.readProcessLog", &I::read_stdout, "string string int int", "Read length bytes from name's stdout log starting at offset"},
      {"supervisor.readProcessStderrLog", &I::read_stderr, "string string int int", "Read length bytes from name's stderr log starting at offset"},
      {"supervisor.tailProcessStdoutLog", &I::tail_stdout, "array string int int", "Tail the (stdout) log"},
      {"supervisor.tailProcessLog", &I::tail_stdout, "array string int int", "Tail the (stdout) log"},
      {"supervisor.tailProcessStderrLog", &I::tail_stderr, "array string int int", "Tail the (stderr) log"},
      {"supervisor.clearProcessLogs", &I::clear_process_logs, "boolean string", "Clear the stdout and stderr logs for the named process"},
      {"supervisor.clearProcessLog", &I::clear_process_logs, "boolean string", "Clear the stdout and stderr logs for the named process"},
      {"supervisor.clearAllProcessLogs", &I::clear_all_process_logs, "array", "Clear all process log files"},
      {"supervisor.sendProcessStdin", &I::send_process_stdin, "boolean string string", "Send a string of chars to the stdin of the process name"},
      {"supervisor.sendRemoteCommEvent", &I::send_remote_comm_event, "boolean string string", "Send an event to event listeners"},
  };
  return entries;
}

RpcInterface::RpcInterface(runner::EventLoop& loop, runner::Supervisor& supervisor, Hooks hooks)
    : impl_(std::make_unique<Impl>(*this, loop, supervisor, std::move(hooks))) {}

RpcInterface::~RpcInterface() {
  for (auto id : impl_->subscriptions) impl_->supervisor.unsubscribe(id);
}

std::vector<std::string> RpcInterface::method_names() {
  std::vector<std::string> out;
  for (const auto& e : Impl::table()) out.emplace_back(e.name);
  std::sort(out.begin(), out.end());
  return out;
}

void RpcInterface::call(const std::string& method, const xmlrpc::Array& params, Reply reply) {
  impl_->dispatch(method, params, std::move(reply));
}

void RpcInterface::on_transition(const InstanceKey& key, ProcState from, ProcState to) {
  impl_->on_transition(key, from, to);
}

bool RpcInterface::authorized(const runner::HttpRequest& request, const std::string& username,
                              const std::string& password) {
  if (username.empty() && password.empty()) return true;
  const std::string& auth = request.header("authorization");
  if (auth.size() <= 6 || !(auth.starts_with("Basic ") || auth.starts_with("basic "))) return false;
  auto given = decode_base64(auth.substr(6));
  if (!given) return false;
  std::string wanted = username + ":" + password;
  if (password.starts_with("{SHA}")) {
    // supervisord's hashed form: {SHA} and the SHA-1 of the password in hex.
    auto colon = given->find(':');
    if (colon == std::string::npos) return false;
    char hex[SHA1_DIGEST_STRING_LENGTH];
    const std::string typed = given->substr(colon + 1);
    SHA1Data(reinterpret_cast<const std::uint8_t*>(typed.data()), typed.size(), hex);
    std::string stored = password.substr(5);
    for (auto& c : stored) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    wanted = username + ":" + stored;
    *given = given->substr(0, colon) + ":" + hex;
  }
  if (given->size() != wanted.size()) return false;
  // Compared in constant time: the answer's timing says nothing of how much was right.
  unsigned char diff = 0;
  for (std::size_t i = 0; i < wanted.size(); ++i) diff |= static_cast<unsigned char>((*given)[i] ^ wanted[i]);
  return diff == 0;
}

void RpcInterface::refuse_unauthorized(runner::HttpResponder& responder) {
  responder.respond(401, "text/plain", "401 Unauthorized: this server asks for a user name and password\n",
                    {{"WWW-Authenticate", "Basic realm=\"default\""}});
}

void RpcInterface::handle(const runner::HttpRequest& request, runner::HttpResponder responder) {
  Impl& m = *impl_;
  if (request.path.starts_with("/RPC2")) {
    if (request.method != "POST") {
      responder.respond(405, "text/plain", "405: XML-RPC calls are POST requests\n", {{"Allow", "POST"}});
      return;
    }
    auto parsed = xmlrpc::parse_call(request.body);
    if (!parsed) {
      responder.respond(400, "text/plain", "400: " + parsed.error().message + "\n");
      return;
    }
    call(parsed->method, parsed->params, [responder](Outcome o) mutable {
      responder.respond(200, "text/xml", o.value ? xmlrpc::write_response(*o.value) : xmlrpc::write_fault(o.fault.code, o.fault.text));
    });
    return;
  }
  if (request.path.starts_with("/logtail/")) {
    if (request.method != "GET") {
      responder.respond(405, "text/plain", "405: GET only\n", {{"Allow", "GET"}});
      return;
    }
    std::string rest = request.path.substr(9);
    std::string channel = "stdout";
    if (const auto slash = rest.find('/'); slash != std::string::npos) {
      channel = rest.substr(slash + 1);
      rest.resize(slash);
    }
    auto f = m.find(rest);
    std::optional<std::string> path;
    if (f && f->proc && (channel == "stdout" || channel == "stderr")) path = m.log_of(*f->proc, channel);
    if (!path || ::access(path->c_str(), F_OK) != 0) {
      responder.respond(404, "text/plain", "404: no such process or log\n");
      return;
    }
    responder.start_stream(200, "text/plain;charset=utf-8", {{"X-Accel-Buffering", "no"}});
    // The last KiB first (supervisord's tail_f_producer), then what the program writes.
    if (auto tail = read_range(*path, -1024, 0); tail.value) responder.write(*tail.value->get<std::string>());
    // A follower far behind loses what it cannot take (the server drops it past its limit).
    constexpr std::size_t kMaxBacklog = 1 << 20;
    auto id = m.supervisor.subscribe(f->proc->key, channel, [responder](std::string_view data) mutable {
      if (responder.backlog() < kMaxBacklog) responder.write(data);
    });
    if (!id) {
      responder.end();
      return;
    }
    m.subscriptions.insert(*id);
    responder.on_close([&m, id = *id, alive = std::weak_ptr<bool>(m.alive)] {
      if (!alive.lock()) return;
      m.supervisor.unsubscribe(id);
      m.subscriptions.erase(id);
    });
    return;
  }
  responder.respond(404, "text/plain", "404: not found (this server answers POST /RPC2 and GET /logtail/NAME)\n");
}

}  // namespace batman::cli
