#include "serve/http_front.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <mutex>
#include <optional>
#include <thread>
#include <unordered_map>
#include <vector>

#include "serve/request.h"

namespace embark::serve {
namespace {

using Clock = std::chrono::steady_clock;

constexpr uint64_t kListenerKey = 0, kWakeKey = 1;  // epoll keys; connections are numbered from 2
constexpr size_t kReadBytes = 64 << 10;             // one read: also the most pipelined bytes held ahead
constexpr size_t kOutHighWater = 256 << 10;         // answers queued on a connection before it is read again
constexpr size_t kKeepCapacity = 256 << 10;         // buffers larger than this are freed once used
constexpr auto kSweepEvery = std::chrono::milliseconds(100);
constexpr auto kListenerPause = std::chrono::milliseconds(100);  // after running out of file descriptors
constexpr double kLingerS = 2;  // reading what a client still sends after its connection's last answer

const char* Reason(int status) {
  switch (status) {
    case 400: return "Bad Request";
    case 408: return "Request Timeout";
    case 413: return "Payload Too Large";
    case 414: return "URI Too Long";
    case 415: return "Unsupported Media Type";
    case 417: return "Expectation Failed";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 503: return "Service Unavailable";
    case 505: return "HTTP Version Not Supported";
    default: return "Error";
  }
}

std::chrono::nanoseconds Seconds(double s) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::duration<double>(s));
}

std::string IpOf(const sockaddr_storage& a, int* port) {
  char buf[INET6_ADDRSTRLEN] = "";
  if (a.ss_family == AF_INET) {
    const auto* s = reinterpret_cast<const sockaddr_in*>(&a);
    ::inet_ntop(AF_INET, &s->sin_addr, buf, sizeof(buf));
    *port = ntohs(s->sin_port);
  } else if (a.ss_family == AF_INET6) {
    const auto* s = reinterpret_cast<const sockaddr_in6*>(&a);
    ::inet_ntop(AF_INET6, &s->sin6_addr, buf, sizeof(buf));
    *port = ntohs(s->sin6_port);
  }
  return buf;
}

void ShrinkIfLarge(std::string* s) {
  if (s->capacity() > kKeepCapacity) std::string().swap(*s);
}

}  // namespace

std::string ErrorResponse(int status, const std::string& message) {
  const std::string body = ErrorJson(message);
  return "HTTP/1.1 " + std::to_string(status) + " " + Reason(status) +
         "\r\nContent-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) +
         "\r\nConnection: close\r\n\r\n" + body;
}

// One connection, owned by the connection thread. While a handler thread
// answers its request (`busy`), the handler holds the request, never the
// connection; when nothing else is queued to go out on it (`direct`), the
// handler writes the answer to the socket itself, and the connection
// thread keeps the descriptor open until the handler is done with it.
struct Conn {
  explicit Conn(const HttpLimits& limits) : reader(limits) {}
  bool pending_out() const { return out_done < out.size(); }

  uint64_t key = 0;
  int fd = -1;
  std::string remote_ip, local_ip;
  int remote_port = 0, local_port = 0;
  RequestReader reader;
  std::string in;   // read but not yet given to the reader: a pipelined request's start
  std::string out;  // answers not yet written, from out_done
  size_t out_done = 0;
  bool busy = false;           // a handler thread has its request
  bool direct = false;         // ... and may write its answer to fd
  bool gone = false;           // reset while busy: closed once the handler is done
  bool closing = false;        // close once `out` is written
  bool lingering = false;      // written and shut for writing: discarding input until EOF or linger_until
  bool peer_eof = false;       // the client shut its side
  bool continue_sent = false;  // "100 Continue" for the current request
  bool cut_short = false;      // answered with an error before its request was read in full
  uint32_t events = 0;         // registered with epoll
  Clock::time_point last_io, request_start, linger_until;
};

struct HttpFront::Impl {
  struct Job {
    uint64_t key;
    int fd;  // where the handler writes the answer, or -1: the connection thread writes it
    FrontRequest request;
  };
  struct Done {
    uint64_t key;
    FrontResponse response;
    size_t written;  // bytes of it the handler wrote
  };

