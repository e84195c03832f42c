// XML-RPC codec (src/taskmaster/xmlrpc.*): requests as Python's xmlrpc.client (what
// supervisorctl uses) writes them, every type, the refusals (DOCTYPE, depth, shape), and the
// documents written back (escaping, faults).
#include <gtest/gtest.h>

#include "src/taskmaster/xmlrpc.hpp"

namespace batman::cli::xmlrpc {
namespace {

// xmlrpc.client.dumps(('web:*', True), 'supervisor.startProcess'), as Python 3.11 writes it.
constexpr const char* kStartProcess =
    "<?xml version='1.0'?>\n<methodCall>\n<methodName>supervisor.startProcess</methodName>\n<params>\n"
    "<param>\n<value><string>web:*</string></value>\n</param>\n<param>\n<value><boolean>1</boolean></value>\n"
    "</param>\n</params>\n</methodCall>\n";

TEST(XmlRpc, ParsesWhatPythonsClientSends) {
  auto call = parse_call(kStartProcess);
  ASSERT_TRUE(call) << call.error().message;
  EXPECT_EQ(call->method, "supervisor.startProcess");
  ASSERT_EQ(call->params.size(), 2u);
  EXPECT_EQ(call->params[0], Value("web:*"));
  EXPECT_EQ(call->params[1], Value(true));
}

TEST(XmlRpc, NoParamsAndEmptyParams) {
  auto a = parse_call("<methodCall><methodName>supervisor.getPID</methodName></methodCall>");
  ASSERT_TRUE(a) << a.error().message;
  EXPECT_TRUE(a->params.empty());
  auto b = parse_call("<?xml version='1.0'?><methodCall><methodName> system.listMethods </methodName><params/></methodCall>");
  ASSERT_TRUE(b) << b.error().message;
  EXPECT_EQ(b->method, "system.listMethods");
}

TEST(XmlRpc, EveryType) {
  auto call = parse_call(R"(<methodCall><methodName>m</methodName><params>
<param><value><int>-12</int></value></param>
<param><value><i4>7</i4></value></param>
<param><value><i8>8589934592</i8></value></param>
<param><value>bare &amp; text</value></param>
<param><value><string></string></value></param>
<param><value><double>1.5</double></value></param>
<param><value><base64>aGVsbG8=</base64></value></param>
<param><value><dateTime.iso8601>20261202T08:30:00</dateTime.iso8601></value></param>
<param><value><nil/></value></param>
<param><value><array><data><value><int>1</int></value><value>two</value></data></array></value></param>
<param><value><struct><member><name>methodName</name><value>supervisor.getPID</value></member>
<member><name>params</name><value><array><data/></array></value></member></struct></value></param>
</params></methodCall>)");
  ASSERT_TRUE(call) << call.error().message;
  ASSERT_EQ(call->params.size(), 11u);
  EXPECT_EQ(call->params[0], Value(-12));
  EXPECT_EQ(call->params[1], Value(7));
  EXPECT_EQ(call->params[2], Value(std::int64_t{8589934592}));
  EXPECT_EQ(call->params[3], Value("bare & text"));
  EXPECT_EQ(call->params[4], Value(""));
  EXPECT_EQ(call->params[5], Value(1.5));
  EXPECT_EQ(call->params[6], Value(Bytes{"hello"}));
  EXPECT_EQ(call->params[7], Value(DateTime{"20261202T08:30:00"}));
  EXPECT_EQ(call->params[8], Value());
  EXPECT_EQ(call->params[9], Value(Array{Value(1), Value("two")}));
  const Value& s = call->params[10];
  ASSERT_NE(s.member("methodName"), nullptr);
  EXPECT_EQ(*s.member("methodName"), Value("supervisor.getPID"));
  EXPECT_EQ(*s.member("params"), Value(Array{}));
  EXPECT_EQ(s.member("nope"), nullptr);
}

std::string xml_error_of(std::string_view body) {
  auto call = parse_call(body);
  EXPECT_FALSE(call) << body;
  return call ? std::string() : call.error().message;
}

TEST(XmlRpc, MalformedRequestsAreOneLineErrors) {
  EXPECT_NE(xml_error_of("").find("XML-RPC request"), std::string::npos);
  EXPECT_NE(xml_error_of("<methodCall><methodName>x</methodName>").find("line 1"), std::string::npos);
  EXPECT_NE(xml_error_of("<methodResponse/>").find("expected <methodCall>"), std::string::npos);
  EXPECT_NE(xml_error_of("<methodCall><params/></methodCall>").find("no <methodName>"), std::string::npos);
  EXPECT_NE(xml_error_of("<methodCall><methodName>m</methodName><params><param><value><int>x</int></value></param></params></methodCall>")
                .find("not a whole number"),
            std::string::npos);
  EXPECT_NE(xml_error_of("<methodCall><methodName>m</methodName><params><param><value><int>4294967296</int></value></param></params></methodCall>")
                .find("out of range"),
            std::string::npos);
  EXPECT_NE(xml_error_of("<methodCall><methodName>m</methodName><params><param><value><boolean>2</boolean></value></param></params></methodCall>")
                .find("0 or 1"),
            std::string::npos);
  EXPECT_NE(xml_error_of("<methodCall><methodName>m</methodName><params><param><value><blob/></value></param></params></methodCall>")
                .find("unknown type"),
            std::string::npos);
  EXPECT_NE(xml_error_of("<methodCall><methodName>m</methodName><params><param><value><base64>!!</base64></value></param></params></methodCall>")
                .find("not base64"),
            std::string::npos);
  EXPECT_NE(xml_error_of("<methodCall><methodName>m</methodName><extra/></methodCall>").find("unexpected"), std::string::npos);
  for (const auto& e : {xml_error_of("<methodCall>\n<methodName>m</methodName>\n<params><param><value><struct><member><name>a</name></member></struct></value></param></params></methodCall>")})
    EXPECT_EQ(e.find('\n'), std::string::npos) << e;
}

TEST(XmlRpc, RefusesDoctypeSoNoEntityExpands) {
  const std::string laughs = R"(<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">]>
<methodCall><methodName>&lol2;</methodName></methodCall>)";
  EXPECT_NE(xml_error_of(laughs).find("DOCTYPE"), std::string::npos);
  const std::string external = R"(<?xml version="1.0"?><!DOCTYPE x SYSTEM "file:///etc/passwd"><methodCall><methodName>m</methodName></methodCall>)";
  EXPECT_NE(xml_error_of(external).find("DOCTYPE"), std::string::npos);
}

