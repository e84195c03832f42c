// The live status page of one run (--monitor).
#include "src/monitor.hpp"

#include <httplib.h>

namespace batman::cli {
namespace {

std::string escape_html(const std::string& s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '&': out += "&amp;"; break;
      case '"': out += "&quot;"; break;
      default: out += c;
    }
  }
  return out;
}

}  // namespace

Result<std::unique_ptr<Monitor>> Monitor::start(int port, std::string title) {
  if (port < 0 || port > 65535) return fail("--monitor port " + std::to_string(port) + " is not in 0-65535");
  std::unique_ptr<Monitor> m(new Monitor());
  m->title_ = std::move(title);
  m->server_ = std::make_unique<httplib::Server>();
  Monitor* self = m.get();
  m->server_->Get("/status.json", [self](const httplib::Request&, httplib::Response& res) {
    std::lock_guard lock(self->mutex_);
    res.set_content(self->snapshot_, "application/json");
  });
  m->server_->Get("/", [self](const httplib::Request&, httplib::Response& res) {
    std::string body;
    {
      std::lock_guard lock(self->mutex_);
      body = "<!doctype html><html><head><meta charset=\"utf-8\"><meta http-equiv=\"refresh\" content=\"2\">"
             "<title>batman: " + escape_html(self->title_) + "</title></head><body><h1>batman: " +
             escape_html(self->title_) + "</h1><pre id=\"state\">" + escape_html(self->snapshot_) +
             "</pre></body></html>";
    }
    res.set_content(body, "text/html; charset=utf-8");
  });
  int bound = 0;
  if (port == 0) {
    bound = m->server_->bind_to_any_port("127.0.0.1");
  } else if (m->server_->bind_to_port("127.0.0.1", port)) {
    bound = port;
  }
  if (bound <= 0)
    return fail("--monitor: cannot listen on 127.0.0.1:" + std::to_string(port) +
                " (in use?): pick another port or use --monitor=0");
  m->url_ = "http://127.0.0.1:" + std::to_string(bound) + "/";
  m->thread_ = std::thread([self] { self->server_->listen_after_bind(); });
  return m;
}

Monitor::~Monitor() {
  if (server_) server_->stop();
  if (thread_.joinable()) thread_.join();
}

void Monitor::update(std::string state_json) {
  std::lock_guard lock(mutex_);
  snapshot_ = std::move(state_json);
}

}  // namespace batman::cli
