// Output capture: copy one pipe to several sinks (terminal, log file, rotating file) without
// loss or reordering within the stream.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/error.hpp"
#include "common/unique_fd.hpp"
#include "runner/event_loop.hpp"

namespace batman::runner {

// Where captured bytes go.
class Sink {
 public:
  virtual ~Sink() = default;
  virtual void write(std::string_view data) = 0;
  virtual void flush() {}
};

// Writes to an fd it does not own (a terminal, batman's stdout), all bytes, EINTR-safe.
// When the reader goes away (EPIPE: `batman-parallel p yes | head -1`), it stops writing and
// calls on_broken once, so the owner can end the job as a shell pipeline would.
class FdSink final : public Sink {
 public:
  explicit FdSink(int fd, std::function<void()> on_broken = {}) : fd_(fd), on_broken_(std::move(on_broken)) {}
  void write(std::string_view data) override;
  bool broken() const { return broken_; }
 private:
  int fd_;
  std::function<void()> on_broken_;
  bool broken_ = false;
};

// Appends to a file it owns; rotates at max_bytes keeping `backups` old files (name.1 ...),
// as supervisord's stdout_logfile_maxbytes / _backups. max_bytes 0 = never rotate.
class FileSink final : public Sink {
 public:
  static Result<std::unique_ptr<FileSink>> open(const std::string& path, std::uint64_t max_bytes = 0,
                                                int backups = 0);
  // Take an fd already opened (by openat, O_NOFOLLOW); `path` is only used for rotation.
  static std::unique_ptr<FileSink> adopt(UniqueFd fd, const std::string& path, std::uint64_t max_bytes = 0,
                                         int backups = 0);
  void write(std::string_view data) override;
  int fd() const { return fd_.get(); }
 private:
  FileSink() = default;
  void rotate();
  std::string path_;
  UniqueFd fd_;
  std::uint64_t max_bytes_ = 0;
  int backups_ = 0;
  std::uint64_t size_ = 0;
};

// Prefixes every complete line with `prefix` before passing it on (batch's "[task] ").
class LinePrefixSink final : public Sink {
 public:
  LinePrefixSink(std::string prefix, Sink& next) : prefix_(std::move(prefix)), next_(next) {}
  void write(std::string_view data) override;
  void flush() override;
 private:
  std::string prefix_;
  Sink& next_;
  std::string partial_;
};

// Reads one pipe on the loop and fans it out to sinks; `on_eof` runs when the writer side
// has closed and every byte has been delivered.
class OutputPump {
 public:
  OutputPump(EventLoop& loop, UniqueFd read_end, std::vector<Sink*> sinks,
             std::function<void()> on_eof = {});
  ~OutputPump();
  OutputPump(const OutputPump&) = delete;
  OutputPump& operator=(const OutputPump&) = delete;
  // Read whatever is left without waiting (at exit, before the final state is written).
  void drain();
  bool open() const { return static_cast<bool>(fd_); }
 private:
  void on_readable();
  void close_pipe();
  EventLoop& loop_;
  UniqueFd fd_;
  std::vector<Sink*> sinks_;
  std::function<void()> on_eof_;
};

// A pipe whose read end is non-blocking and close-on-exec, write end close-on-exec.
struct Pipe {
  UniqueFd read_end;
  UniqueFd write_end;
};
Result<Pipe> make_pipe();

}  // namespace batman::runner
