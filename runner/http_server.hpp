// HttpServer: HTTP/1.1 served from an EventLoop, single-threaded and non-blocking, on a
// listening socket the caller made (a Unix socket for taskmaster's XML-RPC interface, a TCP
// port for the dashboard). Requests are parsed by http-parser (nodejs/http-parser, Debian's
// libhttp-parser-dev); this file keeps the connections: keep-alive, one request at a time per
// connection (a pipelined one waits for the answer before it), answers given at once or later
// (from a timer or another event), streamed answers (chunked transfer encoding on HTTP/1.1:
// Server-Sent Events, `supervisorctl tail -f`).
//
// Hostile clients cost bounded memory and cannot stall the loop or lock others out: headers
// and bodies have size limits (431/413 and the connection closed), a connection that sends
// nothing for `idle_timeout` or half a request for `request_timeout` is closed, one that
// does not read what it is sent for `stall_timeout` is dropped, and when every slot is taken
// the connection idle the longest makes room for a new one.
#pragma once
#include <sys/socket.h>
#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/error.hpp"
#include "common/unique_fd.hpp"
#include "runner/event_loop.hpp"

namespace batman::runner {

struct HttpRequest {
  std::string method;  // "GET", "POST", ...
  std::string target;  // as sent: "/api/v1/runs?project=x"
  std::string path;    // percent-decoded path of the target: "/api/v1/runs"
  std::string query;   // the raw query string after '?', if any
  std::map<std::string, std::string> headers;  // names lowercased; repeated headers joined by ", "
  std::string body;
  int http_minor = 1;  // HTTP/1.<minor>
  // The peer of a Unix socket (SO_PEERCRED); none on TCP.
  std::optional<ucred> peer;

  // The header's value, or "" when absent.
  const std::string& header(const std::string& lowercase_name) const;
  // A query parameter, percent-decoded ("+" is a space), or nullopt when absent.
  std::optional<std::string> param(std::string_view name) const;
};

using HttpHeaders = std::vector<std::pair<std::string, std::string>>;

namespace detail {
struct HttpConnection;
}

// The answer to one request. Copyable handle; it may be kept and used after the handler
// returned (from a timer, a child's exit...). Exactly one of respond() or start_stream()
// (+ write()... + end()) answers the request; using a handle whose connection is gone, or
// answering twice, does nothing.
class HttpResponder {
 public:
  HttpResponder() = default;
  // The connection is open and this request not yet answered (or its stream not ended).
  bool alive() const;
  void respond(int status, std::string_view content_type, std::string body, const HttpHeaders& extra = {});
  // A response whose length is not known in advance: chunked on HTTP/1.1, ended by closing
  // the connection on HTTP/1.0.
  void start_stream(int status, std::string_view content_type, const HttpHeaders& extra = {});
  void write(std::string_view data);
  void end();
  // Bytes queued and not yet taken by the client: a streaming producer that sees this grow
  // drops or coalesces what it would send (a stalled client is dropped at max_queued anyway).
  std::size_t backlog() const;
  // Called once if the connection closes before the answer ended (the client went away, or
  // it was dropped): a stream's producer unsubscribes here. Not called after end().
  void on_close(std::function<void()> callback);

 private:
  friend class HttpServer;
  HttpResponder(std::weak_ptr<detail::HttpConnection> connection, std::uint64_t request)
      : connection_(std::move(connection)), request_(request) {}
  std::weak_ptr<detail::HttpConnection> connection_;
  std::uint64_t request_ = 0;
};

class HttpServer {
 public:
  struct Options {
    std::size_t max_header_bytes = 16 << 10;  // request line + headers
    std::size_t max_body_bytes = 1 << 20;
    std::size_t max_clients = 256;
    std::size_t max_queued = 8 << 20;  // answer bytes waiting for a client before it is dropped
    Duration idle_timeout = std::chrono::seconds(60);      // keep-alive, nothing asked
    Duration request_timeout = std::chrono::seconds(10);   // a request begun and not finished
    Duration stall_timeout = std::chrono::seconds(20);     // answer bytes waiting, none taken
    // Unix sockets: who may connect (SO_PEERCRED); everyone else gets 403. Default: the
    // server's own uid and root.
    std::function<bool(const ucred&)> allow_peer;
    // TCP: a loopback peer's uid is looked up in /proc/net/tcp{,6} (as identd does) and put
    // to allow_peer, so that other users of this machine are refused (403) as on a Unix
    // socket; a loopback peer whose uid is not found is refused too. Peers from other
    // addresses pass (the caller authenticates them).
    bool check_loopback_peer = false;
  };
  using Handler = std::function<void(const HttpRequest&, HttpResponder)>;

  // Serve `listener` (a bound, listening, non-blocking socket; owned from now on).
  static Result<std::unique_ptr<HttpServer>> serve(EventLoop& loop, UniqueFd listener, Options options,
                                                   Handler handler);
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  std::size_t clients() const;
  // Write what is queued, waiting at most `timeout` (before the process exits).
  void flush(Duration timeout);
  // Close the listening socket (a Unix socket's file is the caller's), keeping the connections.
  void stop_listening();

  struct Impl;

 private:
  explicit HttpServer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// A listening TCP socket on ADDRESS:PORT (port 0: the kernel picks; read it back with
// bound_port). IPv4 or IPv6 literal, or "localhost".
Result<UniqueFd> listen_tcp(const std::string& address, int port);
Result<int> bound_port(int listener);
// The uid owning the other end of a TCP connection from this machine's loopback, from
// /proc/net/tcp{,6}; nullopt for a peer elsewhere or not found.
std::optional<uid_t> loopback_peer_uid(int connection);

// A listening Unix socket at `path`, created 0600. A socket file nobody answers on is
// replaced; one that answers is an error naming `what` ("another supervisor is already
// serving PATH"). Paths longer than sun_path go through the directory's fd.
Result<UniqueFd> listen_unix(const std::string& path, const std::string& what_serves);
// A connected client socket for `path` (ENOENT/ECONNREFUSED keep their errno in Error::code).
Result<UniqueFd> connect_unix(const std::string& path);

// "200 OK": the reason phrase of a status code.
std::string_view http_reason(int status);
// Text safe to put in HTML: & < > " ' escaped.
std::string html_escape(std::string_view text);
// A percent-decoded string ("+" as space when `plus_is_space`); nullopt on a bad escape.
std::optional<std::string> percent_decode(std::string_view text, bool plus_is_space);

}  // namespace batman::runner
