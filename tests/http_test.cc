// embark serve's HTTP side: the request reader (framing, limits, errors)
// byte by byte and whole, and the front end over real sockets (pipelining,
// bodies over the limit however framed, request deadlines, GETs answered
// while every handler thread is busy, the connection limit, stopping).
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "serve/http_front.h"
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

// ---- HttpFront over sockets --------------------------------------------------

// A blocking client with a receive timeout, so a broken server fails the test
// instead of hanging it.
class Client {
 public:
  explicit Client(int port) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<uint16_t>(port));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    timeval tv{20, 0};
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    connected_ = ::connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0;
  }
  ~Client() { ::close(fd_); }
  bool connected() const { return connected_; }
  // Closes with a reset (RST) instead of an orderly close.
  void Reset() {
    linger l{1, 0};
    ::setsockopt(fd_, SOL_SOCKET, SO_LINGER, &l, sizeof(l));
    ::close(fd_);
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);  // something for the destructor to close
  }
  bool Send(const std::string& s) { return ::send(fd_, s.data(), s.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(s.size()); }
  // One response: status line and headers, then Content-Length bytes of
  // body. Empty when the connection closed (or timed out) first.
  std::string Response() {
    size_t end;
    while ((end = buf_.find("\r\n\r\n")) == std::string::npos)
      if (!Fill()) return "";
    size_t length = 0;
    const size_t cl = buf_.find("Content-Length: ");
    if (cl != std::string::npos && cl < end) length = std::stoul(buf_.substr(cl + 16));
    while (buf_.size() < end + 4 + length)
      if (!Fill()) return "";
    std::string r = buf_.substr(0, end + 4 + length);
    buf_.erase(0, r.size());
    return r;
  }
  // True once the server closed the connection (after what was read).
  bool Closed() {
    while (Fill()) {
    }
    return eof_;
  }

 private:
  bool Fill() {
    char b[4096];
    const ssize_t n = ::recv(fd_, b, sizeof(b), 0);
    if (n <= 0) {
      eof_ = n == 0;
      return false;
    }
    buf_.append(b, static_cast<size_t>(n));
    return true;
  }
  int fd_ = -1;
  bool connected_ = false, eof_ = false;
  std::string buf_;
};

std::string Ok(const std::string& body, bool close) {
  return "HTTP/1.1 200 OK\r\nContent-Length: " + std::to_string(body.size()) + (close ? "\r\nConnection: close" : "") +
         "\r\n\r\n" + body;
}

// A front end on a free port, serving on its own thread. The handler
// answers "METHOD TARGET BODYSIZE"; a POST to /block waits until released.
class Front {
 public:
  explicit Front(FrontOptions opt) {
    opt.port = 0;
    front_ = std::make_unique<HttpFront>(
        opt,
        [this](const FrontRequest& r) {
          if (r.http.target == "/block") {
            std::unique_lock<std::mutex> lock(mu_);
            ++blocked_;
            cv_.notify_all();
            cv_.wait(lock, [&] { return released_; });
          }
          return FrontResponse{
              Ok(r.http.method + " " + r.http.target + " " + std::to_string(r.http.body.size()), r.close), r.close};
        },
        &metrics_, log_);
    EXPECT_TRUE(front_->Bind().ok());
    thread_ = std::thread([this] { served_ = front_->Serve(); });
  }
  ~Front() {
    Release();
    front_->Stop();
    thread_.join();
    EXPECT_TRUE(served_.ok()) << served_.message();
  }
  int port() const { return front_->port(); }
  void WaitBlocked(int n) {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [&] { return blocked_ >= n; });
  }
  void Release() {
    std::lock_guard<std::mutex> lock(mu_);
    released_ = true;
    cv_.notify_all();
  }
  void Stop() { front_->Stop(); }
  void Join() { thread_.join(); thread_ = std::thread([] {}); }
  std::string Metrics() const { return metrics_.Render(); }

 private:
  Logger log_{LogLevel::kError};
  ServerMetrics metrics_;
  std::unique_ptr<HttpFront> front_;
  std::thread thread_;
  Status served_;
  std::mutex mu_;
  std::condition_variable cv_;
  int blocked_ = 0;
  bool released_ = false;
};

