// Output capture: pipes read on the event loop and fanned out to sinks in order.
#include "runner/output.hpp"

#include <fcntl.h>
#include <sys/epoll.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>

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

Result<std::unique_ptr<FileSink>> FileSink::open(const std::string& path, std::uint64_t max_bytes,
                                                 int backups) {
  std::unique_ptr<FileSink> sink(new FileSink());
  sink->path_ = path;
  sink->max_bytes_ = max_bytes;
  sink->backups_ = backups;
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) return sys_error("open log " + path);
  sink->fd_.reset(fd);
  struct stat st{};
  if (::fstat(fd, &st) == 0) sink->size_ = static_cast<std::uint64_t>(st.st_size);
  return sink;
}

std::unique_ptr<FileSink> FileSink::adopt(UniqueFd fd, const std::string& path, std::uint64_t max_bytes,
                                          int backups) {
  std::unique_ptr<FileSink> sink(new FileSink());
  sink->path_ = path;
  sink->max_bytes_ = max_bytes;
  sink->backups_ = backups;
  struct stat st{};
  if (::fstat(fd.get(), &st) == 0) sink->size_ = static_cast<std::uint64_t>(st.st_size);
  sink->fd_ = std::move(fd);
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
  int fd = ::open(path_.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd >= 0) fd_.reset(fd);
  size_ = 0;
}

void FileSink::write(std::string_view data) {
  while (!data.empty()) {
    std::string_view chunk = data;
    if (max_bytes_ > 0) {
      if (size_ >= max_bytes_) rotate();
      std::uint64_t room = max_bytes_ - size_;
      if (chunk.size() > room) chunk = chunk.substr(0, static_cast<std::size_t>(room));
    }
    (void)write_all(fd_.get(), chunk);
    size_ += chunk.size();
    data.remove_prefix(chunk.size());
  }
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
  (void)loop_.watch(fd, EPOLLIN, [this](std::uint32_t) { on_readable(); });
}

OutputPump::~OutputPump() {
  if (fd_) loop_.unwatch(fd_.get());
}

void OutputPump::on_readable() {
  char buf[65536];
  // Bounded rounds per wake-up so one noisy job cannot starve the loop.
  for (int round = 0; round < 16; ++round) {
    ssize_t n = ::read(fd_.get(), buf, sizeof buf);
    if (n > 0) {
      std::string_view data(buf, static_cast<std::size_t>(n));
      for (Sink* s : sinks_) s->write(data);
      if (static_cast<std::size_t>(n) < sizeof buf) return;
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) return;
    close_pipe();  // EOF or a read error: the writer side is gone
    return;
  }
}

void OutputPump::drain() {
  if (!fd_) return;
  char buf[65536];
  for (;;) {
    ssize_t n = ::read(fd_.get(), buf, sizeof buf);
    if (n > 0) {
      std::string_view data(buf, static_cast<std::size_t>(n));
      for (Sink* s : sinks_) s->write(data);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) return;
    close_pipe();
    return;
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

Result<Pipe> make_pipe() {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) return sys_error("pipe2");
  Pipe p{UniqueFd(fds[0]), UniqueFd(fds[1])};
  int flags = ::fcntl(fds[0], F_GETFL);
  ::fcntl(fds[0], F_SETFL, flags | O_NONBLOCK);
  // A larger pipe means fewer wake-ups for chatty jobs.
  ::fcntl(fds[0], F_SETPIPE_SZ, 1 << 18);
  return p;
}

}  // namespace batman::runner
