// Output capture: pipes read on the event loop and fanned out to sinks in order.
#include "runner/output.hpp"

#include <fcntl.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>

#include "common/fs.hpp"

namespace batman::runner {

void FdSink::write(std::string_view data) {
  if (broken_) return;
  // A terminal that went away must not stop capture to the log.
  auto w = write_all(fd_, data);
  if (!w && w.error().code == EPIPE) {
    broken_ = true;
    if (on_broken_) on_broken_();
  }
}

ssize_t Sink::splice_from(int, std::size_t) {
  errno = EINVAL;
  return -1;
}

namespace {
constexpr int kLogFlags = O_WRONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW;
}  // namespace

void FileSink::init(UniqueFd fd) {
  fd_ = std::move(fd);
  struct stat st{};
  if (::fstat(fd_.get(), &st) == 0) {
    size_ = static_cast<std::uint64_t>(st.st_size);
    // Only a regular file takes splice at a seekable end; a FIFO, tty or device gets write().
    splice_ok_ = S_ISREG(st.st_mode);
  } else {
    splice_ok_ = false;
  }
  int flags = ::fcntl(fd_.get(), F_GETFL);
  append_flag_ = flags >= 0 && (flags & O_APPEND);
}

Result<std::unique_ptr<FileSink>> FileSink::open(const std::string& path, std::uint64_t max_bytes,
                                                 int backups) {
  std::unique_ptr<FileSink> sink(new FileSink());
  sink->path_ = path;
  sink->max_bytes_ = max_bytes;
  sink->backups_ = backups;
  // A user's `stdout: /dev/null` is fine; a FIFO, socket or directory is refused.
  auto fd = open_regular(path, kLogFlags | O_APPEND, 0600, true);
  if (!fd) return std::unexpected(fd.error());
  sink->init(std::move(*fd));
  return sink;
}

std::unique_ptr<FileSink> FileSink::adopt(UniqueFd fd, const std::string& path, std::uint64_t max_bytes,
                                          int backups) {
  std::unique_ptr<FileSink> sink(new FileSink());
  sink->path_ = path;
  sink->max_bytes_ = max_bytes;
  sink->backups_ = backups;
  sink->init(std::move(fd));
  return sink;
}

void FileSink::rotate() {
  // name.(N-1) -> name.N ... name -> name.1, as supervisord does; with no backups, truncate.
  if (backups_ <= 0) {
    if (::ftruncate(fd_.get(), 0) == 0) size_ = 0;
    return;
  }
  for (int i = backups_ - 1; i >= 1; --i) {
    std::string from = path_ + "." + std::to_string(i);
    std::string to = path_ + "." + std::to_string(i + 1);
    ::rename(from.c_str(), to.c_str());
  }
  ::rename(path_.c_str(), (path_ + ".1").c_str());
  // The new file gets the same append mode as the old one had (see seek_end).
  auto fd = open_regular(path_, kLogFlags | (append_flag_ ? O_APPEND : 0), 0600, true);
  if (fd) fd_ = std::move(*fd);
  else report_error(fd.error());  // the bytes go on into name.1
  size_ = 0;
}

void FileSink::report_error(const Error& e) {
  if (error_reported_) return;
  error_reported_ = true;
  if (on_error_) on_error_(path_ + ": " + e.message + ": the log is incomplete from here on");
}

bool FileSink::seek_end() {
  // With O_APPEND the kernel does it; without (the splice path), writes go where the file
  // ends now, so a log truncated behind our back (copytruncate) is not left sparse.
  return append_flag_ || ::lseek(fd_.get(), 0, SEEK_END) >= 0;
}

void FileSink::write(std::string_view data) {
  while (!data.empty()) {
    std::string_view chunk = data;
    if (max_bytes_ > 0) {
      if (size_ >= max_bytes_) rotate();
      std::uint64_t room = max_bytes_ - size_;
      if (chunk.size() > room) chunk = chunk.substr(0, static_cast<std::size_t>(room));
    }
    (void)seek_end();
    if (auto w = write_all(fd_.get(), chunk); !w) {
      // ENOSPC, EFBIG, EIO...: the bytes are lost; the first loss is said once.
      lost_ += chunk.size();
      report_error(w.error());
    } else {
      size_ += chunk.size();
    }
    data.remove_prefix(chunk.size());
    // Rotate as soon as the file is full, as supervisord does (and as the splice path must:
    // it cannot tell whether more bytes are coming before it asks for them).
    if (max_bytes_ > 0 && size_ >= max_bytes_) rotate();
  }
}

ssize_t FileSink::splice_from(int pipe_fd, std::size_t max) {
  if (!splice_ok_ || max == 0) {
    errno = EINVAL;
    return -1;
  }
  auto give_up = [this](int err) -> ssize_t {
    // Back to write(), with O_APPEND again so the kernel appends for us.
    splice_ok_ = false;
    int flags = ::fcntl(fd_.get(), F_GETFL);
    if (flags >= 0 && ::fcntl(fd_.get(), F_SETFL, flags | O_APPEND) == 0) append_flag_ = true;
    errno = err;
    return -1;
  };
  if (append_flag_) {
    // splice(2) into an O_APPEND file fails with EINVAL: append by seeking instead.
    int flags = ::fcntl(fd_.get(), F_GETFL);
    if (flags < 0 || ::fcntl(fd_.get(), F_SETFL, flags & ~O_APPEND) != 0) return give_up(EINVAL);
    append_flag_ = false;
  }
  if (max_bytes_ > 0) {
    // Never past max_bytes: the rotated files hold exactly max_bytes each. (A file found
    // full at open is rotated before the first byte.)
    if (size_ >= max_bytes_) rotate();
    max = static_cast<std::size_t>(std::min<std::uint64_t>(max, max_bytes_ - size_));
  }
  if (!seek_end()) return give_up(errno);
  ssize_t n = ::splice(pipe_fd, nullptr, fd_.get(), nullptr, max, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
  if (n > 0) {
    size_ += static_cast<std::uint64_t>(n);
    if (max_bytes_ > 0 && size_ >= max_bytes_) rotate();
  } else if (n < 0 && errno != EAGAIN && errno != EINTR) {
    return give_up(errno);
  }
  return n;
}

void LinePrefixSink::write(std::string_view data) {
  std::string out;
  while (!data.empty()) {
    auto nl = data.find('\n');
    if (nl == std::string_view::npos) {
      partial_.append(data);
      break;
    }
    out += prefix_;
    out += partial_;
    out.append(data.substr(0, nl + 1));
    partial_.clear();
    data.remove_prefix(nl + 1);
  }
  if (!out.empty()) next_.write(out);
}

void LinePrefixSink::flush() {
  if (!partial_.empty()) {
    next_.write(prefix_ + partial_ + "\n");
    partial_.clear();
  }
  next_.flush();
}

OutputPump::OutputPump(EventLoop& loop, UniqueFd read_end, std::vector<Sink*> sinks,
                       std::function<void()> on_eof)
    : loop_(loop), fd_(std::move(read_end)), sinks_(std::move(sinks)), on_eof_(std::move(on_eof)) {
  int fd = fd_.get();
  int size = ::fcntl(fd, F_GETPIPE_SZ);
  capacity_ = size > 0 ? static_cast<std::size_t>(size) : 65536;
  (void)loop_.watch(fd, EPOLLIN, [this](std::uint32_t) { on_readable(); });
}

OutputPump::~OutputPump() {
  if (fd_) loop_.unwatch(fd_.get());
}

void OutputPump::grow_pipe() {
  // The job filled the pipe: give it a bigger one, so a chatty job costs fewer wake-ups and
  // more bytes per wake-up. 1 MiB is Linux's default pipe-max-size; past a user's pipe quota the
  // kernel refuses (EPERM) and the pipe stays as it is.
  grown_ = true;
  for (int size : {1 << 20, 1 << 18}) {
    int got = ::fcntl(fd_.get(), F_SETPIPE_SZ, size);
    if (got > 0) {
      capacity_ = static_cast<std::size_t>(got);
      return;
    }
  }
}

Sink* OutputPump::splice_target() const {
  if (splice_off_) return nullptr;
  Sink* target = nullptr;
  for (Sink* s : sinks_) {
    if (!target && s->can_splice()) {
      target = s;
    } else if (!s->idle()) {
      return nullptr;  // a second sink wants the bytes too: read them once, write them to each
    }
  }
  return target;
}

OutputPump::Moved OutputPump::splice_some(Sink& target, std::uint64_t budget) {
  std::uint64_t moved = 0;
  while (moved < budget) {
    ssize_t n = target.splice_from(fd_.get(), kSpliceLen);
    if (n > 0) {
      moved += static_cast<std::uint64_t>(n);
      spliced_ += static_cast<std::uint64_t>(n);
      if (!grown_ && static_cast<std::size_t>(n) >= capacity_) grow_pipe();
      continue;
    }
    if (n == 0) return Moved::Closed;
    if (errno == EINTR) continue;
    if (errno == EAGAIN) return Moved::Drained;
    splice_off_ = true;  // EINVAL (a file splice cannot write), ENOSPC...: write() from now on
    return Moved::Fallback;
  }
  return Moved::More;
}

OutputPump::Moved OutputPump::copy_some(std::uint64_t budget, bool to_empty) {
  char buf[65536];
  std::uint64_t moved = 0;
  while (moved < budget) {
    ssize_t n = ::read(fd_.get(), buf, sizeof buf);
    if (n > 0) {
      std::string_view data(buf, static_cast<std::size_t>(n));
      for (Sink* s : sinks_) s->write(data);
      moved += static_cast<std::uint64_t>(n);
      copied_ += static_cast<std::uint64_t>(n);
      if (!grown_ && static_cast<std::size_t>(n) >= capacity_) grow_pipe();
      // A short read most likely emptied the pipe: spare the read that would say EAGAIN.
      if (!to_empty && static_cast<std::size_t>(n) < sizeof buf) return Moved::Drained;
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) return Moved::Drained;
    return Moved::Closed;  // EOF or a read error: the writer side is gone
  }
  return Moved::More;
}

OutputPump::Moved OutputPump::move_some(std::uint64_t budget, bool to_empty) {
  if (Sink* target = splice_target()) {
    Moved m = splice_some(*target, budget);
    if (m != Moved::Fallback) return m;
  }
  return copy_some(budget, to_empty);
}

void OutputPump::on_readable() {
  // A bounded amount per wake-up so one noisy job cannot starve the loop.
  if (move_some(4 << 20, false) == Moved::Closed) close_pipe();
}

void OutputPump::drain() {
  if (!fd_) return;
  for (;;) {
    Moved m = move_some(UINT64_MAX, true);
    if (m == Moved::Closed) close_pipe();
    if (m != Moved::More) return;
  }
}

void OutputPump::close_pipe() {
  for (Sink* s : sinks_) s->flush();
  loop_.unwatch(fd_.get());
  fd_.reset();
  if (on_eof_) {
    auto cb = std::move(on_eof_);
    cb();
  }
}

Result<std::unique_ptr<PseudoTerminal>> PseudoTerminal::open(EventLoop& loop, std::vector<Sink*> sinks,
                                                              int size_from) {
  std::unique_ptr<PseudoTerminal> t(new PseudoTerminal(loop));
  UniqueFd master(::posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC));
  if (!master) return sys_error("--tty: open /dev/ptmx");
  if (::grantpt(master.get()) != 0 || ::unlockpt(master.get()) != 0) return sys_error("--tty: unlockpt");
  char name[128];
  if (::ptsname_r(master.get(), name, sizeof name) != 0) return sys_error("--tty: ptsname");
  t->slave_.reset(::open(name, O_RDWR | O_NOCTTY | O_CLOEXEC));
  if (!t->slave_) return sys_error(std::string("--tty: open ") + name);
  termios mode{};
  if (::tcgetattr(t->slave_.get(), &mode) == 0) {
    mode.c_lflag &= ~static_cast<tcflag_t>(ECHO | ECHONL);
    (void)::tcsetattr(t->slave_.get(), TCSANOW, &mode);
  }
  winsize size{};
  size.ws_col = 80;
  size.ws_row = 24;
  winsize theirs{};
  if (size_from >= 0 && ::ioctl(size_from, TIOCGWINSZ, &theirs) == 0 && theirs.ws_col > 0) size = theirs;
  (void)::ioctl(master.get(), TIOCSWINSZ, &size);
  t->writer_.reset(::fcntl(master.get(), F_DUPFD_CLOEXEC, 3));
  if (!t->writer_) return sys_error("--tty: dup");
  ::fcntl(master.get(), F_SETFL, ::fcntl(master.get(), F_GETFL) | O_NONBLOCK);  // shared with writer_
  t->pump_ = std::make_unique<OutputPump>(loop, std::move(master), std::move(sinks));
  return t;
}

PseudoTerminal::~PseudoTerminal() {
  if (in_watched_) loop_.unwatch(in_);
  if (writer_watched_) loop_.unwatch(writer_.get());
}

void PseudoTerminal::forward_input(int in) {
  in_ = in;
  // A batman in the background of its terminal would be stopped (SIGTTIN) by reading it.
  if (in_ >= 0 && ::isatty(in_) && ::tcgetpgrp(in_) != ::getpgrp()) in_ = -1;
  if (in_ >= 0 && loop_.watch(in_, EPOLLIN, [this](std::uint32_t) { on_input(); })) {
    in_watched_ = true;
    return;
  }
  end_input();
}

void PseudoTerminal::on_input() {
  char buf[4096];
  ssize_t n = ::read(in_, buf, sizeof buf);
  if (n < 0 && (errno == EINTR || errno == EAGAIN)) return;
  if (n <= 0) {
    loop_.unwatch(in_);
    in_watched_ = false;
    end_input();
    return;
  }
  send(std::string_view(buf, static_cast<std::size_t>(n)));
}

void PseudoTerminal::end_input() {
  if (input_ended_) return;
  input_ended_ = true;
  // The line discipline takes VEOF as end-of-file only at the start of a line: a partial
  // last line is ended by one VEOF, the end-of-file is the next.
  termios mode{};
  char eof = ::tcgetattr(slave_.get(), &mode) == 0 && mode.c_cc[VEOF] ? static_cast<char>(mode.c_cc[VEOF]) : '\x04';
  send(at_line_start_ ? std::string(1, eof) : std::string(2, eof));
}

void PseudoTerminal::send(std::string_view data) {
  if (!data.empty()) at_line_start_ = data.back() == '\n';
  pending_.append(data);
  flush_pending();
}

void PseudoTerminal::flush_pending() {
  while (!pending_.empty()) {
    ssize_t n = ::write(writer_.get(), pending_.data(), pending_.size());
    if (n > 0) {
      pending_.erase(0, static_cast<std::size_t>(n));
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) break;
    pending_.clear();  // the terminal is gone: nothing will read it
  }
  // Backpressure: while the job does not read, batman does not either.
  if (pending_.empty()) {
    if (writer_watched_) loop_.unwatch(writer_.get());
    writer_watched_ = false;
    if (in_ >= 0 && !in_watched_ && !input_ended_)
      in_watched_ = static_cast<bool>(loop_.watch(in_, EPOLLIN, [this](std::uint32_t) { on_input(); }));
    return;
  }
  if (in_watched_) loop_.unwatch(in_);
  in_watched_ = false;
  if (!writer_watched_)
    writer_watched_ = static_cast<bool>(loop_.watch(writer_.get(), EPOLLOUT, [this](std::uint32_t) { flush_pending(); }));
}

void PseudoTerminal::resize_from(int fd) {
  winsize size{};
  if (::ioctl(fd, TIOCGWINSZ, &size) == 0 && size.ws_col > 0) (void)::ioctl(writer_.get(), TIOCSWINSZ, &size);
}

void PseudoTerminal::drain() {
  if (pump_) pump_->drain();
}

Result<Pipe> make_pipe() {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) return sys_error("pipe2");
  Pipe p{UniqueFd(fds[0]), UniqueFd(fds[1])};
  int flags = ::fcntl(fds[0], F_GETFL);
  ::fcntl(fds[0], F_SETFL, flags | O_NONBLOCK);
  return p;
}

}  // namespace batman::runner
