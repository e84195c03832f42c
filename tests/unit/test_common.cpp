// Unit tests of common/: durations, sizes, names, signals, timestamps, atomic writes, hostile
// files, full disks, duplicate YAML keys.
#include <fcntl.h>
#include <grp.h>
#include <sys/stat.h>
#include <csignal>
#include <sys/wait.h>
#include <sys/prctl.h>
#include <sys/mount.h>
#include <sys/xattr.h>
#include <sched.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <set>
#include <thread>

#include <gtest/gtest.h>

#include "common/clock.hpp"
#include "common/detach.hpp"
#include "common/duration.hpp"
#include "common/fs.hpp"
#include "common/proc_stat.hpp"
#include "common/names.hpp"
#include "common/signals.hpp"
#include "common/time_format.hpp"
#include "common/yaml.hpp"

using namespace batman;
using namespace std::chrono_literals;

TEST(Duration, ParsesUnits) {
  EXPECT_EQ(*parse_duration("1500ms"), 1500ms);
  EXPECT_EQ(*parse_duration("30s"), 30s);
  EXPECT_EQ(*parse_duration("5m"), 5min);
  EXPECT_EQ(*parse_duration("1h"), 1h);
  EXPECT_EQ(*parse_duration("1h30m"), 90min);
  EXPECT_EQ(*parse_duration("2.5"), 2500ms);
  EXPECT_EQ(*parse_duration("0"), 0s);
}

TEST(Duration, RejectsGarbageWithAHint) {
  for (const char* bad : {"", "abc", "10x", "-5s", "5s5", "s", "1..5s", "nan"}) {
    auto r = parse_duration(bad);
    ASSERT_FALSE(r) << bad;
    EXPECT_NE(r.error().message.find("ms, s, m or h"), std::string::npos) << r.error().message;
  }
}

TEST(Duration, Formats) {
  EXPECT_EQ(format_duration(250ms), "250ms");
  EXPECT_EQ(format_duration(1500ms), "1.5s");
  EXPECT_EQ(format_duration(125s), "2m05s");
  EXPECT_EQ(format_uptime(65s), "0:01:05");
  EXPECT_EQ(format_uptime(3725s), "1:02:05");
}

TEST(Size, ParsesBinaryMultiples) {
  EXPECT_EQ(*parse_size("1024"), 1024u);
  EXPECT_EQ(*parse_size("1K"), 1024u);
  EXPECT_EQ(*parse_size("512M"), 512ull << 20);
  EXPECT_EQ(*parse_size("50MB"), 50ull << 20);
  EXPECT_EQ(*parse_size("2g"), 2ull << 30);
  EXPECT_FALSE(parse_size("12Q"));
  EXPECT_FALSE(parse_size("M"));
  EXPECT_FALSE(parse_size("-1M"));
}

TEST(Integer, BoundsAndMessage) {
  EXPECT_EQ(*parse_integer("3", "--retries", 0, 10), 3);
  auto r = parse_integer("11", "--retries", 0, 10);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().message, "--retries: '11' is not a whole number from 0 to 10");
  EXPECT_FALSE(parse_integer("3x", "n", 0, 10));
  EXPECT_FALSE(parse_integer("", "n", 0, 10));
}

TEST(Names, AcceptsTheRule) {
  for (std::string ok : {std::string("disk"), std::string("api"), std::string("a"), std::string("A-b_c.d"),
                         std::string("0abc"), std::string(64, 'x')})
    EXPECT_TRUE(validate_name(ok, "project")) << ok;
}

TEST(Names, RefusesEscapesAndStatesTheRule) {
  for (const char* bad : {"../x", "a/b", ".", "..", "-x", "", ".hidden", "_x", "a b", "a\nb"}) {
    auto r = validate_name(bad, "project");
    ASSERT_FALSE(r) << bad;
    EXPECT_NE(r.error().message.find("1-64 letters"), std::string::npos);
  }
  EXPECT_FALSE(validate_name(std::string(65, 'x'), "project"));
}

TEST(Names, RunIdsAreWellFormedAndUnique) {
  std::set<std::string> seen;
  for (int i = 0; i < 200; ++i) {
    std::string id = new_run_id();
    ASSERT_EQ(id.size(), 22u) << id;
    EXPECT_EQ(id[8], 'T');
    EXPECT_EQ(id[15], '-');
    EXPECT_TRUE(validate_name(id, "run-id"));
    seen.insert(id);
  }
  EXPECT_GT(seen.size(), 190u);  // six random hex digits per id
}

TEST(Signals, NamesAndNumbers) {
  EXPECT_EQ(*parse_signal("TERM"), SIGTERM);
  EXPECT_EQ(*parse_signal("SIGTERM"), SIGTERM);
  EXPECT_EQ(*parse_signal("usr1"), SIGUSR1);
  EXPECT_EQ(*parse_signal("9"), SIGKILL);
  EXPECT_FALSE(parse_signal("FOO"));
  EXPECT_FALSE(parse_signal("0"));
  EXPECT_EQ(signal_name(SIGHUP), "HUP");
}

