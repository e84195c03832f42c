// supervisord's XML-RPC interface (`system.*`, `supervisor.*` of rpcinterface.py, API 3.0)
// over a live Supervisor, so the unmodified `supervisorctl` drives taskmaster: a fixed table
// of methods (nothing is looked up by name in code, so CVE-2017-11610's kind of traversal
// cannot happen), supervisord's process-info dicts, state codes and fault codes, and answers
// that wait (startProcess with wait=True) given later from the event loop.
#pragma once
#include <ctime>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/error.hpp"
#include "runner/event_loop.hpp"
#include "runner/http_server.hpp"
#include "src/taskmaster/supervisor.hpp"
#include "src/taskmaster/xmlrpc.hpp"

namespace batman::cli {

// supervisor/xmlrpc.py's Faults.
namespace faults {
constexpr int kUnknownMethod = 1;
constexpr int kIncorrectParameters = 2;
constexpr int kBadArguments = 3;
constexpr int kSignatureUnsupported = 4;
constexpr int kShutdownState = 6;
constexpr int kBadName = 10;
constexpr int kBadSignal = 11;
constexpr int kNoFile = 20;
constexpr int kNotExecutable = 21;
constexpr int kFailed = 30;
constexpr int kAbnormalTermination = 40;
constexpr int kSpawnError = 50;
constexpr int kAlreadyStarted = 60;
constexpr int kNotRunning = 70;
constexpr int kSuccess = 80;
constexpr int kAlreadyAdded = 90;
constexpr int kStillRunning = 91;
constexpr int kCantReread = 92;
}  // namespace faults

// "BAD_NAME" for 10...; "UNKNOWN" otherwise.
std::string_view fault_name(int code);
// supervisord's state codes (states.py): STOPPED 0, STARTING 10, RUNNING 20, BACKOFF 30,
// STOPPING 40, EXITED 100, FATAL 200.
int state_code(runner::ProcState state);
// Python's str(timedelta) of whole seconds: "0:01:02", "1 day, 2:03:04".
std::string python_timedelta(long long seconds);

struct Fault {
  int code = faults::kFailed;
  std::string text;  // "BAD_NAME: foo"
};
Fault make_fault(int code, std::string_view extra = {});

// A method's result: a value or a fault.
struct Outcome {
  std::optional<xmlrpc::Value> value;
  Fault fault;
  static Outcome of(xmlrpc::Value v) { return Outcome{std::move(v), {}}; }
  static Outcome failed(int code, std::string_view extra = {}) { return Outcome{std::nullopt, make_fault(code, extra)}; }
};

class RpcInterface {
 public:
  struct Hooks {
    // Read the config file again, applying nothing (reloadConfig); errors are one line.
    std::function<Result<runner::SupervisorConfig>()> load;
    // Make `next` the running config (the per-instance reload diff); an error changes nothing.
    std::function<Result<void>(runner::SupervisorConfig next)> apply;
    // Stop every program, then exit (shutdown).
    std::function<void()> quit;
    // Stop every program, read the config again, start (restart, `supervisorctl reload`).
    std::function<void()> restart;
    std::string main_log;  // the supervisor's own log (readLog, clearLog)
    std::string version;   // getSupervisorVersion
  };
  using Reply = std::function<void(Outcome)>;

  RpcInterface(runner::EventLoop& loop, runner::Supervisor& supervisor, Hooks hooks);
  ~RpcInterface();
  RpcInterface(const RpcInterface&) = delete;
  RpcInterface& operator=(const RpcInterface&) = delete;

  // One call by name: `reply` runs exactly once, maybe later (never from inside this call's
  // supervisor callbacks: completions go through EventLoop::defer).
  void call(const std::string& method, const xmlrpc::Array& params, Reply reply);
  // An HTTP request of supervisord's server: POST /RPC2, GET /logtail/NAME[/stdout|stderr]
  // (credentials are the server's to check first: authorized()).
  void handle(const runner::HttpRequest& request, runner::HttpResponder responder);

  // Every method's name, sorted (system.listMethods).
  static std::vector<std::string> method_names();

  // The Supervisor's transitions (Supervisor::set_observer): start/stop times and waiters.
  void on_transition(const runner::InstanceKey& key, runner::ProcState from, runner::ProcState to);
  // HTTP Basic auth: the request carries USERNAME:PASSWORD (both empty: nothing is asked).
  static bool authorized(const runner::HttpRequest& request, const std::string& username, const std::string& password);
  // The answer to a request that is not (401, asking for Basic credentials).
  static void refuse_unauthorized(runner::HttpResponder& responder);
  bool shutting_down() const { return shutting_down_; }

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
  bool shutting_down_ = false;
  friend struct Impl;
};

}  // namespace batman::cli
