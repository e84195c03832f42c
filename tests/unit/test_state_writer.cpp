// StateWriter tests: the newest state of a run wins, every run gets its file, nothing but the
// state files is left behind, trees are removed, and a failed write is reported by flush().
#include <fcntl.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <mutex>
#include <thread>

#include "common/clock.hpp"
#include "common/fs.hpp"
#include "runner/state_writer.hpp"

namespace batman::runner {
namespace {

class StateWriterTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/batman-state-writer.XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    fd_.reset(::open(dir_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    ASSERT_TRUE(fd_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  static RunState state(const std::string& id, const std::string& status) {
    RunState s;
    s.project = "p";
    s.run_id = id;
    s.kind = "batch";
    s.status = status;
    return s;
  }

  bool exists(const std::string& id) const {
    struct stat st{};
    return ::fstatat(fd_.get(), (id + ".json").c_str(), &st, 0) == 0;
  }

  std::string dir_;
  UniqueFd fd_;
};

TEST_F(StateWriterTest, NewestStateWinsAndEveryRunIsWritten) {
  StateWriter writer(fd_.get());
  for (int i = 0; i < 200; ++i) {
    writer.submit(state("task" + std::to_string(i % 50), "running"));
    writer.submit(state("task" + std::to_string(i % 50), i >= 150 ? "succeeded" : "running"));
  }
  EXPECT_TRUE(writer.flush().empty());
  auto names = list_dir(fd_.get());
  ASSERT_TRUE(names);
  EXPECT_EQ(names->size(), 50u) << "no temp file left behind";
  for (int i = 0; i < 50; ++i) {
    auto s = read_state(fd_.get(), "task" + std::to_string(i));
    ASSERT_TRUE(s) << s.error().message;
    EXPECT_EQ(s->status, "succeeded");
  }
}

// Time is a FakeClock's: settle() returns once what the clock's now makes due is done.
TEST_F(StateWriterTest, DelayedStateIsReplacedOrWrittenWhenDue) {
  FakeClock clock;
  StateWriter writer(fd_.get(), clock);
  writer.submit(state("quick", "running"), std::chrono::hours(1));
  writer.submit(state("slow", "running"), std::chrono::milliseconds(1500));
  writer.submit(state("quick", "succeeded"));  // replaces the delayed one, written at once
  writer.settle();
  ASSERT_TRUE(exists("quick"));
  EXPECT_EQ(read_state(fd_.get(), "quick")->status, "succeeded");
  EXPECT_FALSE(exists("slow")) << "not before its delay";
  clock.advance(std::chrono::milliseconds(1499));
  writer.settle();
  EXPECT_FALSE(exists("slow")) << "not 1 ms before its delay";
  clock.advance(std::chrono::milliseconds(1));
  writer.settle();
  EXPECT_TRUE(exists("slow")) << "written once due, without a flush";
  writer.submit(state("late", "running"), std::chrono::hours(1));
  EXPECT_TRUE(writer.flush().empty());
  EXPECT_TRUE(exists("late")) << "flush writes what is not due yet";
}

// The writer's thread sleeps until the next due time of its clock: the real clock by default.
TEST_F(StateWriterTest, TheDefaultClockIsTheRealOne) {
  StateWriter writer(fd_.get());
  const auto start = std::chrono::steady_clock::now();
  writer.submit(state("soon", "running"), std::chrono::milliseconds(50));
  writer.settle();
  EXPECT_FALSE(exists("soon"));
  // Woken by its own timed wait, not by a flush: the file appears once 50 ms have passed.
  while (!exists("soon") && std::chrono::steady_clock::now() - start < std::chrono::seconds(10)) {
    std::this_thread::yield();
    writer.settle();
  }
  EXPECT_TRUE(exists("soon"));
  EXPECT_GE(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(50));
}

TEST_F(StateWriterTest, FailuresAreReportedByFlush) {
  ASSERT_EQ(::mkdirat(fd_.get(), "blocked.json", 0700), 0);  // rename onto a directory fails
  ::mkdirat(fd_.get(), "blocked.json/x", 0700);
  StateWriter writer(fd_.get());
  writer.submit(state("blocked", "running"));
  writer.submit(state("fine", "running"));
  auto errors = writer.flush();
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_NE(errors[0].message.find("state blocked.json: rename"), std::string::npos) << errors[0].message;
  EXPECT_TRUE(read_state(fd_.get(), "fine"));
  EXPECT_TRUE(writer.flush().empty()) << "errors are reported once";
}

TEST_F(StateWriterTest, RemovesTrees) {
  ASSERT_EQ(::mkdirat(fd_.get(), "tmp", 0700), 0);
  ASSERT_EQ(::mkdirat(fd_.get(), "tmp/inner", 0700), 0);
  ASSERT_EQ(::mkdirat(fd_.get(), "kept", 0700), 0);
  ASSERT_EQ(::mkdirat(fd_.get(), "kept/inner", 0700), 0);
  StateWriter worker(fd_.get());
  worker.remove_tree(fd_.get(), "tmp");
  EXPECT_TRUE(worker.flush().empty());
  struct stat st{};
  EXPECT_NE(::fstatat(fd_.get(), "tmp", &st, AT_SYMLINK_NOFOLLOW), 0);
  EXPECT_EQ(::fstatat(fd_.get(), "kept/inner", &st, AT_SYMLINK_NOFOLLOW), 0) << "only what was asked";
}

// A state that could not be written is said once (on_error), tried again with a growing wait
// (0.5 s, 1 s, 2 s... of its clock), and written once the cause is gone; then that is said too.
TEST_F(StateWriterTest, AFailedStateIsTriedAgainUntilWrittenAndSaidOnce) {
  ASSERT_EQ(::mkdirat(fd_.get(), "blocked.json", 0700), 0);  // rename onto a directory fails
  ASSERT_EQ(::mkdirat(fd_.get(), "blocked.json/x", 0700), 0);
  std::mutex mutex;
  std::vector<std::string> said;
  auto lines = [&] {
    std::lock_guard lock(mutex);
    return said;
  };
  FakeClock clock;
  StateWriter writer(fd_.get(), clock);
  writer.set_on_error([&](const std::string& line) {
    std::lock_guard lock(mutex);
    said.push_back(line);
  });
  writer.submit(state("blocked", "failed"));
  writer.settle();
  ASSERT_EQ(lines().size(), 1u);
  EXPECT_NE(lines()[0].find("state blocked.json: rename"), std::string::npos) << lines()[0];
  EXPECT_NE(lines()[0].find("status failed; trying again"), std::string::npos) << lines()[0];
  // It fails again after 0.5 s and after 1 s more: nothing more is said meanwhile.
  clock.advance(std::chrono::milliseconds(500));
  writer.settle();
  clock.advance(std::chrono::seconds(1));
  writer.settle();
  EXPECT_EQ(lines().size(), 1u);
  std::filesystem::remove_all(dir_ + "/blocked.json");
  // The next try is 2 s after the last: not before.
  clock.advance(std::chrono::milliseconds(1999));
  writer.settle();
  EXPECT_FALSE(exists("blocked"));
  clock.advance(std::chrono::milliseconds(1));
  writer.settle();
  ASSERT_EQ(lines().size(), 2u);
  EXPECT_EQ(lines()[1], "state blocked.json: written after all");
  auto s = read_state(fd_.get(), "blocked");
  ASSERT_TRUE(s) << s.error().message;
  EXPECT_EQ(s->status, "failed");
  EXPECT_TRUE(writer.flush().empty());
}

// On a full disk (a 64 KiB tmpfs, filled) a state whose file exists is rewritten in place:
// the end of a program is on disk even when no new block can be had. Root only (mount).
TEST_F(StateWriterTest, OnAFullDiskTheStateIsRewrittenInPlace) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root to mount a small tmpfs";
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    if (::unshare(CLONE_NEWNS) != 0 || ::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0 ||
        ::mount("tmpfs", dir_.c_str(), "tmpfs", 0, "size=64k") != 0)
      ::_exit(77);
    UniqueFd d(::open(dir_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    int code = 0;
    {
      StateWriter writer(d.get());
      writer.submit(state("prog", "running"));
      if (!writer.flush().empty()) ::_exit(2);
      UniqueFd filler(::openat(d.get(), "filler", O_WRONLY | O_CREAT | O_CLOEXEC, 0600));
      const std::string block(4096, 'f');
      while (::write(filler.get(), block.data(), block.size()) > 0) {
      }
      if (errno != ENOSPC) ::_exit(3);
      auto ended = state("prog", "failed");
      ended.exit_code = 7;
      writer.submit(ended);
      if (!writer.flush().empty()) code = 4;
    }
    auto s = read_state(d.get(), "prog");
    if (code == 0 && (!s || s->status != "failed" || s->exit_code != 7)) code = 5;
    ::_exit(code);
  }
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFEXITED(status));
  if (WEXITSTATUS(status) == 77) GTEST_SKIP() << "cannot mount a tmpfs here";
  EXPECT_EQ(WEXITSTATUS(status), 0) << "failed at step " << WEXITSTATUS(status);
}

}  // namespace
}  // namespace batman::runner
