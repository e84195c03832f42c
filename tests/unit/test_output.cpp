// Output capture: the pump's zero-copy splice(2) path into a log file (bytes intact and in
// order, rotation exact) and its read/write fallback when another sink wants the bytes.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <thread>

#include "common/fs.hpp"
#include "runner/event_loop.hpp"
#include "runner/output.hpp"

namespace batman::runner {
namespace {

// Bytes no two offsets of which are likely to match by accident: a reordering or a loss shows.
std::string pattern(std::size_t n, std::uint32_t seed = 12345) {
  std::string s(n, '\0');
  std::uint32_t x = seed;
  for (auto& c : s) {
    x = x * 1664525u + 1013904223u;
    c = static_cast<char>(x >> 24);
  }
  return s;
}

std::string slurp(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>()};
}

bool exists(const std::string& path) {
  struct stat st{};
  return ::stat(path.c_str(), &st) == 0;
}

// Keeps what it is given; `idle` says whether the pump may leave it out.
class Collect final : public Sink {
 public:
  void write(std::string_view data) override { got.append(data); }
  bool idle() const override { return idle_now; }
  std::string got;
  bool idle_now = false;
};

class OutputTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/batman-output-test.XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    auto l = EventLoop::create();
    ASSERT_TRUE(l);
    loop_ = std::move(*l);
    auto p = make_pipe();
    ASSERT_TRUE(p);
    pipe_ = std::move(*p);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  // Writes `data` from a thread, closes the write end, and runs the loop until the pump
  // has seen the end: the real path, with the loop's wake-ups and budgets.
  void pump_through_loop(OutputPump& pump, const std::string& data) {
    UniqueFd w = std::move(pipe_.write_end);
    std::thread writer([&data, fd = std::move(w)]() mutable {
      ASSERT_TRUE(write_all(fd.get(), data));
      fd.reset();
    });
    for (int i = 0; i < 100000 && pump.open(); ++i) ASSERT_TRUE(loop_->run_once(std::chrono::milliseconds(100)));
    writer.join();
    EXPECT_FALSE(pump.open());
  }

  // Puts `data` in the pipe without a thread (it must fit the pipe).
  void put(const std::string& data) {
    ASSERT_GE(::fcntl(pipe_.write_end.get(), F_SETPIPE_SZ, 1 << 20), static_cast<int>(data.size()));
    ASSERT_TRUE(write_all(pipe_.write_end.get(), data));
  }

  std::string dir_;
  std::unique_ptr<EventLoop> loop_;
  Pipe pipe_;
};

TEST_F(OutputTest, SpliceMovesEveryByteInOrderToALoneFileSink) {
  std::string path = dir_ + "/out.log";
  auto file = FileSink::open(path);
  ASSERT_TRUE(file);
  bool eof = false;
  OutputPump pump(*loop_, std::move(pipe_.read_end), {file->get()}, [&] { eof = true; });
  const std::string data = pattern(9 * 1024 * 1024 + 4321);
  pump_through_loop(pump, data);
  EXPECT_TRUE(eof);
  EXPECT_EQ(pump.spliced(), data.size());
  EXPECT_EQ(pump.copied(), 0u);
  std::string got = slurp(path);
  ASSERT_EQ(got.size(), data.size());
  EXPECT_TRUE(got == data);
}

TEST_F(OutputTest, SpliceRotatesAtExactlyMaxBytes) {
  std::string path = dir_ + "/rot.log";
  const std::uint64_t max = 100000;
  auto file = FileSink::open(path, max, 5);
  ASSERT_TRUE(file);
  OutputPump pump(*loop_, std::move(pipe_.read_end), {file->get()});
  const std::string data = pattern(4 * max + 12345, 7);
  pump_through_loop(pump, data);
  EXPECT_EQ(pump.spliced(), data.size());
  EXPECT_EQ(pump.copied(), 0u);
  // Oldest first: rot.log.4 .. rot.log.1, then rot.log.
  std::string joined;
  for (int i = 4; i >= 1; --i) {
    std::string part = slurp(path + "." + std::to_string(i));
    EXPECT_EQ(part.size(), max) << "rot.log." << i;
    joined += part;
  }
  std::string current = slurp(path);
  EXPECT_EQ(current.size(), 12345u);
  joined += current;
  EXPECT_FALSE(exists(path + ".5"));
  EXPECT_TRUE(joined == data);
}

