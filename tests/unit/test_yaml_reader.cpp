// The one YAML reader (common/yaml_reader.hpp): the same bad value gets the same message,
// "FILE:LINE: key 'a.b': why", whether it is in a profile, a taskmaster config or a batch
// file; the key is said once; BATMAN_TRY returns errors and hands values on.
#include <gtest/gtest.h>

#include <string>

#include "common/yaml_reader.hpp"
#include "isolation/profile.hpp"
#include "src/batch/batch_config.hpp"
#include "src/taskmaster/supervisor.hpp"
#include "src/taskmaster/supervisor_config.hpp"

namespace batman {
namespace {

std::string profile_error(const std::string& text) {
  auto p = isolation::parse_profile(text, "p.yaml");
  return p ? "(accepted)" : p.error().message;
}
std::string taskmaster_error(const std::string& text) {
  auto c = cli::parse_supervisor_config(text, "t.yaml", "/nonexistent");
  return c ? "(accepted)" : c.error().message;
}
std::string batch_error(const std::string& text) {
  auto b = cli::parse_batch_file(text, "b.yaml");
  return b ? "(accepted)" : b.error().message;
}

// One bad value, placed where each format takes a value of its kind; the message expected from
// each, which differ only in file, line and key.
struct Case {
  const char* what;
  const char* profile;     // nullptr: the format has no key of this kind
  const char* taskmaster;
  const char* batch;
  std::string why;
};

TEST(YamlReader, TheSameBadValueGetsTheSameMessageInEveryFormat) {
  const Case cases[] = {
      {"a flag", "name: x\nno_new_privs: maybe\n", "programs:\n  a:\n    cmd: x\n    autostart: maybe\n",
       "tasks: {a: x}\nhealth:\n  adjust: maybe\n", "expected true or false"},
      {"a string", "hostname: [a]\n", "programs:\n  a:\n    cmd: [x]\n", "tasks: {a: x}\nproject: [a]\n",
       "expected a string"},
      {"a size", "limits:\n  memory: huge\n", "programs:\n  a:\n    cmd: x\n    stdout_maxbytes: huge\n", nullptr,
       "expected a size such as 512M, 50MB or 0"},
      {"a duration", nullptr, "programs:\n  a:\n    cmd: x\n    starttime: soon\n",
       "tasks:\n  a: {cmd: x, timeout: soon}\n", "expected a duration such as 1500ms, 30s, 5m or 1h"},
      {"an environment", "env:\n  set: [A]\n", "programs:\n  a:\n    cmd: x\n    env: [A]\n",
       "tasks:\n  a: {cmd: x, env: [A]}\n", "expected a mapping of NAME: value"},
      {"a variable name", "env:\n  set: {A=B: x}\n", "programs:\n  a:\n    cmd: x\n    env: {A=B: x}\n",
       "tasks:\n  a: {cmd: x, env: {A=B: x}}\n", "'A=B' is not a variable name (non-empty, without '=')"},
      {"a list of strings", "namespaces: pid\n", nullptr, "tasks:\n  a: {cmd: x, needs: b}\n",
       "expected a list of strings"},
      {"a tier", nullptr, "programs:\n  a:\n    cmd: x\n    isolation: cloud\n",
       "tasks: {a: x}\ndefaults: {isolation: cloud}\n", "expected auto, namespaces, firejail, systemd or env"},
      {"a mapping", "filesystem: [/]\n", "programs:\n  a: [x]\n", "tasks: {a: x}\ndelays: [1s]\n",
       "expected a mapping"},
      {"a whole number, out of range", "limits:\n  pids: 0\n", "programs:\n  a:\n    cmd: x\n    numprocs: 0\n",
       "tasks:\n  a: {cmd: x, retries: 1001}\n", "is out of range ("},
      {"a whole number", "limits:\n  pids: lots\n", "programs:\n  a:\n    cmd: x\n    numprocs: lots\n",
       "tasks:\n  a: {cmd: x, retries: lots}\n", "expected a whole number from "},
  };
  for (const auto& c : cases) {
    const std::pair<const char*, std::string (*)(const std::string&)> formats[] = {
        {c.profile, profile_error}, {c.taskmaster, taskmaster_error}, {c.batch, batch_error}};
    for (const auto& [text, error_of] : formats) {
      if (!text) continue;
      const auto e = error_of(text);
      // "FILE:LINE: key 'K': why": the why is what follows the key.
      const auto after_key = e.find("': ");
      ASSERT_NE(after_key, std::string::npos) << c.what << ": " << e;
      const auto why = e.substr(after_key + 3);
      if (c.why.ends_with(' ') || c.why.ends_with('(')) {
        EXPECT_NE(why.find(c.why), std::string::npos) << c.what << ": " << e;
      } else {
        EXPECT_EQ(why, c.why) << c.what << ": " << e;
      }
    }
  }
}

TEST(YamlReader, FileLineAndKeyOfEachFormat) {
  EXPECT_EQ(profile_error("name: x\nlimits:\n  memory: 1G\n  pids: 0\n"),
            "p.yaml:4: key 'limits.pids': 0 is out of range (1 to 1099511627776)");
  EXPECT_EQ(taskmaster_error("programs:\n  web:\n    cmd: x\n\n    stopsignal: NOPE\n"),
            "t.yaml:5: key 'programs.web.stopsignal': expected a signal such as TERM, INT, QUIT, HUP, KILL, USR1, "
            "USR2 or a number");
  EXPECT_EQ(batch_error("tasks:\n  a: x\nbatches:\n  - tasks: [a]\n  - name: two\n    tasks: [a]\n    retries: x\n"),
            "b.yaml:7: key 'batches[1].retries': expected a whole number from 0 to 1000");
  // An absent required key is said at its mapping's line.
  EXPECT_EQ(taskmaster_error("programs:\n  a: {cmd: x}\n  b:\n    numprocs: 2\n"),
            "t.yaml:4: key 'programs.b.cmd': missing: the command to run");
  EXPECT_EQ(batch_error("tasks:\n  a: x\n  b:\n    retries: 2\n"), "b.yaml:4: key 'tasks.b.cmd': missing: the command to run");
  // An unknown key is said at its own line, with the keys the mapping has (sorted).
  EXPECT_EQ(profile_error("env:\n  clear: true\n  sett: {}\n"), "p.yaml:3: key 'env.sett': unknown key (known: clear, keep, set)");
  // The document itself: no key.
  EXPECT_EQ(profile_error("- a\n"), "p.yaml:1: expected a mapping of keys");
  EXPECT_EQ(taskmaster_error(""), "t.yaml: expected a mapping of keys");
  EXPECT_EQ(batch_error("just text\n"), "b.yaml:1: expected a mapping of keys");
  // yaml-cpp's own errors, in the same shape.
  for (auto* error_of : {profile_error, taskmaster_error, batch_error}) {
    const auto e = error_of("a: [unclosed\nb: 1\n");
    EXPECT_EQ(e.substr(1), ".yaml:2: invalid YAML: end of sequence flow not found") << e;
  }
  // And duplicates (common/yaml.cpp) too.
  EXPECT_EQ(batch_error("tasks:\n  a: x\n  a: y\n"), "b.yaml:3: key 'tasks.a': duplicate key (first on line 2)");
}

TEST(YamlReader, TheKeyIsSaidOnce) {
  // It used to read "key 'programs.many.numprocs': programs.many.numprocs: 'many' is not...".
  const auto e = taskmaster_error("programs:\n  many:\n    cmd: x\n    numprocs: many\n");
  EXPECT_EQ(e, "t.yaml:4: key 'programs.many.numprocs': expected a whole number from 1 to 10000");
  EXPECT_EQ(profile_error("limits: {nofile: -3}\n"), "p.yaml:1: key 'limits.nofile': -3 is out of range (1 to 1099511627776)");
  for (const auto& m : {e, profile_error("limits: {cpus: 0.001}\n"), batch_error("tasks:\n  a: {cmd: x, timeout: 1}\nhealth: {interval: 0s}\n")}) {
    const auto key_end = m.find("': ");
    ASSERT_NE(key_end, std::string::npos) << m;
    const auto key = m.substr(m.find("key '") + 5, key_end - m.find("key '") - 5);
    EXPECT_EQ(m.find(key, key_end), std::string::npos) << m;
  }
  EXPECT_EQ(profile_error("limits: {cpus: 0.001}\n"), "p.yaml:1: key 'limits.cpus': 0.001 is out of range (0.01 to 4096)");
  EXPECT_EQ(batch_error("tasks: {a: x}\nhealth: {interval: 0s}\n"),
            "b.yaml:2: key 'health.interval': 0s is out of range (more than 0)");
}

TEST(YamlReader, NumbersBeyondTheirTypeAreOutOfRangeNotAWrongType) {
  EXPECT_EQ(batch_error("tasks:\n  a: {cmd: x, retries: 99999999999999999999999}\n"),
            "b.yaml:2: key 'tasks.a.retries': 99999999999999999999999 is out of range (0 to 1000)");
  EXPECT_EQ(taskmaster_error("programs:\n  a: {cmd: x, stoptime: 100000000000h}\n"),
            "t.yaml:2: key 'programs.a.stoptime': 100000000000h is out of range (too long)");
  EXPECT_EQ(batch_error("tasks: {a: x}\ndefaults: {rate_limit: -1}\n"),
            "b.yaml:2: key 'defaults.rate_limit': -1 is out of range (at least 0)");
  EXPECT_EQ(batch_error("tasks: {a: x}\ndefaults: {rate_limit: fast}\n"),
            "b.yaml:2: key 'defaults.rate_limit': expected a number of at least 0");
}

TEST(YamlReader, ValuesOfTheReader) {
  const yaml::Reader reader("r.yaml");
  auto got = reader.read("a:\n  b: 7\n  list: [x, y]\n  flags: [{on: yes}]\n", [](const yaml::Value& root) -> Result<long long> {
    const auto a = root["a"];
    EXPECT_TRUE(a.is_map());
    EXPECT_EQ(a.count(), 3u);
    EXPECT_FALSE(a["nope"]);
    EXPECT_TRUE(a["nope"].is_null());
    EXPECT_EQ(a["nope"].line(), 2) << "an absent key is placed at its mapping";
    EXPECT_EQ(a["nope"].key(), "a.nope");
    EXPECT_FALSE(a["b"]["deeper"]) << "a scalar has no keys, and asking does not throw";
    const auto list = a["list"].items();
    EXPECT_EQ(list.size(), 2u);
    EXPECT_EQ(list[1].key(), "a.list");
    EXPECT_EQ(a["flags"].items(true)[0]["on"].key(), "a.flags[0].on");
    EXPECT_EQ(*a["flags"].items(true)[0]["on"].flag(), true);
    BATMAN_TRY(a.keys({"b", "list", "flags"}));  // Result<void>: nothing to hand on
    const long long b = BATMAN_TRY(a["b"].integer(0, 10));
    const long long never = BATMAN_TRY(a["b"].integer(0, 5));  // returns the error from here
    ADD_FAILURE() << "BATMAN_TRY went on past an error with " << never;
    return b;
  });
  ASSERT_FALSE(got);
  EXPECT_EQ(got.error().message, "r.yaml:2: key 'a.b': 7 is out of range (0 to 5)");
}

TEST(YamlReader, APoolOfTwoHundredWorkersIsAccepted) {
  auto c = cli::parse_supervisor_config("programs:\n  web:\n    cmd: sleep 100\n    numprocs: 200\n", "t.yaml", "/tmp");
  ASSERT_TRUE(c) << c.error().message;
  EXPECT_EQ(c->programs[0].numprocs, 200);
  EXPECT_EQ(runner::instance_name("web", 0, 200), "web:00");
  EXPECT_EQ(runner::instance_name("web", 100, 200), "web:100");
  EXPECT_EQ(runner::instance_name("web", 199, 200), "web:199");
  EXPECT_EQ(runner::instance_file_stem({"web", 150}), "web_150");
  // The bound that stays: names of at most four digits (README, supervisor_config.hpp).
  EXPECT_TRUE(cli::parse_supervisor_config("programs:\n  w: {cmd: x, numprocs: 10000}\n", "t.yaml", "/tmp"));
  EXPECT_EQ(taskmaster_error("programs:\n  w: {cmd: x, numprocs: 10001}\n"),
            "t.yaml:2: key 'programs.w.numprocs': 10001 is out of range (1 to 10000)");
}

}  // namespace
}  // namespace batman
