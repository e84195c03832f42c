// Taskmaster config (SPEC §9): every field, supervisord's defaults, file:line:key errors;
// and the command-line helpers the socket and shell share (word splitting, completion).
#include <gtest/gtest.h>

#include <unistd.h>

#include "src/cli/control_client.hpp"
#include "src/taskmaster/control_commands.hpp"
#include "src/taskmaster/supervisor_config.hpp"

namespace batman::cli {
namespace {

using runner::AutoRestart;
using runner::OutputTarget;
using std::chrono::milliseconds;
using std::chrono::seconds;

Result<runner::SupervisorConfig> parse(const std::string& text) {
  return parse_supervisor_config(text, "web.yaml", "/etc/tm");
}

std::string error_of(const std::string& text) {
  auto c = parse(text);
  EXPECT_FALSE(c.has_value()) << text;
  return c ? std::string() : c.error().message;
}

TEST(SupervisorConfig, EveryFieldOfTheSpec) {
  auto c = parse(R"(logfile: logs/tm.log
socket: /run/tm.sock
programs:
  webserver:
    cmd: "python3 -m http.server 8000"
    numprocs: 2
    autostart: false
    autorestart: always
    exitcodes: [0, 2]
    startretries: 5
    starttime: 5
    stopsignal: USR1
    stoptime: 1500ms
    stdout: /var/log/webserver.out
    stderr: null
    stdout_maxbytes: 1MB
    stdout_backups: 3
    stderr_maxbytes: 0
    stderr_backups: 0
    env: {PORT: "8000", DEBUG: 1}
    workingdir: /tmp
    umask: "027"
)");
  ASSERT_TRUE(c.has_value()) << c.error().message;
  EXPECT_EQ(c->logfile, "/etc/tm/logs/tm.log");
  EXPECT_EQ(c->socket, "/run/tm.sock");
  ASSERT_EQ(c->programs.size(), 1u);
  const auto& p = c->programs[0];
  EXPECT_EQ(p.name, "webserver");
  EXPECT_EQ(p.command, "python3 -m http.server 8000");
  EXPECT_EQ(p.numprocs, 2);
  EXPECT_FALSE(p.autostart);
  EXPECT_EQ(p.rules.autorestart, AutoRestart::Always);
  EXPECT_EQ(p.rules.exitcodes, (std::vector<int>{0, 2}));
  EXPECT_EQ(p.rules.startretries, 5);
  EXPECT_EQ(p.rules.starttime, seconds(5));
  EXPECT_EQ(p.rules.stopsignal, SIGUSR1);
  EXPECT_EQ(p.rules.stoptime, milliseconds(1500));
  EXPECT_EQ(p.stdout_log.kind, OutputTarget::Kind::Path);
  EXPECT_EQ(p.stdout_log.path, "/var/log/webserver.out");
  EXPECT_EQ(p.stdout_log.max_bytes, 1024u * 1024u);
  EXPECT_EQ(p.stdout_log.backups, 3);
  EXPECT_EQ(p.stderr_log.kind, OutputTarget::Kind::Discard);
  EXPECT_EQ(p.stderr_log.max_bytes, 0u);
  EXPECT_EQ(p.env.at("PORT"), "8000");
  EXPECT_EQ(p.env.at("DEBUG"), "1");
  EXPECT_EQ(p.workingdir, "/tmp");
  ASSERT_TRUE(p.umask.has_value());
  EXPECT_EQ(*p.umask, 027u);
  EXPECT_FALSE(p.isolation.has_value());
  EXPECT_EQ(p.tier, isolation::Tier::Env);
}

TEST(SupervisorConfig, SupervisordDefaultsWhereTheFileIsSilent) {
  auto c = parse("programs:\n  a:\n    cmd: sleep 1\n");
  ASSERT_TRUE(c.has_value()) << c.error().message;
  const auto& p = c->programs.at(0);
  EXPECT_EQ(p.numprocs, 1);
  EXPECT_TRUE(p.autostart);
  EXPECT_EQ(p.rules.autorestart, AutoRestart::Unexpected);
  EXPECT_EQ(p.rules.exitcodes, (std::vector<int>{0}));
  EXPECT_EQ(p.rules.startretries, 3);
  EXPECT_EQ(p.rules.starttime, seconds(1));
  EXPECT_EQ(p.rules.stopsignal, SIGTERM);
  EXPECT_EQ(p.rules.stoptime, seconds(10));
  EXPECT_EQ(p.stdout_log.kind, OutputTarget::Kind::Default);
  EXPECT_EQ(p.stdout_log.max_bytes, 50u * 1024 * 1024);
  EXPECT_EQ(p.stdout_log.backups, 10);
  EXPECT_FALSE(p.umask.has_value());
  EXPECT_TRUE(p.workingdir.empty());
  EXPECT_FALSE(c->socket.has_value());
  EXPECT_FALSE(c->logfile.has_value());
}

TEST(SupervisorConfig, ExitcodesTakeAnIntOrAList) {
  auto c = parse("programs:\n  a: {cmd: x, exitcodes: 3}\n");
  ASSERT_TRUE(c.has_value()) << c.error().message;
  EXPECT_EQ(c->programs[0].rules.exitcodes, (std::vector<int>{3}));
}

TEST(SupervisorConfig, UmaskIsOctalHoweverWritten) {
  for (const char* text : {"022", "\"022\"", "0o22"}) {
    auto c = parse(std::string("programs:\n  a: {cmd: x, umask: ") + text + "}\n");
    ASSERT_TRUE(c.has_value()) << text << ": " << c.error().message;
    EXPECT_EQ(*c->programs[0].umask, 022u) << text;
  }
}

TEST(SupervisorConfig, ProgramsKeepFileOrder) {
  auto c = parse("programs:\n  zeta: {cmd: x}\n  alpha: {cmd: y}\n");
  ASSERT_TRUE(c.has_value());
  EXPECT_EQ(c->programs[0].name, "zeta");
  EXPECT_EQ(c->programs[1].name, "alpha");
}

TEST(SupervisorConfig, ErrorsNameFileLineAndKey) {
  const std::pair<const char*, const char*> bad[] = {
      {"numprocs", "lots"},          {"numprocs", "0"},        {"autorestart", "sometimes"},
      {"stopsignal", "NOPE"},        {"exitcodes", "[0, 300]"}, {"umask", "999"},
      {"stoptime", "-1"},            {"stdout_maxbytes", "huge"}, {"autostart", "maybe"},
      {"env", "[A]"},                {"workingdir", "/no/such/dir"}, {"user", "no-such-user-here"},
      {"isolation", "cloud"},        {"starttime", "soon"},    {"startretries", "-2"},
  };
  for (const auto& [key, value] : bad) {
    std::string e = error_of(std::string("programs:\n  a:\n    cmd: x\n    ") + key + ": " + value + "\n");
    std::string want = std::string("web.yaml:4: key 'programs.a.") + key + "':";
    EXPECT_EQ(e.rfind(want, 0), 0u) << "got: " << e << "\nwanted: " << want;
  }
}

TEST(SupervisorConfig, UnknownKeysAndMissingCmdAreErrors) {
  std::string e = error_of("programs:\n  a:\n    cmd: x\n    comand: y\n");
  EXPECT_EQ(e.rfind("web.yaml:4: key 'programs.a.comand': unknown key", 0), 0u) << e;
  e = error_of("programs:\n  a:\n    numprocs: 2\n");
  EXPECT_NE(e.find("key 'programs.a.cmd': missing"), std::string::npos) << e;
  e = error_of("progams:\n  a: {cmd: x}\n");
  EXPECT_EQ(e.rfind("web.yaml:1: key 'progams': unknown key", 0), 0u) << e;
  e = error_of("programs:\n  a: {cmd: \"  \"}\n");
  EXPECT_EQ(e, "web.yaml:2: key 'programs.a.cmd': expected a non-blank string");
}

TEST(SupervisorConfig, BadNamesAndBadYaml) {
  EXPECT_NE(error_of("programs:\n  ../x: {cmd: x}\n").find("programs.../x"), std::string::npos);
  EXPECT_NE(error_of("programs:\n  all: {cmd: x}\n").find("invalid program name"), std::string::npos);
  EXPECT_EQ(error_of("programs:\n  a: {cmd: x\n").rfind("web.yaml:", 0), 0u);
  EXPECT_NE(error_of("- just\n- a list\n").find("expected a mapping"), std::string::npos);
  EXPECT_NE(error_of("logfile: x\n").find("'programs': missing"), std::string::npos);
}

TEST(SupervisorConfig, RelativePathsAreTheConfigDirectorys) {
  auto c = parse("programs:\n  a: {cmd: x, stdout: out/a.log}\n");
  ASSERT_TRUE(c.has_value());
  EXPECT_EQ(c->programs[0].stdout_log.path, "/etc/tm/out/a.log");
}

TEST(SupervisorConfig, TheProjectIsTheFileStem) {
  EXPECT_EQ(config_project("/etc/tm/web.yaml").value(), "web");
  EXPECT_EQ(config_project("deploy.prod.yml").value(), "deploy.prod");
  EXPECT_FALSE(config_project("/etc/tm/.yaml").has_value());
}

TEST(SupervisorConfig, LoadNamesAMissingFile) {
  auto c = load_supervisor_config("/no/such/dir/x.yaml");
  ASSERT_FALSE(c.has_value());
  EXPECT_NE(c.error().message.find("/no/such/dir/x.yaml"), std::string::npos);
}

TEST(ControlCommandWords, SplitOnBlanks) {
  EXPECT_EQ(split_control_words("  start  web:00\tdb \r"),
            (std::vector<std::string>{"start", "web:00", "db"}));
  EXPECT_TRUE(split_control_words("   ").empty());
}

TEST(ShellCompletion, CommandsFirstThenNames) {
  const auto& commands = ControlCommands::command_names();
  std::vector<std::string> names = {"web", "web:00", "web:01", "worker"};
  EXPECT_EQ(ControlCommands::completions(commands, names, "", 0, "st"), (std::vector<std::string>{"start", "status", "stop"}));
  EXPECT_EQ(ControlCommands::completions(commands, names, "restart", 1, "w"),
            (std::vector<std::string>{"web", "web:00", "web:01", "worker"}));
  EXPECT_EQ(ControlCommands::completions(commands, names, "stop", 1, "a"), (std::vector<std::string>{"all"}));
  EXPECT_EQ(ControlCommands::completions(commands, names, "tail", 2, "std"), (std::vector<std::string>{"stderr", "stdout"}));
  EXPECT_TRUE(ControlCommands::completions(commands, names, "version", 1, "").empty());
}

}  // namespace
}  // namespace batman::cli