// `batman stop --signal S --grace G` travels as one sigqueue int: what the run's batman
// decodes is what stop asked for, to 0.1 s; what was not asked stays unset.
TEST(Signals, StopRequestsSurviveTheSigqueueValue) {
  using std::chrono::milliseconds;
  auto round_trip = [](StopRequest r) { return decode_stop_request(encode_stop_request(r)); };
  auto plain = round_trip({});
  EXPECT_FALSE(plain.signal);
  EXPECT_FALSE(plain.grace);
  EXPECT_EQ(encode_stop_request({}), 0);
  auto both = round_trip({SIGINT, milliseconds(2500)});
  EXPECT_EQ(both.signal, SIGINT);
  EXPECT_EQ(both.grace, milliseconds(2500));
  auto no_wait = round_trip({std::nullopt, milliseconds(0)});
  EXPECT_FALSE(no_wait.signal);
  ASSERT_TRUE(no_wait.grace) << "--grace 0 is not 'the job's stoptime'";
  EXPECT_EQ(*no_wait.grace, milliseconds(0));
  EXPECT_EQ(round_trip({SIGUSR2, milliseconds(1234)}).grace, milliseconds(1200)) << "rounded down to 0.1 s";
  EXPECT_EQ(round_trip({64, std::nullopt}).signal, 64);
  const auto days = std::chrono::hours(24 * 365);
  auto huge = round_trip({SIGTERM, days});
  EXPECT_EQ(huge.signal, SIGTERM) << "a huge grace does not spill into the signal";
  EXPECT_EQ(huge.grace, milliseconds((0xffffffLL - 1) * 100)) << "capped";
}

// --detach and --daemon: the caller learns that the background process started, or why not.
TEST(Detach, TheCallerHearsStartedOrWhyNot) {
  struct Case {
    bool second_fork;
    int what;  // 0: started with a message, 1: failed, 2: died without a word
  };
  const pid_t our_session = ::getsid(0);
  struct stat null_st{};
  ASSERT_EQ(::stat("/dev/null", &null_st), 0);
  for (Case c : {Case{false, 0}, Case{true, 0}, Case{false, 1}, Case{true, 1}, Case{false, 2}}) {
    auto d = detach(c.second_fork);
    ASSERT_TRUE(d) << d.error().message;
    if (d->in_child) {
      // In a session of its own (led by it, or with a second fork by its first child), with
      // stdio on /dev/null.
      const pid_t sid = ::getsid(0);
      bool right = sid != our_session && (c.second_fork ? sid != ::getpid() : sid == ::getpid());
      for (int fd = 0; fd < 3; ++fd) {
        struct stat st{};
        right = right && ::fstat(fd, &st) == 0 && st.st_rdev == null_st.st_rdev;
      }
      if (c.what == 0) reply_started(d->reply.release(), right ? "pid 1\nmore" : "wrong session or stdio");
      if (c.what == 1) reply_failed(d->reply.release(), "socket: Address in use");
      std::_Exit(0);
    }
    const auto reply = read_detach_reply(d->reply.get());
    EXPECT_EQ(reply.started, c.what == 0) << c.what;
    const char* expected[] = {"pid 1\nmore", "socket: Address in use", ""};
    EXPECT_EQ(reply.message, expected[c.what]);
    while (::waitpid(-1, nullptr, WNOHANG) > 0) {
    }
  }
}

// A FakeClock wakes the threads that wait on it when it moves.
TEST(Clock, AFakeClockWakesWaitersWhenItReachesTheirDeadline) {
  FakeClock clock;
  std::mutex mutex;
  std::condition_variable cv;
  bool woke = false;
  const TimePoint deadline = clock.now() + std::chrono::seconds(5);
  std::thread waiter([&] {
    std::unique_lock lock(mutex);
    while (clock.now() < deadline) clock.wait_until(cv, lock, deadline);
    woke = true;
  });
  clock.advance(std::chrono::seconds(4));
  clock.advance(std::chrono::seconds(1));
  waiter.join();  // hangs (test timeout) if the wake-up was lost
  EXPECT_TRUE(woke);
  std::unique_lock lock(mutex);
  clock.wait_until(cv, lock, deadline);  // already due: returns at once
}

