// XML-RPC (http://xmlrpc.com/spec.md) as supervisord speaks it: a methodCall parsed by expat
// (Debian's libexpat1-dev, the parser Python's own xmlrpc client uses), and methodResponse /
// fault documents written out. Values are a small variant tree; nothing here knows supervisord.
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "common/error.hpp"

namespace batman::cli::xmlrpc {

struct Value;
using Array = std::vector<Value>;
// A struct in the order its members were given (or are to be written).
using Struct = std::vector<std::pair<std::string, Value>>;
// <base64>: decoded bytes.
struct Bytes {
  std::string data;
  bool operator==(const Bytes&) const = default;
};
// <dateTime.iso8601>: the text as sent ("20261202T08:30:00").
struct DateTime {
  std::string text;
  bool operator==(const DateTime&) const = default;
};
struct Nil {
  bool operator==(const Nil&) const = default;
};

struct Value {
  std::variant<Nil, bool, std::int64_t, double, std::string, Bytes, DateTime, Array, Struct> v;

  Value() = default;
  Value(bool b) : v(b) {}
  Value(int n) : v(static_cast<std::int64_t>(n)) {}
  Value(std::int64_t n) : v(n) {}
  Value(double d) : v(d) {}
  Value(std::string s) : v(std::move(s)) {}
  Value(const char* s) : v(std::string(s)) {}
  Value(Array a) : v(std::move(a)) {}
  Value(Struct s) : v(std::move(s)) {}
  Value(Bytes b) : v(std::move(b)) {}
  Value(DateTime d) : v(std::move(d)) {}

  bool operator==(const Value&) const = default;
  template <class T>
  const T* get() const {
    return std::get_if<T>(&v);
  }
  // A member of a struct, or nullptr.
  const Value* member(std::string_view name) const;
};

struct Call {
  std::string method;
  Array params;
};

// Nesting of arrays and structs a request may have (supervisorctl's deepest is
// system.multicall's array of structs of arrays: 4).
constexpr int kMaxDepth = 32;

// Parse a <methodCall>. An error (malformed XML, a DOCTYPE, an element out of place, a value
// that is not its type, nesting past kMaxDepth) is one line saying what and where.
Result<Call> parse_call(std::string_view body);

// <methodResponse> carrying one value, or a fault.
std::string write_response(const Value& value);
std::string write_fault(int code, std::string_view text);

// The value as an XML-RPC <value> element (what write_response puts in its <param>).
void write_value(std::string& out, const Value& value);
// Text as XML character data: & < > escaped, \r kept (&#13;), and what XML 1.0 cannot carry
// (control characters, bytes that are not UTF-8) replaced by U+FFFD, so that any log's bytes
// make a document the client can parse.
void append_escaped(std::string& out, std::string_view text);

}  // namespace batman::cli::xmlrpc
