// The connection side of embark serve. One thread accepts connections and
// reads every request in full (RequestReader: head and body within their
// limits whatever the framing, from its first byte to its last within a
// deadline) before any handler sees it; a pool of handler threads answers
// complete requests. A connection therefore holds no thread while it is
// idle, slow or still sending, and GET/HEAD requests (health, readiness,
// metadata, metrics) are answered by the connection thread itself, without
// waiting for a handler thread. Answers go back in request order on each
// connection, so pipelined requests work. A handler thread writes its
// answer to the socket itself when nothing is queued before it (saving a
// wake-up of the connection thread per request); what the socket does not
// take at once, the connection thread writes without blocking.
//
// Why not cpp-httplib's own accept loop (0.11, Debian 12): it gives each
// connection a pool thread for the connection's whole life, idle keep-alive
// included, so a few hundred slow or idle clients stop every other request,
// health checks too; its line reader buffers a request or header line of
// any length before checking it; a chunked or unframed body is read past
// the body limit; and the bytes of a pipelined request read ahead are
// dropped between requests. httplib still parses the complete in-memory
// request, routes it and writes the answer (server.cc).
#pragma once

#include <cstddef>
#include <functional>
#include <memory>
#include <string>

#include "serve/http_reader.h"
#include "serve/metrics.h"
#include "util/log.h"
#include "util/status.h"

namespace embark::serve {

struct FrontOptions {
  std::string host = "127.0.0.1";
  int port = 8080;                // 0: any free port
  int handler_threads = 128;      // requests handled at once (GETs run on the connection thread)
  size_t max_connections = 4096;  // open at once; one more is answered 503 and closed
  // A connection that sends nothing for this long between requests, or in
  // the middle of one, or does not take its answer, is closed (a request cut
  // short is answered 408).
  double idle_timeout_s = 5;
  // From a request's first byte to its last; a request still incomplete
  // then is answered 408 and its connection closed.
  double request_timeout_s = 10;
  HttpLimits limits;
};

// A complete request and where it came from.
struct FrontRequest {
  HttpRequest http;
  std::string remote_ip, local_ip;
  int remote_port = 0, local_port = 0;
  bool close = false;  // the connection closes after this answer
};

struct FrontResponse {
  std::string bytes;   // status line, headers and body
  bool close = false;  // close the connection once it is written
};

// An answer of the front end itself: a JSON error body, "Connection: close".
std::string ErrorResponse(int status, const std::string& message);

class HttpFront {
 public:
  // Answers one request. Called on a handler thread, or on the connection
  // thread for GET and HEAD (which must therefore never block).
  using Handler = std::function<FrontResponse(const FrontRequest&)>;

  HttpFront(const FrontOptions& opt, Handler handler, ServerMetrics* metrics, const Logger& log);
  ~HttpFront();
  HttpFront(const HttpFront&) = delete;
  HttpFront& operator=(const HttpFront&) = delete;

  // Binds and listens on host:port.
  Status Bind();
  int port() const;
  // Serves connections until Stop(): then stops accepting, closes idle
  // connections, answers every request already begun (each with
  // "Connection: close") and returns once all connections are closed.
  Status Serve();
  // Safe from any thread, at any time (before Serve too), more than once.
  void Stop();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace embark::serve