TEST(Time, Rfc3339RoundTrip) {
  auto t = std::chrono::system_clock::from_time_t(1'700'000'000) + 123ms;
  std::string s = format_rfc3339(t);
  EXPECT_EQ(s, "2023-11-14T22:13:20.123Z");
  auto back = parse_rfc3339(s);
  ASSERT_TRUE(back);
  EXPECT_EQ(*back, t);
  EXPECT_FALSE(parse_rfc3339("yesterday"));
}

class FsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/batman-unit-XXXXXX";
    dir_ = mkdtemp(tmpl);
    fd_.reset(::open(dir_.c_str(), O_RDONLY | O_DIRECTORY));
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  // The inode number of `name` in the test directory (not following a link), 0 when missing.
  ino_t inode(const std::string& name) const {
    struct stat st{};
    return ::fstatat(fd_.get(), name.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0 ? st.st_ino : 0;
  }
  // The names in the test directory, sorted.
  std::vector<std::string> entries() const {
    std::vector<std::string> out;
    for (const auto& e : std::filesystem::directory_iterator(dir_)) out.push_back(e.path().filename());
    std::sort(out.begin(), out.end());
    return out;
  }
  std::string dir_;
  UniqueFd fd_;
};

TEST_F(FsTest, AtomicWriteReplacesAndLeavesNoTemp) {
  ASSERT_TRUE(write_file_atomic(fd_.get(), "s.json", "one"));
  ASSERT_TRUE(write_file_atomic(fd_.get(), "s.json", "two"));
  EXPECT_EQ(*read_file_at(fd_.get(), "s.json"), "two");
  auto names = list_dir(fd_.get());
  ASSERT_TRUE(names);
  EXPECT_EQ(names->size(), 1u);
}

TEST_F(FsTest, NeverFollowsAPlantedSymlink) {
  std::string outside = dir_ + "-outside";
  ASSERT_EQ(::mkdir(outside.c_str(), 0700), 0);
  ASSERT_EQ(::symlink(outside.c_str(), (dir_ + "/logs").c_str()), 0);
  auto r = open_dir_at(fd_.get(), "logs", true);
  EXPECT_FALSE(r);
  EXPECT_NE(r.error().message.find("symlink"), std::string::npos);
  ASSERT_EQ(::symlink((outside + "/secret").c_str(), (dir_ + "/file").c_str()), 0);
  EXPECT_FALSE(read_file_at(fd_.get(), "file"));
  // Removing a tree removes the link, not what it points to.
  ASSERT_EQ(::close(::open((outside + "/keep").c_str(), O_CREAT | O_WRONLY, 0600)), 0);
  ASSERT_EQ(::mkdir((dir_ + "/tree").c_str(), 0700), 0);
  ASSERT_EQ(::symlink(outside.c_str(), (dir_ + "/tree/link").c_str()), 0);
  ASSERT_TRUE(remove_tree_at(fd_.get(), "tree"));
  EXPECT_TRUE(std::filesystem::exists(outside + "/keep"));
  std::filesystem::remove_all(outside);
}

// remove_tree_at tries one rmdir first: each kind of entry must still go, and only it.
TEST_F(FsTest, RemoveTreeTakesEmptyDirsFilesLinksAndFullTrees) {
  std::string outside = dir_ + "-outside2";
  ASSERT_EQ(::mkdir(outside.c_str(), 0700), 0);
  ASSERT_EQ(::mkdir((dir_ + "/empty").c_str(), 0700), 0);
  ASSERT_EQ(::close(::open((dir_ + "/file").c_str(), O_CREAT | O_WRONLY, 0600)), 0);
  ASSERT_EQ(::symlink(outside.c_str(), (dir_ + "/link").c_str()), 0);
  ASSERT_EQ(::mkdir((dir_ + "/full").c_str(), 0700), 0);
  ASSERT_EQ(::mkdir((dir_ + "/full/sub").c_str(), 0700), 0);
  ASSERT_EQ(::close(::open((dir_ + "/full/sub/f").c_str(), O_CREAT | O_WRONLY, 0600)), 0);
  for (const char* name : {"empty", "file", "link", "full", "missing"}) {
    EXPECT_TRUE(remove_tree_at(fd_.get(), name)) << name;
    struct stat st{};
    EXPECT_NE(::lstat((dir_ + "/" + name).c_str(), &st), 0) << name;
  }
  struct stat st{};
  EXPECT_EQ(::stat(outside.c_str(), &st), 0);  // the link's target stays
  std::filesystem::remove_all(outside);
}

// make_dir_at is mkdirat: EEXIST when the name is taken. clean removes the empty directories
// batman 0.1 parked in tmp/ (and anything below one).
TEST_F(FsTest, RunDirectoriesAreMadeAnewAndLegacyParkedOnesRemoved) {
  ASSERT_TRUE(make_dir_at(fd_.get(), "run1"));
  struct stat st{};
  ASSERT_EQ(::stat((dir_ + "/run1").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0700u);
  auto again = make_dir_at(fd_.get(), "run1");
  ASSERT_FALSE(again);
  EXPECT_EQ(again.error().code, EEXIST);
  for (const char* name : {".spare.0", ".spare.7"}) ASSERT_EQ(::mkdir((dir_ + "/" + name).c_str(), 0700), 0);
  ASSERT_EQ(::close(::open((dir_ + "/.spare.7/left").c_str(), O_CREAT | O_WRONLY, 0600)), 0);
  ASSERT_TRUE(remove_legacy_parked_dirs(fd_.get()));
  for (const auto& e : std::filesystem::directory_iterator(dir_))
    EXPECT_FALSE(e.path().filename().string().starts_with(".spare")) << e.path();
  EXPECT_EQ(inode("run1") != 0u, true) << "a run's directory is not touched";
}

// The stat line is split after the last ')': a command name with ") " and numbers in it does
// not shift the fields.
TEST(ProcStat, ReadsTheTreeFieldsAndStartTimeWhateverTheCommandName) {
  auto self = read_proc_stat(::getpid());
  ASSERT_TRUE(self);
  EXPECT_EQ(self->ppid, ::getppid());
  EXPECT_EQ(self->pgid, ::getpgrp());
  EXPECT_EQ(self->sid, ::getsid(0));
  EXPECT_GT(self->start_time, 0u);
  EXPECT_FALSE(self->exiting());
  int ready[2];
  ASSERT_EQ(::pipe(ready), 0);
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    ::prctl(PR_SET_NAME, "x) R 1 2 3", 0, 0, 0);
    (void)!::write(ready[1], "r", 1);
    ::pause();
    ::_exit(0);
  }
  char c;
  ASSERT_EQ(::read(ready[0], &c, 1), 1);
  auto stat = read_proc_stat(child);
  ::kill(child, SIGKILL);
  ::waitpid(child, nullptr, 0);
  ::close(ready[0]);
  ::close(ready[1]);
  ASSERT_TRUE(stat);
  EXPECT_EQ(stat->ppid, ::getpid());
  EXPECT_EQ(stat->sid, self->sid);
  EXPECT_GE(stat->start_time, self->start_time);
  EXPECT_FALSE(read_proc_stat(-1));
}

// Whether the file system under `dir` makes unnamed temporary files (O_TMPFILE).
bool unnamed_temp_files(const std::string& dir) {
  UniqueFd fd(::open(dir.c_str(), O_TMPFILE | O_RDWR | O_CLOEXEC, 0600));
  return static_cast<bool>(fd);
}

TEST(PendingFile, WritesSyncsAndRenamesOnlyWhenPublishedAndLeavesNothingBehind) {
  char tmpl[] = "/tmp/batman-pending.XXXXXX";
  const std::string dir = ::mkdtemp(tmpl);
  UniqueFd dirfd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  ASSERT_TRUE(dirfd);
  auto count = [&] {
    std::size_t n = 0;
    for ([[maybe_unused]] const auto& e : std::filesystem::directory_iterator(dir)) ++n;
    return n;
  };
  ASSERT_TRUE(write_file_atomic(dirfd.get(), "s.json", "old").has_value());
  {
    auto f = PendingFile::create(dirfd.get(), "s.json");
    ASSERT_TRUE(f.has_value());
    // s.json, and the temporary file where it has a name (no O_TMPFILE here)
    EXPECT_EQ(count(), unnamed_temp_files(dir) ? 1u : 2u);
    ASSERT_TRUE(f->sync("new").has_value());
    EXPECT_EQ(*read_file_at(dirfd.get(), "s.json"), "old");  // not before publish()
    ASSERT_TRUE(f->publish().has_value());
    EXPECT_FALSE(f->publish().has_value());  // once only
  }
  EXPECT_EQ(*read_file_at(dirfd.get(), "s.json"), "new");
  EXPECT_EQ(count(), 1u);
  {
    auto f = PendingFile::create(dirfd.get(), "s.json");
    ASSERT_TRUE(f.has_value());
    ASSERT_TRUE(f->sync("never published").has_value());
  }  // dropped: the temporary file goes, the target stays
  {
    auto f = PendingFile::create(dirfd.get(), "s.json");
    ASSERT_TRUE(f.has_value());
  }
  EXPECT_EQ(*read_file_at(dirfd.get(), "s.json"), "new");
  EXPECT_EQ(count(), 1u);
  std::filesystem::remove_all(dir);
}

// sync(content) in two steps (the end of a run works while the disk takes the write): write()
// once, sync() after it, publish() only once synced; reserved room beyond the content goes.
TEST(PendingFile, WrittenThenSyncedInTwoStepsIsPublishedOnlyOnceSynced) {
  char tmpl[] = "/tmp/batman-pending.XXXXXX";
  const std::string dir = ::mkdtemp(tmpl);
  UniqueFd dirfd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  ASSERT_TRUE(dirfd);
  ASSERT_TRUE(write_file_atomic(dirfd.get(), "s.json", "old").has_value());
  {
    auto f = PendingFile::create(dirfd.get(), "s.json");
    ASSERT_TRUE(f.has_value());
    ASSERT_TRUE(f->reserve(4096).has_value());
    EXPECT_FALSE(f->sync().has_value());  // nothing written yet
    ASSERT_TRUE(f->write("{\"end\": 1}").has_value());
    EXPECT_FALSE(f->write("again").has_value());  // once only
    EXPECT_FALSE(f->publish().has_value());        // not synced: never renamed
    EXPECT_EQ(*read_file_at(dirfd.get(), "s.json"), "old");
    ASSERT_TRUE(f->sync().has_value());
    ASSERT_TRUE(f->publish().has_value());
  }
  EXPECT_EQ(*read_file_at(dirfd.get(), "s.json"), "{\"end\": 1}");  // the reservation cut off
  {
    auto f = PendingFile::create(dirfd.get(), "s.json");
    ASSERT_TRUE(f.has_value());
    ASSERT_TRUE(f->write("written, never synced").has_value());
  }  // dropped: its temporary file goes
  EXPECT_EQ(*read_file_at(dirfd.get(), "s.json"), "{\"end\": 1}");
  std::size_t n = 0;
  for ([[maybe_unused]] const auto& e : std::filesystem::directory_iterator(dir)) ++n;
  EXPECT_EQ(n, 1u);
  std::filesystem::remove_all(dir);
}

// A moved-from PendingFile has nothing left to publish (and touches nothing in the directory).
TEST_F(FsTest, AMovedFromPendingFileHasNothingToPublish) {
  auto f = PendingFile::create(fd_.get(), "s.json");
  ASSERT_TRUE(f.has_value());
  ASSERT_TRUE(f->sync("new").has_value());
  PendingFile g(std::move(*f));
  EXPECT_FALSE(f->publish().has_value());
  EXPECT_FALSE(f->sync().has_value());
  EXPECT_FALSE(read_file_at(fd_.get(), "s.json").has_value());
  ASSERT_TRUE(g.publish().has_value());
  EXPECT_EQ(*read_file_at(fd_.get(), "s.json"), "new");
  EXPECT_EQ(entries(), std::vector<std::string>{"s.json"});
}

// A writer killed before it publishes leaves nothing in the directory (its temporary file is
// unnamed: gone with its last descriptor), and where its file cannot be linked in (no /proc,
// no CAP_DAC_READ_SEARCH for AT_EMPTY_PATH) it is copied into a named one and renamed.
TEST_F(FsTest, AKilledPendingFileWriterLeavesNothingAndAnUnlinkableFileIsCopied) {
  const std::string& dir = dir_;
  const UniqueFd& dirfd = fd_;
  if (!unnamed_temp_files(dir)) GTEST_SKIP() << "no O_TMPFILE under /tmp here: the named temporary file is used";
  ASSERT_TRUE(write_file_atomic(dirfd.get(), "s.json", "old").has_value());
  const pid_t killed = ::fork();
  ASSERT_GE(killed, 0);
  if (killed == 0) {
    auto f = PendingFile::create(dirfd.get(), "s.json");
    if (!f || !f->reserve(4096) || !f->write("never published")) ::_exit(1);
    ::_exit(0);  // no destructor runs: as if killed
  }
  int status = 0;
  ASSERT_EQ(::waitpid(killed, &status, 0), killed);
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  EXPECT_EQ(entries(), std::vector<std::string>{"s.json"});
  EXPECT_EQ(*read_file_at(dirfd.get(), "s.json"), "old");

  if (::geteuid() != 0) GTEST_SKIP() << "the copy needs root to hide /proc (a mount namespace) and then drop to nobody";
  ASSERT_EQ(::chown(dir.c_str(), 65534, 65534), 0);
  ASSERT_EQ(::chown((dir + "/s.json").c_str(), 65534, 65534), 0);
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    if (::unshare(CLONE_NEWNS) != 0 || ::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0 ||
        ::umount2("/proc", MNT_DETACH) != 0)
      ::_exit(77);
    // Made by root, published by nobody: no /proc/self/fd, and AT_EMPTY_PATH is refused to a
    // process without CAP_DAC_READ_SEARCH that did not open the file itself.
    std::vector<PendingFile> files;
    for (const char* target : {"s.json", "new.json"}) {  // over a file, and as a new one
      auto f = PendingFile::create(dirfd.get(), target);
      if (!f) ::_exit(2);
      if (!f->reserve(8192) || !f->write(std::string("copied ") + target) || !f->sync()) ::_exit(3);
      files.push_back(std::move(*f));
    }
    if (::setgroups(0, nullptr) != 0 || ::setresgid(65534, 65534, 65534) != 0 || ::setresuid(65534, 65534, 65534) != 0)
      ::_exit(78);
    for (auto& f : files)
      if (!f.publish()) ::_exit(4);
    ::_exit(0);
  }
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFEXITED(status));
  if (WEXITSTATUS(status) == 77) GTEST_SKIP() << "cannot hide /proc in a mount namespace here";
  EXPECT_EQ(WEXITSTATUS(status), 0) << "failed at step " << WEXITSTATUS(status);
  EXPECT_EQ(*read_file_at(dirfd.get(), "s.json"), "copied s.json");
  EXPECT_EQ(*read_file_at(dirfd.get(), "new.json"), "copied new.json");
  struct stat st{};
  ASSERT_EQ(::stat((dir + "/new.json").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  EXPECT_EQ(entries(), (std::vector<std::string>{"new.json", "s.json"}));
}

// Hostile files (README "Bad input and faults"): a FIFO, /dev/zero or a directory where a file
// is read or appended to is refused at once with one line naming it, never waited on.
TEST_F(FsTest, ReadersAndAppendersRefuseFifosDevicesAndDirectoriesAtOnce) {
  ASSERT_EQ(::mkfifo((dir_ + "/fifo").c_str(), 0600), 0);
  ASSERT_EQ(::mkdir((dir_ + "/dir").c_str(), 0700), 0);
  const auto started = std::chrono::steady_clock::now();
  auto r = read_file_at(fd_.get(), "fifo");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().message.rfind("fifo: not a regular file (a FIFO)", 0), 0u) << r.error().message;
  r = read_file(dir_ + "/fifo");
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("/fifo: not a regular file (a FIFO)"), std::string::npos) << r.error().message;
  r = read_file("/dev/zero", kMaxConfigBytes);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().message.rfind("/dev/zero: not a regular file (a character device)", 0), 0u) << r.error().message;
  r = read_file(dir_ + "/dir");
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("not a regular file (a directory)"), std::string::npos) << r.error().message;
  // Appending: no reader on the FIFO (ENXIO), then with one (opened, then refused).
  auto w = open_regular_at(fd_.get(), "fifo", O_WRONLY | O_CREAT | O_APPEND, 0600, "logs/fifo");
  ASSERT_FALSE(w);
  EXPECT_EQ(w.error().message.rfind("logs/fifo: not a regular file (a FIFO)", 0), 0u) << w.error().message;
  UniqueFd reader(::open((dir_ + "/fifo").c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC));
  ASSERT_TRUE(reader);
  w = open_regular(dir_ + "/fifo", O_WRONLY | O_APPEND, 0600, true);
  ASSERT_FALSE(w);
  EXPECT_NE(w.error().message.find("not a regular file (a FIFO)"), std::string::npos) << w.error().message;
  w = open_regular_at(fd_.get(), "dir", O_WRONLY | O_CREAT | O_APPEND);
  ASSERT_FALSE(w);
  EXPECT_NE(w.error().message.find("not a regular file (a directory)"), std::string::npos) << w.error().message;
  // A user's log path may be /dev/null; batman's own files may not.
  EXPECT_TRUE(open_regular("/dev/null", O_WRONLY | O_APPEND, 0600, true));
  EXPECT_FALSE(open_regular("/dev/null", O_WRONLY | O_APPEND));
  // A planted symlink is refused by name.
  ASSERT_EQ(::symlink("/etc/passwd", (dir_ + "/link").c_str()), 0);
  w = open_regular_at(fd_.get(), "link", O_RDONLY);
  ASSERT_FALSE(w);
  EXPECT_NE(w.error().message.find("link: a symlink"), std::string::npos) << w.error().message;
  // A regular file still works, created or not.
  auto made = open_regular_at(fd_.get(), "new.log", O_WRONLY | O_CREAT | O_APPEND);
  ASSERT_TRUE(made) << made.error().message;
  EXPECT_LT(std::chrono::steady_clock::now() - started, 5s) << "nothing may wait on a FIFO";
}