FrontOptions Options() {
  FrontOptions o;
  o.handler_threads = 2;
  o.limits.max_body_bytes = 1000;
  return o;
}

bool StartsWith(const std::string& s, const std::string& p) { return s.compare(0, p.size(), p) == 0; }

TEST(HttpFront, PipelinedRequestsAreAnsweredInOrder) {
  Front f(Options());
  Client c(f.port());
  ASSERT_TRUE(c.connected());
  ASSERT_TRUE(c.Send("GET /a HTTP/1.1\r\n\r\nPOST /b HTTP/1.1\r\nContent-Length: 3\r\n\r\nxyzGET /c HTTP/1.1\r\n\r\n"
                     "POST /d HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nab\r\n0\r\n\r\n"));
  EXPECT_EQ(c.Response(), Ok("GET /a 0", false));
  EXPECT_EQ(c.Response(), Ok("POST /b 3", false));
  EXPECT_EQ(c.Response(), Ok("GET /c 0", false));
  EXPECT_EQ(c.Response(), Ok("POST /d 2", false));
  // The connection stays open for more.
  ASSERT_TRUE(c.Send("GET /e HTTP/1.1\r\nConnection: close\r\n\r\n"));
  EXPECT_EQ(c.Response(), Ok("GET /e 0", true));
  EXPECT_TRUE(c.Closed());
}

TEST(HttpFront, BodiesOverTheLimitAre413HoweverFramed) {
  Front f(Options());
  {
    Client c(f.port());
    ASSERT_TRUE(c.Send("POST /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"));
    for (int i = 0; i < 200 && c.Send("40\r\n" + std::string(64, 'x') + "\r\n"); ++i) {
    }
    EXPECT_TRUE(StartsWith(c.Response(), "HTTP/1.1 413 Payload Too Large\r\n"));
    EXPECT_TRUE(c.Closed());
  }
  {
    Client c(f.port());
    ASSERT_TRUE(c.Send("POST /x HTTP/1.1\r\nContent-Length: 1001\r\nExpect: 100-continue\r\n\r\n"));
    EXPECT_TRUE(StartsWith(c.Response(), "HTTP/1.1 413 "));  // refused before the body is sent
  }
  {
    Client c(f.port());  // 100-continue, then the body
    ASSERT_TRUE(c.Send("POST /x HTTP/1.1\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n"));
    EXPECT_EQ(c.Response(), "HTTP/1.1 100 Continue\r\n\r\n");
    ASSERT_TRUE(c.Send("abcd"));
    EXPECT_EQ(c.Response(), Ok("POST /x 4", false));
  }
  Client c(f.port());
  ASSERT_TRUE(c.Send("GET /after HTTP/1.1\r\n\r\n"));
  EXPECT_EQ(c.Response(), Ok("GET /after 0", false));
  EXPECT_NE(f.Metrics().find("embark_requests_total{endpoint=\"other\",code=\"413\"} 2"), std::string::npos);
}

