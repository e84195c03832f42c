// The dashboard server: one per $BATMAN_HOME, single-threaded on a runner::EventLoop. It keeps
// the home's model current from inotify (state directories, events logs, followed logs),
// pidfds (a live run's batman exiting) and the supervisors' control sockets, serves the page,
// the JSON API, the event streams (Server-Sent Events) and /metrics through runner::HttpServer,
// and runs the page's actions (stop a run or task; start, stop, restart a program) as
// `batman stop` / `batman ctl` child processes, watched from the loop.
#pragma once
#include <functional>
#include <memory>
#include <string>

#include "common/error.hpp"
#include "common/unique_fd.hpp"
#include "runner/event_loop.hpp"
#include "src/dashboard/security.hpp"

namespace batman::dashboard {

struct ServerConfig {
  std::string home;          // absolute $BATMAN_HOME
  Listening listening;
  std::string csrf_token;    // POST actions carry it (X-Batman-Token)
  std::string access_token;  // --token: every request carries it (bearer or cookie); "" = none
  std::string login_code;    // --token: the one-time code of the printed login URL
  std::string self_exe;      // batman itself, for the actions' child processes
  // Called with the next one-time login code once one was used (dashboard.json names it).
  std::function<void(const std::string&)> on_login_code;
};

class Server {
 public:
  // Load the home and serve `listener` (listening, non-blocking). `on_home_gone` runs when
  // $BATMAN_HOME itself is removed or moved away (the server has nothing left to show).
  static Result<std::unique_ptr<Server>> start(runner::EventLoop& loop, UniqueFd listener, ServerConfig config,
                                               std::function<void()> on_home_gone);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Connections open now (page loads, API calls, event streams).
  std::size_t clients() const;
  // Write what is queued, waiting at most `timeout` (before exiting).
  void flush(Duration timeout);

  struct Impl;

 private:
  explicit Server(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace batman::dashboard
