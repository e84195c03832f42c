// StateWriter tests: the newest state of a run wins, every run gets its file, nothing but the
// state files is left behind, trees are removed, and a failed write is reported by flush().
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <thread>

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

TEST_F(StateWriterTest, DelayedStateIsReplacedOrWrittenWhenDue) {
  StateWriter writer(fd_.get());
  writer.submit(state("quick", "running"), std::chrono::hours(1));
  writer.submit(state("slow", "running"), std::chrono::milliseconds(1500));
  writer.submit(state("quick", "succeeded"));  // replaces the delayed one, written at once
  auto exists = [&](const std::string& id) {
    struct stat st{};
    return ::fstatat(fd_.get(), (id + ".json").c_str(), &st, 0) == 0;
  };
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (!exists("quick") && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  ASSERT_TRUE(exists("quick"));
  EXPECT_EQ(read_state(fd_.get(), "quick")->status, "succeeded");
  EXPECT_FALSE(exists("slow")) << "not before its delay";
  while (!exists("slow") && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  EXPECT_TRUE(exists("slow")) << "written once due, without a flush";
  writer.submit(state("late", "running"), std::chrono::hours(1));
  EXPECT_TRUE(writer.flush().empty());
  EXPECT_TRUE(exists("late")) << "flush writes what is not due yet";
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
  worker.remove_tree(fd_.get(), "kept", true);
  EXPECT_TRUE(worker.flush().empty());
  struct stat st{};
  EXPECT_NE(::fstatat(fd_.get(), "tmp", &st, AT_SYMLINK_NOFOLLOW), 0);
  EXPECT_NE(::fstatat(fd_.get(), parked_dir_name(1).c_str(), &st, AT_SYMLINK_NOFOLLOW), 0) << "one parked";
  EXPECT_NE(::fstatat(fd_.get(), "kept", &st, AT_SYMLINK_NOFOLLOW), 0);
  ASSERT_EQ(::fstatat(fd_.get(), parked_dir_name(0).c_str(), &st, AT_SYMLINK_NOFOLLOW), 0) << "parked, not removed";
  EXPECT_TRUE(std::filesystem::is_empty(dir_ + "/" + parked_dir_name(0)));
}

}  // namespace
}  // namespace batman::runner
