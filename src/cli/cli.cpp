// Shared CLI helpers: messages, parsing glue, $BATMAN_HOME.
#include "src/cli/cli.hpp"

#include <pwd.h>
#include <unistd.h>

#include <cstdlib>
#include <iostream>

#include "batman_config.h"
#include "common/names.hpp"
#include "src/cli/arguments.hpp"

namespace batman::cli {
namespace {
bool g_quiet = false;
}

void set_quiet(bool q) { g_quiet = q; }
bool quiet() { return g_quiet; }

// Every message is one line, whatever name or path it echoes (printable escapes controls).
void info(std::string_view message) {
  if (!g_quiet) std::cerr << "batman: " << printable(message) << std::endl;
}
void error(std::string_view message) { std::cerr << "batman: " << printable(message) << std::endl; }

std::string version_text() { return std::string("batman ") + BATMAN_VERSION; }

bool colour_on(int fd) {
  if (const char* no = std::getenv("NO_COLOR"); no && *no) return false;  // no-color.org
  if (const char* term = std::getenv("TERM"); !term || std::string_view(term) == "dumb") return false;
  return ::isatty(fd) == 1;
}

std::string coloured(std::string_view text, std::string_view sgr) {
  std::string out = "\033[";
  out += sgr;
  out += 'm';
  out += text;
  out += "\033[0m";
  return out;
}

namespace {
std::vector<std::string> option_names(const CLI::App& app) {
  std::vector<std::string> names;
  for (const CLI::Option* opt : app.get_options()) {
    for (const auto& l : opt->get_lnames()) names.push_back("--" + l);
    for (const auto& s : opt->get_snames()) names.push_back("-" + s);
  }
  return names;
}
}  // namespace

std::optional<int> parse(CLI::App& app, const std::vector<std::string>& args) {
  // Every executable and subcommand answers -V/--version (unless it took -V for itself).
  if (app.get_option_no_throw("--version") == nullptr && app.get_option_no_throw("-V") == nullptr)
    app.set_version_flag("-V,--version", version_text(), "print batman's version");
  std::vector<std::string> reversed(args.rbegin(), args.rend());
  try {
    app.parse(reversed);
  } catch (const CLI::CallForHelp&) {
    std::cout << app.help();
    return 0;
  } catch (const CLI::CallForAllHelp&) {
    std::cout << app.help("", CLI::AppFormatMode::All);
    return 0;
  } catch (const CLI::CallForVersion& e) {
    std::cout << e.what() << "\n";
    return 0;
  } catch (const CLI::ParseError& e) {
    std::string what = e.what();
    // CLI11 reports a missing positional before an unknown option; the unknown option is
    // what the user got wrong ("batman-parallel -x true"), and a near name is what they meant.
    for (const auto& arg : args) {
      if (arg == "--") break;
      if (arg.size() < 2 || arg[0] != '-') continue;
      std::string name = arg.substr(0, arg.find('='));
      if (name.size() > 2 && name[1] != '-') name = name.substr(0, 2);  // -abc: -a
      if (app.get_option_no_throw(name) == nullptr && name != "-h" && name != "--help") {
        if (auto near = closest_match(name, option_names(app)))
          what = "unknown option '" + name + "': did you mean " + *near + "?";
        else
          what = "unknown option '" + name + "' (names cannot start with '-'; put COMMAND after '--' if it does)";
        break;
      }
    }
    error(app.get_name() + ": " + what + " (see '" + app.get_name() + " --help')");
    return kExitBatmanError;
  }
  // An empty value (`--report ""`, `batman logs p ""`) is a mistake, not the option left out:
  // refused, rather than silently running with the default.
  for (const CLI::Option* opt : app.get_options()) {
    // Not given, a flag, or required (the command's own check of it says what it must be).
    if (opt->count() == 0 || opt->get_expected_min() == 0 || opt->get_required()) continue;
    for (const auto& value : opt->results()) {
      if (!value.empty()) continue;
      error(app.get_name() + ": " + opt->get_name() + " is empty (leave it out for its default; see '" +
            app.get_name() + " --help')");
      return kExitBatmanError;
    }
  }
  return std::nullopt;
}

std::string batman_home() {
  if (const char* env = std::getenv("BATMAN_HOME"); env && *env) return env;
  const char* home = std::getenv("HOME");
  std::string base;
  if (home && *home) {
    base = home;
  } else if (passwd* pw = getpwuid(getuid()); pw && pw->pw_dir) {
    base = pw->pw_dir;
  } else {
    return {};  // no home: home_dir() reports it; never a predictable path in shared /tmp
  }
  return base + "/.batman-parallel";
}

}  // namespace batman::cli
