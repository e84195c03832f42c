// supervisord.conf: Python's RawConfigParser syntax read here (sections, `key = value` or
// `key: value`, indented continuation lines, `;`/`#` comments, inline ones after a blank),
// the [include] globs, then every [program:x] turned into the YAML reader's own keys and
// read by it, so a value is checked, and its mistake worded, once for both formats.
#include "src/taskmaster/supervisord_config.hpp"

#include <glob.h>
#include <grp.h>
#include <pwd.h>

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <optional>
#include <set>

#include "common/fs.hpp"
#include "common/names.hpp"
#include "src/taskmaster/supervisor_config.hpp"

namespace batman::cli {
namespace {

namespace fs = std::filesystem;

struct IniValue {
  std::string text;
  std::string file;
  int line = 0;
};

struct IniSection {
  std::string name;  // "program:web"
  std::string file;
  std::string here;  // its file's directory: %(here)s
  int line = 0;
  std::vector<std::string> order;  // keys in first-seen order
  std::map<std::string, IniValue> values;
  const IniValue* get(const std::string& key) const {
    auto it = values.find(key);
    return it == values.end() ? nullptr : &it->second;
  }
};

struct IniFile {
  std::vector<IniSection> sections;  // in first-seen order; a repeated header merges
  IniSection* find(const std::string& name) {
    for (auto& s : sections)
      if (s.name == name) return &s;
    return nullptr;
  }
};

std::string strip(std::string_view s) {
  const auto first = s.find_first_not_of(" \t\r\n\f\v");
  if (first == std::string_view::npos) return {};
  const auto last = s.find_last_not_of(" \t\r\n\f\v");
  return std::string(s.substr(first, last - first + 1));
}

std::string lower(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

// An inline comment starts at ';' or '#' after whitespace (Python 3's inline_comment_prefixes).
std::string drop_inline_comment(const std::string& value) {
  for (std::size_t i = 1; i < value.size(); ++i)
    if ((value[i] == ';' || value[i] == '#') && std::isspace(static_cast<unsigned char>(value[i - 1])))
      return strip(std::string_view(value).substr(0, i));
  return value;
}

std::unexpected<Error> ini_error(const std::string& file, int line, const std::string& why) {
  return fail(file + ":" + std::to_string(line) + ": " + why);
}

Result<void> parse_ini(std::string_view text, const std::string& file, const std::string& here, IniFile& into) {
  IniSection* section = nullptr;
  IniValue* current = nullptr;  // the value continuation lines add to
  int line_no = 0;
  std::size_t pos = 0;
  while (pos <= text.size()) {
    const auto nl = text.find('\n', pos);
    std::string_view raw = text.substr(pos, nl == std::string_view::npos ? std::string_view::npos : nl - pos);
    pos = nl == std::string_view::npos ? text.size() + 1 : nl + 1;
    ++line_no;
    if (raw.find('\0') != std::string_view::npos) return ini_error(file, line_no, "a NUL byte in the file");
    const std::string line = strip(raw);
    if (line.empty()) {
      continue;  // (a blank line inside a value is kept by Python; supervisord's values have none)
    }
    if (line[0] == '#' || line[0] == ';') continue;
    const bool indented = raw[0] == ' ' || raw[0] == '\t';
    if (indented && current) {
      const std::string more = drop_inline_comment(line);
      if (!more.empty()) current->text += "\n" + more;
      continue;
    }
    current = nullptr;
    if (line[0] == '[') {
      const auto close = line.find(']');
      if (close == std::string::npos) return ini_error(file, line_no, "a section header without ']': " + line.substr(0, 60));
      const std::string name = strip(std::string_view(line).substr(1, close - 1));
      if (name.empty()) return ini_error(file, line_no, "an empty section name");
      section = into.find(name);
      if (!section) {
        into.sections.push_back(IniSection{name, file, here, line_no, {}, {}});
        section = &into.sections.back();
      }
      continue;
    }
    const auto delim = line.find_first_of("=:");
    if (delim == std::string::npos || delim == 0)
      return ini_error(file, line_no, "expected [section] or key = value, not '" + line.substr(0, 60) + "'");
    if (!section) return ini_error(file, line_no, "key '" + strip(line.substr(0, delim)) + "' before any [section]");
    const std::string key = lower(strip(std::string_view(line).substr(0, delim)));
    const std::string value = drop_inline_comment(strip(std::string_view(line).substr(delim + 1)));
    if (!section->values.count(key)) section->order.push_back(key);
    section->values[key] = IniValue{value, file, line_no};  // the last one wins (strict=False)
    current = &section->values[key];
  }
  return {};
}

bool truthy(const std::string& s, bool& out) {
  const std::string v = lower(s);
  if (v == "true" || v == "yes" || v == "on" || v == "1") return out = true, true;
  if (v == "false" || v == "no" || v == "off" || v == "0") return out = false, true;
  return false;
}

// A YAML double-quoted scalar: every value goes to the YAML reader as text.
std::string yaml_quoted(std::string_view s) {
  std::string out = "\"";
  for (unsigned char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\t': out += "\\t"; break;
      case '\r': out += "\\r"; break;
      default:
        if (c < 0x20 || c == 0x7f) {
          static constexpr char kHex[] = "0123456789abcdef";
          out += "\\x";
          out += kHex[c >> 4];
          out += kHex[c & 15];
        } else {
          out += static_cast<char>(c);
        }
    }
  }
  return out + "\"";
}

// Where each line of the generated YAML came from, to say the INI's place in a message.
struct Origin {
  std::string file;
  int line = 0;
  std::string section;  // "program:web"
  std::string key;      // the INI key ("command")
};

class YamlText {
 public:
  void add(int indent, const std::string& text, Origin origin) {
    text_.append(static_cast<std::size_t>(indent), ' ');
    text_ += text;
    text_ += '\n';
    origins_.push_back(std::move(origin));
  }
  const std::string& text() const { return text_; }
  const Origin* origin(int yaml_line) const {
    if (yaml_line < 1 || yaml_line > static_cast<int>(origins_.size())) return nullptr;
    return &origins_[static_cast<std::size_t>(yaml_line - 1)];
  }

