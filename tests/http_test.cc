// embark serve's HTTP side: the request reader (framing, limits, errors)
// byte by byte and whole.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "serve/http_reader.h"

namespace embark::serve {
namespace {

// ---- RequestReader -----------------------------------------------------------

HttpLimits SmallLimits() {
  HttpLimits l;
  l.max_head_bytes = 1024;
  l.max_headers = 8;
  l.max_target_bytes = 64;
  l.max_body_bytes = 100;
  return l;
}

struct Outcome {
  size_t consumed = 0;
  bool done = false;
  int status = 0;
  std::string head, body;
};

Outcome ReadWhole(const std::string& bytes, const HttpLimits& limits = SmallLimits()) {
  RequestReader r(limits);
  Outcome o;
  o.consumed = r.Feed(bytes);
  o.done = r.done();
  o.status = r.failed() ? r.error_status() : 0;
  if (r.done()) {
    o.head = r.request().Head();
    o.body = r.request().body;
  }
  return o;
}

Outcome ReadByteByByte(const std::string& bytes, const HttpLimits& limits = SmallLimits()) {
  RequestReader r(limits);
  Outcome o;
  for (char c : bytes) {
    const size_t n = r.Feed(std::string_view(&c, 1));
    o.consumed += n;
    if (n == 0) break;
  }
  o.done = r.done();
  o.status = r.failed() ? r.error_status() : 0;
  if (r.done()) {
    o.head = r.request().Head();
    o.body = r.request().body;
  }
  return o;
}

// Whole and byte by byte must agree; returns the whole reading.
Outcome Read(const std::string& bytes, const HttpLimits& limits = SmallLimits()) {
  Outcome a = ReadWhole(bytes, limits), b = ReadByteByByte(bytes, limits);
  EXPECT_EQ(a.done, b.done) << bytes;
  EXPECT_EQ(a.status, b.status) << bytes;
  EXPECT_EQ(a.head, b.head) << bytes;
  EXPECT_EQ(a.body, b.body) << bytes;
  if (a.done) {
    EXPECT_EQ(a.consumed, b.consumed) << bytes;
  }
  return a;
}

TEST(RequestReader, GetWithoutBody) {
  Outcome o = Read("GET /v2/health/ready HTTP/1.1\r\nHost: x\r\n\r\n");
  ASSERT_TRUE(o.done);
  EXPECT_EQ(o.head, "GET /v2/health/ready HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n");
}

TEST(RequestReader, ContentLengthBody) {
  const std::string req = "POST /infer HTTP/1.1\r\nContent-Length: 5\r\nContent-Type: application/json\r\n\r\nhello";
  Outcome o = Read(req + "GET / HTTP/1.1\r\n\r\n");
  ASSERT_TRUE(o.done);
  EXPECT_EQ(o.consumed, req.size());  // stops where the next (pipelined) request starts
  EXPECT_EQ(o.body, "hello");
  EXPECT_EQ(o.head, "POST /infer HTTP/1.1\r\nContent-Type: application/json\r\nContent-Length: 5\r\n\r\n");
}

TEST(RequestReader, ChunkedBodyIsDecodedAndReframed) {
  const std::string req =
      "POST /infer HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
      "5;name=value\r\nhello\r\n1\r\n \r\n5\r\nworld\r\n0\r\nTrailer-Field: x\r\n\r\n";
  Outcome o = Read(req + "GET / HTTP/1.1\r\n\r\n");
  ASSERT_TRUE(o.done) << o.status;
  EXPECT_EQ(o.consumed, req.size());
  EXPECT_EQ(o.body, "hello world");
  EXPECT_EQ(o.head, "POST /infer HTTP/1.1\r\nContent-Length: 11\r\n\r\n");
}

TEST(RequestReader, ChunkedBodyOverTheLimitStopsAtTheLimit) {
  std::string req = "POST /infer HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n";
  const size_t head = req.size();
  for (int i = 0; i < 1000; ++i) req += "a\r\n0123456789\r\n";  // 10 KB in 10-byte chunks, limit 100
  Outcome o = Read(req);
  EXPECT_FALSE(o.done);
  EXPECT_EQ(o.status, 413);
  EXPECT_LE(o.consumed, head + 11 * 15);  // refused at the 11th chunk's size line, not at the end
  // One chunk declaring more than the limit is refused before its data.
  o = Read("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffffffff\r\n");
  EXPECT_EQ(o.status, 413);
}

TEST(RequestReader, ContentLengthOverTheLimitIsRefusedAtTheHead) {
  Outcome o = Read("POST / HTTP/1.1\r\nContent-Length: 101\r\n\r\n");
  EXPECT_EQ(o.status, 413);
  o = Read("POST / HTTP/1.1\r\nContent-Length: 100\r\n\r\n" + std::string(100, 'x'));
  EXPECT_TRUE(o.done);
}

TEST(RequestReader, NoFramingMeansNoBody) {
  // RFC 9112 6.3: a request without Content-Length or Transfer-Encoding has
  // no body; what follows is the next request, not a body read to the close.
  const std::string req = "POST /load HTTP/1.1\r\nAuthorization: Bearer t\r\n\r\n";
  Outcome o = Read(req + "{\"inputs\":[]}");
  ASSERT_TRUE(o.done);
  EXPECT_EQ(o.consumed, req.size());
  EXPECT_EQ(o.body, "");
}

TEST(RequestReader, HeadLimitsHoldWithoutBuffering) {
  // A line that never ends is refused once the head's limit is passed.
  Outcome o = Read("GET /" + std::string(100000, 'a'));
  EXPECT_EQ(o.status, 431);
  EXPECT_LE(o.consumed, 1024u + 1);
  EXPECT_EQ(Read("GET /" + std::string(100, 'a') + " HTTP/1.1\r\n\r\n").status, 414);
  std::string many = "GET / HTTP/1.1\r\n";
  for (int i = 0; i < 9; ++i) many += "X-" + std::to_string(i) + ": 1\r\n";
  EXPECT_EQ(Read(many + "\r\n").status, 431);
  EXPECT_EQ(Read(std::string(2000, '\n')).status, 431);  // empty lines count too
}

TEST(RequestReader, RefusesMalformedAndUnsupportedRequests) {
  const std::vector<std::pair<std::string, int>> cases = {
      {"GARBAGE\r\n\r\n", 400},
      {"GET / HTTP/1.1 extra\r\n\r\n", 400},
      {"GET /a b HTTP/1.1\r\n\r\n", 400},
      {"G(T / HTTP/1.1\r\n\r\n", 400},
      {"GET / HTTP/2.0\r\n\r\n", 505},
      {"GET / FTP/1.1\r\n\r\n", 400},
      {"GET / HTTP/1.1\nHost: x\r\n\r\n", 400},           // bare LF
      {"GET / HTTP/1.1\r\nHost: x\ry\r\n\r\n", 400},      // bare CR
      {"GET / HTTP/1.1\r\nHost: x\r\n folded\r\n\r\n", 400},
      {"GET / HTTP/1.1\r\nNo colon\r\n\r\n", 400},
      {"GET / HTTP/1.1\r\nBad Name: x\r\n\r\n", 400},
      {"GET / HTTP/1.1\r\nX: a\x01z\r\n\r\n", 400},
      {"POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n", 400},
      {"POST / HTTP/1.1\r\nContent-Length: 1, 1\r\n\r\n", 400},
      {"POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", 400},
      {"POST / HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n", 400},
      {"POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 501},
      {"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", 501},
      {"POST / HTTP/1.1\r\nContent-Length: 2\r\nContent-Encoding: gzip\r\n\r\n", 415},
      {"POST / HTTP/1.1\r\nContent-Length: 2\r\nExpect: something\r\n\r\n", 417},
      {"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 400},
      {"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabX\r\n", 400},
      {"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n2 x\r\nab\r\n", 400},
  };
  for (const auto& [bytes, status] : cases) {
    Outcome o = Read(bytes);
    EXPECT_FALSE(o.done) << bytes;
    EXPECT_EQ(o.status, status) << bytes;
  }
  // A compressed body is refused; a body-less request naming an encoding is not.
  EXPECT_TRUE(Read("GET / HTTP/1.1\r\nContent-Encoding: gzip\r\n\r\n").done);
}

TEST(RequestReader, ConnectionAndExpect) {
  RequestReader r(SmallLimits());
  auto read = [&](const std::string& s) {
    r.Reset();
    r.Feed(s);
    EXPECT_TRUE(r.head_done()) << s;
    return r.request();
  };
  EXPECT_TRUE(read("GET / HTTP/1.1\r\n\r\n").keep_alive);
  EXPECT_FALSE(read("GET / HTTP/1.1\r\nConnection: Keep-Alive, close\r\n\r\n").keep_alive);
  EXPECT_FALSE(read("GET / HTTP/1.0\r\n\r\n").keep_alive);
  EXPECT_TRUE(read("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n").keep_alive);
  EXPECT_TRUE(read("POST / HTTP/1.1\r\nContent-Length: 3\r\nExpect: 100-Continue\r\n\r\n").expect_continue);
  EXPECT_FALSE(r.done());  // the body is still to come
  EXPECT_FALSE(read("POST / HTTP/1.1\r\nContent-Length: 0\r\nExpect: 100-continue\r\n\r\n").expect_continue);
  // Empty lines before a request are ignored.
  EXPECT_EQ(read("\r\n\r\nGET /x HTTP/1.1\r\n\r\n").target, "/x");
}

}  // namespace
}  // namespace embark::serve