  FrontOptions opt;
  Handler handle;
  ServerMetrics* metrics;
  const Logger& log;
  std::string busy_response;  // the 503 for a connection over max_connections

  int listen_fd = -1, epoll_fd = -1, wake_fd = -1;
  std::atomic<int> bound_port{0};
  std::atomic<bool> stop_requested{false};

  // The connection thread's own state.
  std::unordered_map<uint64_t, std::unique_ptr<Conn>> conns;
  uint64_t next_key = 2;
  bool stopping = false;
  bool listener_paused = false;
  Clock::time_point listener_resume;
  std::vector<char> read_buf = std::vector<char>(kReadBytes);

  // Handler threads: requests in, answers out. An idle thread waits on its
  // own condition variable and the one idle the shortest takes the next
  // request, so the few threads a load needs stay warm (caches, the request
  // parser's buffers) instead of all of them taking turns.
  struct Worker {
    std::condition_variable cv;
    std::optional<Job> job;
  };
  std::vector<std::thread> workers;
  std::vector<std::unique_ptr<Worker>> worker_state;
  std::mutex jobs_mu;           // guards jobs, idle, workers_stop and each Worker's job
  std::deque<Job> jobs;         // waiting for a thread
  std::vector<Worker*> idle;    // the most recently idle last
  bool workers_stop = false;
  std::mutex done_mu;
  std::vector<Done> done;

  Impl(const FrontOptions& o, Handler h, ServerMetrics* m, const Logger& l)
      : opt(o), handle(std::move(h)), metrics(m), log(l) {
    epoll_fd = ::epoll_create1(EPOLL_CLOEXEC);
    wake_fd = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  }

  ~Impl() {
    StopWorkers();
    for (auto& [key, c] : conns) ::close(c->fd);
    for (int fd : {listen_fd, epoll_fd, wake_fd})
      if (fd >= 0) ::close(fd);
  }

  void Wake() {
    const uint64_t one = 1;
    (void)!::write(wake_fd, &one, sizeof(one));
  }

  Status Bind() {
    if (epoll_fd < 0 || wake_fd < 0) return Status::IOError(std::string("cannot create epoll/eventfd: ") + std::strerror(errno));
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE;
    addrinfo* res = nullptr;
    const std::string where = opt.port == 0 ? opt.host : opt.host + ":" + std::to_string(opt.port);
    if (int rc = ::getaddrinfo(opt.host.empty() ? nullptr : opt.host.c_str(), std::to_string(opt.port).c_str(), &hints, &res);
        rc != 0)
      return Status::IOError("cannot bind to " + where + ": the name does not resolve (" + ::gai_strerror(rc) + ")");
    std::string why = "no address to listen on";
    for (addrinfo* ai = res; ai != nullptr && listen_fd < 0; ai = ai->ai_next) {
      const int fd = ::socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);
      if (fd < 0) {
        why = std::strerror(errno);
        continue;
      }
      const int one = 1;
      ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
      // Connections waiting to be accepted: bursts of clients connect at once.
      if (::bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 && ::listen(fd, 1024) == 0) {
        listen_fd = fd;
      } else {
        why = std::strerror(errno);
        ::close(fd);
      }
    }
    ::freeaddrinfo(res);
    if (listen_fd < 0) return Status::IOError("cannot bind to " + where + ": " + why);
    sockaddr_storage a{};
    socklen_t len = sizeof(a);
    ::getsockname(listen_fd, reinterpret_cast<sockaddr*>(&a), &len);
    int port = 0;
    IpOf(a, &port);
    bound_port = port;