TEST_F(FsTest, WholeFileReadsHaveASizeLimit) {
  ASSERT_TRUE(write_file_atomic(fd_.get(), "big", std::string(5000, 'x')));
  auto r = read_file_at(fd_.get(), "big", 4096);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().message, "big: larger than 4096 bytes, the most batman reads of such a file");
  r = read_file(dir_ + "/big", 5000);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->size(), 5000u);
  // A file whose size says 0 (as /proc's do) is still cut off as it is read.
  auto status = read_file("/proc/self/status", 16);
  ASSERT_FALSE(status);
  EXPECT_NE(status.error().message.find("larger than 16 bytes"), std::string::npos);
  EXPECT_TRUE(read_file("/proc/self/status", kMaxConfigBytes));
}

TEST_F(FsTest, OverwriteInPlaceKeepsTheInodeAndRefusesHardLinks) {
  ASSERT_TRUE(write_file_atomic(fd_.get(), "s.json", "a longer old content"));
  const ino_t before = inode("s.json");
  ASSERT_TRUE(overwrite_in_place(fd_.get(), "s.json", "new"));
  // Padded with spaces to the old size: no truncate, nothing of the old record left.
  EXPECT_EQ(*read_file_at(fd_.get(), "s.json"), "new" + std::string(17, ' '));
  EXPECT_EQ(inode("s.json"), before);
  // A record larger than the space the file holds is refused, and the file is unchanged.
  const std::string big(64 * 1024, 'x');
  auto grown = overwrite_in_place(fd_.get(), "s.json", big);
  ASSERT_FALSE(grown);
  EXPECT_NE(grown.error().message.find("in place"), std::string::npos) << grown.error().message;
  EXPECT_EQ(*read_file_at(fd_.get(), "s.json"), "new" + std::string(17, ' '));
  ASSERT_EQ(::linkat(fd_.get(), "s.json", fd_.get(), "other", 0), 0);
  auto r = overwrite_in_place(fd_.get(), "s.json", "through the link");
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("hard links"), std::string::npos);
  EXPECT_EQ(*read_file_at(fd_.get(), "other"), "new" + std::string(17, ' '));
}

