// The --monitor status page: cpp-httplib on 127.0.0.1, serving the run's state as HTML
// (refreshing) and as JSON, from a snapshot the runner updates.
#pragma once
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "common/error.hpp"

namespace httplib {
class Server;
}

namespace batman::cli {

class Monitor {
 public:
  // port 0: a free port chosen by the kernel.
  static Result<std::unique_ptr<Monitor>> start(int port, std::string title);
  ~Monitor();
  std::string url() const { return url_; }
  void update(std::string state_json);

 private:
  Monitor() = default;
  std::unique_ptr<httplib::Server> server_;
  std::thread thread_;
  std::mutex mutex_;
  std::string snapshot_ = "{}";
  std::string title_;
  std::string url_;
};

}  // namespace batman::cli
