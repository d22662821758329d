#include "serve/server.h"

#include <dirent.h>
#include <netdb.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstring>
#include <filesystem>
// Connections waiting to be accepted: httplib's default of 5 refuses real
// clients' bursts.
#define CPPHTTPLIB_LISTEN_BACKLOG 1024
#include <httplib.h>
#include <nlohmann/json.hpp>
#include <mutex>
#include <thread>

#include "checkpoint/checkpoint.h"
#include "serve/batcher.h"
#include "serve/request.h"
#include "util/fs.h"

namespace embark::serve {
namespace {

// Compares in time independent of where the strings differ.
bool TokenMatches(const std::string& given, const std::string& expected) {
  unsigned diff = given.size() != expected.size();
  for (size_t i = 0; i < expected.size(); ++i) diff |= static_cast<unsigned char>(expected[i]) ^
                                                     static_cast<unsigned char>(i < given.size() ? given[i] : 0);
  return diff == 0;
}

// Why host:port cannot be bound, in the system's words (httplib says only
// that it failed): the name does not resolve, or bind(2)'s error, tried as
// httplib does (SO_REUSEADDR, each address of the name).
std::string BindFailure(const std::string& host, int port) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE;
  addrinfo* found = nullptr;
  const int rc = ::getaddrinfo(host.empty() ? nullptr : host.c_str(), std::to_string(port).c_str(), &hints, &found);
  if (rc != 0) return std::string("the name does not resolve (") + ::gai_strerror(rc) + ")";
  std::string why = "no address to listen on";
  for (addrinfo* a = found; a != nullptr; a = a->ai_next) {
    const int fd = ::socket(a->ai_family, a->ai_socktype, a->ai_protocol);
    if (fd < 0) {
      why = std::strerror(errno);
      continue;
    }
    const int one = 1;
    (void)::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    const bool bound = ::bind(fd, a->ai_addr, a->ai_addrlen) == 0;
    why = bound ? "it was taken, and is free again now" : std::strerror(errno);
    ::close(fd);
    if (bound) break;
  }
  ::freeaddrinfo(found);
  return why;
}

}  // namespace

namespace {

using Clock = std::chrono::steady_clock;

// Identifies the checkpoint's current contents cheaply: every entry's name,
// inode, size and modification time. A checkpoint swapped in by embark train
// (or copied over) changes it.
std::string DirSignature(const std::string& dir) {
  std::string sig;
  struct stat st {};
  if (::stat(dir.c_str(), &st) != 0) return sig;
  sig += std::to_string(st.st_ino) + ";";
  DIR* d = ::opendir(dir.c_str());
  if (d == nullptr) return sig;
  std::vector<std::string> entries;
  while (dirent* e = ::readdir(d)) {
    std::string name = e->d_name;
    if (name == "." || name == "..") continue;
    struct stat fs {};
    if (::stat((dir + "/" + name).c_str(), &fs) != 0) continue;
    entries.push_back(name + ":" + std::to_string(fs.st_ino) + ":" + std::to_string(fs.st_size) + ":" +
                      std::to_string(fs.st_mtim.tv_sec) + "." + std::to_string(fs.st_mtim.tv_nsec));
  }
  ::closedir(d);
  std::sort(entries.begin(), entries.end());
  for (const auto& e : entries) sig += e + ";";
  return sig;
}

std::string BaseName(std::string dir) {
  while (dir.size() > 1 && dir.back() == '/') dir.pop_back();
  size_t s = dir.rfind('/');
  std::string b = s == std::string::npos ? dir : dir.substr(s + 1);
  return b.empty() || b == "." || b == ".." ? "model" : b;
}

}  // namespace

struct Server::Impl {
  // Error bodies name the model, not where its files live on the server.
  std::string Redact(std::string msg) const {
    std::error_code ec;
    for (std::string dir : {opt.model_dir, std::filesystem::absolute(opt.model_dir, ec).string()}) {
      while (dir.size() > 1 && dir.back() == '/') dir.pop_back();
      if (dir.empty()) continue;
      for (size_t at; (at = msg.find(dir)) != std::string::npos;) msg.replace(at, dir.size(), "<model " + opt.name + ">");
    }
    return msg;
  }
  ServerOptions opt;
  const Logger& log;
  ServerMetrics metrics;
  std::unique_ptr<Batcher> batcher;
  httplib::Server http;