// On a full file system (a 64 KiB tmpfs, filled up), a reserved PendingFile still gets its
// content on disk, and overwrite_in_place still rewrites an existing file. Needs root (mount),
// done in a child with a mount namespace of its own.
TEST(PendingFile, AReservationIsWrittenOnAFullDisk) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root to mount a small tmpfs";
  char tmpl[] = "/tmp/batman-full.XXXXXX";
  const std::string dir = ::mkdtemp(tmpl);
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    auto check = [](bool ok, int code) {
      if (!ok) ::_exit(code);
    };
    if (::unshare(CLONE_NEWNS) != 0 || ::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0 ||
        ::mount("tmpfs", dir.c_str(), "tmpfs", 0, "size=64k") != 0)
      ::_exit(77);
    UniqueFd d(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    check(write_file_atomic(d.get(), "s.json", std::string(100, 'o')).has_value(), 2);
    auto f = PendingFile::create(d.get(), "s.json");
    check(f.has_value(), 3);
    check(f->reserve(8192).has_value(), 4);
    // Fill the disk.
    UniqueFd filler(::openat(d.get(), "filler", O_WRONLY | O_CREAT | O_CLOEXEC, 0600));
    const std::string block(4096, 'f');
    while (::write(filler.get(), block.data(), block.size()) > 0) {
    }
    check(errno == ENOSPC, 5);
    check(!write_file_atomic(d.get(), "x.json", std::string(5000, 'x')).has_value(), 6);  // really full
    const std::string content = "{\"status\":\"failed\",\"exit_code\":7}" + std::string(3000, ' ');
    check(f->sync(content).has_value(), 7);
    check(f->publish().has_value(), 8);
    check(*read_file_at(d.get(), "s.json") == content, 9);
    check(overwrite_in_place(d.get(), "s.json", "in place").has_value(), 10);
    check(*read_file_at(d.get(), "s.json") == "in place" + std::string(content.size() - 8, ' '), 11);
    ::_exit(0);
  }
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  std::filesystem::remove_all(dir);
  ASSERT_TRUE(WIFEXITED(status));
  if (WEXITSTATUS(status) == 77) GTEST_SKIP() << "cannot mount a tmpfs here";
  EXPECT_EQ(WEXITSTATUS(status), 0) << "failed at step " << WEXITSTATUS(status);
}

