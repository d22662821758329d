// A bounded HTTP load client for embark serve: C connections, each sending
// the same request body back to back over keep-alive for S seconds, then
// one JSON line of throughput and latency percentiles.
//   serve_load PORT PATH BODY_FILE ROWS_PER_REQUEST CONNECTIONS SECONDS
#include <httplib.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <memory>
#include <string>
#include <thread>
#include <vector>

int main(int argc, char** argv) {
  if (argc != 7) {
    std::fprintf(stderr, "usage: serve_load PORT PATH BODY_FILE ROWS_PER_REQUEST CONNECTIONS SECONDS\n");
    return 2;
  }
  const int port = std::stoi(argv[1]);
  const std::string path = argv[2];
  std::ifstream f(argv[3], std::ios::binary);
  const std::string body((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  const int rows = std::stoi(argv[4]), conns = std::stoi(argv[5]);
  const double seconds = std::stod(argv[6]);
  using Clock = std::chrono::steady_clock;
  std::vector<std::vector<double>> lat(conns);
  std::atomic<long> errors{0};
  // Every connection is opened and warmed by one request before timing.
  std::vector<std::unique_ptr<httplib::Client>> clients;
  for (int c = 0; c < conns; ++c) {
    clients.push_back(std::make_unique<httplib::Client>("127.0.0.1", port));
    clients.back()->set_keep_alive(true);
    clients.back()->set_tcp_nodelay(true);
    clients.back()->set_read_timeout(30, 0);
  }
  {
    std::vector<std::thread> warm;
    for (int c = 0; c < conns; ++c)
      warm.emplace_back([&, c] {
        for (int attempt = 0; attempt < 5; ++attempt)  // a connect may need a retry when 64 arrive at once
          if (clients[c]->Post(path, body, "application/json")) break;
      });
    for (auto& t : warm) t.join();
  }
  const auto start = Clock::now();
  const auto end = start + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds));
  std::vector<std::thread> threads;
  for (int c = 0; c < conns; ++c) {
    threads.emplace_back([&, c] {
      httplib::Client& cli = *clients[c];
      while (Clock::now() < end) {
        const auto t0 = Clock::now();
        auto res = cli.Post(path, body, "application/json");
        const auto t1 = Clock::now();
        if (!res || res->status != 200) {
          if (errors++ == 0)
            std::fprintf(stderr, "serve_load: first failure: %s\n",
                         res ? ("HTTP " + std::to_string(res->status)).c_str() : httplib::to_string(res.error()).c_str());
          continue;
        }
        lat[c].push_back(std::chrono::duration<double>(t1 - t0).count());
      }
    });
  }
  for (auto& t : threads) t.join();
  const double wall = std::chrono::duration<double>(Clock::now() - start).count();
  std::vector<double> all;
  for (auto& v : lat) all.insert(all.end(), v.begin(), v.end());
  std::sort(all.begin(), all.end());
  auto pct = [&](double p) {
    if (all.empty()) return 0.0;
    size_t i = std::min(all.size() - 1, static_cast<size_t>(p * all.size()));
    return all[i] * 1e3;
  };
  std::printf(
      "{\"connections\":%d,\"rows_per_request\":%d,\"requests\":%zu,\"errors\":%ld,\"requests_per_sec\":%.1f,"
      "\"rows_per_sec\":%.1f,\"p50_ms\":%.3f,\"p99_ms\":%.3f,\"p999_ms\":%.3f}\n",
      conns, rows, all.size(), errors.load(), all.size() / wall, all.size() * rows / wall, pct(0.5), pct(0.99),
      pct(0.999));
  return errors.load() > 0 ? 1 : 0;
}
