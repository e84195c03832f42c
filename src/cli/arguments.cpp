// Command-line words: job command splitting, shell quoting, did-you-mean.
#include "src/cli/arguments.hpp"

#include <algorithm>
#include <array>
#include <cstddef>

namespace batman::cli {
namespace {

bool plain_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
         std::string_view("_@%+=:,./-").find(c) != std::string_view::npos;
}

bool is_reserved_word(std::string_view w) {
  static constexpr std::array<std::string_view, 16> kReserved = {
      "!", "{", "}", "case", "do", "done", "elif", "else", "esac", "fi", "for", "if", "in", "then", "until", "while"};
  return std::find(kReserved.begin(), kReserved.end(), w) != kReserved.end();
}

bool all_digits(std::string_view w) {
  return !w.empty() && std::all_of(w.begin(), w.end(), [](char c) { return c >= '0' && c <= '9'; });
}

bool is_option_word(std::string_view w) { return w.size() >= 2 && w[0] == '-'; }

std::string option_name(std::string_view w) {
  if (w.starts_with("--")) return std::string(w.substr(0, w.find('=')));
  return std::string(w.substr(0, 2));  // -abc: -a
}

}  // namespace

bool is_help_or_version(std::string_view name) {
  return name == "-h" || name == "--help" || name == "-V" || name == "--version";
}

std::string shell_quote(std::string_view word, bool first) {
  bool plain = !word.empty() && std::all_of(word.begin(), word.end(), plain_char);
  if (plain && first && (word.find('=') != std::string_view::npos || is_reserved_word(word))) plain = false;
  if (plain) return std::string(word);
  std::string out = "'";
  for (char c : word) {
    if (c == '\'')
      out += "'\\''";
    else
      out += c;
  }
  return out + "'";
}

std::string shell_join(const std::vector<std::string>& words) {
  std::string out;
  for (std::size_t i = 0; i < words.size(); ++i) {
    if (i) out += ' ';
    out += shell_quote(words[i], i == 0);
  }
  return out;
}

bool is_shell_string(std::string_view word) {
  return word.find_first_of(" \t\n;&|<>$`'\"()\\*?[]{}~#") != std::string_view::npos;
}

std::size_t edit_distance(std::string_view a, std::string_view b) {
  // Optimal string alignment: three rows are enough.
  std::vector<std::size_t> prev2(b.size() + 1), prev(b.size() + 1), cur(b.size() + 1);
  for (std::size_t j = 0; j <= b.size(); ++j) prev[j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i) {
    cur[0] = i;
    for (std::size_t j = 1; j <= b.size(); ++j) {
      const std::size_t cost = a[i - 1] == b[j - 1] ? 0 : 1;
      cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + cost});
      if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1]) cur[j] = std::min(cur[j], prev2[j - 2] + 1);
    }
    std::swap(prev2, prev);
    std::swap(prev, cur);
  }
  return prev[b.size()];
}

std::optional<std::string> closest_match(std::string_view word, const std::vector<std::string>& candidates) {
  // Leading dashes are not what a typo is about: "--timout" vs "--timeout" is one edit of 6.
  auto bare = [](std::string_view w) {
    while (!w.empty() && w.front() == '-') w.remove_prefix(1);
    return w;
  };
  const std::string_view w = bare(word);
  std::optional<std::string> best;
  std::size_t best_distance = 0;
  for (const auto& c : candidates) {
    const std::string_view b = bare(c);
    if (b.empty() || b == w) continue;
    const std::size_t d = edit_distance(w, b);
    if (d > 2 || 2 * d >= std::max(w.size(), b.size())) continue;
    if (!best || d < best_distance) {
      best = c;
      best_distance = d;
    }
  }
  return best;
}

JobArguments split_job_arguments(const std::vector<std::string>& args, std::size_t leading,
                                 const OptionArity& arity, const std::vector<std::string>& long_options) {
  JobArguments out;
  const std::size_t n = args.size();
  // One option at args[i] (and its value): into out.options, or out.monitor.
  auto take_option = [&](std::size_t& i) {
    const std::string& a = args[i];
    if (a == "--monitor") {
      if (i + 1 < n && all_digits(args[i + 1])) {
        out.monitor = args[i + 1];
        i += 2;
      } else {
        out.monitor = "";
        ++i;
      }
      return;
    }
    if (a.starts_with("--monitor=")) {
      out.monitor = a.substr(10);
      ++i;
      return;
    }
    out.options.push_back(a);
    ++i;
    if (a.starts_with("--") && a.find('=') != std::string::npos) return;
    if (!a.starts_with("--") && a.size() > 2) return;  // -dq: flags only
    auto values = arity(option_name(a));
    if (values && *values > 0 && i < n) {
      out.options.push_back(args[i]);
      ++i;
    }
  };
  // Whether args[from..] is nothing but batman's long options with their values.
  auto only_batman_options = [&](std::size_t from) {
    for (std::size_t i = from; i < n;) {
      const std::string& a = args[i];
      if (!a.starts_with("--") || a == "--") return false;
      const std::string name = option_name(a);
      if (is_help_or_version(name) || !arity(name)) return false;
      if (name == "--monitor") {
        i += (a == "--monitor" && i + 1 < n && all_digits(args[i + 1])) ? 2 : 1;
        continue;
      }
      ++i;
      if (a.find('=') == std::string::npos && *arity(name) > 0) {
        if (i >= n) return false;
        ++i;
      }
    }
    return true;
  };

  std::size_t i = 0;
  bool ended = false;
  while (i < n) {
    const std::string& a = args[i];
    if (!ended && a == "--") {
      ended = true;
      ++i;
      continue;
    }
    if (!ended && is_option_word(a)) {
      take_option(i);
      continue;
    }
    if (out.positionals.size() < leading) {
      out.positionals.push_back(a);
      ++i;
      continue;
    }
    break;
  }
  // The positionals go to CLI11 last, after "--": a name that starts with '-' is then
  // refused as a name, not taken for an option.
  auto finish = [&]() -> JobArguments {
    out.options.push_back("--");
    for (const auto& p : out.positionals) out.options.push_back(p);
    return std::move(out);
  };
  if (i >= n) return finish();
  if (ended) {
    out.command.assign(args.begin() + static_cast<std::ptrdiff_t>(i), args.end());
    out.shell_form = out.command.size() == 1;
    return finish();
  }
  const std::string& first = args[i];
  if (i + 1 == n || is_shell_string(first) || only_batman_options(i + 1)) {
    // One shell command, then (maybe) batman's options; what else follows is CLI11's to refuse.
    out.command = {first};
    out.shell_form = true;
    for (std::size_t j = i + 1; j < n;) {
      if (is_option_word(args[j])) {
        take_option(j);
      } else {
        out.stray.push_back(args[j]);
        ++j;
      }
    }
    return finish();
  }
  out.command.assign(args.begin() + static_cast<std::ptrdiff_t>(i), args.end());
  out.shell_form = false;
  for (std::size_t j = i + 1; j < n; ++j) {
    const std::string& a = args[j];
    if (!a.starts_with("--") || a == "--" || arity(option_name(a))) continue;
    if (auto near = closest_match(option_name(a), long_options)) out.near_misses.emplace_back(option_name(a), *near);
  }
  return finish();
}

std::string job_command_line(const JobArguments& parsed) {
  if (parsed.command.empty()) return {};
  if (parsed.shell_form && parsed.command.size() == 1) return parsed.command.front();
  return shell_join(parsed.command);
}

}  // namespace batman::cli
