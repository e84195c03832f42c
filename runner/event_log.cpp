// spdlog logger over an fd of ours: append-only, no symlink following.
#include "runner/event_log.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cstdio>
#include <mutex>

#include <spdlog/pattern_formatter.h>
#include <spdlog/sinks/base_sink.h>

#include "common/fs.hpp"
#include "common/unique_fd.hpp"

namespace batman::runner {
namespace {

class FdLogSink final : public spdlog::sinks::base_sink<std::mutex> {
 public:
  FdLogSink(UniqueFd fd, std::string shown) : fd_(std::move(fd)), shown_(std::move(shown)) {}

 protected:
  void sink_it_(const spdlog::details::log_msg& msg) override {
    spdlog::memory_buf_t formatted;
    formatter_->format(msg, formatted);
    auto w = write_all(fd_.get(), std::string_view(formatted.data(), formatted.size()));
    if (!w && !failed_) {
      // A full disk: said once, on stderr (the log itself cannot take it).
      failed_ = true;
      std::fprintf(stderr, "batman: %s: %s: events from here on may be missing\n", shown_.c_str(),
                   w.error().message.c_str());
    }
  }
  void flush_() override {}

 private:
  UniqueFd fd_;
  std::string shown_;
  bool failed_ = false;
};

std::shared_ptr<spdlog::logger> make_logger(UniqueFd fd, const std::string& name, const std::string& shown) {
  auto sink = std::make_shared<FdLogSink>(std::move(fd), shown);
  auto logger = std::make_shared<spdlog::logger>(name, sink);
  logger->set_pattern("%Y-%m-%dT%H:%M:%S.%eZ [%l] %v", spdlog::pattern_time_type::utc);
  logger->set_level(spdlog::level::info);
  logger->flush_on(spdlog::level::info);
  return logger;
}

}  // namespace

Result<std::shared_ptr<spdlog::logger>> open_event_log(int dirfd, const std::string& file_name,
                                                       const std::string& logger_name, const std::string& shown) {
  auto fd = open_regular_at(dirfd, file_name, O_WRONLY | O_CREAT | O_APPEND, 0600,
                            shown.empty() ? file_name : shown);
  if (!fd) return std::unexpected(fd.error().wrap("event log"));
  return make_logger(std::move(*fd), logger_name, shown.empty() ? file_name : shown);
}

Result<std::shared_ptr<spdlog::logger>> open_event_log_path(const std::string& path,
                                                            const std::string& logger_name) {
  auto fd = open_regular(path, O_WRONLY | O_CREAT | O_APPEND, 0600, true);
  if (!fd) return std::unexpected(fd.error().wrap("log file"));
  return make_logger(std::move(*fd), logger_name, path);
}

}  // namespace batman::runner
