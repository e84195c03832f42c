// XML-RPC documents: expat reads a methodCall into a small element tree (depth-limited, no
// DOCTYPE, so no entity can expand), which is then checked against the spec's grammar.
#include "src/taskmaster/xmlrpc.hpp"

#include <expat.h>

#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <memory>

namespace batman::cli::xmlrpc {

const Value* Value::member(std::string_view name) const {
  const auto* s = get<Struct>();
  if (!s) return nullptr;
  for (const auto& [key, value] : *s)
    if (key == name) return &value;
  return nullptr;
}

namespace {

// Elements a request may nest: methodCall params param value, then per level of arrays or
// structs three more (value array data / value struct member).
constexpr int kMaxElementDepth = 4 + 3 * kMaxDepth + 2;

struct Element {
  std::string name;
  std::string text;
  std::vector<std::unique_ptr<Element>> children;
  int line = 0;
};

struct TreeBuilder {
  XML_Parser parser = nullptr;
  std::unique_ptr<Element> root;
  std::vector<Element*> open;
  std::string error;

  void stop(std::string why) {
    if (error.empty()) error = std::move(why) + " (line " + std::to_string(XML_GetCurrentLineNumber(parser)) + ")";
    XML_StopParser(parser, XML_FALSE);
  }

  static void on_start(void* data, const XML_Char* name, const XML_Char**) {
    auto* self = static_cast<TreeBuilder*>(data);
    if (static_cast<int>(self->open.size()) >= kMaxElementDepth) {
      self->stop("elements nested deeper than " + std::to_string(kMaxElementDepth));
      return;
    }
    auto element = std::make_unique<Element>();
    element->name = name;
    element->line = static_cast<int>(XML_GetCurrentLineNumber(self->parser));
    Element* raw = element.get();
    if (self->open.empty()) {
      self->root = std::move(element);
    } else {
      self->open.back()->children.push_back(std::move(element));
    }
    self->open.push_back(raw);
  }
  static void on_end(void* data, const XML_Char*) {
    auto* self = static_cast<TreeBuilder*>(data);
    if (!self->open.empty()) self->open.pop_back();
  }
  static void on_text(void* data, const XML_Char* text, int length) {
    auto* self = static_cast<TreeBuilder*>(data);
    if (!self->open.empty()) self->open.back()->text.append(text, static_cast<std::size_t>(length));
  }
  // A DOCTYPE could declare entities (billion laughs, external files): none is accepted.
  static void on_doctype(void* data, const XML_Char*, const XML_Char*, const XML_Char*, int) {
    static_cast<TreeBuilder*>(data)->stop("a DOCTYPE is not accepted");
  }
  static void on_entity(void* data, const XML_Char*, int, const XML_Char*, int, const XML_Char*, const XML_Char*,
                        const XML_Char*, const XML_Char*) {
    static_cast<TreeBuilder*>(data)->stop("an entity declaration is not accepted");
  }
};

bool blank(std::string_view text) { return text.find_first_not_of(" \t\r\n") == std::string_view::npos; }

std::string_view trim(std::string_view text) {
  const auto first = text.find_first_not_of(" \t\r\n");
  if (first == std::string_view::npos) return {};
  const auto last = text.find_last_not_of(" \t\r\n");
  return text.substr(first, last - first + 1);
}

std::unexpected<Error> bad(const Element& e, const std::string& why) {
  return fail("XML-RPC request, line " + std::to_string(e.line) + ": <" + e.name + ">: " + why);
}

// A container holds elements only (blanks between them are layout).
Result<void> only_elements(const Element& e) {
  if (!blank(e.text)) return bad(e, "unexpected text");
  return {};
}

Result<std::string> decode_base64(const Element& e) {
  static constexpr std::string_view kAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  unsigned bits = 0;
  int count = 0;
  bool padding = false;
  for (char c : e.text) {
    if (c == ' ' || c == '\t' || c == '\r' || c == '\n') continue;
    if (c == '=') {
      padding = true;
      continue;
    }
    const auto at = kAlphabet.find(c);
    if (at == std::string_view::npos || padding) return bad(e, "not base64");
    bits = (bits << 6) | static_cast<unsigned>(at);
    count += 6;
    if (count >= 8) {
      count -= 8;
      out += static_cast<char>((bits >> count) & 0xff);
    }
  }
  return out;
}

Result<Value> convert_value(const Element& e, int depth);

Result<Value> convert_typed(const Element& t, int depth) {
  const std::string& type = t.name;
  if (type == "string") {
    if (!t.children.empty()) return bad(t, "expected text only");
    return Value(t.text);
  }
  if (type == "array" || type == "struct") {
    if (depth >= kMaxDepth) return bad(t, "values nested deeper than " + std::to_string(kMaxDepth));
    BATMAN_TRY(only_elements(t));
  } else if (!t.children.empty()) {
    return bad(t, "expected text only");
  }
  if (type == "int" || type == "i4" || type == "i8") {
    const std::string text(trim(t.text));
    char* end = nullptr;
    errno = 0;
    const long long n = std::strtoll(text.c_str(), &end, 10);
    if (text.empty() || *end != '\0' || errno == ERANGE) return bad(t, "not a whole number: '" + text.substr(0, 40) + "'");
    if (type != "i8" && (n < -2147483648LL || n > 2147483647LL)) return bad(t, "out of range of a 32-bit <" + type + ">");
    return Value(static_cast<std::int64_t>(n));
  }
  if (type == "boolean") {
    const auto text = trim(t.text);
    if (text == "1") return Value(true);
    if (text == "0") return Value(false);
    return bad(t, "expected 0 or 1");
  }
  if (type == "double") {
    const std::string text(trim(t.text));
    char* end = nullptr;
    const double d = std::strtod(text.c_str(), &end);
    if (text.empty() || *end != '\0' || !std::isfinite(d)) return bad(t, "not a number: '" + text.substr(0, 40) + "'");
    return Value(d);
  }
  if (type == "dateTime.iso8601") return Value(DateTime{std::string(trim(t.text))});
  if (type == "base64") return Value(Bytes{BATMAN_TRY(decode_base64(t))});
  if (type == "nil") {
    if (!blank(t.text)) return bad(t, "expected nothing inside");
    return Value();
  }
  if (type == "array") {
    if (t.children.size() != 1 || t.children[0]->name != "data") return bad(t, "expected one <data>");
    const Element& data = *t.children[0];
    BATMAN_TRY(only_elements(data));
    Array items;
    items.reserve(data.children.size());
    for (const auto& item : data.children) {
      if (item->name != "value") return bad(*item, "expected <value> in <data>");
      items.push_back(BATMAN_TRY(convert_value(*item, depth + 1)));
    }
    return Value(std::move(items));
  }
  if (type == "struct") {
    Struct members;
    for (const auto& m : t.children) {
      if (m->name != "member") return bad(*m, "expected <member> in <struct>");
      BATMAN_TRY(only_elements(*m));
      const Element* name = nullptr;
      const Element* value = nullptr;
      for (const auto& part : m->children) {
        if (part->name == "name" && !name) name = part.get();
        else if (part->name == "value" && !value) value = part.get();
        else return bad(*part, "expected one <name> and one <value> in <member>");
      }
      if (!name || !value) return bad(*m, "expected one <name> and one <value>");
      if (!name->children.empty()) return bad(*name, "expected text only");
      members.emplace_back(name->text, BATMAN_TRY(convert_value(*value, depth + 1)));
    }
    return Value(std::move(members));
  }
  return bad(t, "unknown type");
}

Result<Value> convert_value(const Element& e, int depth) {
  // <value>text</value> is a string; <value><TYPE>...</TYPE></value> is typed.
  if (e.children.empty()) return Value(e.text);
  if (e.children.size() != 1) return bad(e, "expected one typed value");
  BATMAN_TRY(only_elements(e));
  return convert_typed(*e.children[0], depth);
}

Result<Call> convert_call(const Element& root) {
  if (root.name != "methodCall") return bad(root, "expected <methodCall>");
  BATMAN_TRY(only_elements(root));
  Call call;
  bool named = false, has_params = false;
  for (const auto& child : root.children) {
    if (child->name == "methodName" && !named) {
      if (!child->children.empty()) return bad(*child, "expected text only");
      call.method = std::string(trim(child->text));
      named = true;
    } else if (child->name == "params" && !has_params) {
      has_params = true;
      BATMAN_TRY(only_elements(*child));
      for (const auto& param : child->children) {
        if (param->name != "param") return bad(*param, "expected <param> in <params>");
        BATMAN_TRY(only_elements(*param));
        if (param->children.size() != 1 || param->children[0]->name != "value")
          return bad(*param, "expected one <value>");
        call.params.push_back(BATMAN_TRY(convert_value(*param->children[0], 0)));
      }
    } else {
      return bad(*child, "unexpected in <methodCall>");
    }
  }
  if (call.method.empty()) return bad(root, "no <methodName>");
  return call;
}

void append_int(std::string& out, std::int64_t n) {
  // supervisord caps its ints (pids, times) to XML-RPC's 32 bits, as Python's client wants.
  if (n > 2147483647LL) n = 2147483647LL;
  if (n < -2147483648LL) n = -2147483648LL;
  out += std::to_string(n);
}

void append_base64(std::string& out, std::string_view data) {
  static constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::size_t i = 0;
  for (; i + 2 < data.size(); i += 3) {
    const unsigned n = (static_cast<unsigned char>(data[i]) << 16) | (static_cast<unsigned char>(data[i + 1]) << 8) |
                       static_cast<unsigned char>(data[i + 2]);
    out += kAlphabet[(n >> 18) & 63];
    out += kAlphabet[(n >> 12) & 63];
    out += kAlphabet[(n >> 6) & 63];
    out += kAlphabet[n & 63];
  }
  if (i < data.size()) {
    unsigned n = static_cast<unsigned char>(data[i]) << 16;
    if (i + 1 < data.size()) n |= static_cast<unsigned char>(data[i + 1]) << 8;
    out += kAlphabet[(n >> 18) & 63];
    out += kAlphabet[(n >> 12) & 63];
    out += i + 1 < data.size() ? kAlphabet[(n >> 6) & 63] : '=';
    out += '=';
  }
}

}  // namespace

Result<Call> parse_call(std::string_view body) {
  if (body.size() > static_cast<std::size_t>(INT32_MAX)) return fail("XML-RPC request: too large");
  TreeBuilder builder;
  std::unique_ptr<XML_ParserStruct, void (*)(XML_Parser)> parser(XML_ParserCreate(nullptr), XML_ParserFree);
  if (!parser) return fail("XML-RPC request: out of memory");
  builder.parser = parser.get();
  XML_SetUserData(parser.get(), &builder);
  XML_SetElementHandler(parser.get(), TreeBuilder::on_start, TreeBuilder::on_end);
  XML_SetCharacterDataHandler(parser.get(), TreeBuilder::on_text);
  XML_SetStartDoctypeDeclHandler(parser.get(), TreeBuilder::on_doctype);
  XML_SetEntityDeclHandler(parser.get(), TreeBuilder::on_entity);
  XML_SetParamEntityParsing(parser.get(), XML_PARAM_ENTITY_PARSING_NEVER);
  const auto status = XML_Parse(parser.get(), body.data(), static_cast<int>(body.size()), XML_TRUE);
  if (!builder.error.empty()) return fail("XML-RPC request: " + builder.error);
  if (status != XML_STATUS_OK)
    return fail("XML-RPC request, line " + std::to_string(XML_GetCurrentLineNumber(parser.get())) + ": " +
                XML_ErrorString(XML_GetErrorCode(parser.get())));
  if (!builder.root) return fail("XML-RPC request: no document");
  return convert_call(*builder.root);
}

void append_escaped(std::string& out, std::string_view text) {
  static constexpr std::string_view kReplacement = "\xEF\xBF\xBD";
  const auto* s = reinterpret_cast<const unsigned char*>(text.data());
  const std::size_t n = text.size();
  for (std::size_t i = 0; i < n;) {
    const unsigned char c = s[i];
    if (c < 0x80) {
      switch (c) {
        case '&': out += "&amp;"; break;
        case '<': out += "&lt;"; break;
        case '>': out += "&gt;"; break;
        case '\r': out += "&#13;"; break;
        case '\t':
        case '\n': out += static_cast<char>(c); break;
        default:
          if (c < 0x20 || c == 0x7f) out += kReplacement;
          else out += static_cast<char>(c);
      }
      ++i;
      continue;
    }
    // A UTF-8 sequence, checked as the standard says (no overlongs, no surrogates, <= U+10FFFF).
    std::size_t len = 0;
    unsigned code = 0;
    if (c >= 0xC2 && c <= 0xDF) len = 2, code = c & 0x1F;
    else if (c >= 0xE0 && c <= 0xEF) len = 3, code = c & 0x0F;
    else if (c >= 0xF0 && c <= 0xF4) len = 4, code = c & 0x07;
    bool ok = len > 0 && i + len <= n;
    for (std::size_t k = 1; ok && k < len; ++k) {
      if ((s[i + k] & 0xC0) != 0x80) ok = false;
      else code = (code << 6) | (s[i + k] & 0x3F);
    }
    if (ok) {
      if ((len == 3 && code < 0x800) || (len == 4 && (code < 0x10000 || code > 0x10FFFF)) ||
          (code >= 0xD800 && code <= 0xDFFF) || code == 0xFFFE || code == 0xFFFF)
        ok = false;
    }
    if (!ok) {
      out += kReplacement;
      ++i;
      continue;
    }
    out.append(text.substr(i, len));
    i += len;
  }
}

void write_value(std::string& out, const Value& value) {
  out += "<value>";
  std::visit(
      [&](const auto& v) {
        using T = std::decay_t<decltype(v)>;
        if constexpr (std::is_same_v<T, Nil>) {
          out += "<nil/>";
        } else if constexpr (std::is_same_v<T, bool>) {
          out += v ? "<boolean>1</boolean>" : "<boolean>0</boolean>";
        } else if constexpr (std::is_same_v<T, std::int64_t>) {
          out += "<int>";
          append_int(out, v);
          out += "</int>";
        } else if constexpr (std::is_same_v<T, double>) {
          char buffer[64];
          std::snprintf(buffer, sizeof buffer, "%.17g", std::isfinite(v) ? v : 0.0);
          out += "<double>";
          out += buffer;
          out += "</double>";
        } else if constexpr (std::is_same_v<T, std::string>) {
          out += "<string>";
          append_escaped(out, v);
          out += "</string>";
        } else if constexpr (std::is_same_v<T, Bytes>) {
          out += "<base64>";
          append_base64(out, v.data);
          out += "</base64>";
        } else if constexpr (std::is_same_v<T, DateTime>) {
          out += "<dateTime.iso8601>";
          append_escaped(out, v.text);
          out += "</dateTime.iso8601>";
        } else if constexpr (std::is_same_v<T, Array>) {
          out += "<array><data>\n";
          for (const auto& item : v) {
            write_value(out, item);
            out += '\n';
          }
          out += "</data></array>";
        } else if constexpr (std::is_same_v<T, Struct>) {
          out += "<struct>\n";
          for (const auto& [name, member] : v) {
            out += "<member>\n<name>";
            append_escaped(out, name);
            out += "</name>\n";
            write_value(out, member);
            out += "\n</member>\n";
          }
          out += "</struct>";
        }
      },
      value.v);
  out += "</value>";
}

std::string write_response(const Value& value) {
  std::string out = "<?xml version='1.0'?>\n<methodResponse>\n<params>\n<param>\n";
  write_value(out, value);
  out += "\n</param>\n</params>\n</methodResponse>\n";
  return out;
}

std::string write_fault(int code, std::string_view text) {
  std::string out = "<?xml version='1.0'?>\n<methodResponse>\n<fault>\n";
  write_value(out, Value(Struct{{"faultCode", Value(code)}, {"faultString", Value(std::string(text))}}));
  out += "\n</fault>\n</methodResponse>\n";
  return out;
}

}  // namespace batman::cli::xmlrpc