// The end of a run that replaces its `running` state on a full disk: publishing an unnamed
// file over an existing one needs a directory entry (its temporary name), which name() makes
// while there is room (run.cpp, once `running` is written). On a small ext4 (an entry needs a
// block there, where tmpfs needs none) whose disk and state directory are then filled, a file
// given its name ahead is published; one without (the control) cannot be. Needs root: a loop
// mount, in a child with a mount namespace of its own.
TEST(PendingFile, ANamedReservationReplacesAFileOnAFullExt4) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root to loop-mount an ext4 image";
  if (std::system("command -v mkfs.ext4 >/dev/null 2>&1") != 0) GTEST_SKIP() << "no mkfs.ext4 (e2fsprogs)";
  char tmpl[] = "/tmp/batman-full-ext4.XXXXXX";
  const std::string dir = ::mkdtemp(tmpl);
  const std::string image = dir + "/fs.img", mnt = dir + "/mnt";
  ASSERT_EQ(::mkdir(mnt.c_str(), 0700), 0);
  ASSERT_EQ(std::system(("truncate -s 8M " + image + " && mkfs.ext4 -q -F -b 1024 -m 0 -N 2048 " + image).c_str()), 0);
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    if (::unshare(CLONE_NEWNS) != 0 || ::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0 ||
        std::system(("mount -o loop " + image + " " + mnt + " 2>/dev/null").c_str()) != 0)
      ::_exit(77);
    auto check = [](bool ok, int code) {
      if (!ok) ::_exit(code);
    };
    check(::mkdir((mnt + "/state").c_str(), 0700) == 0, 2);
    UniqueFd d(::open((mnt + "/state").c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    const std::string running = "{\"status\":\"running\"}\n";
    check(write_file_atomic(d.get(), "R.json", running).has_value(), 3);
    check(write_file_atomic(d.get(), "C.json", running).has_value(), 4);
    auto named = PendingFile::create(d.get(), "R.json");
    auto control = PendingFile::create(d.get(), "C.json");
    check(named && control && named->reserve(1000) && control->reserve(1000), 5);
    check(named->name().has_value(), 6);
    // Fill the disk, then the state directory (hard links to one file: a name each), then
    // the disk again with what the directory's last block left.
    UniqueFd filler(::open((mnt + "/filler").c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600));
    static char block[1024];
    auto fill = [&] {
      for (int round = 0; round < 3; ++round) {
        while (::write(filler.get(), block, sizeof block) == static_cast<ssize_t>(sizeof block)) {
        }
        ::fsync(filler.get());
      }
    };
    fill();
    for (int n = 0;; ++n) {
      char link[32];
      std::snprintf(link, sizeof link, "l%06d", n);
      if (::linkat(AT_FDCWD, (mnt + "/filler").c_str(), d.get(), link, 0) != 0) {
        check(errno == ENOSPC, 7);
        break;
      }
    }
    fill();
    const std::string end = "{\"status\":\"succeeded\",\"exit_code\":0}\n";
    // First the control, with no entry made ahead: it fails on the full directory (and keeps
    // its file). (After the named one, the slot its temporary name leaves would do.)
    check(control->sync(end).has_value(), 8);
    auto p = control->publish();
    check(!p && disk_full(p.error().code), 9);
    check(*read_file_at(d.get(), "C.json") == running, 10);
    check(named->sync(end).has_value(), 11);
    check(named->publish().has_value(), 12);
    check(*read_file_at(d.get(), "R.json") == end, 13);
    ::_exit(0);
  }
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  std::filesystem::remove_all(dir);
  ASSERT_TRUE(WIFEXITED(status));
  if (WEXITSTATUS(status) == 77) GTEST_SKIP() << "cannot loop-mount an ext4 image here";
  EXPECT_EQ(WEXITSTATUS(status), 0) << "failed at step " << WEXITSTATUS(status);
}

