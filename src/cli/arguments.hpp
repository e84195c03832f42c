// Command-line words as users type them: a job's COMMAND as one shell string or as several
// words (systemd-run, docker and sudo style), shell quoting of those words, and the nearest
// known name for a mistyped option or subcommand.
#pragma once
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace batman::cli {

// `word` as /bin/sh reads it back as exactly one word: unchanged when it holds nothing the
// shell treats specially, else in single quotes ('it'\''s'). `first`: the command's own name,
// which is also quoted when it would be an assignment (A=1) or a reserved word (if, !, {).
std::string shell_quote(std::string_view word, bool first = false);
// The words as one /bin/sh command line that runs them as they are (argv, not re-split).
std::string shell_join(const std::vector<std::string>& words);

// True when `word` can only be a shell command line, not a program's name: it holds blanks
// or shell syntax ('echo $A', "make && make test").
bool is_shell_string(std::string_view word);

// Levenshtein distance (insert, delete, substitute, and swap of two neighbours: 1 each).
std::size_t edit_distance(std::string_view a, std::string_view b);
// The candidate nearest to `word` when it is near enough to be a typo (at most 2 edits, and
// fewer than half of the word), else nullopt. Ties go to the first candidate.
std::optional<std::string> closest_match(std::string_view word, const std::vector<std::string>& candidates);

// How many words an option of the job commands takes after it (0 for a flag, 1 for a value),
// or nullopt when it is not one of batman's. `name` is "--long" or "-s", without "=value".
using OptionArity = std::function<std::optional<int>(std::string_view name)>;

// A job command line (batman-parallel, batman-isolated, batman-multi) taken apart:
// batman's options (for CLI11, in order), the leading positionals (PROJECT or ID) and the
// command. Rules (README "Job options"):
//   - options before the command are batman's; `--` ends them;
//   - the command starts at the first word after the `leading` positionals;
//   - one command word is run as `/bin/sh -c WORD`; so is one followed only by batman's own
//     options (`'make test' --timeout 5m`, `true --isolation env`: long options only after a
//     plain word, since `ls -q` is ls's); after `--` nothing is an option;
//   - otherwise every word from the command's first on is its argv (`make -j4`).
//   - `--monitor N` takes N as its port when N is a number; `--monitor=N` and a bare
//     `--monitor` as before.
struct JobArguments {
  std::vector<std::string> options;      // for CLI11: batman's options and positionals
  std::vector<std::string> positionals;  // PROJECT / ID, as given
  std::vector<std::string> command;      // empty: none given
  bool shell_form = true;                // command[0] is run by /bin/sh -c
  std::optional<std::string> monitor;    // --monitor given: its port ("" = any)
  std::vector<std::string> stray;        // words after a shell-string COMMAND that are not options
  // Words passed to the command that look like a mistyped option of batman's, with the
  // option they resemble (for a hint).
  std::vector<std::pair<std::string, std::string>> near_misses;
};
JobArguments split_job_arguments(const std::vector<std::string>& args, std::size_t leading,
                                 const OptionArity& arity, const std::vector<std::string>& long_options = {});

// -h, --help, -V, --version: the words that show help or the version instead of running.
bool is_help_or_version(std::string_view name);

// The job's command line as stored and run: the one shell string, or the words quoted.
std::string job_command_line(const JobArguments& parsed);

}  // namespace batman::cli
