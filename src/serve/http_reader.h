// Reads HTTP/1.1 requests off a connection's bytes as they arrive, one at a
// time, within limits: the request line and headers (the head) in at most
// max_head_bytes, the body in at most max_body_bytes however it is framed
// (Content-Length or chunked), never holding more than that. A request with
// neither framing header has an empty body (RFC 9112 section 6.3). Bytes
// after the end of a request are left to the caller: they are the next
// request of a pipelining client.
//
// The front end (http_front.h) hands a complete request on as a head with a
// Content-Length and the decoded body, so what parses it next sees neither
// chunked framing nor a socket. Kept free of I/O so it can be fuzzed
// (fuzz/http_request_fuzz.cc) and unit-tested on its own.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace embark::serve {

struct HttpLimits {
  size_t max_head_bytes = 64 << 10;  // request line and headers; chunked trailers have as much again
  size_t max_headers = 100;          // header fields
  size_t max_target_bytes = 8192;    // the request target (path and query)
  size_t max_body_bytes = 64 << 20;  // the body after chunked decoding
};

struct HttpRequest {
  std::string method, target, version;
  // Every header field but the framing ones (Content-Length,
  // Transfer-Encoding, Expect, Content-Encoding): name and value, trimmed.
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  bool keep_alive = true;       // HTTP/1.1 unless "Connection: close"; HTTP/1.0 only with "keep-alive"
  bool expect_continue = false;  // "Expect: 100-continue" with a body to come

  // The request line, the headers above, "Content-Length: <body size>" and
  // the blank line: the head of the request as a server would read it.
  std::string Head() const;
};

class RequestReader {
 public:
  explicit RequestReader(const HttpLimits& limits) : limits_(limits) {}

  // Consumes a prefix of `data`, never past the end of the current request,
  // and returns its length. Consumes nothing once done() or failed().
  size_t Feed(std::string_view data);

  bool started() const { return state_ != State::kStart; }  // a byte of this request has arrived
  bool head_done() const { return state_ > State::kHead; }
  bool done() const { return state_ == State::kDone; }
  bool failed() const { return state_ == State::kError; }
  // After failed(): the HTTP status to answer (400, 413, 414, 415, 417, 431,
  // 501 or 505) and what was wrong, for the error body.
  int error_status() const { return error_status_; }
  const std::string& error_message() const { return error_; }

  // The request: method, target, version and headers once head_done(), the
  // body once done(). May be moved from; Reset() starts the next request.
  HttpRequest& request() { return req_; }
  void Reset();

 private:
  enum class State { kStart, kHead, kBody, kChunkSize, kChunkData, kChunkDataEnd, kTrailers, kDone, kError };

  bool Fail(int status, std::string message);
  bool ParseHead();  // on head_ complete; sets the body state or fails
  size_t FeedChunked(std::string_view data);

  HttpLimits limits_;
  State state_ = State::kStart;
  int error_status_ = 0;
  std::string error_;
  std::string head_;     // the head as received, up to its blank line
  std::string line_;     // a chunk-size line or the trailers, as received
  uint64_t remaining_ = 0;  // body bytes still to come (Content-Length, or of the current chunk)
  HttpRequest req_;
};

}  // namespace embark::serve