TEST(XmlRpc, RefusesDeepNesting) {
  std::string body = "<methodCall><methodName>m</methodName><params><param>";
  for (int i = 0; i < 40; ++i) body += "<value><array><data>";
  for (int i = 0; i < 40; ++i) body += "</data></array></value>";
  body += "</param></params></methodCall>";
  EXPECT_NE(xml_error_of(body).find("deeper than"), std::string::npos);
  // A million open elements stop at the limit instead of growing the stack.
  std::string deep = "<methodCall>";
  for (int i = 0; i < 100000; ++i) deep += "<a>";
  EXPECT_NE(xml_error_of(deep).find("deeper than"), std::string::npos);
}

TEST(XmlRpc, WritesResponsesAndFaults) {
  EXPECT_EQ(write_response(Value("3.0")),
            "<?xml version='1.0'?>\n<methodResponse>\n<params>\n<param>\n<value><string>3.0</string></value>\n"
            "</param>\n</params>\n</methodResponse>\n");
  const std::string fault = write_fault(10, "BAD_NAME: <x>");
  EXPECT_NE(fault.find("<fault>"), std::string::npos);
  EXPECT_NE(fault.find("<name>faultCode</name>\n<value><int>10</int></value>"), std::string::npos);
  EXPECT_NE(fault.find("<value><string>BAD_NAME: &lt;x&gt;</string></value>"), std::string::npos);
  // What a response carries parses back to the same value.
  const Value v(Struct{{"a", Value(Array{Value(1), Value(true), Value(2.5), Value(""), Value()})},
                       {"b & c", Value(Bytes{std::string("\0\xff", 2)})}});
  std::string as_call = "<methodCall><methodName>m</methodName><params><param>";
  write_value(as_call, v);
  as_call += "</param></params></methodCall>";
  auto back = parse_call(as_call);
  ASSERT_TRUE(back) << back.error().message;
  EXPECT_EQ(back->params.at(0), v);
}

TEST(XmlRpc, AnyBytesMakeAParsableDocument) {
  std::string out;
  append_escaped(out, std::string("ok\x01\r\n\t\xff\xc3\xa9\xed\xa0\x80<&>", 15));
  EXPECT_EQ(out, "ok\xEF\xBF\xBD&#13;\n\t\xEF\xBF\xBD\xC3\xA9\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD&lt;&amp;&gt;");
  // Every byte value, written and parsed back by expat, is a document.
  std::string all;
  for (int i = 0; i < 256; ++i) all += static_cast<char>(i);
  std::string doc = "<methodCall><methodName>m</methodName><params><param>";
  write_value(doc, Value(all));
  doc += "</param></params></methodCall>";
  auto back = parse_call(doc);
  ASSERT_TRUE(back) << back.error().message;
  const auto* s = back->params.at(0).get<std::string>();
  ASSERT_NE(s, nullptr);
  EXPECT_NE(s->find("ABC"), std::string::npos);
  EXPECT_NE(s->find('\r'), std::string::npos);
}

TEST(XmlRpc, IntsAreCappedTo32Bits) {
  std::string out;
  write_value(out, Value(std::int64_t{1} << 40));
  EXPECT_EQ(out, "<value><int>2147483647</int></value>");
}

}  // namespace
}  // namespace batman::cli::xmlrpc
