// supervisord.conf read by taskmaster (src/taskmaster/supervisord_config.*): the examples of
// supervisord's documentation (docs/configuration.rst) give the programs supervisord would
// run, [group:x], [include], environment quoting, and mistakes get one FILE:LINE line.
#include <gtest/gtest.h>

#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "src/taskmaster/supervisord_config.hpp"
#include "src/taskmaster/supervisor_config.hpp"

namespace batman::cli {
namespace {

namespace fs = std::filesystem;
using runner::AutoRestart;
using runner::OutputTarget;
using std::chrono::seconds;

Result<runner::SupervisorConfig> parse_ini_text(const std::string& text, ConfigWarnings* warnings = nullptr) {
  return parse_supervisord_config(text, "/etc/supervisor/supervisord.conf", "/etc/supervisor", warnings);
}

std::string ini_error_of(const std::string& text) {
  auto c = parse_ini_text(text);
  EXPECT_FALSE(c.has_value()) << text;
  return c ? std::string() : c.error().message;
}

// docs/configuration.rst, "[program:x] Section Example" (user= left out: no such user here).
TEST(SupervisordIni, TheDocumentationsProgramExample) {
  ConfigWarnings warnings;
  auto c = parse_ini_text(R"([program:cat]
command=/bin/cat
process_name=%(program_name)s
numprocs=1
directory=/tmp
umask=022
priority=999
autostart=true
autorestart=unexpected
startsecs=10
startretries=3
exitcodes=0
stopsignal=TERM
stopwaitsecs=10
stopasgroup=false
killasgroup=false
redirect_stderr=false
stdout_logfile=/a/path
stdout_logfile_maxbytes=1MB
stdout_logfile_backups=10
stdout_capture_maxbytes=1MB
stdout_events_enabled=false
stderr_logfile=/a/path
stderr_logfile_maxbytes=1MB
stderr_logfile_backups=10
stderr_capture_maxbytes=1MB
stderr_events_enabled=false
environment=A="1",B="2"
serverurl=AUTO
)",
                 &warnings);
  ASSERT_TRUE(c) << c.error().message;
  ASSERT_EQ(c->programs.size(), 1u);
  const auto& p = c->programs[0];
  EXPECT_EQ(p.name, "cat");
  EXPECT_EQ(p.command, "/bin/cat");
  EXPECT_EQ(p.numprocs, 1);
  EXPECT_EQ(p.workingdir, "/tmp");
  ASSERT_TRUE(p.umask);
  EXPECT_EQ(*p.umask, 022u);
  EXPECT_EQ(p.priority, 999);
  EXPECT_TRUE(p.autostart);
  EXPECT_EQ(p.rules.autorestart, AutoRestart::Unexpected);
  EXPECT_EQ(p.rules.starttime, seconds(10));
  EXPECT_EQ(p.rules.startretries, 3);
  EXPECT_EQ(p.rules.exitcodes, std::vector<int>{0});
  EXPECT_EQ(p.rules.stopsignal, 15);
  EXPECT_EQ(p.rules.stoptime, seconds(10));
  EXPECT_EQ(p.stdout_log.kind, OutputTarget::Kind::Path);
  EXPECT_EQ(p.stdout_log.path, "/a/path");
  EXPECT_EQ(p.stdout_log.max_bytes, 1048576u);  // supervisord's MB, as batman's
  EXPECT_EQ(p.stdout_log.backups, 10);
  EXPECT_FALSE(p.redirect_stderr);
  EXPECT_EQ(p.env.at("A"), "1");
  EXPECT_EQ(p.env.at("B"), "2");
  // Named once each, with their line: what batman does not implement.
  std::string all;
  for (const auto& w : warnings) all += w + "\n";
  EXPECT_NE(all.find("supervisord.conf:21: [program:cat] stdout_capture_maxbytes: not implemented"), std::string::npos) << all;
  EXPECT_NE(all.find("stdout_events_enabled"), std::string::npos) << all;
  EXPECT_NE(all.find("serverurl"), std::string::npos) << all;
  EXPECT_EQ(all.find("command"), std::string::npos) << all;
}

// supervisor's own sample.conf (Debian: supervisor/skel/sample.conf, what echo_supervisord_conf
// prints and docs/configuration.rst walks through), its [program:theprogramname] example
// uncommented (but user=, an account this machine lacks): the program supervisord would run.
TEST(SupervisordIni, SupervisorsOwnSampleConf) {
  const char* path = "/usr/lib/python3/dist-packages/supervisor/skel/sample.conf";
  std::ifstream in(path);
  if (!in) GTEST_SKIP() << path << " is not installed (Debian's supervisor package)";
  std::string text, line;
  bool in_program = false;
  while (std::getline(in, line)) {
    if (line.starts_with(";[")) in_program = line == ";[program:theprogramname]";
    if (in_program && line.starts_with(";") && !line.starts_with(";user=")) line.erase(0, 1);
    text += line + "\n";
  }
  ConfigWarnings warnings;
  auto c = parse_supervisord_config(text, "sample.conf", "/tmp", &warnings);
  ASSERT_TRUE(c) << c.error().message;
  ASSERT_EQ(c->programs.size(), 1u);
  const auto& p = c->programs[0];
  EXPECT_EQ(p.name, "theprogramname");
  EXPECT_EQ(p.command, "/bin/cat");
  EXPECT_EQ(p.rules.stopsignal, 3);  // QUIT
  EXPECT_TRUE(p.redirect_stderr);
  EXPECT_EQ(p.stdout_log.path, "/a/path");
  EXPECT_EQ(p.env.at("B"), "2");
  EXPECT_EQ(c->rpc.socket.value_or(""), "/tmp/supervisor.sock");  // [unix_http_server] file=
  EXPECT_EQ(c->logfile.value_or(""), "/tmp/supervisord.log");
  std::string all;
  for (const auto& w : warnings) all += w + "\n";
  EXPECT_NE(all.find("[program:theprogramname] stdout_syslog: not implemented"), std::string::npos) << all;
}

// "numprocs ... process_name" and a [group:x] (docs: "[group:x] Section Example").
TEST(SupervisordIni, NumprocsProcessNamesAndGroups) {
  auto c = parse_ini_text(R"([program:bar]
command=/bin/sleep 100
process_name=%(program_name)s_%(process_num)02d
numprocs=3
numprocs_start=1
priority=5

[program:baz]
command = /bin/sleep 200   ; an inline comment
autostart = False
autorestart = true

[group:foo]
programs=bar,baz
priority=999
)");
  ASSERT_TRUE(c) << c.error().message;
  ASSERT_EQ(c->programs.size(), 2u);
  const auto& bar = c->programs[0];
  EXPECT_EQ(bar.name, "bar");
  EXPECT_EQ(bar.numprocs, 3);
  EXPECT_EQ(bar.numprocs_start, 1);
  EXPECT_EQ(bar.process_name, "%(program_name)s_%(process_num)02d");
  EXPECT_EQ(bar.group, "foo");
  const auto& baz = c->programs[1];
  EXPECT_EQ(baz.command, "/bin/sleep 200");
  EXPECT_FALSE(baz.autostart);
  EXPECT_EQ(baz.rules.autorestart, AutoRestart::Always);
  ASSERT_EQ(c->groups.size(), 1u);
  EXPECT_EQ(c->groups[0].name, "foo");
  EXPECT_EQ(c->groups[0].programs, (std::vector<std::string>{"bar", "baz"}));
  // %(process_num)d starts at numprocs_start in each instance's command; %(group_name)s is
  // the [group:x]'s.
  runner::ProgramConfig p = bar;
  p.command = "echo %(process_num)02d %(group_name)s %(program_name)s";
  auto second = expand_instance(p, 1);
  ASSERT_TRUE(second) << second.error().message;
  EXPECT_EQ(second->command, "echo 02 foo bar");
}

TEST(SupervisordIni, PriorityOrdersTheStart) {
  auto c = parse_ini_text("[program:late]\ncommand=true\npriority=900\n[program:early]\ncommand=true\npriority=1\n[program:middle]\ncommand=true\n");
  ASSERT_TRUE(c) << c.error().message;
  ASSERT_EQ(c->programs.size(), 3u);
  EXPECT_EQ(c->programs[0].name, "early");
  EXPECT_EQ(c->programs[1].name, "late");  // 900 < the default 999
  EXPECT_EQ(c->programs[2].name, "middle");
}

TEST(SupervisordIni, EnvironmentQuoting) {
  auto pairs = parse_environment_pairs(R"(KEY="val,ue",KEY2='two words', HOME="/x", EMPTY="",URL=http://a:1/b)");
  ASSERT_TRUE(pairs) << pairs.error().message;
  ASSERT_EQ(pairs->size(), 5u);
  EXPECT_EQ((*pairs)[0], (std::pair<std::string, std::string>{"KEY", "val,ue"}));
  EXPECT_EQ((*pairs)[1], (std::pair<std::string, std::string>{"KEY2", "two words"}));
  EXPECT_EQ((*pairs)[2], (std::pair<std::string, std::string>{"HOME", "/x"}));
  EXPECT_EQ((*pairs)[3], (std::pair<std::string, std::string>{"EMPTY", ""}));
  EXPECT_EQ((*pairs)[4], (std::pair<std::string, std::string>{"URL", "http://a:1/b"}));
  EXPECT_FALSE(parse_environment_pairs("A=\"unterminated"));
  EXPECT_FALSE(parse_environment_pairs("A B"));
  // Continuation lines, as the docs' multi-line environment.
  auto c = parse_ini_text("[program:x]\ncommand=env\nenvironment=\n    A=\"1\",\n    B=\"%(ENV_HOME)s\"\n");
  ASSERT_TRUE(c) << c.error().message;
  EXPECT_EQ(c->programs[0].env.at("A"), "1");
  EXPECT_EQ(c->programs[0].env.at("B"), "%(ENV_HOME)s");  // expanded per instance
  auto expanded = expand_instance(c->programs[0], 0);
  ASSERT_TRUE(expanded);
  EXPECT_EQ(expanded->env.at("B"), std::getenv("HOME"));
}

TEST(SupervisordIni, ExpansionsHereAndEnv) {
  ::setenv("BATMAN_INI_TEST_DIR", "/var/tmp", 1);
  auto c = parse_ini_text(R"([supervisord]
logfile=%(here)s/main.log
[unix_http_server]
file=%(here)s/supervisor.sock
chmod=0700
[program:web]
command=/usr/bin/env NAME=%(program_name)s
directory=%(ENV_BATMAN_INI_TEST_DIR)s
stdout_logfile=%(here)s/%(program_name)s.out
stderr_logfile=NONE
)");
  ASSERT_TRUE(c) << c.error().message;
  EXPECT_EQ(c->logfile.value_or(""), "/etc/supervisor/main.log");
  EXPECT_EQ(c->rpc.socket.value_or(""), "/etc/supervisor/supervisor.sock");
  EXPECT_EQ(c->rpc.socket_mode.value_or(0), 0700u);
  const auto& p = c->programs[0];
  EXPECT_EQ(p.stderr_log.kind, OutputTarget::Kind::Discard);
  auto e = expand_instance(p, 0);
  ASSERT_TRUE(e) << e.error().message;
  EXPECT_EQ(e->command, "/usr/bin/env NAME=web");
  EXPECT_EQ(e->workingdir, "/var/tmp");
  EXPECT_EQ(e->stdout_log.path, "/etc/supervisor/web.out");
}

TEST(SupervisordIni, IncludeGlobs) {
  const fs::path dir = fs::temp_directory_path() / ("batman-ini-" + std::to_string(::getpid()));
  fs::create_directories(dir / "conf.d");
  std::ofstream(dir / "conf.d" / "b.conf") << "[program:b]\ncommand=sleep 1\n";
  std::ofstream(dir / "conf.d" / "a.conf") << "[program:a]\ncommand=sleep 2\n[group:g]\nprograms=a\n";
  std::ofstream(dir / "conf.d" / "bad.ini") << "not ini at all\n";
  ConfigWarnings warnings;
  auto c = parse_supervisord_config("[include]\nfiles = conf.d/*.conf %(here)s/missing/*.conf\n[program:main]\ncommand=true\n",
                                    (dir / "supervisord.conf").string(), dir.string(), &warnings);
  ASSERT_TRUE(c) << c.error().message;
  std::vector<std::string> names;
  for (const auto& p : c->programs) names.push_back(p.name);
  EXPECT_EQ(names, (std::vector<std::string>{"main", "a", "b"}));
  EXPECT_EQ(c->programs[1].group, "g");
  ASSERT_EQ(warnings.size(), 1u);
  EXPECT_NE(warnings[0].find("no file matches"), std::string::npos);
  // A mistake in an included file names that file.
  std::ofstream(dir / "conf.d" / "c.conf") << "[program:c]\ncommand=x\nnumprocs=many\n";
  auto bad = parse_supervisord_config("[include]\nfiles=conf.d/*.conf\n", (dir / "supervisord.conf").string(), dir.string(), nullptr);
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().message.rfind((dir / "conf.d" / "c.conf").string() + ":3: [program:c] numprocs: ", 0), 0u)
      << bad.error().message;
  fs::remove_all(dir);
}