namespace batman::cli {
namespace {

// yaml-cpp keeps both copies of a key and finds the first: refused, by line and key.
TEST(SupervisorConfig, DuplicateKeysAreRefused) {
  std::string e = error_of("programs:\n  a:\n    cmd: x\n    numprocs: 2\n    numprocs: 3\n");
  EXPECT_EQ(e, "web.yaml:5: key 'programs.a.numprocs': duplicate key (first on line 4)");
  e = error_of("programs:\n  a: {cmd: x}\n  b: {cmd: y}\n  a: {cmd: z}\n");
  EXPECT_EQ(e, "web.yaml:4: key 'programs.a': duplicate key (first on line 2)");
  e = error_of("socket: /run/a.sock\nprograms: {}\nsocket: /run/b.sock\n");
  EXPECT_EQ(e, "web.yaml:3: key 'socket': duplicate key (first on line 1)");
}

// A user by name or by uid that the system does not know is a config error (it crashed a
// static glibc's NSS before).
TEST(SupervisorConfig, UnknownUsersByNameOrUidAreRefused) {
  std::string e = error_of("programs:\n  a:\n    cmd: x\n    user: nosuchuser\n");
  EXPECT_EQ(e, "web.yaml:4: key 'programs.a.user': no such user 'nosuchuser'");
  e = error_of("programs:\n  a:\n    cmd: x\n    user: 3987654\n");
  EXPECT_EQ(e, "web.yaml:4: key 'programs.a.user': no such user '3987654'");
  // The running user is fine, by uid.
  auto c = parse("programs:\n  a:\n    cmd: x\n    user: " + std::to_string(::geteuid()) + "\n");
  ASSERT_TRUE(c) << c.error().message;
  EXPECT_EQ(c->programs[0].uid.value_or(static_cast<uid_t>(-1)), ::geteuid());
}


// supervisord's %(...)s expansions (issue 13): Python's %-format over a fixed mapping.
namespace {
Expansions web(int n) { return Expansions{"web", "/etc/tm", n, 3, ""}; }
std::string expand_ok(std::string_view text, int n = 1) {
  auto r = expand_percent(text, web(n));
  EXPECT_TRUE(r.has_value()) << text << ": " << (r ? "" : r.error().message);
  return r ? *r : std::string();
}
std::string expand_error(std::string_view text) {
  auto r = expand_percent(text, web(1));
  EXPECT_FALSE(r.has_value()) << text;
  return r ? std::string() : r.error().message;
}
}  // namespace

TEST(Expansions, KeysConversionsAndPythonFormats) {
  EXPECT_EQ(expand_ok("serve --port 80%(process_num)02d"), "serve --port 8001");
  EXPECT_EQ(expand_ok("%(process_num)d", 7), "7");
  EXPECT_EQ(expand_ok("%(process_num)i", 7), "7");
  EXPECT_EQ(expand_ok("%(process_num)s", 12), "12");
  EXPECT_EQ(expand_ok("%(process_num)03d", 12), "012");
  EXPECT_EQ(expand_ok("[%(process_num)4d]", 12), "[  12]");
  EXPECT_EQ(expand_ok("[%(process_num)-4d]", 12), "[12  ]");
  EXPECT_EQ(expand_ok("%(process_num).3d", 5), "005");
  EXPECT_EQ(expand_ok("%(program_name)s_%(process_num)02d"), "web_01");
  EXPECT_EQ(expand_ok("%(group_name)s"), "web");
  EXPECT_EQ(expand_ok("%(here)s/logs"), "/etc/tm/logs");
  EXPECT_EQ(expand_ok("%(numprocs)d"), "3");
  EXPECT_EQ(expand_ok("[%(program_name)6s]"), "[   web]");
  EXPECT_EQ(expand_ok("[%(program_name).2s]"), "[we]");
  ::setenv("BATMAN_TEST_EXPANSION", "v a l", 1);
  EXPECT_EQ(expand_ok("x=%(ENV_BATMAN_TEST_EXPANSION)s"), "x=v a l");
  EXPECT_FALSE(expand_ok("%(host_node_name)s").empty());
  // %% is '%'; a '%' that starts no expansion is kept (date +%s keeps working).
  EXPECT_EQ(expand_ok("100%% date +%s %"), "100% date +%s %");
  EXPECT_EQ(expand_ok(""), "");
}

TEST(Expansions, MistakesAreOneLineErrors) {
  EXPECT_NE(expand_error("%(nope)s").find("unknown expansion '%(nope)s'"), std::string::npos);
  EXPECT_NE(expand_error("%(process_num)").find("needs a conversion"), std::string::npos);
  EXPECT_NE(expand_error("%(process_num)x").find("needs a conversion"), std::string::npos);
  EXPECT_NE(expand_error("%(here)d").find("here is text"), std::string::npos);
  EXPECT_NE(expand_error("a %(process_num").find("unterminated"), std::string::npos);
  ::unsetenv("BATMAN_TEST_UNSET_VARIABLE");
  EXPECT_NE(expand_error("%(ENV_BATMAN_TEST_UNSET_VARIABLE)s").find("BATMAN_TEST_UNSET_VARIABLE is not set"),
            std::string::npos);
  EXPECT_NE(expand_error("%(ENV_)s").find("unknown expansion"), std::string::npos);
  // Hostile widths do not allocate gigabytes.
  EXPECT_LE(expand_ok("%(process_num)99999999999d").size(), 10000u);
  for (auto* e : {"%(nope)s", "%(here)d", "%("})
    EXPECT_EQ(expand_error(e).find('\n'), std::string::npos);
}

TEST(Expansions, ConfigErrorsNameFileLineAndKey) {
  EXPECT_NE(error_of("programs:\n  a:\n    cmd: \"x %(nope)s\"\n").find("web.yaml:3: key 'programs.a.cmd'"),
            std::string::npos);
  EXPECT_NE(error_of("programs:\n  a:\n    cmd: x\n    env: {P: \"%(here)d\"}\n").find("key 'programs.a.env.P'"),
            std::string::npos);
  EXPECT_NE(error_of("programs:\n  a:\n    cmd: x\n    stdout: \"/x/%(oops)s\"\n").find("web.yaml:4: key 'programs.a.stdout'"),
            std::string::npos);
  EXPECT_NE(error_of("programs:\n  a:\n    cmd: x\n    numprocs: 2\n    workingdir: \"/no/such/%(process_num)d\"\n")
                .find("no such directory: /no/such/0"),
            std::string::npos);
}

TEST(Expansions, EachInstanceGetsItsOwnValues) {
  ::unsetenv("BATMAN_TEST_DIR");
  auto c = parse("programs:\n  web:\n    cmd: \"serve --port 80%(process_num)02d\"\n    numprocs: 2\n"
                 "    env: {NAME: \"%(program_name)s-%(process_num)d\"}\n"
                 "    stdout: \"logs/%(program_name)s-%(process_num)d.log\"\n"
                 "    stderr: \"%(here)s/err.log\"\n"
                 "    workingdir: \"%(ENV_BATMAN_TEST_DIR)s\"\n");
  ASSERT_FALSE(c.has_value());  // BATMAN_TEST_DIR is not set
  ::setenv("BATMAN_TEST_DIR", "/tmp", 1);
  c = parse("programs:\n  web:\n    cmd: \"serve --port 80%(process_num)02d\"\n    numprocs: 2\n"
            "    env: {NAME: \"%(program_name)s-%(process_num)d\"}\n"
            "    stdout: \"logs/%(program_name)s-%(process_num)d.log\"\n"
            "    stderr: \"%(here)s/err.log\"\n"
            "    workingdir: \"%(ENV_BATMAN_TEST_DIR)s\"\n");
  ASSERT_TRUE(c.has_value()) << c.error().message;
  const auto& p = c->programs[0];
  EXPECT_EQ(p.command, "serve --port 80%(process_num)02d");  // the config keeps the text
  EXPECT_TRUE(p.stdout_log.per_instance);
  EXPECT_FALSE(p.stderr_log.per_instance);
  auto one = expand_instance(p, 1);
  ASSERT_TRUE(one.has_value()) << one.error().message;
  EXPECT_EQ(one->command, "serve --port 8001");
  EXPECT_EQ(one->env.at("NAME"), "web-1");
  EXPECT_EQ(one->stdout_log.path, "/etc/tm/logs/web-1.log");
  EXPECT_EQ(one->stderr_log.path, "/etc/tm/err.log");
  EXPECT_EQ(one->workingdir, "/tmp");
  EXPECT_EQ(expand_instance(p, 0)->command, "serve --port 8000");
}

}  // namespace
}  // namespace batman::cli
