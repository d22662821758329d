// Fuzz target for the HTTP request reader (serve/http_reader.h): any bytes,
// read whole or in pieces of any size, must give the same requests and
// errors, never hold more than the limits, and every request read must read
// back the same from the head and body it hands on. Built with libFuzzer by
// scripts/fuzz.sh; replay_main.cc runs the corpus as an ordinary test.
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "fuzz/fuzz_util.h"
#include "serve/http_reader.h"

namespace {

using embark::fuzz::Check;
using embark::serve::HttpLimits;
using embark::serve::HttpRequest;
using embark::serve::RequestReader;

HttpLimits Limits() {
  HttpLimits l;
  l.max_head_bytes = 512;
  l.max_headers = 8;
  l.max_target_bytes = 64;
  l.max_body_bytes = 256;
  return l;
}

struct Read {
  std::vector<std::string> heads, bodies;  // the requests, in order
  int error = 0;                           // the status that ended it, or 0
  size_t consumed = 0;
};

// Reads requests one after another (as a pipelining client sends them),
// giving the reader `piece` bytes at a time.
Read ReadAll(std::string_view in, size_t piece) {
  RequestReader r(Limits());
  Read out;
  size_t pos = 0;
  while (pos < in.size()) {
    const size_t n = r.Feed(in.substr(pos, std::min(piece, in.size() - pos)));
    pos += n;
    Check(pos <= in.size());
    if (r.failed()) {
      const int s = r.error_status();
      Check(s == 400 || s == 413 || s == 414 || s == 415 || s == 417 || s == 431 || s == 501 || s == 505);
      Check(!r.error_message().empty());
      out.error = s;
      break;
    }
    if (r.done()) {
      const HttpRequest& q = r.request();
      Check(q.body.size() <= Limits().max_body_bytes);
      out.heads.push_back(q.Head());
      out.bodies.push_back(q.body);
      r.Reset();
    } else {
      Check(n == std::min(piece, in.size() - (pos - n)));  // an unfinished request takes all it is given
    }
  }
  out.consumed = pos;
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const size_t piece = 1 + data[0] % 7;
  const std::string_view in(reinterpret_cast<const char*>(data) + 1, size - 1);
  const Read whole = ReadAll(in, in.size() + 1), pieces = ReadAll(in, piece);
  Check(whole.heads == pieces.heads && whole.bodies == pieces.bodies && whole.error == pieces.error);
  if (whole.error == 0) Check(whole.consumed == in.size() && pieces.consumed == in.size());
  // What the reader hands on reads back as the same request.
  for (size_t i = 0; i < whole.heads.size(); ++i) {
    const std::string again = whole.heads[i] + whole.bodies[i];
    HttpLimits roomy = Limits();
    roomy.max_head_bytes = again.size() + 64;  // the head gains a Content-Length line
    roomy.max_headers += 1;
    RequestReader r(roomy);
    Check(r.Feed(again) == again.size() && r.done());
    Check(r.request().Head() == whole.heads[i] && r.request().body == whole.bodies[i]);
  }
  return 0;
}