  std::mutex model_mu;  // guards `current`
  std::shared_ptr<const ServedModel> current;
  std::mutex reload_mu;  // one reload at a time; guards the reload state below
  std::string loaded_sig, failed_sig;
  int64_t next_version = 1;

  std::atomic<bool> ready{false};
  std::atomic<int> bound_port{0};
  std::mutex stop_mu;
  std::condition_variable stop_cv;
  bool stopping = false;

  Impl(const ServerOptions& o, const Logger& l) : opt(o), log(l) {}

  std::shared_ptr<const ServedModel> Current() {
    std::lock_guard<std::mutex> lock(model_mu);
    return current;
  }

  Result<std::shared_ptr<ServedModel>> Load(int64_t version) {
    EMBARK_ASSIGN_OR_RETURN(auto ck, LoadCheckpoint(opt.model_dir));
    auto m = std::make_shared<ServedModel>();
    m->model = std::move(ck.model);
    m->model->FreezeForInference();
    m->encoder = std::make_unique<RowEncoder>(m->model->spec());
    m->version_str = std::to_string(version);
    m->metadata_json = ModelMetadataJson(opt.name, m->version_str, *m->encoder);
    return m;
  }

  Status Reload(bool force) {
    std::lock_guard<std::mutex> one(reload_mu);
    const std::string sig = DirSignature(opt.model_dir);
    if (!force && (sig == loaded_sig || sig == failed_sig)) return Status::OK();
    const int64_t version = next_version;
    auto loaded = Load(version);
    if (!loaded.ok()) {
      failed_sig = sig;
      metrics.CountReload(false);
      if (version > 1)  // the first load's failure is Run's error
        log.Log(LogLevel::kError, "reload of %s refused, still serving version %lld: %s", opt.model_dir.c_str(),
                static_cast<long long>(version - 1), loaded.status().message().c_str());
      return loaded.status();
    }
    {
      std::lock_guard<std::mutex> lock(model_mu);
      current = std::move(loaded).value();
    }
    loaded_sig = sig;
    failed_sig.clear();
    ++next_version;
    metrics.CountReload(true);
    metrics.SetModelVersion(version);
    log.Log(LogLevel::kInfo, "serving %s version %lld", opt.model_dir.c_str(), static_cast<long long>(version));
    return Status::OK();
  }

  void Reply(httplib::Response& res, int status, const std::string& body, const char* endpoint,
             const char* type = "application/json") {
    res.status = status;
    res.set_content(body, type);
    metrics.CountRequest(endpoint, status);
  }