TEST(SupervisordIni, MistakesAreOneLineWithFileLineSectionKey) {
  EXPECT_EQ(ini_error_of("[program:x]\ncommand=true\nnumprocs=abc\n"),
            "/etc/supervisor/supervisord.conf:3: [program:x] numprocs: expected a whole number from 1 to 10000");
  EXPECT_EQ(ini_error_of("[program:x]\ncommand=true\nstartsecs=soon\n").rfind("/etc/supervisor/supervisord.conf:3: [program:x] startsecs: expected a duration", 0), 0u);
  EXPECT_EQ(ini_error_of("[program:x]\ncommand=true\nstopsignal=LOUD\n").rfind("/etc/supervisor/supervisord.conf:3: [program:x] stopsignal: expected a signal", 0), 0u);
  EXPECT_EQ(ini_error_of("[program:x]\ncommand=true\nautorestart=maybe\n").rfind("/etc/supervisor/supervisord.conf:3: [program:x] autorestart: expected always", 0), 0u);
  EXPECT_EQ(ini_error_of("[program:x]\ncommand=true\nexitcodes=0,300\n"),
            "/etc/supervisor/supervisord.conf:3: [program:x] exitcodes: 300 is out of range (0 to 255)");
  EXPECT_EQ(ini_error_of("[program:x]\nautostart=true\n"),
            "/etc/supervisor/supervisord.conf:1: [program:x]: missing: command, the command to run");
  EXPECT_EQ(ini_error_of("[program:x]\ncommand=true\nnumprocs=2\n"),
            "/etc/supervisor/supervisord.conf:3: [program:x] numprocs: %(process_num) must be present within process_name when numprocs > 1");
  EXPECT_EQ(ini_error_of("[program:x]\ncommand=true\ndirectory=/no/such/dir\n"),
            "/etc/supervisor/supervisord.conf:3: [program:x] directory: no such directory: /no/such/dir");
  EXPECT_EQ(ini_error_of("[program:x]\ncommand=true\nenvironment=A=\"1\n"),
            "/etc/supervisor/supervisord.conf:3: [program:x] environment: unterminated quote in 'A=\"1'");
  EXPECT_EQ(ini_error_of("[program:x]\ncommand=echo %(nope)s\n").rfind("/etc/supervisor/supervisord.conf:2: [program:x] command: unknown expansion", 0), 0u);
  EXPECT_EQ(ini_error_of("[program:x]\ncommand=true\n[group:g]\nprograms=x,y\n"),
            "/etc/supervisor/supervisord.conf:4: [group:g] programs: no [program:y] section");
  EXPECT_EQ(ini_error_of("[program:a/b]\ncommand=true\n").rfind("/etc/supervisor/supervisord.conf:1: [program:a/b]: invalid program name", 0), 0u);
  // Syntax.
  EXPECT_EQ(ini_error_of("[program:x]\ncommand=true\njust words\n"),
            "/etc/supervisor/supervisord.conf:3: expected [section] or key = value, not 'just words'");
  EXPECT_EQ(ini_error_of("command=true\n"), "/etc/supervisor/supervisord.conf:1: key 'command' before any [section]");
  EXPECT_EQ(ini_error_of("[program:x\ncommand=true\n"),
            "/etc/supervisor/supervisord.conf:1: a section header without ']': [program:x");
  // A TCP port without a password is refused.
  EXPECT_EQ(ini_error_of("[inet_http_server]\nport=127.0.0.1:9001\n"),
            "/etc/supervisor/supervisord.conf:1: [inet_http_server] username: missing: a TCP port is served only with HTTP Basic auth (username and password)");
  auto ok = parse_ini_text("[inet_http_server]\nport=127.0.0.1:9001\nusername=u\npassword=p\n");
  ASSERT_TRUE(ok) << ok.error().message;
  ASSERT_TRUE(ok->rpc.inet);
  EXPECT_EQ(ok->rpc.inet->port, 9001);
  EXPECT_EQ(ok->rpc.inet->host, "127.0.0.1");
}

