#include "serve/http_reader.h"

#include <algorithm>

namespace embark::serve {
namespace {

char Lower(char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; }

bool IEquals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i)
    if (Lower(a[i]) != Lower(b[i])) return false;
  return true;
}

// RFC 9110 token characters (method and header names).
bool IsTchar(char c) {
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return true;
  return std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
}

bool IsToken(std::string_view s) { return !s.empty() && std::all_of(s.begin(), s.end(), IsTchar); }

// Field values: visible characters, space, tab and bytes >= 0x80; no other control.
bool IsFieldValue(std::string_view s) {
  return std::all_of(s.begin(), s.end(), [](char ch) {
    const auto c = static_cast<unsigned char>(ch);
    return c == '\t' || (c >= 0x20 && c != 0x7f);
  });
}

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// A value from the request, quoted and shortened for an error message.
std::string Quote(std::string_view s) {
  constexpr size_t kMax = 64;
  std::string q(1, '\'');
  q.append(s.substr(0, kMax));
  q.append(s.size() > kMax ? "...'" : "'");
  return q;
}

bool EndsWith(const std::string& s, std::string_view end) {
  return s.size() >= end.size() && std::string_view(s).substr(s.size() - end.size()) == end;
}

int HexDigit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  c = Lower(c);
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

constexpr size_t kMaxChunkLine = 1024;  // a chunk size and its extensions

}  // namespace

std::string HttpRequest::Head() const {
  std::string s;
  s.reserve(64 + target.size() + headers.size() * 32);
  s += method;
  s += ' ';
  s += target;
  s += ' ';
  s += version;
  s += "\r\n";
  for (const auto& [name, value] : headers) {
    s += name;
    s += ": ";
    s += value;
    s += "\r\n";
  }
  s += "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n";
  return s;
}

void RequestReader::Reset() {
  state_ = State::kStart;
  error_status_ = 0;
  error_.clear();
  head_.clear();
  line_.clear();
  if (head_.capacity() > 4096) std::string().swap(head_);  // a large head once does not stay held
  if (line_.capacity() > 4096) std::string().swap(line_);
  remaining_ = 0;
  req_ = HttpRequest{};
}

bool RequestReader::Fail(int status, std::string message) {
  state_ = State::kError;
  error_status_ = status;
  error_ = std::move(message);
  return false;
}

size_t RequestReader::Feed(std::string_view data) {
  size_t i = 0;
  while (i < data.size()) {
    switch (state_) {
      case State::kDone:
      case State::kError:
        return i;
      case State::kStart:
        state_ = State::kHead;
        break;
      case State::kHead: {
        // Empty lines before the request line are ignored (RFC 9112 2.2);
        // they count against the head's limit all the same.
        if (head_.empty() && (data[i] == '\r' || data[i] == '\n')) {
          if (++remaining_ > limits_.max_head_bytes) {
            Fail(431, "request head is larger than " + std::to_string(limits_.max_head_bytes) + " bytes");
            return i;
          }
          ++i;
          break;
        }
        const size_t nl = data.find('\n', i);
        const size_t end = nl == std::string_view::npos ? data.size() : nl + 1;
        if (head_.size() + remaining_ + (end - i) > limits_.max_head_bytes) {
          Fail(431, "request head is larger than " + std::to_string(limits_.max_head_bytes) + " bytes");
          return i;
        }
        head_.append(data.substr(i, end - i));
        i = end;
        if (nl == std::string_view::npos) break;
        if (head_.size() < 2 || head_[head_.size() - 2] != '\r') {
          Fail(400, "malformed request: a line of the head does not end with CRLF");
          return i;
        }
        if (EndsWith(head_, "\r\n\r\n")) {
          remaining_ = 0;
          if (!ParseHead()) return i;
        }
        break;
      }
      case State::kBody: {
        const size_t take = static_cast<size_t>(std::min<uint64_t>(remaining_, data.size() - i));
        req_.body.append(data.substr(i, take));
        i += take;
        remaining_ -= take;
        if (remaining_ == 0) state_ = State::kDone;
        break;
      }
      default:
        i += FeedChunked(data.substr(i));
        break;
    }
  }
  return i;
}