 private:
  std::string text_;
  std::vector<Origin> origins_;
};

// The YAML reader's "SOURCE:LINE: key 'K': why" said as "FILE:LINE: [section] key: why".
Error translate(const Error& e, const std::string& marker, const YamlText& yaml, const std::string& source) {
  const std::string& m = e.message;
  if (!m.starts_with(marker + ":")) return e;
  std::size_t at = marker.size() + 1;
  int line = 0;
  while (at < m.size() && std::isdigit(static_cast<unsigned char>(m[at]))) line = line * 10 + (m[at++] - '0');
  std::string rest = m.substr(at);
  if (rest.starts_with(": ")) rest.erase(0, 2);
  // Drop the YAML key path: the INI place replaces it.
  if (rest.starts_with("key '")) {
    const auto end = rest.find("': ");
    if (end != std::string::npos) rest.erase(0, end + 3);
  }
  const Origin* o = yaml.origin(line);
  if (!o) return Error{source + ": " + rest, e.code};
  std::string where = o->file + ":" + std::to_string(o->line) + ": [" + o->section + "]";
  if (!o->key.empty()) where += " " + o->key;
  return Error{where + ": " + rest, e.code};
}

std::vector<std::string> split_list(const std::string& text) {
  std::vector<std::string> out;
  std::string item;
  for (char c : text + ",") {
    if (c == ',' || c == ' ' || c == '\t' || c == '\n') {
      if (!item.empty()) out.push_back(item);
      item.clear();
    } else {
      item += c;
    }
  }
  return out;
}

// The program keys supervisord has that batman reads, and where they go in the YAML reader.
const std::map<std::string, std::string>& yaml_key_of() {
  static const std::map<std::string, std::string> keys = {
      {"command", "cmd"},
      {"numprocs", "numprocs"},
      {"autostart", "autostart"},
      {"autorestart", "autorestart"},
      {"exitcodes", "exitcodes"},
      {"startretries", "startretries"},
      {"startsecs", "starttime"},
      {"stopsignal", "stopsignal"},
      {"stopwaitsecs", "stoptime"},
      {"stdout_logfile", "stdout"},
      {"stderr_logfile", "stderr"},
      {"stdout_logfile_maxbytes", "stdout_maxbytes"},
      {"stdout_logfile_backups", "stdout_backups"},
      {"stderr_logfile_maxbytes", "stderr_maxbytes"},
      {"stderr_logfile_backups", "stderr_backups"},
      {"environment", "env"},
      {"directory", "workingdir"},
      {"umask", "umask"},
      {"user", "user"},
  };
  return keys;
}
// Read here, not by the YAML reader (supervisord's own notions).
const std::set<std::string>& own_program_keys() {
  static const std::set<std::string> keys = {"process_name", "numprocs_start", "priority",
                                             "redirect_stderr", "stopasgroup", "killasgroup"};
  return keys;
}

struct IniReader {
  const std::string& source;
  ConfigWarnings* warnings;

