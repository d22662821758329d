// embark serve: a checkpoint behind the Open Inference Protocol (KServe v2)
// over HTTP/JSON, with dynamic micro-batching, hot reload, delta checkpoints
// of online training applied in place, and Prometheus metrics. Endpoints and
// behaviour are described in docs/serving.md.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "util/log.h"
#include "util/status.h"

namespace embark::serve {

struct ServerOptions {
  std::string model_dir;
  std::string name;              // model name in URLs; default: the directory's name
  std::string host = "127.0.0.1";
  int port = 8080;               // 0: any free port (printed at start)
  size_t max_batch_rows = 256;
  int max_delay_us = 200;
  int workers = 0;               // scoring threads; 0: one per core
  int http_threads = 128;        // requests handled at once (GETs are answered by the connection thread)
  size_t max_connections = 4096;  // open at once; one more is answered 503 and closed
  size_t max_body_bytes = 64 << 20;  // after chunked decoding; larger gets 413
  // A connection silent this long between requests, stalled within one, or
  // not taking its answer is closed (a request cut short gets 408).
  int timeout_s = 5;
  double request_timeout_s = 10;  // a request's first byte to its last; later: 408
  // Model directory check interval: a new snapshot is loaded in full, new
  // delta checkpoints (online training) are applied in place. 0: only on
  // SIGHUP or the load endpoint (both load in full, deltas included).
  double poll_s = 1;
  // The repository load endpoint answers only requests carrying
  // "Authorization: Bearer <admin_token>"; empty: the endpoint is disabled.
  std::string admin_token;
  // RAM for the embedding tables; rows beyond it are read from a disk tier
  // under table_dir (each loaded version in its own subdirectory). 0: all in RAM.
  int64_t memory_budget = 0;
  std::string table_dir;
  // Retrieval (docs/serving.md): a two_tower model answers the top k items
  // of index_dir (embark index), watched like the model directory; with
  // ranker_dir, a ranking checkpoint re-orders them.
  std::string index_dir;
  int k = 100;  // when a request gives no parameters.k
  std::string ranker_dir;
};

class Server {
 public:
  explicit Server(const ServerOptions& opt, const Logger& log);
  ~Server();

  // Loads the model, binds and serves until Shutdown(); returns an error if
  // the model cannot be loaded or the port cannot be bound.
  Status Run();
  // The bound port, once Run has bound it (0 before).
  int port() const;
  // Loads the checkpoint again if it changed (or always, with `force`) and
  // swaps it in; a broken checkpoint is refused and the old one kept. The
  // same for the index directory when serving retrieval.
  // Without `force` and with the snapshot unchanged, applies the delta
  // checkpoints that follow the model served (docs/serving.md); a broken
  // one is refused (the error returned) and not tried again.
  Status Reload(bool force);
  // Stops accepting, finishes what is in flight, and makes Run return.
  void Shutdown();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace embark::serve