size_t RequestReader::FeedChunked(std::string_view data) {
  size_t i = 0;
  while (i < data.size() && state_ != State::kDone && state_ != State::kError) {
    switch (state_) {
      case State::kChunkSize: {
        const size_t nl = data.find('\n', i);
        const size_t end = nl == std::string_view::npos ? data.size() : nl + 1;
        if (line_.size() + (end - i) > kMaxChunkLine) {
          Fail(400, "malformed chunked body: a chunk-size line longer than " + std::to_string(kMaxChunkLine) + " bytes");
          return i;
        }
        line_.append(data.substr(i, end - i));
        i = end;
        if (nl == std::string_view::npos) break;
        if (!EndsWith(line_, "\r\n")) {
          Fail(400, "malformed chunked body: a chunk-size line does not end with CRLF");
          return i;
        }
        std::string_view l(line_);
        l.remove_suffix(2);
        uint64_t size = 0;
        size_t digits = 0;
        for (; digits < l.size() && HexDigit(l[digits]) >= 0; ++digits) {
          size = size * 16 + static_cast<uint64_t>(HexDigit(l[digits]));
          if (size > limits_.max_body_bytes - req_.body.size()) {  // checked per digit: never overflows
            Fail(413, "request body is larger than the limit of " + std::to_string(limits_.max_body_bytes) + " bytes");
            return i;
          }
        }
        std::string_view ext = Trim(l.substr(digits));
        if (digits == 0 || (!ext.empty() && (ext.front() != ';' || !IsFieldValue(ext)))) {
          Fail(400, "malformed chunked body: bad chunk-size line " + Quote(l));
          return i;
        }
        line_.clear();
        if (size == 0) {
          state_ = State::kTrailers;
        } else {
          remaining_ = size;
          state_ = State::kChunkData;
        }
        break;
      }
      case State::kChunkData: {
        const size_t take = static_cast<size_t>(std::min<uint64_t>(remaining_, data.size() - i));
        req_.body.append(data.substr(i, take));
        i += take;
        remaining_ -= take;
        if (remaining_ == 0) state_ = State::kChunkDataEnd;
        break;
      }
      case State::kChunkDataEnd:
        line_ += data[i++];
        if (line_ != std::string_view("\r\n").substr(0, line_.size())) {
          Fail(400, "malformed chunked body: a chunk's data is not followed by CRLF");
          return i;
        }
        if (line_.size() == 2) {
          line_.clear();
          state_ = State::kChunkSize;
        }
        break;
      case State::kTrailers: {
        // Trailer fields are read (within a head's size) and dropped.
        const size_t nl = data.find('\n', i);
        const size_t end = nl == std::string_view::npos ? data.size() : nl + 1;
        if (line_.size() + (end - i) > limits_.max_head_bytes) {
          Fail(431, "chunked trailers are larger than " + std::to_string(limits_.max_head_bytes) + " bytes");
          return i;
        }
        line_.append(data.substr(i, end - i));
        i = end;
        if (nl == std::string_view::npos) break;
        if (!EndsWith(line_, "\r\n")) {
          Fail(400, "malformed chunked body: a trailer line does not end with CRLF");
          return i;
        }
        if (line_ == "\r\n" || EndsWith(line_, "\r\n\r\n")) {
          line_.clear();
          state_ = State::kDone;
        }
        break;
      }
      default:
        return i;
    }
  }
  return i;
}

