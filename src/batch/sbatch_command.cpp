// sbatch command lines, array grouping and the parsing of sbatch's and squeue's answers.
#include "src/batch/sbatch_command.hpp"

#include <algorithm>
#include <array>
#include <cctype>

namespace batman::slurm {

bool reserved_option(std::string_view name) {
  static constexpr std::array<std::string_view, 14> kReserved = {
      "array", "dependency", "job-name", "J", "output", "o", "error", "e", "chdir", "D", "parsable", "wrap", "wait", "W"};
  return std::find(kReserved.begin(), kReserved.end(), name) != kReserved.end();
}

Result<void> add_option(SbatchOptions& into, std::string_view text, std::string_view flag) {
  std::string_view body = text;
  while (body.starts_with('-')) body.remove_prefix(1);
  const auto equals = body.find('=');
  const std::string name(body.substr(0, equals));
  const std::string value = equals == std::string_view::npos ? "" : std::string(body.substr(equals + 1));
  const bool valid_name = !name.empty() && std::all_of(name.begin(), name.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_';
  });
  if (!valid_name)
    return fail(std::string(flag) + " '" + std::string(text) + "': expected NAME=VALUE (an sbatch long option, e.g. mem=2G)");
  if (reserved_option(name))
    return fail(std::string(flag) + " '" + std::string(text) + "': batman sets --" + name + " itself");
  if (value.find('\n') != std::string::npos) return fail(std::string(flag) + " '" + name + "': a value has no newline");
  into[name] = value;
  return {};
}

Result<SbatchOptions> run_options(const SbatchOptions& file, const std::vector<std::string>& slurm_opts,
                                  const std::string& partition, const std::string& account, const std::string& qos) {
  SbatchOptions options = file;
  for (const auto& text : slurm_opts)
    if (auto ok = add_option(options, text, "--slurm-opt"); !ok) return std::unexpected(ok.error());
  for (const auto& [name, value] : {std::pair{"partition", &partition}, {"account", &account}, {"qos", &qos}})
    if (!value->empty()) options[name] = *value;
  return options;
}

std::string time_limit(Duration timeout) {
  if (timeout <= Duration::zero()) return "";
  const auto seconds = std::chrono::ceil<std::chrono::seconds>(timeout).count() + 60;
  return std::to_string((seconds + 59) / 60);
}

std::vector<std::string> sbatch_argv(const SbatchOptions& options, const Submission& s) {
  std::vector<std::string> argv = {"sbatch", "--parsable", "--job-name=" + s.job_name};
  if (s.elements > 1) {
    std::string array = "--array=0-" + std::to_string(s.elements - 1);
    if (s.throttle > 0) array += "%" + std::to_string(s.throttle);
    argv.push_back(std::move(array));
  }
  const auto time = time_limit(s.timeout);
  if (!time.empty() && !options.contains("time") && !options.contains("t")) argv.push_back("--time=" + time);
  argv.push_back("--output=" + s.output);
  argv.push_back("--chdir=" + s.chdir);
  for (const auto& [name, value] : options) {
    const std::string dashes = name.size() == 1 ? "-" : "--";
    if (value.empty()) argv.push_back(dashes + name);
    else if (name.size() == 1) argv.insert(argv.end(), {dashes + name, value});
    else argv.push_back(dashes + name + "=" + value);
  }
  argv.push_back(s.script);
  argv.insert(argv.end(), s.script_args.begin(), s.script_args.end());
  return argv;
}

std::vector<std::vector<std::size_t>> array_groups(const std::vector<std::string>& keys, std::size_t max_elements) {
  max_elements = std::max<std::size_t>(1, max_elements);
  std::vector<std::vector<std::size_t>> groups;
  std::map<std::string, std::size_t> open;  // key -> its group still taking elements
  for (std::size_t i = 0; i < keys.size(); ++i) {
    auto it = open.find(keys[i]);
    if (it == open.end() || groups[it->second].size() >= max_elements) {
      groups.emplace_back();
      it = open.insert_or_assign(keys[i], groups.size() - 1).first;
    }
    groups[it->second].push_back(i);
  }
  return groups;
}

Result<std::string> parse_job_id(std::string_view out) {
  std::string_view line = out.substr(0, out.find('\n'));
  line = line.substr(0, line.find(';'));
  while (!line.empty() && std::isspace(static_cast<unsigned char>(line.back()))) line.remove_suffix(1);
  if (line.empty() || !std::all_of(line.begin(), line.end(), [](char c) { return c >= '0' && c <= '9'; }))
    return fail("sbatch did not print a job id: " + std::string(out.substr(0, 500)));
  return std::string(line);
}

std::vector<QueueEntry> parse_queue(std::string_view out) {
  std::vector<QueueEntry> entries;
  while (!out.empty()) {
    const auto nl = out.find('\n');
    std::string_view line = out.substr(0, nl);
    out = nl == std::string_view::npos ? std::string_view{} : out.substr(nl + 1);
    while (!line.empty() && line.front() == ' ') line.remove_prefix(1);
    const auto space = line.find(' ');
    if (line.empty() || space == std::string_view::npos) continue;
    std::string_view state = line.substr(space + 1);
    while (!state.empty() && (state.front() == ' ')) state.remove_prefix(1);
    while (!state.empty() && std::isspace(static_cast<unsigned char>(state.back()))) state.remove_suffix(1);
    entries.push_back({std::string(line.substr(0, space)), std::string(state)});
  }
  return entries;
}

}  // namespace batman::slurm