  void Routes() {
    http.Get("/v2/health/live", [this](const httplib::Request&, httplib::Response& res) {
      Reply(res, 200, "{\"live\":true}", "live");
    });
    http.Get("/v2/health/ready", [this](const httplib::Request&, httplib::Response& res) {
      const bool r = ready;
      Reply(res, r ? 200 : 503, r ? "{\"ready\":true}" : "{\"ready\":false}", "ready");
    });
    http.Get("/v2", [this](const httplib::Request&, httplib::Response& res) {
      Reply(res, 200, "{\"name\":\"embark\",\"version\":\"0.1.0\",\"extensions\":[\"model_repository\"]}", "server");
    });
    http.Get("/metrics", [this](const httplib::Request&, httplib::Response& res) {
      res.status = 200;
      metrics.CountRequest("metrics", 200);
      res.set_content(metrics.Render(), "text/plain; version=0.0.4");
    });
    // Model metadata and readiness; the version segment is optional.
    http.Get(R"(/v2/models/([^/]+)(/versions/([^/]+))?(/ready)?)", [this](const httplib::Request& req,
                                                                         httplib::Response& res) {
      auto m = Current();
      const bool ready_path = req.matches[4].length() > 0;
      const char* ep = ready_path ? "model_ready" : "metadata";
      if (!m || !ready) return Reply(res, 503, ErrorJson("the model is not ready"), ep);
      if (req.matches[1] != opt.name) return Reply(res, 404, ErrorJson("unknown model '" + std::string(req.matches[1]) + "'"), ep);
      if (req.matches[3].length() > 0 && req.matches[3] != m->version_str)
        return Reply(res, 404, ErrorJson("model '" + opt.name + "' has no version " + std::string(req.matches[3]) +
                                         " (serving " + m->version_str + ")"), ep);
      if (ready_path)
        return Reply(res, 200, nlohmann::json{{"name", opt.name}, {"ready", true}}.dump(-1, ' ', false,
                                                                                     nlohmann::json::error_handler_t::replace),
                     ep);
      Reply(res, 200, m->metadata_json, ep);
    });
    http.Post(R"(/v2/models/([^/]+)(/versions/([^/]+))?/infer)", [this](const httplib::Request& req,
                                                                       httplib::Response& res) { Infer(req, res); });
    // The model repository extension's load: reload the checkpoint now.
    http.Post(R"(/v2/repository/models/([^/]+)/load)", [this](const httplib::Request& req, httplib::Response& res) {
      if (opt.admin_token.empty())
        return Reply(res, 403, ErrorJson("the load endpoint is disabled: start embark serve with --admin-token-file"),
                     "load");
      if (!TokenMatches(req.get_header_value("Authorization"), "Bearer " + opt.admin_token))
        return Reply(res, 401, ErrorJson("the load endpoint needs 'Authorization: Bearer <admin token>'"), "load");
      if (req.matches[1] != opt.name) return Reply(res, 404, ErrorJson("unknown model '" + std::string(req.matches[1]) + "'"), "load");
      Status st = Reload(true);
      if (!st.ok())
        return Reply(res, 500, ErrorJson("reload refused, still serving the previous version: " + Redact(st.message())),
                     "load");
      Reply(res, 200, "{\"version\":\"" + Current()->version_str + "\"}", "load");
    });
    http.set_error_handler([this](const httplib::Request&, httplib::Response& res) {
      if (!res.body.empty()) return;  // a handler already wrote its JSON error
      std::string msg = res.status == 404   ? "no such endpoint"
                        : res.status == 413 ? "request body is larger than the limit of " +
                                                  std::to_string(opt.max_body_bytes) + " bytes"
                        : res.status == 405 ? "method not allowed"
                        : res.status == 400 ? "malformed HTTP request (request line, headers or body framing)"
                                            : "request failed with HTTP status " + std::to_string(res.status);
      res.set_content(ErrorJson(msg), "application/json");
      metrics.CountRequest("other", res.status);
    });
    http.set_exception_handler([this](const httplib::Request&, httplib::Response& res, std::exception_ptr ep) {
      std::string what = "internal error";
      try {
        if (ep) std::rethrow_exception(ep);
      } catch (const std::exception& e) {
        what += std::string(": ") + e.what();
      } catch (...) {
      }
      log.Log(LogLevel::kError, "%s", what.c_str());
      Reply(res, 500, ErrorJson(what), "other");
    });
  }

  void Infer(const httplib::Request& req, httplib::Response& res) {
    const auto t0 = Clock::now();
    auto m = Current();
    if (!m || !ready) return Reply(res, 503, ErrorJson("the model is not ready"), "infer");
    if (req.matches[1] != opt.name)
      return Reply(res, 404, ErrorJson("unknown model '" + std::string(req.matches[1]) + "'"), "infer");
    if (req.matches[3].length() > 0 && req.matches[3] != m->version_str)
      return Reply(res, 404, ErrorJson("model '" + opt.name + "' has no version " + std::string(req.matches[3]) +
                                       " (serving " + m->version_str + ")"), "infer");
    InferRequest ir;
    Batch batch;
    if (auto e = ParseInferRequest(req.body, *m->encoder, &ir, &batch); !e.empty())
      return Reply(res, 400, ErrorJson(e), "infer");
    std::vector<float> probs(batch.size());
    if (Status st = batcher->Score(m, batch, probs.data()); !st.ok())
      return Reply(res, 500, ErrorJson(st.message()), "infer");
    // JSON has no NaN or infinity: a model that gives one is answered with
    // an error, never with a body a client cannot parse.
    for (size_t i = 0; i < probs.size(); ++i)
      if (!std::isfinite(probs[i]))
        return Reply(res, 500,
                     ErrorJson("the model gave a non-finite probability for row " + std::to_string(i) +
                               " (its weights are not finite: retrain it with a lower learning rate)"),
                     "infer");
    Reply(res, 200, InferResponseJson(opt.name, m->version_str, ir.id, probs.data(), probs.size()), "infer");
    metrics.ObserveInferLatency(std::chrono::duration<double>(Clock::now() - t0).count());
  }
};

