// Output capture: copy one pipe to several sinks (terminal, log file, rotating file) without
// loss or reordering within the stream.
#pragma once
#include <sys/types.h>

#include <cstddef>
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
  // True while bytes written here would go nowhere (a tee nobody follows): the pump may
  // then leave this sink out and move bytes to the others with splice(2).
  virtual bool idle() const { return false; }
  // Zero-copy path: a sink backed by a plain file moves up to `max` bytes straight from the
  // pipe `pipe_fd` with splice(2). Returns the bytes moved, 0 at end of stream, or -1 with
  // errno (EAGAIN: the pipe is empty; anything else: use write() from now on).
  virtual bool can_splice() const { return false; }
  virtual ssize_t splice_from(int pipe_fd, std::size_t max);
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
// as supervisord's stdout_logfile_maxbytes / _backups. max_bytes 0 = never rotate. open()
// takes a regular file or a character device (/dev/null), never a FIFO (open_regular).
class FileSink final : public Sink {
 public:
  static Result<std::unique_ptr<FileSink>> open(const std::string& path, std::uint64_t max_bytes = 0,
                                                int backups = 0);
  // Take an fd already opened (by openat, O_NOFOLLOW); `path` is only used for rotation.
  static std::unique_ptr<FileSink> adopt(UniqueFd fd, const std::string& path, std::uint64_t max_bytes = 0,
                                         int backups = 0);
  void write(std::string_view data) override;
  bool can_splice() const override { return splice_ok_; }
  ssize_t splice_from(int pipe_fd, std::size_t max) override;
  int fd() const { return fd_.get(); }
  // Called once, at the first write that failed (a full disk: ENOSPC), with one line naming
  // the file and the error; later failures only add to lost_bytes().
  void set_on_error(std::function<void(const std::string&)> on_error) { on_error_ = std::move(on_error); }
  std::uint64_t lost_bytes() const { return lost_; }
  bool failed() const { return error_reported_; }
 private:
  FileSink() = default;
  void init(UniqueFd fd);
  void report_error(const Error& e);
  void rotate();
  bool seek_end();
  std::string path_;
  UniqueFd fd_;
  std::uint64_t max_bytes_ = 0;
  int backups_ = 0;
  std::uint64_t size_ = 0;
  // splice(2) refuses O_APPEND files, so the splice path drops O_APPEND and appends by
  // seeking to the end before each write instead (a truncated log is still written from 0).
  bool append_flag_ = true;
  bool splice_ok_ = true;
  std::function<void(const std::string&)> on_error_;
  bool error_reported_ = false;
  std::uint64_t lost_ = 0;
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
  // Bytes moved by splice(2) and by read(2) so far (for tests and curiosity).
  std::uint64_t spliced() const { return spliced_; }
  std::uint64_t copied() const { return copied_; }
 private:
  // Bytes asked of one splice(2). A splice holds the pipe's lock while it copies into the
  // file, so the job cannot write meanwhile: small pieces let both sides run at once (with
  // 1 MiB pieces a `yes` spammer waited on the lock and capture ran at half speed).
  static constexpr std::size_t kSpliceLen = 1 << 16;
  void on_readable();
  // What one turn of moving bytes ended with: the pipe is empty, its writers are gone,
  // splice failed (read/write takes over), or the budget ran out with bytes left.
  enum class Moved { Drained, Closed, Fallback, More };
  // The one sink to splice into when every other sink is idle; nullptr: read/write.
  Sink* splice_target() const;
  Moved splice_some(Sink& target, std::uint64_t budget);
  // to_empty: keep reading until the pipe says EAGAIN (drain), else a short read ends it.
  Moved copy_some(std::uint64_t budget, bool to_empty);
  Moved move_some(std::uint64_t budget, bool to_empty);
  void grow_pipe();
  void close_pipe();
  EventLoop& loop_;
  UniqueFd fd_;
  std::vector<Sink*> sinks_;
  std::function<void()> on_eof_;
  bool splice_off_ = false;  // splice failed once: read/write for good
  bool grown_ = false;
  std::size_t capacity_ = 0;  // the pipe's size, for telling when it was full
  std::uint64_t spliced_ = 0, copied_ = 0;
};

// A pseudo-terminal for a job (`--tty`): the job's stdin, stdout and stderr are its slave
// side, so isatty() holds inside and programs keep their colours; what the job writes is read
// from the master side and goes to `sinks` (the terminal and the log: the same bytes, with
// the terminal's \r\n). The slave stays open here for the run's life (every attempt gets
// it), so the master never reads EIO and drain() takes what is left at the end. The slave
// starts with the size of batman's terminal (80x24 without one) and without echo: batman's
// own terminal already echoed what the user typed, and forwards it a line at a time.
class PseudoTerminal {
 public:
  static Result<std::unique_ptr<PseudoTerminal>> open(EventLoop& loop, std::vector<Sink*> sinks, int size_from);
  ~PseudoTerminal();
  PseudoTerminal(const PseudoTerminal&) = delete;
  PseudoTerminal& operator=(const PseudoTerminal&) = delete;
  int slave() const { return slave_.get(); }
  // Copy `in` (batman's stdin, not owned) to the job's input until its end, then send the
  // terminal's end-of-file (VEOF). `in` < 0, or one epoll cannot watch (a regular file,
  // /dev/null): end-of-file at once.
  void forward_input(int in);
  // SIGWINCH: give the job's terminal the size of `fd`'s (when it is a terminal).
  void resize_from(int fd);
  void drain();

 private:
  PseudoTerminal(EventLoop& loop) : loop_(loop) {}
  void on_input();
  void send(std::string_view data);
  void flush_pending();
  void end_input();
  EventLoop& loop_;
  UniqueFd slave_, writer_;  // writer_: a dup of the master, watched for EPOLLOUT on its own
  std::unique_ptr<OutputPump> pump_;
  int in_ = -1;
  bool in_watched_ = false, writer_watched_ = false, input_ended_ = false;
  bool at_line_start_ = true;
  std::string pending_;
};

// A pipe whose read end is non-blocking and close-on-exec, write end close-on-exec. It starts
// at the kernel's default size; the pump grows it (up to 1 MiB) once a job fills it, so only
// chatty jobs take pipe memory (unprivileged users have a per-user quota of pipe pages).
struct Pipe {
  UniqueFd read_end;
  UniqueFd write_end;
};
Result<Pipe> make_pipe();

}  // namespace batman::runner