    // Each connection holds a file descriptor; keep some for the model's files.
    rlimit rl{};
    if (::getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY && opt.max_connections + 64 > rl.rlim_cur) {
      const size_t fit = rl.rlim_cur > 128 ? static_cast<size_t>(rl.rlim_cur) - 64 : 64;
      log.Log(LogLevel::kWarn, "open-file limit %llu: serving at most %zu connections (not %zu)",
              static_cast<unsigned long long>(rl.rlim_cur), fit, opt.max_connections);
      opt.max_connections = fit;
    }
    busy_response = ErrorResponse(503, "too many connections: the server holds at most " +
                                           std::to_string(opt.max_connections) + " (--max-connections)");
    return Status::OK();
  }

  Status Serve() {
    if (listen_fd < 0) return Status::IOError("Serve before Bind");
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u64 = kListenerKey;
    ::epoll_ctl(epoll_fd, EPOLL_CTL_ADD, listen_fd, &ev);
    ev.data.u64 = kWakeKey;
    ::epoll_ctl(epoll_fd, EPOLL_CTL_ADD, wake_fd, &ev);
    {
      std::lock_guard<std::mutex> lock(jobs_mu);
      workers_stop = false;
    }
    for (int i = 0; i < std::max(1, opt.handler_threads); ++i) {
      worker_state.push_back(std::make_unique<Worker>());
      workers.emplace_back([this, w = worker_state.back().get()] { Work(w); });
    }

    Status result = Status::OK();
    std::vector<epoll_event> events(256);
    auto next_sweep = Clock::now() + kSweepEvery;
    for (;;) {
      if (stop_requested && !stopping) BeginStop();
      if (stopping && conns.empty()) break;
      const int timeout_ms = conns.empty() && !listener_paused ? -1 : static_cast<int>(kSweepEvery.count());
      const int n = ::epoll_wait(epoll_fd, events.data(), static_cast<int>(events.size()), timeout_ms);
      if (n < 0) {
        if (errno == EINTR) continue;
        result = Status::IOError(std::string("epoll_wait: ") + std::strerror(errno));
        break;
      }
      for (int i = 0; i < n; ++i) {
        const uint64_t key = events[i].data.u64;
        if (key == kListenerKey) {
          Accept();
        } else if (key == kWakeKey) {
          TakeAnswers();
        } else {
          OnEvent(key, events[i].events);
        }
      }
      const auto now = Clock::now();
      if (now >= next_sweep) {
        Sweep(now);
        next_sweep = now + kSweepEvery;
      }
    }
    StopWorkers();  // before closing: a handler may still be writing to its connection
    for (auto& [key, c] : conns) ::close(c->fd);
    conns.clear();
    metrics->SetOpenConnections(0);
    return result;
  }

  void Stop() {
    stop_requested = true;
    Wake();
  }

  void StopWorkers() {
    {
      std::lock_guard<std::mutex> lock(jobs_mu);
      workers_stop = true;
    }
    for (auto& w : worker_state) w->cv.notify_all();
    for (auto& t : workers) t.join();
    workers.clear();
    worker_state.clear();
    idle.clear();
  }

  // ---- handler threads ------------------------------------------------------
  FrontResponse Call(const FrontRequest& r) {
    try {
      return handle(r);
    } catch (const std::exception& e) {
      return {ErrorResponse(500, std::string("internal error: ") + e.what()), true};
    } catch (...) {
      return {ErrorResponse(500, "internal error"), true};
    }
  }

  void Submit(Job job) {
    Worker* w = nullptr;
    {
      std::lock_guard<std::mutex> lock(jobs_mu);
      if (idle.empty()) {
        jobs.push_back(std::move(job));
        return;
      }
      w = idle.back();
      idle.pop_back();
      w->job = std::move(job);
    }
    w->cv.notify_one();
  }

  void Work(Worker* w) {
    std::unique_lock<std::mutex> lock(jobs_mu);
    for (;;) {
      std::optional<Job> job;
      if (!jobs.empty()) {
        job = std::move(jobs.front());
        jobs.pop_front();
      } else {
        if (workers_stop) return;
        idle.push_back(w);
        w->cv.wait(lock, [&] { return w->job.has_value() || workers_stop; });
        if (!w->job) {  // stopping; Submit did not take it off the idle list
          idle.erase(std::find(idle.begin(), idle.end(), w));
          return;
        }
        job.swap(w->job);
      }
      lock.unlock();
      Run(*job);
      lock.lock();
    }
  }

  // Answers one request on this handler thread.
  void Run(Job& job) {
    FrontResponse r = Call(job.request);
    // The answer goes out from here when it can, without waiting for the
    // connection thread; what does not fit the socket now, it writes.
    size_t written = 0;
    while (job.fd >= 0 && written < r.bytes.size()) {
      const ssize_t n =
          ::send(job.fd, r.bytes.data() + written, r.bytes.size() - written, MSG_NOSIGNAL | MSG_DONTWAIT);
      if (n > 0) {
        written += static_cast<size_t>(n);
      } else if (!(n < 0 && errno == EINTR)) {
        break;  // full, or failed: the connection thread tries again and sees which
      }
    }
    {
      std::lock_guard<std::mutex> lock(done_mu);
      done.push_back({job.key, std::move(r), written});
    }
    Wake();
  }

  // ---- the connection thread ------------------------------------------------
  void BeginStop() {
    stopping = true;
    if (listen_fd >= 0) {
      ::epoll_ctl(epoll_fd, EPOLL_CTL_DEL, listen_fd, nullptr);
      ::close(listen_fd);
      listen_fd = -1;
    }
    std::vector<uint64_t> quiet;
    for (auto& [key, c] : conns)
      if (!c->busy && !c->reader.started() && !c->pending_out() && c->in.empty()) quiet.push_back(key);
    for (uint64_t key : quiet) Close(*conns.at(key));
  }

  void PauseListener(Clock::time_point now) {
    epoll_event ev{};
    ev.data.u64 = kListenerKey;
    ::epoll_ctl(epoll_fd, EPOLL_CTL_MOD, listen_fd, &ev);
    listener_paused = true;
    listener_resume = now + kListenerPause;
  }

  void Accept() {
    for (int k = 0; k < 64 && listen_fd >= 0; ++k) {
      sockaddr_storage a{};
      socklen_t len = sizeof(a);
      const int fd = ::accept4(listen_fd, reinterpret_cast<sockaddr*>(&a), &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (fd < 0) {
        if (errno == EINTR || errno == ECONNABORTED) continue;
        if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
          log.Log(LogLevel::kWarn, "cannot accept a connection: %s", std::strerror(errno));
          PauseListener(Clock::now());
        }
        break;
      }
      if (conns.size() >= opt.max_connections) {
        metrics->CountRefusedConnection();
        (void)!::send(fd, busy_response.data(), busy_response.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
        ::close(fd);
        continue;
      }
      const int one = 1;
      ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));  // small answers go out at once
      auto c = std::make_unique<Conn>(opt.limits);
      c->key = next_key++;
      c->fd = fd;
      c->remote_ip = IpOf(a, &c->remote_port);
      sockaddr_storage local{};
      len = sizeof(local);
      if (::getsockname(fd, reinterpret_cast<sockaddr*>(&local), &len) == 0) c->local_ip = IpOf(local, &c->local_port);
      c->last_io = Clock::now();
      epoll_event ev{};
      ev.events = EPOLLIN;
      ev.data.u64 = c->key;
      if (::epoll_ctl(epoll_fd, EPOLL_CTL_ADD, fd, &ev) != 0) {
        ::close(fd);
        continue;
      }
      c->events = EPOLLIN;
      conns.emplace(c->key, std::move(c));
    }
    metrics->SetOpenConnections(conns.size());
  }

  void Close(Conn& c) {
    ::close(c.fd);  // also leaves the epoll set
    conns.erase(c.key);
    metrics->SetOpenConnections(conns.size());
  }

  void OnEvent(uint64_t key, uint32_t ev) {
    auto it = conns.find(key);
    if (it == conns.end()) return;
    Conn& c = *it->second;
    if (ev & (EPOLLERR | EPOLLHUP)) {  // reset, or both sides shut: nobody to answer
      if (!(c.busy && c.direct)) return Close(c);
      ::epoll_ctl(epoll_fd, EPOLL_CTL_DEL, c.fd, nullptr);  // its handler may still write to fd
      c.events = 0;
      c.gone = true;
      return;
    }
    if ((ev & EPOLLOUT) && !Flush(c)) return;
    if ((ev & EPOLLIN) && !Read(c)) return;
    Pump(c);
  }

  // Reads once; false if the connection was closed.
  bool Read(Conn& c) {
    const ssize_t n = ::recv(c.fd, read_buf.data(), read_buf.size(), 0);
    if (n < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) return true;
      Close(c);
      return false;
    }
    if (n == 0) {
      if (c.lingering) {
        Close(c);
        return false;
      }
      c.peer_eof = true;  // answer what is complete, then close
      return true;
    }
    c.last_io = Clock::now();
    if (!c.lingering) c.in.append(read_buf.data(), static_cast<size_t>(n));
    return true;
  }

  // Gives the reader what was read and answers or hands on what it completes.
  void Advance(Conn& c) {
    while (!c.busy && !c.closing && c.out.size() - c.out_done < kOutHighWater) {
      if (!c.in.empty()) {
        const bool was_started = c.reader.started();
        c.in.erase(0, c.reader.Feed(c.in));
        if (!was_started && c.reader.started()) c.request_start = Clock::now();
      }
      if (c.reader.failed()) return Fail(c, c.reader.error_status(), c.reader.error_message());
      if (c.reader.head_done() && c.reader.request().expect_continue && !c.continue_sent) {
        c.out += "HTTP/1.1 100 Continue\r\n\r\n";
        c.continue_sent = true;
      }
      if (!c.reader.done()) return;
      Dispatch(c);
    }
  }

  void Dispatch(Conn& c) {
    FrontRequest r;
    r.http = std::move(c.reader.request());
    r.remote_ip = c.remote_ip;
    r.remote_port = c.remote_port;
    r.local_ip = c.local_ip;
    r.local_port = c.local_port;
    r.close = !r.http.keep_alive || stopping || c.peer_eof;
    c.reader.Reset();
    c.continue_sent = false;
    if (r.http.method == "GET" || r.http.method == "HEAD") return Answer(c, Call(r));
    c.busy = true;
    c.direct = !c.pending_out();
    Submit({c.key, c.direct ? c.fd : -1, std::move(r)});
  }

  // `written`: bytes of it its handler already wrote (only when `direct`).
  void Answer(Conn& c, FrontResponse r, size_t written = 0) {
    c.busy = false;
    c.direct = false;
    c.last_io = Clock::now();  // the idle clock restarts with the answer
    if (!c.pending_out()) {
      c.out = std::move(r.bytes);
      c.out_done = written;
    } else {
      c.out += r.bytes;
    }
    if (r.close || stopping) c.closing = true;
  }

  // Answers the request being read with an error and closes after it.
  void Fail(Conn& c, int status, const std::string& message) {
    Answer(c, {ErrorResponse(status, message), true});
    c.in.clear();
    c.cut_short = true;
    metrics->CountRequest("other", status);
  }

  // Writes what it can; false if the connection was closed.
  bool Flush(Conn& c) {
    while (c.pending_out()) {
      const ssize_t n = ::send(c.fd, c.out.data() + c.out_done, c.out.size() - c.out_done, MSG_NOSIGNAL);
      if (n > 0) {
        c.out_done += static_cast<size_t>(n);
        c.last_io = Clock::now();
      } else if (n < 0 && errno == EINTR) {
        continue;
      } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        return true;
      } else {
        Close(c);
        return false;
      }
    }
    c.out.clear();
    c.out_done = 0;
    ShrinkIfLarge(&c.out);
    return true;
  }

  // After a connection's last answer. Closing a socket with unread input
  // resets it, which can destroy the answer before the client reads it: so
  // when the client may still be sending (a request cut short, or bytes
  // waiting) the connection is shut for writing and what arrives is read
  // and dropped for a while; false if it was closed at once.
  bool CloseAfterAnswer(Conn& c) {
    int unread = 0;
    if (!c.cut_short && c.in.empty() && ::ioctl(c.fd, FIONREAD, &unread) == 0 && unread == 0) {
      Close(c);
      return false;
    }
    ::shutdown(c.fd, SHUT_WR);
    c.lingering = true;
    c.linger_until = Clock::now() + Seconds(std::min(kLingerS, opt.idle_timeout_s));
    c.in.clear();
    ShrinkIfLarge(&c.in);
    return true;
  }

  // Moves a connection on as far as it goes without waiting, then sets what
  // it waits for.
  void Pump(Conn& c) {
    for (;;) {
      if (!c.lingering) Advance(c);
      if (!Flush(c)) return;
      if (c.pending_out() || c.busy || c.lingering) break;
      if (c.closing) {
        if (c.peer_eof) return Close(c);
        if (!CloseAfterAnswer(c)) return;  // closed
        break;
      }
      if (!c.in.empty()) continue;  // written answers made room for more pipelined requests
      if (c.peer_eof) return Close(c);
      break;
    }
    uint32_t want = 0;
    if (c.pending_out()) want |= EPOLLOUT;
    if (c.lingering || (!c.busy && !c.closing && !c.peer_eof && !c.pending_out())) want |= EPOLLIN;
    if (want != c.events) {
      epoll_event ev{};
      ev.events = want;
      ev.data.u64 = c.key;
      ::epoll_ctl(epoll_fd, EPOLL_CTL_MOD, c.fd, &ev);
      c.events = want;
    }
  }

  void TakeAnswers() {
    uint64_t n = 0;
    (void)!::read(wake_fd, &n, sizeof(n));
    std::vector<Done> answers;
    {
      std::lock_guard<std::mutex> lock(done_mu);
      answers.swap(done);
    }
    for (Done& d : answers) {
      auto it = conns.find(d.key);
      if (it == conns.end()) continue;  // the client went away meanwhile
      Conn& c = *it->second;
      if (c.gone) {
        Close(c);
        continue;
      }
      Answer(c, std::move(d.response), d.written);
      Pump(c);
    }
  }

  // Deadlines: idle and stalled connections, requests past their deadline,
  // answers not taken, lingering closes.
  void Sweep(Clock::time_point now) {
    if (listener_paused && now >= listener_resume && listen_fd >= 0) {
      epoll_event ev{};
      ev.events = EPOLLIN;
      ev.data.u64 = kListenerKey;
      ::epoll_ctl(epoll_fd, EPOLL_CTL_MOD, listen_fd, &ev);
      listener_paused = false;
    }
    const auto idle = Seconds(opt.idle_timeout_s), deadline = Seconds(opt.request_timeout_s);
    std::vector<uint64_t> close, late, stalled;
    for (auto& [key, cp] : conns) {
      const Conn& c = *cp;
      if (c.busy) continue;
      if (c.lingering) {
        if (now >= c.linger_until) close.push_back(key);
      } else if (c.pending_out()) {
        if (now - c.last_io >= idle) close.push_back(key);
      } else if (c.reader.started() && !c.closing) {
        if (now - c.request_start >= deadline) {
          late.push_back(key);
        } else if (now - c.last_io >= idle) {
          stalled.push_back(key);
        }
      } else if (now - c.last_io >= idle) {
        close.push_back(key);
      }
    }
    for (uint64_t key : close) Close(*conns.at(key));
    char secs[32];
    std::snprintf(secs, sizeof(secs), "%g", opt.request_timeout_s);
    for (uint64_t key : late) {
      Conn& c = *conns.at(key);
      Fail(c, 408, std::string("the request did not arrive in full within ") + secs +
                       " s of its first byte (--request-timeout)");
      Pump(c);
    }
    std::snprintf(secs, sizeof(secs), "%g", opt.idle_timeout_s);
    for (uint64_t key : stalled) {
      Conn& c = *conns.at(key);
      Fail(c, 408, std::string("the request stalled: nothing arrived for ") + secs + " s (--timeout)");
      Pump(c);
    }
  }
};

HttpFront::HttpFront(const FrontOptions& opt, Handler handler, ServerMetrics* metrics, const Logger& log)
    : impl_(std::make_unique<Impl>(opt, std::move(handler), metrics, log)) {}

HttpFront::~HttpFront() = default;

Status HttpFront::Bind() { return impl_->Bind(); }

int HttpFront::port() const { return impl_->bound_port; }

Status HttpFront::Serve() { return impl_->Serve(); }

void HttpFront::Stop() { impl_->Stop(); }

}  // namespace embark::serve