TEST(Names, ControlCharactersAreEscapedInMessages) {
  EXPECT_EQ(printable("a\nb\tc\r\x1b[31m\x7f\x01 é"), "a\\nb\\tc\\r\\e[31m\\x7f\\x01 é");
  auto r = validate_name("a\nb", "project");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().message.find('\n'), std::string::npos) << r.error().message;
  EXPECT_NE(r.error().message.find("'a\\nb'"), std::string::npos) << r.error().message;
}

TEST(Yaml, DuplicateKeysAreFoundWithTheirLineAndPath) {
  EXPECT_TRUE(check_duplicate_keys("a: 1\nb: 2\nc: {a: 1}\n", "f.yaml"));
  auto r = check_duplicate_keys("a: 1\nb: 2\na: 3\n", "f.yaml");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().message, "f.yaml:3: key 'a': duplicate key (first on line 1)");
  r = check_duplicate_keys("top:\n  x:\n    k: 1\n    j: 2\n    k: 3\n", "f.yaml");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().message, "f.yaml:5: key 'top.x.k': duplicate key (first on line 3)");
  r = check_duplicate_keys("list:\n  - {a: 1}\n  - {a: 1, b: 2, a: 3}\n", "f.yaml");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().message, "f.yaml:3: key 'list[1].a': duplicate key (first on line 3)");
  // Scalars compare as text, as yaml-cpp's lookup does; an alias of a scalar key is that key.
  EXPECT_FALSE(check_duplicate_keys("1: a\n\"1\": b\n", "f.yaml"));
  EXPECT_FALSE(check_duplicate_keys("&k key: 1\n*k : 2\n", "f.yaml"));
  // The same key in sibling mappings is fine; so is a value equal to a key.
  EXPECT_TRUE(check_duplicate_keys("a: {x: 1}\nb: {x: 1}\nc: a\nd: [a, a]\n", "f.yaml"));
  // Invalid YAML is left to the reader's own load.
  EXPECT_TRUE(check_duplicate_keys("a: [unclosed\n", "f.yaml"));
  EXPECT_TRUE(check_duplicate_keys("", "f.yaml"));
  // An alias bomb is not expanded: this is quick.
  std::string bomb = "a: &a [x, x, x, x, x, x, x, x, x, x]\n";
  for (char c = 'b'; c <= 'z'; ++c) {
    const std::string prev(1, static_cast<char>(c - 1));
    bomb += std::string(1, c) + ": &" + std::string(1, c) + " [*" + prev + ", *" + prev + ", *" + prev + ", *" +
            prev + ", *" + prev + ", *" + prev + ", *" + prev + ", *" + prev + ", *" + prev + ", *" + prev + "]\n";
  }
  const auto started = std::chrono::steady_clock::now();
  EXPECT_TRUE(check_duplicate_keys(bomb, "f.yaml"));
  EXPECT_LT(std::chrono::steady_clock::now() - started, 2s);
}