TEST_F(OutputTest, SpliceRotationKeepsOnlyTheBackupsAskedFor) {
  std::string path = dir_ + "/few.log";
  const std::uint64_t max = 65536;
  auto file = FileSink::open(path, max, 2);
  ASSERT_TRUE(file);
  OutputPump pump(*loop_, std::move(pipe_.read_end), {file->get()});
  const std::string data = pattern(10 * max, 99);  // exactly ten files' worth
  pump_through_loop(pump, data);
  EXPECT_EQ(pump.spliced(), data.size());
  // A file is rotated as soon as it is full, as supervisord does: the current one is empty.
  EXPECT_EQ(slurp(path), "");
  EXPECT_EQ(slurp(path + ".1"), data.substr(9 * max));
  EXPECT_EQ(slurp(path + ".2"), data.substr(8 * max, max));
  EXPECT_FALSE(exists(path + ".3"));
}

TEST_F(OutputTest, SpliceRotationWithoutBackupsTruncates) {
  std::string path = dir_ + "/trunc.log";
  auto file = FileSink::open(path, 1000, 0);
  ASSERT_TRUE(file);
  OutputPump pump(*loop_, std::move(pipe_.read_end), {file->get()});
  const std::string data = pattern(3500, 3);
  put(data);
  pump.drain();
  EXPECT_EQ(pump.spliced(), data.size());
  // Truncated back to 0 at each 1000 bytes: what is left is the last 500, from offset 0.
  EXPECT_EQ(slurp(path), data.substr(3000));
  EXPECT_FALSE(exists(path + ".1"));
}

TEST_F(OutputTest, ASecondSinkMeansReadAndWriteToBoth) {
  std::string path = dir_ + "/both.log";
  auto file = FileSink::open(path, 50000, 3);
  ASSERT_TRUE(file);
  Collect terminal;
  OutputPump pump(*loop_, std::move(pipe_.read_end), {file->get(), &terminal});
  const std::string data = pattern(170000, 5);
  pump_through_loop(pump, data);
  EXPECT_EQ(pump.spliced(), 0u);
  EXPECT_EQ(pump.copied(), data.size());
  EXPECT_TRUE(terminal.got == data);
  std::string joined = slurp(path + ".3") + slurp(path + ".2") + slurp(path + ".1") + slurp(path);
  EXPECT_EQ(slurp(path + ".1").size(), 50000u);
  EXPECT_TRUE(joined == data);
}

TEST_F(OutputTest, AnIdleTeeIsLeftOutUntilSomeoneFollows) {
  std::string path = dir_ + "/tee.log";
  auto file = FileSink::open(path);
  ASSERT_TRUE(file);
  Collect tee;
  tee.idle_now = true;
  OutputPump pump(*loop_, std::move(pipe_.read_end), {file->get(), &tee});
  const std::string a = pattern(300000, 1), b = pattern(200000, 2), c = pattern(100000, 3);
  put(a);
  pump.drain();
  EXPECT_EQ(pump.spliced(), a.size());
  EXPECT_EQ(tee.got, "");
  tee.idle_now = false;  // `tail -f` joins
  put(b);
  pump.drain();
  EXPECT_EQ(pump.copied(), b.size());
  EXPECT_TRUE(tee.got == b);
  tee.idle_now = true;  // and leaves
  put(c);
  pump.drain();
  EXPECT_EQ(pump.spliced(), a.size() + c.size());
  EXPECT_TRUE(slurp(path) == a + b + c);
}