  void warn(const IniSection& s, const std::string& key, const std::string& why) const {
    if (!warnings) return;
    const IniValue* v = s.get(key);
    const std::string where = (v ? v->file : s.file) + ":" + std::to_string(v ? v->line : s.line);
    warnings->push_back(where + ": [" + s.name + "]" + (key.empty() ? "" : " " + key) + ": " + why);
  }
  std::unexpected<Error> error(const IniSection& s, const std::string& key, const std::string& why) const {
    const IniValue* v = key.empty() ? nullptr : s.get(key);
    const std::string where = (v ? v->file : s.file) + ":" + std::to_string(v ? v->line : s.line);
    return fail(where + ": [" + s.name + "]" + (key.empty() ? "" : " " + key) + ": " + why);
  }
  // supervisord expands %(here)s and %(ENV_X)s in every value; keys the YAML reader expands per
  // instance (command, environment, logs, directory) keep their text for it.
  Result<std::string> expanded(const IniSection& s, const std::string& key, const std::string& program = "") const {
    const IniValue* v = s.get(key);
    if (!v) return std::string();
    Expansions vars{program.empty() ? s.name.substr(s.name.find(':') + 1) : program, s.here, 0, 1, std::string()};
    auto out = expand_percent(v->text, vars);
    if (!out) return error(s, key, out.error().message);
    return *out;
  }
  Result<int> integer(const IniSection& s, const std::string& key, int fallback, int min, int max) const {
    if (!s.get(key)) return fallback;
    const std::string text = strip(BATMAN_TRY(expanded(s, key)));
    char* end = nullptr;
    errno = 0;
    const long n = std::strtol(text.c_str(), &end, 10);
    if (text.empty() || *end != '\0' || errno == ERANGE)
      return error(s, key, "expected a whole number from " + std::to_string(min) + " to " + std::to_string(max));
    if (n < min || n > max)
      return error(s, key, text + " is out of range (" + std::to_string(min) + " to " + std::to_string(max) + ")");
    return static_cast<int>(n);
  }
  Result<bool> flag(const IniSection& s, const std::string& key, bool fallback) const {
    if (!s.get(key)) return fallback;
    bool out = false;
    if (!truthy(strip(BATMAN_TRY(expanded(s, key))), out)) return error(s, key, "expected true or false");
    return out;
  }
};

// One [program:x] as YAML lines under `programs:`.
Result<void> program_yaml(const IniReader& r, const IniSection& s, const std::string& name, YamlText& yaml) {
  const Origin head{s.file, s.line, s.name, ""};
  yaml.add(2, yaml_quoted(name) + ":", head);
  bool any = false;
  for (const auto& key : s.order) {
    const IniValue& v = s.values.at(key);
    const Origin at{v.file, v.line, s.name, key};
    auto it = yaml_key_of().find(key);
    if (it == yaml_key_of().end()) {
      if (!own_program_keys().count(key))
        r.warn(s, key, "not implemented by batman, ignored (README: Migrating from supervisord)");
      continue;
    }
    const std::string& yk = it->second;
    std::string text = v.text;
    // Keys without per-instance expansions get %(here)s / %(ENV_X)s / %(program_name)s now.
    const bool later = yk == "cmd" || yk == "env" || yk == "stdout" || yk == "stderr" || yk == "workingdir";
    if (!later) text = strip(BATMAN_TRY(r.expanded(s, key, name)));
    any = true;
    if (yk == "autostart" || yk == "autorestart") {
      bool b = false;
      if (truthy(text, b)) text = b ? "true" : "false";
      else text = lower(text);
      yaml.add(4, yk + ": " + yaml_quoted(text), at);
    } else if (yk == "exitcodes") {
      yaml.add(4, yk + ":", at);
      const auto codes = split_list(text);
      if (codes.empty()) return r.error(s, key, "expected an exit code or a list of them, such as 0,2");
      for (const auto& c : codes) yaml.add(6, "- " + yaml_quoted(c), at);
    } else if (yk == "stdout" || yk == "stderr") {
      const std::string upper = lower(strip(text));
      if (upper == "auto") continue;           // the project's logs/ (supervisord's childlogdir)
      if (upper == "none") yaml.add(4, yk + ": null", at);
      else if (upper == "syslog") r.warn(s, key, "syslog is not implemented by batman: the project's logs/ is used");
      else yaml.add(4, yk + ": " + yaml_quoted(strip(text)), at);
    } else if (yk == "env") {
      auto pairs = parse_environment_pairs(text);
      if (!pairs) return r.error(s, key, pairs.error().message);
      yaml.add(4, yk + ":", at);
      for (const auto& [k, value] : *pairs) yaml.add(6, yaml_quoted(k) + ": " + yaml_quoted(value), at);
    } else {
      yaml.add(4, yk + ": " + yaml_quoted(text), at);
    }
  }
  if (!any || !s.get("command")) return r.error(s, "", "missing: command, the command to run");
  return {};
}

Result<std::vector<std::string>> include_files(const IniReader& r, IniSection& inc, const std::string& base) {
  const IniValue* files = inc.get("files");
  if (!files) return r.error(inc, "", "missing: files, the globs of the files to include");
  const std::string text = BATMAN_TRY(r.expanded(inc, "files", "include"));
  std::vector<std::string> out;
  for (const auto& pattern : split_list(text)) {
    const std::string full = pattern.starts_with("/") ? pattern : (fs::path(base) / pattern).string();
    glob_t g{};
    const int rc = ::glob(full.c_str(), GLOB_NOSORT, nullptr, &g);
    std::vector<std::string> found;
    if (rc == 0)
      for (std::size_t i = 0; i < g.gl_pathc; ++i) found.emplace_back(g.gl_pathv[i]);
    ::globfree(&g);
    if (found.empty()) {
      r.warn(inc, "files", "no file matches '" + full + "'");
      continue;
    }
    std::sort(found.begin(), found.end());
    out.insert(out.end(), found.begin(), found.end());
  }
  return out;
}

Result<void> read_http_servers(const IniReader& r, IniFile& ini, runner::SupervisorConfig& config, const std::string& base) {
  if (IniSection* s = ini.find("unix_http_server")) {
    for (const auto& key : s->order)
      if (key != "file" && key != "chmod" && key != "chown" && key != "username" && key != "password")
        r.warn(*s, key, "not implemented by batman, ignored");
    if (s->get("file")) {
      std::string path = strip(BATMAN_TRY(r.expanded(*s, "file", "unix_http_server")));
      if (path.empty()) return r.error(*s, "file", "expected a path");
      if (!path.starts_with("/")) path = (fs::path(base) / path).lexically_normal().string();
      if (path.size() > 107) return r.error(*s, "file", "path longer than 107 bytes, the limit of a Unix socket");
      config.rpc.socket = path;
    }
    if (s->get("chmod")) {
      const std::string text = strip(BATMAN_TRY(r.expanded(*s, "chmod", "unix_http_server")));
      std::string digits = text.starts_with("0o") ? text.substr(2) : text;
      if (digits.empty() || digits.size() > 4 || digits.find_first_not_of("01234567") != std::string::npos)
        return r.error(*s, "chmod", "expected an octal mode such as 0700");
      const unsigned long mode = std::strtoul(digits.c_str(), nullptr, 8);
      if (mode > 0777) return r.error(*s, "chmod", text + " is out of range (0000 to 0777)");
      config.rpc.socket_mode = static_cast<mode_t>(mode);
    }
    if (s->get("chown")) {
      const std::string text = strip(BATMAN_TRY(r.expanded(*s, "chown", "unix_http_server")));
      const auto colon = text.find(':');
      const std::string user = text.substr(0, colon);
      passwd* pw = ::getpwnam(user.c_str());
      if (!pw) return r.error(*s, "chown", "no such user '" + user + "'");
      runner::RpcSettings::Owner owner{pw->pw_uid, pw->pw_gid};
      if (colon != std::string::npos) {
        const std::string group_name = text.substr(colon + 1);
        struct group* gr = ::getgrnam(group_name.c_str());
        if (!gr) return r.error(*s, "chown", "no such group '" + group_name + "'");
        owner.gid = gr->gr_gid;
      }
      config.rpc.socket_owner = owner;
    }
    if (s->get("username")) config.rpc.username = strip(BATMAN_TRY(r.expanded(*s, "username", "unix_http_server")));
    if (s->get("password")) config.rpc.password = strip(BATMAN_TRY(r.expanded(*s, "password", "unix_http_server")));
  }
  if (IniSection* s = ini.find("inet_http_server")) {
    for (const auto& key : s->order)
      if (key != "port" && key != "username" && key != "password") r.warn(*s, key, "not implemented by batman, ignored");
    const std::string port = strip(BATMAN_TRY(r.expanded(*s, "port", "inet_http_server")));
    if (port.empty()) return r.error(*s, "port", "missing: port, as 127.0.0.1:9001");
    const auto colon = port.rfind(':');
    runner::RpcSettings::Inet inet;
    inet.host = colon == std::string::npos ? std::string("127.0.0.1") : port.substr(0, colon);
    if (inet.host.empty() || inet.host == "*") inet.host = "0.0.0.0";
    const std::string digits = colon == std::string::npos ? port : port.substr(colon + 1);
    char* end = nullptr;
    const long n = std::strtol(digits.c_str(), &end, 10);
    if (digits.empty() || *end != '\0' || n < 1 || n > 65535)
      return r.error(*s, "port", "expected HOST:PORT with a port from 1 to 65535, as 127.0.0.1:9001");
    inet.port = static_cast<int>(n);
    inet.username = strip(BATMAN_TRY(r.expanded(*s, "username", "inet_http_server")));
    inet.password = strip(BATMAN_TRY(r.expanded(*s, "password", "inet_http_server")));
    // Without a password anyone who reaches the port controls every program: refused.
    if (inet.username.empty() || inet.password.empty())
      return r.error(*s, inet.username.empty() ? "username" : "password",
                     "missing: a TCP port is served only with HTTP Basic auth (username and password)");
    config.rpc.inet = std::move(inet);
  }
  return {};
}

}  // namespace

bool looks_like_supervisord(std::string_view text) {
  std::size_t pos = 0;
  while (pos < text.size()) {
    const auto nl = text.find('\n', pos);
    const std::string line = strip(text.substr(pos, nl == std::string_view::npos ? std::string_view::npos : nl - pos));
    pos = nl == std::string_view::npos ? text.size() : nl + 1;
    if (line.empty() || line[0] == '#' || line[0] == ';') continue;
    // YAML has no line that opens with '[' and ends with ']' at the top of a mapping.
    return line.front() == '[' && line.back() == ']' && line.find(": ") == std::string::npos;
  }
  return false;
}

Result<std::vector<std::pair<std::string, std::string>>> parse_environment_pairs(std::string_view text) {
  // Tokens as shlex (posix) makes them, with supervisord's word characters; ',' and '=' separate.
  std::vector<std::pair<std::string, std::string>> out;
  std::vector<std::string> tokens;
  std::string token;
  bool in_token = false;
  for (std::size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (c == '"' || c == '\'') {
      const auto close = text.find(c, i + 1);
      if (close == std::string_view::npos) return fail("unterminated quote in '" + std::string(text.substr(0, 60)) + "'");
      std::string_view inner = text.substr(i + 1, close - i - 1);
      if (c == '"') {
        for (std::size_t k = 0; k < inner.size(); ++k) {
          if (inner[k] == '\\' && k + 1 < inner.size() && (inner[k + 1] == '"' || inner[k + 1] == '\\')) ++k;
          token += inner[k];
        }
      } else {
        token += inner;
      }
      in_token = true;
      i = close;
    } else if (c == ',' || c == '=') {
      if (in_token) tokens.push_back(std::move(token));
      token.clear();
      in_token = false;
      tokens.emplace_back(1, c);
    } else if (std::isspace(static_cast<unsigned char>(c))) {
      if (in_token) tokens.push_back(std::move(token));
      token.clear();
      in_token = false;
    } else {
      token += c;
      in_token = true;
    }
  }
  if (in_token) tokens.push_back(std::move(token));
  // KEY = VALUE [, KEY = VALUE]... ; an empty value is "" (KEY=,).
  std::size_t i = 0;
  while (i < tokens.size()) {
    if (tokens[i] == ",") {
      ++i;
      continue;
    }
    const std::string key = tokens[i];
    if (key == "=" || i + 1 >= tokens.size() || tokens[i + 1] != "=")
      return fail("expected KEY=value pairs separated by commas, as A=\"1\",B=\"two words\"");
    i += 2;
    std::string value;
    if (i < tokens.size() && tokens[i] != ",") value = tokens[i++];
    if (i < tokens.size() && tokens[i] != ",")
      return fail("expected a comma after " + key + "=" + value + " (quote a value with blanks or commas)");
    out.emplace_back(key, value);
  }
  return out;
}

Result<runner::SupervisorConfig> parse_supervisord_config(std::string_view text, const std::string& source,
                                                          const std::string& base_dir, ConfigWarnings* warnings) {
  IniFile ini;
  BATMAN_TRY(parse_ini(text, source, base_dir, ini));
  const IniReader r{source, warnings};
  // [include] of the main file only, as supervisord: included files' own [include] are not read.
  std::set<std::string> included;
  if (IniSection* inc = ini.find("include")) {
    const auto files = BATMAN_TRY(include_files(r, *inc, base_dir));
    for (const auto& file : files) {
      if (!included.insert(file).second) continue;
      auto content = read_file(file, kMaxConfigBytes);
      if (!content) return r.error(*inc, "files", content.error().message);
      BATMAN_TRY(parse_ini(*content, file, fs::path(file).parent_path().string(), ini));
    }
  }

  runner::SupervisorConfig config;
  config.source = source;
  config.format = "supervisord";

  // Sections: what batman reads, what it knows and ignores, what it does not implement.
  std::vector<const IniSection*> programs;
  std::set<std::string> program_names;
  for (const auto& s : ini.sections) {
    const auto colon = s.name.find(':');
    const std::string kind = s.name.substr(0, colon);
    if (kind == "program") {
      if (colon == std::string::npos || colon + 1 == s.name.size()) return r.error(s, "", "a program needs a name: [program:NAME]");
      programs.push_back(&s);
      program_names.insert(s.name.substr(colon + 1));
    } else if (kind == "group" || s.name == "include" || s.name == "unix_http_server" ||
               s.name == "inet_http_server" || s.name == "supervisord") {
    } else if (s.name == "supervisorctl" || kind == "rpcinterface" || kind == "ctlplugin") {
      // The client's section and the RPC interface factory: nothing for a server to do.
    } else {
      r.warn(s, "", "section not implemented by batman, ignored");
    }
  }
  if (IniSection* s = ini.find("supervisord")) {
    for (const auto& key : s->order) {
      if (key == "logfile") {
        std::string path = strip(BATMAN_TRY(r.expanded(*s, "logfile", "supervisord")));
        if (!path.empty()) {
          if (!path.starts_with("/")) path = (fs::path(base_dir) / path).lexically_normal().string();
          config.logfile = path;
        }
      } else if (key != "nodaemon" && key != "pidfile") {
        r.warn(*s, key, "not implemented by batman, ignored");
      }
    }
  }
  BATMAN_TRY(read_http_servers(r, ini, config, base_dir));

  // Groups: [group:x] programs=a,b.
  std::map<std::string, std::string> group_of;
  for (const auto& s : ini.sections) {
    if (!s.name.starts_with("group:")) continue;
    runner::ProgramGroup group;
    group.name = s.name.substr(6);
    if (auto ok = validate_name(group.name, "group"); !ok || group.name.size() > 60)
      return r.error(s, "", "invalid group name: use letters, digits, '.', '_' or '-' (at most 60)");
    if (!s.get("programs")) return r.error(s, "", "missing: programs, the programs of the group");
    for (const auto& key : s.order)
      if (key != "programs" && key != "priority") r.warn(s, key, "not implemented by batman, ignored");
    group.priority = BATMAN_TRY(r.integer(s, "priority", 999, -1000000, 1000000));
    for (const auto& p : split_list(BATMAN_TRY(r.expanded(s, "programs", group.name)))) {
      if (!program_names.count(p)) return r.error(s, "programs", "no [program:" + p + "] section");
      if (group_of.count(p)) return r.error(s, "programs", p + " is in [group:" + group_of[p] + "] already");
      group_of[p] = group.name;
      group.programs.push_back(p);
    }
    config.groups.push_back(std::move(group));
  }

  // The programs, read by the YAML reader from YAML made of them.
  YamlText yaml;
  yaml.add(0, "programs:", Origin{source, 1, "", ""});
  for (const IniSection* s : programs) BATMAN_TRY(program_yaml(r, *s, s->name.substr(8), yaml));
  if (programs.empty()) yaml = YamlText(), yaml.add(0, "programs: null", Origin{source, 1, "", ""});
  const std::string marker = "\x01supervisord.conf";
  auto read = parse_supervisor_config(yaml.text(), marker, base_dir);
  if (!read) return std::unexpected(translate(read.error(), marker, yaml, source));
  config.programs = std::move(read->programs);

  // supervisord's own keys.
  for (std::size_t i = 0; i < programs.size(); ++i) {
    const IniSection& s = *programs[i];
    runner::ProgramConfig& p = config.programs[i];
    p.here = s.here;
    p.priority = BATMAN_TRY(r.integer(s, "priority", 999, -1000000, 1000000));
    p.numprocs_start = BATMAN_TRY(r.integer(s, "numprocs_start", 0, 0, 1000000));
    p.redirect_stderr = BATMAN_TRY(r.flag(s, "redirect_stderr", false));
    if (p.redirect_stderr && s.get("stderr_logfile"))
      r.warn(s, "stderr_logfile", "redirect_stderr=true sends stderr to the stdout log: this file is not written");
    const bool stopasgroup = BATMAN_TRY(r.flag(s, "stopasgroup", false));
    const bool killasgroup = BATMAN_TRY(r.flag(s, "killasgroup", stopasgroup));
    if (stopasgroup && !killasgroup) return r.error(s, "killasgroup", "stopasgroup=true needs killasgroup=true");
    if (s.get("stopasgroup") && !stopasgroup)
      r.warn(s, "stopasgroup", "batman always signals the whole process tree (as stopasgroup=true)");
    if (const IniValue* v = s.get("process_name")) {
      p.process_name = strip(v->text);
      if (p.process_name.empty()) return r.error(s, "process_name", "expected a name pattern such as %(program_name)s_%(process_num)02d");
      // Each instance's name must expand and be a valid name.
      for (int n = 0; n < p.numprocs; ++n) {
        Expansions vars{p.name, p.here, n + p.numprocs_start, p.numprocs, std::string()};
        auto name = expand_percent(p.process_name, vars);
        if (!name) return r.error(s, "process_name", name.error().message);
        if (name->empty() || name->find_first_of(":/ \t") != std::string::npos)
          return r.error(s, "process_name", "'" + *name + "' is not a process name (no ':', '/' or blanks)");
      }
    }
    if (p.numprocs > 1 && !mentions_expansion(p.process_name.empty() ? "%(program_name)s" : p.process_name, "process_num"))
      return r.error(s, s.get("process_name") ? "process_name" : "numprocs",
                     "%(process_num) must be present within process_name when numprocs > 1");
    if (auto it = group_of.find(p.name); it != group_of.end()) p.group = it->second;
  }
  // Start order: priority, then file order (supervisord sorts by priority, lowest first).
  std::stable_sort(config.programs.begin(), config.programs.end(),
                   [](const runner::ProgramConfig& a, const runner::ProgramConfig& b) { return a.priority < b.priority; });
  return config;
}

Result<runner::SupervisorConfig> load_any_config(const std::string& path, ConfigFormat format, ConfigWarnings* warnings) {
  auto project = BATMAN_TRY(config_project(path));
  auto text = read_file(path, kMaxConfigBytes);
  if (!text) return std::unexpected(text.error().wrap("config"));
  if (format == ConfigFormat::Auto) format = looks_like_supervisord(*text) ? ConfigFormat::Supervisord : ConfigFormat::Yaml;
  if (format == ConfigFormat::Yaml) return load_supervisor_config(path);
  std::error_code ec;
  fs::path absolute = fs::absolute(path, ec);
  std::string base = ec ? std::string(".") : absolute.parent_path().string();
  auto config = parse_supervisord_config(*text, path, base, warnings);
  if (!config) return config;
  config->project = std::move(project);
  return config;
}

}  // namespace batman::cli