Server::Server(const ServerOptions& opt, const Logger& log) : impl_(std::make_unique<Impl>(opt, log)) {
  if (impl_->opt.name.empty()) impl_->opt.name = BaseName(opt.model_dir);
}

Server::~Server() = default;

int Server::port() const { return impl_->bound_port; }

Status Server::Reload(bool force) { return impl_->Reload(force); }

void Server::Shutdown() {
  {
    std::lock_guard<std::mutex> lock(impl_->stop_mu);
    impl_->stopping = true;
  }
  impl_->ready = false;
  impl_->stop_cv.notify_all();
  impl_->http.stop();
}

Status Server::Run() {
  Impl& s = *impl_;
  EMBARK_RETURN_IF_ERROR(s.Reload(true));
  BatcherOptions bo;
  bo.max_batch_rows = s.opt.max_batch_rows;
  bo.max_delay = std::chrono::microseconds(s.opt.max_delay_us);
  bo.workers = s.opt.workers > 0 ? s.opt.workers : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  s.batcher = std::make_unique<Batcher>(bo, &s.metrics);

  const int threads = std::max(1, s.opt.http_threads);
  s.http.new_task_queue = [threads] { return new httplib::ThreadPool(static_cast<size_t>(threads)); };
  s.http.set_payload_max_length(s.opt.max_body_bytes);
  s.http.set_read_timeout(s.opt.timeout_s, 0);
  s.http.set_write_timeout(s.opt.timeout_s, 0);
  s.http.set_keep_alive_timeout(s.opt.timeout_s);
  s.http.set_keep_alive_max_count(1000000);
  s.http.set_tcp_nodelay(true);  // small answers go out at once, not after a delayed ACK
  s.Routes();

  int port = s.opt.port;
  if (port == 0) {
    port = s.http.bind_to_any_port(s.opt.host);
    if (port < 0) return Status::IOError("cannot bind to " + s.opt.host + ": " + BindFailure(s.opt.host, 0));
  } else if (!s.http.bind_to_port(s.opt.host, port)) {
    return Status::IOError("cannot bind to " + s.opt.host + ":" + std::to_string(port) + ": " +
                           BindFailure(s.opt.host, port));
  }
  s.bound_port = port;
  s.ready = true;
  s.log.Log(LogLevel::kInfo, "serving model '%s' at http://%s:%d/v2/models/%s", s.opt.name.c_str(),
            s.opt.host.c_str(), port, s.opt.name.c_str());

  // Watches the checkpoint directory while serving; once stopping, makes
  // sure the listener stops even if Shutdown came before it started.
  std::atomic<bool> listen_done{false};
  std::thread watcher([&s, &listen_done] {
    std::unique_lock<std::mutex> lock(s.stop_mu);
    while (!s.stopping) {
      if (s.opt.poll_s > 0) {
        s.stop_cv.wait_for(lock, std::chrono::duration<double>(s.opt.poll_s));
      } else {
        s.stop_cv.wait(lock);
      }
      if (s.stopping) break;
      lock.unlock();
      (void)s.Reload(false);  // failures are logged and counted
      lock.lock();
    }
    lock.unlock();
    while (!listen_done) {
      s.http.stop();
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  });
  const bool ok = s.http.listen_after_bind();
  listen_done = true;
  // Stopped: connections are drained; score what is still queued.
  bool was_stopping;
  {
    std::lock_guard<std::mutex> lock(s.stop_mu);
    was_stopping = s.stopping;
    s.stopping = true;
  }
  s.stop_cv.notify_all();
  watcher.join();
  s.batcher->Stop();
  if (!ok && !was_stopping) return Status::IOError("the HTTP server stopped unexpectedly");
  return Status::OK();
}

}  // namespace embark::serve