TEST_F(OutputTest, SpliceAppendsToAnAdoptedAppendOnlyFileEvenAfterATruncate) {
  std::string path = dir_ + "/adopted.log";
  {
    std::ofstream f(path, std::ios::binary);
    f << "already here\n";
  }
  UniqueFd fd(::open(path.c_str(), O_WRONLY | O_APPEND | O_CLOEXEC));
  ASSERT_TRUE(fd);
  auto file = FileSink::adopt(std::move(fd), path);
  OutputPump pump(*loop_, std::move(pipe_.read_end), {file.get()});
  const std::string a = pattern(200000, 11), b = pattern(1000, 12);
  put(a);
  pump.drain();
  EXPECT_EQ(pump.spliced(), a.size());  // O_APPEND did not send it to read/write
  EXPECT_TRUE(slurp(path) == "already here\n" + a);
  // Someone truncates the log (logrotate's copytruncate): new bytes start at 0, no hole.
  ASSERT_EQ(::truncate(path.c_str(), 0), 0);
  put(b);
  pump.drain();
  EXPECT_TRUE(slurp(path) == b);
}

TEST_F(OutputTest, WriteAfterSpliceStillAppends) {
  std::string path = dir_ + "/mixed.log";
  auto file = FileSink::open(path);
  ASSERT_TRUE(file);
  OutputPump pump(*loop_, std::move(pipe_.read_end), {file->get()});
  const std::string a = pattern(5000, 21), b = pattern(7000, 22);
  put(a);
  pump.drain();
  EXPECT_EQ(pump.spliced(), a.size());
  ASSERT_EQ(::truncate(path.c_str(), 100), 0);
  (*file)->write(b);
  EXPECT_TRUE(slurp(path) == a.substr(0, 100) + b);
}

// A FIFO as a log would block open() (no reader) or the loop (a full pipe): refused at once.
// A character device (a user's `stdout: /dev/null`) is taken, with write() instead of splice.
TEST_F(OutputTest, AFifoIsRefusedAndACharacterDeviceGetsWrite) {
  std::string path = dir_ + "/fifo";
  ASSERT_EQ(::mkfifo(path.c_str(), 0600), 0);
  auto refused = FileSink::open(path);
  ASSERT_FALSE(refused);
  EXPECT_NE(refused.error().message.find("fifo: not a regular file (a FIFO)"), std::string::npos)
      << refused.error().message;
  UniqueFd reader(::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC));
  ASSERT_TRUE(reader);
  EXPECT_FALSE(FileSink::open(path)) << "not with a reader either";
  auto file = FileSink::open("/dev/null");
  ASSERT_TRUE(file) << file.error().message;
  EXPECT_FALSE((*file)->can_splice());
  OutputPump pump(*loop_, std::move(pipe_.read_end), {file->get()});
  const std::string data = pattern(3000, 31);
  put(data);
  pump.drain();
  EXPECT_EQ(pump.spliced(), 0u);
  EXPECT_EQ(pump.copied(), data.size());
  EXPECT_FALSE((*file)->failed());
}

// A log the disk cannot take is said once, however many writes fail (here: /dev/full, whose
// every write fails with ENOSPC), and the bytes lost are counted.
TEST_F(OutputTest, AFullDiskIsSaidOnce) {
  auto file = FileSink::open("/dev/full");
  ASSERT_TRUE(file) << file.error().message;
  std::vector<std::string> said;
  (*file)->set_on_error([&](const std::string& line) { said.push_back(line); });
  for (int i = 0; i < 10; ++i) (*file)->write(pattern(1000, i));
  ASSERT_EQ(said.size(), 1u);
  EXPECT_NE(said[0].find("/dev/full: write: No space left on device"), std::string::npos) << said[0];
  EXPECT_EQ((*file)->lost_bytes(), 10000u);
  EXPECT_TRUE((*file)->failed());
}

TEST_F(OutputTest, AChattyJobGetsABiggerPipe) {
  auto file = FileSink::open(dir_ + "/big.log");
  ASSERT_TRUE(file);
  int read_fd = pipe_.read_end.get();
  int before = ::fcntl(read_fd, F_GETPIPE_SZ);
  OutputPump pump(*loop_, std::move(pipe_.read_end), {file->get()});
  ASSERT_TRUE(write_all(pipe_.write_end.get(), pattern(static_cast<std::size_t>(before), 41)));  // a full pipe
  pump.drain();
  EXPECT_GT(::fcntl(read_fd, F_GETPIPE_SZ), before);
}

}  // namespace
}  // namespace batman::runner
