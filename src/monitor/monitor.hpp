// The --monitor status page of one run. The HTTP server (cpp-httplib) lives in a small
// helper executable, batman-monitor, started only when asked for: the runner stays
// single-threaded and every other run is spared loading an HTTP/TLS stack.
#pragma once
#include <sys/types.h>

#include <memory>
#include <string>

#include "common/error.hpp"
#include "common/unique_fd.hpp"

namespace batman::cli {

class Monitor {
 public:
  // Serve `state_file` on 127.0.0.1:`port` (0: a free port chosen by the kernel).
  static Result<std::unique_ptr<Monitor>> start(int port, const std::string& state_file, const std::string& title);
  ~Monitor();
  std::string url() const { return url_; }

 private:
  Monitor() = default;
  pid_t pid_ = -1;
  UniqueFd lifeline_;  // the helper exits when this pipe closes
  std::string url_;
};

// The helper's own main (batman-monitor PORT STATE_FILE TITLE).
int monitor_main(int argc, char** argv);

}  // namespace batman::cli
