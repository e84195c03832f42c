// Command-line words: job command splitting, shell quoting, did-you-mean, table fitting,
// clean's --older-than units, ctl's options.
#include <gtest/gtest.h>

#include "common/duration.hpp"
#include "src/cli/arguments.hpp"
#include "src/cli/control_client.hpp"
#include "src/cli/table.hpp"

namespace batman::cli {
namespace {

// The job commands' options as run.cpp declares them (values: 1, flags: 0).
std::optional<int> job_arity(std::string_view name) {
  for (auto flag : {"--net", "--no-net", "--worktree", "--keep-worktree", "-t", "--tty", "-d", "--detach",
                    "--keep-tmp", "--monitor", "--no-monitor", "-q", "--quiet", "-h", "--help", "-V", "--version"})
    if (name == flag) return 0;
  for (auto value : {"--isolation", "--profile", "--memory", "--cpus", "--pids", "--timeout", "--restart",
                     "--exitcodes", "--env", "--cwd", "--project", "--stoptime", "--stopsignal"})
    if (name == value) return 1;
  return std::nullopt;
}

JobArguments split(std::vector<std::string> args, std::size_t leading = 1) {
  return split_job_arguments(args, leading, job_arity, {"--timeout", "--memory", "--isolation", "--detach"});
}

using Words = std::vector<std::string>;

TEST(JobArguments, SeveralWordsAfterProjectAreTheArgv) {
  auto a = split({"web", "make", "-j4"});
  EXPECT_EQ(a.positionals, Words{"web"});
  EXPECT_EQ(a.command, (Words{"make", "-j4"}));
  EXPECT_FALSE(a.shell_form);
  EXPECT_EQ(job_command_line(a), "make -j4");
  EXPECT_EQ(a.options, (Words{"--", "web"}));
}

TEST(JobArguments, OptionsBeforeTheCommandAreBatmans) {
  auto a = split({"--timeout", "5s", "-q", "web", "make", "-q", "--timeout", "1s"});
  EXPECT_EQ(a.options, (Words{"--timeout", "5s", "-q", "--", "web"}));
  EXPECT_EQ(a.command, (Words{"make", "-q", "--timeout", "1s"}));
  EXPECT_FALSE(a.shell_form);
}

TEST(JobArguments, OneShellStringKeepsTrailingOptions) {
  auto a = split({"p", "echo $A", "-q", "--env", "A=1"});
  EXPECT_EQ(a.command, Words{"echo $A"});
  EXPECT_TRUE(a.shell_form);
  EXPECT_EQ(job_command_line(a), "echo $A");
  EXPECT_EQ(a.options, (Words{"-q", "--env", "A=1", "--", "p"}));
}

TEST(JobArguments, APlainWordFollowedOnlyByBatmanLongOptionsIsTheShellForm) {
  auto a = split({"p", "true", "--isolation", "env", "--detach"});
  EXPECT_EQ(a.command, Words{"true"});
  EXPECT_TRUE(a.shell_form);
  EXPECT_EQ(a.options, (Words{"--isolation", "env", "--detach", "--", "p"}));
  // A short option, --help or an unknown one after a plain word is the command's.
  EXPECT_EQ(split({"p", "ls", "-q"}).command, (Words{"ls", "-q"}));
  EXPECT_EQ(split({"p", "git", "--help"}).command, (Words{"git", "--help"}));
  EXPECT_EQ(split({"p", "git", "--version"}).command, (Words{"git", "--version"}));
}

TEST(JobArguments, DoubleDashEndsOptions) {
  auto a = split({"--env", "A=1", "--", "p", "true", "--isolation", "env"});
  EXPECT_EQ(a.options, (Words{"--env", "A=1", "--", "p"}));
  EXPECT_EQ(a.command, (Words{"true", "--isolation", "env"}));
  EXPECT_FALSE(a.shell_form);
  auto b = split({"p", "--", "echo hi"});
  EXPECT_EQ(b.command, Words{"echo hi"});
  EXPECT_TRUE(b.shell_form);
  EXPECT_EQ(job_command_line(b), "echo hi");
  auto c = split({"p", "--", "-weird", "x"});
  EXPECT_EQ(c.command, (Words{"-weird", "x"}));
}

TEST(JobArguments, IsolatedHasNoLeadingPositional) {
  auto a = split({"--memory", "1G", "make", "-j4"}, 0);
  EXPECT_TRUE(a.positionals.empty());
  EXPECT_EQ(a.command, (Words{"make", "-j4"}));
}

TEST(JobArguments, MonitorTakesAFollowingNumberAsItsPort) {
  auto a = split({"--monitor", "8080", "web", "make"});
  EXPECT_EQ(a.monitor, "8080");
  EXPECT_EQ(a.positionals, Words{"web"});
  auto b = split({"--monitor", "web", "make"});
  EXPECT_EQ(b.monitor, "");
  EXPECT_EQ(b.positionals, Words{"web"});
  auto c = split({"--monitor=0", "web", "make"});
  EXPECT_EQ(c.monitor, "0");
  auto d = split({"web", "true", "--monitor", "9000"});
  EXPECT_EQ(d.monitor, "9000");
  EXPECT_TRUE(d.shell_form);
}

TEST(JobArguments, StraysAfterAShellStringAreReported) {
  auto a = split({"p", "echo hi", "there"});
  EXPECT_EQ(a.stray, Words{"there"});
}

TEST(JobArguments, NearMissesOfBatmanOptionsInTheArgvAreNoted) {
  auto a = split({"p", "sleep", "10", "--timout", "1s"});
  ASSERT_EQ(a.near_misses.size(), 1u);
  EXPECT_EQ(a.near_misses[0].first, "--timout");
  EXPECT_EQ(a.near_misses[0].second, "--timeout");
}

TEST(ShellQuote, QuotesOnlyWhatTheShellWouldReadOtherwise) {
  EXPECT_EQ(shell_quote("make"), "make");
  EXPECT_EQ(shell_quote("-j4"), "-j4");
  EXPECT_EQ(shell_quote("a b"), "'a b'");
  EXPECT_EQ(shell_quote("it's"), "'it'\\''s'");
  EXPECT_EQ(shell_quote("$HOME"), "'$HOME'");
  EXPECT_EQ(shell_quote(""), "''");
  EXPECT_EQ(shell_quote("A=1"), "A=1");
  EXPECT_EQ(shell_quote("A=1", true), "'A=1'");  // not an assignment
  EXPECT_EQ(shell_quote("if", true), "'if'");
  EXPECT_EQ(shell_join({"printf", "%s\\n", "a b", "*"}), "printf '%s\\n' 'a b' '*'");
}

TEST(ShellString, BlanksAndSyntaxMakeAShellString) {
  EXPECT_TRUE(is_shell_string("echo hi"));
  EXPECT_TRUE(is_shell_string("make&&x"));
  EXPECT_TRUE(is_shell_string("~/bin/x"));
  EXPECT_FALSE(is_shell_string("make"));
  EXPECT_FALSE(is_shell_string("/usr/bin/env"));
}

TEST(DidYouMean, FindsTheNearestName) {
  const std::vector<std::string> options{"--timeout", "--memory", "--isolation", "--help"};
  EXPECT_EQ(closest_match("--timout", options), "--timeout");
  EXPECT_EQ(closest_match("--tiemout", options), "--timeout");  // a swap is one edit
  EXPECT_EQ(closest_match("--memroy", options), "--memory");
  EXPECT_EQ(closest_match("--xyz", options), std::nullopt);
  EXPECT_EQ(closest_match("--timeout", options), std::nullopt);  // itself is no suggestion
  const std::vector<std::string> commands{"parallel", "ps", "logs", "stop", "clean"};
  EXPECT_EQ(closest_match("paralel", commands), "parallel");
  EXPECT_EQ(closest_match("claen", commands), "clean");
  EXPECT_EQ(closest_match("zz", commands), std::nullopt);
  EXPECT_EQ(edit_distance("kitten", "sitting"), 3u);
}

TEST(Table, FitsTheWidthTruncatingWithAnEllipsis) {
  Table t({"PROJECT", "RUN-ID", "COMMAND"});
  t.add({std::string(40, 'p'), "20260101T000000-abcdef", std::string(100, 'c')});
  const std::string text = t.render(80, {0});
  std::size_t start = 0;
  while (start < text.size()) {
    std::size_t end = text.find('\n', start);
    EXPECT_LE(display_width(text.substr(start, end - start)), 80u) << text;
    start = end + 1;
  }
  EXPECT_NE(text.find("…"), std::string::npos);
  EXPECT_NE(text.find("20260101T000000-abcdef"), std::string::npos);  // never cut
  const std::string wide = t.render();
  EXPECT_NE(wide.find(std::string(100, 'c')), std::string::npos);
  EXPECT_EQ(truncate_to("abcdef", 4), "abc…");
  EXPECT_EQ(truncate_to("abc", 4), "abc");
}

TEST(Table, ColumnsAreAligned) {
  Table t({"NAME", "DESCRIPTION"});
  t.add({"parallel", "x"});
  t.add({"ci", "y"});
  EXPECT_EQ(t.render(), "NAME      DESCRIPTION\nparallel  x\nci        y\n");
}

TEST(Age, NeedsAUnitAndTakesWeeks) {
  EXPECT_FALSE(parse_age("7").has_value());
  EXPECT_NE(parse_age("7").error().message.find("add a unit: s, m, h, d, w"), std::string::npos);
  EXPECT_EQ(*parse_age("7d"), std::chrono::hours(24 * 7));
  EXPECT_EQ(*parse_age("2w"), std::chrono::hours(24 * 14));
  EXPECT_EQ(*parse_age("90m"), std::chrono::minutes(90));
  EXPECT_FALSE(parse_age("7x").has_value());
  EXPECT_EQ(*parse_duration("1w"), std::chrono::hours(24 * 7));
}

TEST(CtlArgs, OptionsComeFirstAndTheRestIsTheCommand) {
  auto a = parse_ctl_args({"--config", "tm.yaml", "status", "--json", "web"});
  EXPECT_EQ(a.kind, CtlArgs::Kind::Command);
  EXPECT_EQ(a.config, "tm.yaml");
  EXPECT_EQ(a.command, (Words{"status", "--json", "web"}));
  a = parse_ctl_args({"--socket=/run/s.sock", "--", "--odd"});
  EXPECT_EQ(a.socket, "/run/s.sock");
  EXPECT_EQ(a.command, Words{"--odd"});
  a = parse_ctl_args({"-f"});  // a word the shell's tail takes, not an option of ctl
  EXPECT_EQ(a.command, Words{"-f"});
  EXPECT_TRUE(parse_ctl_args({"--config", "tm.yaml"}).command.empty());  // the shell
  EXPECT_EQ(parse_ctl_args({"--config", "tm.yaml", "-h", "status"}).kind, CtlArgs::Kind::Help);
  EXPECT_EQ(parse_ctl_args({"-V"}).kind, CtlArgs::Kind::Version);
  // After the command begins, its words are its own: `status -h` goes to the supervisor.
  EXPECT_EQ(parse_ctl_args({"status", "-h"}).command, (Words{"status", "-h"}));
}

TEST(CtlArgs, MistakesAreSaidOnce) {
  EXPECT_EQ(parse_ctl_args({"--socket"}).problem, "--socket needs a PATH");
  EXPECT_EQ(parse_ctl_args({"--config="}).problem, "--config needs a CONFIG file");
  EXPECT_EQ(parse_ctl_args({"--socket", "s", "--config", "c", "status"}).problem, "give --socket or --config, not both");
  auto a = parse_ctl_args({"--frob", "status"});
  EXPECT_EQ(a.kind, CtlArgs::Kind::Bad);
  EXPECT_EQ(a.problem, "unknown option '--frob' (see 'batman ctl --help')");
  EXPECT_EQ(*ctl_request_line({"stop", "web:00", "db"}), "stop web:00 db");
  EXPECT_FALSE(ctl_request_line({"stop", "web\nquit"}));
  EXPECT_FALSE(ctl_request_line({"stop\r"}));
}

}  // namespace
}  // namespace batman::cli
