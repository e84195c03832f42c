// spdlog logger over an fd of ours: append-only, no symlink following.
#include "runner/event_log.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <mutex>

#include <spdlog/pattern_formatter.h>
#include <spdlog/sinks/base_sink.h>

#include "common/fs.hpp"
#include "common/unique_fd.hpp"

namespace batman::runner {
namespace {

class FdLogSink final : public spdlog::sinks::base_sink<std::mutex> {
 public:
  explicit FdLogSink(UniqueFd fd) : fd_(std::move(fd)) {}

 protected:
  void sink_it_(const spdlog::details::log_msg& msg) override {
    spdlog::memory_buf_t formatted;
    formatter_->format(msg, formatted);
    (void)write_all(fd_.get(), std::string_view(formatted.data(), formatted.size()));
  }
  void flush_() override {}

 private:
  UniqueFd fd_;
};

std::shared_ptr<spdlog::logger> make_logger(UniqueFd fd, const std::string& name) {
  auto sink = std::make_shared<FdLogSink>(std::move(fd));
  auto logger = std::make_shared<spdlog::logger>(name, sink);
  logger->set_pattern("%Y-%m-%dT%H:%M:%S.%eZ [%l] %v", spdlog::pattern_time_type::utc);
  logger->set_level(spdlog::level::info);
  logger->flush_on(spdlog::level::info);
  return logger;
}

}  // namespace

Result<std::shared_ptr<spdlog::logger>> open_event_log(int dirfd, const std::string& file_name,
                                                       const std::string& logger_name) {
  int fd = ::openat(dirfd, file_name.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (fd < 0) return sys_error("open event log " + file_name);
  return make_logger(UniqueFd(fd), logger_name);
}

Result<std::shared_ptr<spdlog::logger>> open_event_log_path(const std::string& path,
                                                            const std::string& logger_name) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
  if (fd < 0) return sys_error("open log file " + path);
  return make_logger(UniqueFd(fd), logger_name);
}

}  // namespace batman::runner