TEST(HttpFront, ARequestPastItsDeadlineIs408) {
  FrontOptions o = Options();
  o.request_timeout_s = 0.3;
  o.idle_timeout_s = 30;
  Front f(o);
  Client c(f.port());
  // A header line now and then keeps the connection from going idle but
  // never completes the request: the deadline from its first byte cuts it.
  ASSERT_TRUE(c.Send("GET / HTTP/1.1\r\n"));
  std::atomic<bool> answered{false};
  std::thread drip([&] {
    for (int i = 0; i < 400 && !answered && c.Send("X-Drip: " + std::to_string(i) + "\r\n"); ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
  });
  const std::string r = c.Response();
  answered = true;
  drip.join();
  EXPECT_TRUE(StartsWith(r, "HTTP/1.1 408 Request Timeout\r\n")) << r;
  EXPECT_NE(r.find("--request-timeout"), std::string::npos);
  EXPECT_TRUE(c.Closed());
}

TEST(HttpFront, GetsAreAnsweredWhileEveryHandlerThreadIsBusy) {
  Front f(Options());  // 2 handler threads
  Client a(f.port()), b(f.port());
  ASSERT_TRUE(a.Send("POST /block HTTP/1.1\r\n\r\n"));
  ASSERT_TRUE(b.Send("POST /block HTTP/1.1\r\n\r\n"));
  f.WaitBlocked(2);
  std::vector<std::unique_ptr<Client>> slow;  // and connections that are still sending
  for (int i = 0; i < 20; ++i) {
    slow.push_back(std::make_unique<Client>(f.port()));
    ASSERT_TRUE(slow.back()->Send("GET / HTTP/1.1\r\nX-Slow: "));
  }
  Client probe(f.port());
  ASSERT_TRUE(probe.Send("GET /v2/health/ready HTTP/1.1\r\n\r\n"));
  EXPECT_EQ(probe.Response(), Ok("GET /v2/health/ready 0", false));
  f.Release();
  EXPECT_EQ(a.Response(), Ok("POST /block 0", false));
  EXPECT_EQ(b.Response(), Ok("POST /block 0", false));
}

TEST(HttpFront, AClientResetWhileItsRequestIsHandled) {
  Front f(Options());
  {
    Client gone(f.port());
    ASSERT_TRUE(gone.Send("POST /block HTTP/1.1\r\nContent-Length: 1\r\n\r\nx"));
    f.WaitBlocked(1);
    gone.Reset();  // while its handler still holds the request
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  f.Release();  // the handler writes to a reset connection: nothing breaks
  Client c(f.port());
  ASSERT_TRUE(c.Send("POST /next HTTP/1.1\r\nContent-Length: 2\r\n\r\nab"));
  EXPECT_EQ(c.Response(), Ok("POST /next 2", false));
  // The reset connection is closed once its handler is done: one is left.
  bool one_left = false;
  for (int i = 0; i < 500 && !one_left; ++i) {
    one_left = f.Metrics().find("embark_http_connections 1\n") != std::string::npos;
    if (!one_left) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_TRUE(one_left) << f.Metrics();
}

TEST(HttpFront, ConnectionsOverTheLimitAre503) {
  FrontOptions o = Options();
  o.max_connections = 2;
  Front f(o);
  Client a(f.port()), b(f.port());
  ASSERT_TRUE(a.Send("GET /a HTTP/1.1\r\n\r\n"));
  ASSERT_TRUE(b.Send("GET /b HTTP/1.1\r\n\r\n"));
  EXPECT_EQ(a.Response(), Ok("GET /a 0", false));  // both are accepted and open
  EXPECT_EQ(b.Response(), Ok("GET /b 0", false));
  Client c(f.port());
  const std::string r = c.Response();
  EXPECT_TRUE(StartsWith(r, "HTTP/1.1 503 Service Unavailable\r\n")) << r;
  EXPECT_NE(r.find("--max-connections"), std::string::npos);
  EXPECT_NE(f.Metrics().find("embark_http_connections_refused_total 1"), std::string::npos);
}

TEST(HttpFront, StopAnswersWhatHasBegunAndClosesTheRest) {
  Front f(Options());
  Client busy(f.port()), idle(f.port());
  ASSERT_TRUE(idle.Send("GET /first HTTP/1.1\r\n\r\n"));
  EXPECT_EQ(idle.Response(), Ok("GET /first 0", false));
  ASSERT_TRUE(busy.Send("POST /block HTTP/1.1\r\nContent-Length: 2\r\n\r\nab"));
  f.WaitBlocked(1);
  f.Stop();
  EXPECT_TRUE(idle.Closed());  // idle keep-alive connections are closed at once
  f.Release();
  const std::string r = busy.Response();  // the request in flight is answered
  EXPECT_TRUE(StartsWith(r, "HTTP/1.1 200 OK\r\n")) << r;
  EXPECT_TRUE(busy.Closed());
  f.Join();  // Serve returned
  Client late(f.port());
  EXPECT_FALSE(late.connected());
}

}  // namespace
}  // namespace embark::serve