TEST(SupervisordIni, UnknownSectionsAndKeysAreNamedOnce) {
  ConfigWarnings warnings;
  auto c = parse_ini_text(R"([supervisord]
nodaemon=true
minfds=1024
[supervisorctl]
serverurl=unix:///tmp/supervisor.sock
[rpcinterface:supervisor]
supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface
[eventlistener:x]
command=listener
[program:x]
command=true
comand=typo
)",
                 &warnings);
  ASSERT_TRUE(c) << c.error().message;
  ASSERT_EQ(warnings.size(), 3u);
  EXPECT_EQ(warnings[0], "/etc/supervisor/supervisord.conf:8: [eventlistener:x]: section not implemented by batman, ignored");
  EXPECT_NE(warnings[1].find(":3: [supervisord] minfds: not implemented"), std::string::npos) << warnings[1];
  EXPECT_NE(warnings[2].find(":12: [program:x] comand: not implemented"), std::string::npos) << warnings[2];
}

TEST(SupervisordIni, FormatIsChosenBySyntax) {
  EXPECT_TRUE(looks_like_supervisord("; a comment\n\n[supervisord]\nnodaemon=true\n"));
  EXPECT_TRUE(looks_like_supervisord("[program:x]\ncommand=true\n"));
  EXPECT_FALSE(looks_like_supervisord("programs:\n  x:\n    cmd: true\n"));
  EXPECT_FALSE(looks_like_supervisord("# yaml\n[1, 2]: x\n"));
  EXPECT_FALSE(looks_like_supervisord(""));
}

TEST(SupervisordIni, RedirectStderr) {
  ConfigWarnings warnings;
  auto c = parse_ini_text("[program:x]\ncommand=true\nredirect_stderr=true\nstderr_logfile=/tmp/x.err\n", &warnings);
  ASSERT_TRUE(c) << c.error().message;
  EXPECT_TRUE(c->programs[0].redirect_stderr);
  ASSERT_EQ(warnings.size(), 1u);
  EXPECT_NE(warnings[0].find("stderr_logfile: redirect_stderr=true"), std::string::npos);
}

}  // namespace
}  // namespace batman::cli
