// libFuzzer harness: the Taskmaster control socket's line protocol (src/control_socket.cpp
// framing, src/control_commands.cpp commands), end to end. The input is what a client sends
// on the socket; the real ControlServer answers with the real ControlCommands run against a
// real Supervisor. Its programs can never start (their TMPDIR and logs live under a path
// that does not exist, so every start fails before any fork): start/stop/restart/status/
// pid/tail/reload/quit all run, and no process is ever spawned.
// The protocol's promise is checked: every line the server writes is a JSON object with
// "out" or "exit", and every complete request line gets its "exit" line (a request longer
// than the limit ends the connection instead). An answer that never comes is a libFuzzer
// timeout.
#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "runner/event_loop.hpp"
#include "src/taskmaster/supervisor.hpp"
#include "src/taskmaster/control_commands.hpp"
#include "src/taskmaster/control_socket.hpp"

using namespace batman;

namespace {

struct World {
  std::string dir;
  std::unique_ptr<runner::EventLoop> loop;
  runner::SupervisorConfig config;
  std::unique_ptr<runner::Supervisor> supervisor;
  std::unique_ptr<cli::ControlCommands> commands;
  std::unique_ptr<cli::ControlServer> server;
};

World* world = nullptr;

runner::SupervisorConfig make_config() {
  runner::SupervisorConfig config;
  config.source = "fuzz.yaml";
  config.project = "fuzz";
  auto program = [](std::string name, int numprocs) {
    runner::ProgramConfig p;
    p.name = std::move(name);
    p.command = "exit 0";
    p.numprocs = numprocs;
    p.autostart = false;
    return p;
  };
  config.programs = {program("web", 3), program("db", 1), program("worker_1", 2)};
  return config;
}

// A fresh supervisor for each input, so that one input's starts do not change the next.
void reset_supervisor() {
  world->commands.reset();
  world->supervisor.reset();
  runner::SupervisorContext context;
  context.project = "fuzz";
  // Nothing exists under here: every start fails to create the instance's TMPDIR.
  std::string missing = world->dir + "/missing";
  context.home = context.batman_home = missing;
  context.project_dir = missing + "/fuzz";
  context.logs_dir = missing + "/fuzz/logs";
  context.tmp_dir = missing + "/fuzz/tmp";
  context.default_cwd = "/";
  world->supervisor = std::make_unique<runner::Supervisor>(*world->loop, context, world->config);
  cli::CommandHooks hooks;
  hooks.reload = [] { return Result<runner::ReloadPlan>(runner::plan_reload(world->config, world->config)); };
  hooks.quit = [](std::function<void()> stopped) { world->supervisor->shutdown(std::move(stopped)); };
  world->commands = std::make_unique<cli::ControlCommands>(*world->supervisor, std::move(hooks));
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  world = new World;
  // Under $TMPDIR (scripts/fuzz points it at its work directory, removed at the end even
  // when libFuzzer exits without running atexit handlers, as on a timeout).
  const char* tmp = std::getenv("TMPDIR");
  std::string tmpl = std::string(tmp && *tmp ? tmp : "/tmp") + "/batman-fuzz-control.XXXXXX";
  if (!::mkdtemp(tmpl.data())) std::abort();
  world->dir = tmpl;
  auto loop = runner::EventLoop::create();
  if (!loop) std::abort();
  world->loop = std::move(*loop);
  world->config = make_config();
  reset_supervisor();
  auto server = cli::ControlServer::listen(
      *world->loop, world->dir + "/control.sock",
      [](std::string_view line, cli::ControlCommands::Output out, cli::ControlCommands::Finish finish) {
        return world->commands->run(line, std::move(out), std::move(finish));
      });
  if (!server) std::abort();
  world->server = std::move(*server);
  // Nothing is left behind in /tmp.
  std::atexit([] {
    ::unlink((world->dir + "/control.sock").c_str());
    ::rmdir(world->dir.c_str());
  });
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  reset_supervisor();
  std::string_view input(reinterpret_cast<const char*>(data), size);
  std::size_t expected = 0;  // complete lines, each owed one "exit" answer
  for (char c : input)
    if (c == '\n') ++expected;

  auto client = cli::connect_control(world->dir + "/control.sock");
  if (!client) std::abort();
  int fd = client->get();
  ::fcntl(fd, F_SETFL, O_NONBLOCK);

  std::size_t sent = 0, finished = 0;
  std::string answers;
  bool eof = false;
  while (!eof && finished < expected) {
    while (sent < input.size()) {
      ssize_t n = ::send(fd, input.data() + sent, input.size() - sent, MSG_NOSIGNAL);
      if (n <= 0) break;
      sent += static_cast<std::size_t>(n);
    }
    (void)world->loop->run_once(std::chrono::milliseconds(1));
    char buf[65536];
    for (;;) {
      ssize_t n = ::recv(fd, buf, sizeof buf, 0);
      if (n > 0) {
        answers.append(buf, static_cast<std::size_t>(n));
        continue;
      }
      if (n == 0) eof = true;
      if (n < 0 && errno == ECONNRESET) eof = true;
      break;
    }
    std::size_t nl;
    while ((nl = answers.find('\n')) != std::string::npos) {
      std::string line = answers.substr(0, nl);
      answers.erase(0, nl + 1);
      auto j = nlohmann::json::parse(line, nullptr, false);
      if (j.is_discarded() || !j.is_object() || (!j.contains("out") && !j.contains("exit"))) std::abort();
      if (j.contains("exit")) ++finished;
    }
  }
  if (!answers.empty()) std::abort();  // half a line, then the connection ended
  client->reset();
  // Let the server see the close, so that clients do not pile up.
  for (int i = 0; i < 4; ++i) (void)world->loop->run_once(std::chrono::milliseconds(0));
  return 0;
}