bool RequestReader::ParseHead() {
  std::string_view h(head_);
  h.remove_suffix(2);  // the blank line's CRLF; every line below ends with CRLF
  std::vector<std::string_view> lines;
  for (size_t pos = 0; pos < h.size();) {
    const size_t e = h.find("\r\n", pos);
    lines.push_back(h.substr(pos, e - pos));
    pos = e + 2;
  }
  for (std::string_view l : lines)
    if (l.find('\r') != std::string_view::npos) return Fail(400, "malformed request: a CR without LF in the head");

  // Request line: METHOD SP TARGET SP VERSION.
  const std::string_view rl = lines.front();
  const size_t sp1 = rl.find(' ');
  const size_t sp2 = sp1 == std::string_view::npos ? sp1 : rl.find(' ', sp1 + 1);
  if (sp2 == std::string_view::npos || rl.find(' ', sp2 + 1) != std::string_view::npos)
    return Fail(400, "malformed request line " + Quote(rl));
  const std::string_view method = rl.substr(0, sp1), target = rl.substr(sp1 + 1, sp2 - sp1 - 1),
                         version = rl.substr(sp2 + 1);
  if (!IsToken(method)) return Fail(400, "malformed request line " + Quote(rl));
  if (target.size() > limits_.max_target_bytes)
    return Fail(414, "request target is longer than " + std::to_string(limits_.max_target_bytes) + " bytes");
  if (target.empty() || !std::all_of(target.begin(), target.end(), [](char ch) {
        const auto c = static_cast<unsigned char>(ch);
        return c > 0x20 && c != 0x7f;
      }))
    return Fail(400, "malformed request target " + Quote(target));
  bool http10 = false;
  if (version == "HTTP/1.0") {
    http10 = true;
  } else if (version != "HTTP/1.1") {
    auto digit = [](char c) { return c >= '0' && c <= '9'; };
    const bool looks_http = version.size() == 8 && version.substr(0, 5) == "HTTP/" && digit(version[5]) &&
                            version[6] == '.' && digit(version[7]);
    if (!looks_http) return Fail(400, "malformed request line " + Quote(rl));
    return Fail(505, "HTTP version " + Quote(version) + " is not supported (HTTP/1.0 and HTTP/1.1 are)");
  }
  req_.method = std::string(method);
  req_.target = std::string(target);
  req_.version = std::string(version);

  if (lines.size() - 1 > limits_.max_headers)
    return Fail(431, "more than " + std::to_string(limits_.max_headers) + " header fields");
  bool has_length = false, chunked = false, close = false, keep_alive = false;
  uint64_t length = 0;
  std::string_view transfer_encoding, expect, content_encoding;
  int transfer_encodings = 0;
  for (size_t k = 1; k < lines.size(); ++k) {
    const std::string_view l = lines[k];
    if (l.front() == ' ' || l.front() == '\t') return Fail(400, "malformed request: a folded header line");
    const size_t colon = l.find(':');
    if (colon == std::string_view::npos || !IsToken(l.substr(0, colon)))
      return Fail(400, "malformed header line " + Quote(l));
    const std::string_view name = l.substr(0, colon), value = Trim(l.substr(colon + 1));
    if (!IsFieldValue(value)) return Fail(400, "malformed value of header " + Quote(name));
    if (IEquals(name, "Content-Length")) {
      uint64_t n = 0;
      if (value.empty() || value.size() > 18 || !std::all_of(value.begin(), value.end(), [](char c) { return c >= '0' && c <= '9'; }))
        return Fail(400, "malformed Content-Length " + Quote(value));
      for (char c : value) n = n * 10 + static_cast<uint64_t>(c - '0');
      if (has_length && n != length) return Fail(400, "two different Content-Length headers");
      has_length = true;
      length = n;
    } else if (IEquals(name, "Transfer-Encoding")) {
      ++transfer_encodings;
      transfer_encoding = value;
    } else if (IEquals(name, "Expect")) {
      expect = value;
    } else if (IEquals(name, "Content-Encoding")) {
      content_encoding = value;
    } else {
      if (IEquals(name, "Connection")) {
        for (size_t pos = 0; pos <= value.size();) {
          size_t comma = value.find(',', pos);
          if (comma == std::string_view::npos) comma = value.size();
          const std::string_view token = Trim(value.substr(pos, comma - pos));
          close |= IEquals(token, "close");
          keep_alive |= IEquals(token, "keep-alive");
          pos = comma + 1;
        }
      }
      req_.headers.emplace_back(std::string(name), std::string(value));
    }
  }
  if (transfer_encodings > 0) {
    if (has_length) return Fail(400, "a request with both Content-Length and Transfer-Encoding");
    if (transfer_encodings > 1 || !IEquals(transfer_encoding, "chunked"))
      return Fail(501, "Transfer-Encoding " + Quote(transfer_encoding) + " is not supported (chunked is)");
    chunked = true;
  }
  const bool body_coming = chunked || length > 0;
  if (body_coming && !content_encoding.empty() && !IEquals(content_encoding, "identity"))
    return Fail(415, "request bodies are read uncompressed; Content-Encoding " + Quote(content_encoding) +
                         " is not supported");
  if (!expect.empty()) {
    if (!IEquals(expect, "100-continue")) return Fail(417, "Expect " + Quote(expect) + " is not supported");
    req_.expect_continue = body_coming;
  }
  if (length > limits_.max_body_bytes)
    return Fail(413, "request body is larger than the limit of " + std::to_string(limits_.max_body_bytes) + " bytes");
  req_.keep_alive = !close && (!http10 || keep_alive);
  if (chunked) {
    state_ = State::kChunkSize;
  } else if (length > 0) {
    req_.body.reserve(static_cast<size_t>(length));
    remaining_ = length;
    state_ = State::kBody;
  } else {
    state_ = State::kDone;
  }
  return true;
}

}  // namespace embark::serve
