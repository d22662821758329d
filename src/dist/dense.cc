#include "dist/dense.h"

#include <cmath>
#include <cstring>

namespace embark {
namespace {

constexpr size_t kOneBitBlock = 256;

// IEEE half precision by hand (compilers differ on _Float16): round to
// nearest even, overflow to infinity, subnormals kept.
uint16_t ToHalf(float f) {
  uint32_t x;
  std::memcpy(&x, &f, 4);
  const uint32_t sign = (x >> 16) & 0x8000, e8 = (x >> 23) & 0xff;
  uint32_t mant = x & 0x7fffff;
  if (e8 == 0xff) return static_cast<uint16_t>(sign | 0x7c00 | (mant ? 0x200 : 0));
  const int32_t exp = static_cast<int32_t>(e8) - 127 + 15;
  if (exp >= 31) return static_cast<uint16_t>(sign | 0x7c00);
  if (exp <= 0) {
    if (exp < -10) return static_cast<uint16_t>(sign);
    mant |= 0x800000;
    const uint32_t shift = static_cast<uint32_t>(14 - exp);
    uint32_t h = mant >> shift;
    const uint32_t rem = mant & ((1u << shift) - 1), halfway = 1u << (shift - 1);
    if (rem > halfway || (rem == halfway && (h & 1))) ++h;
    return static_cast<uint16_t>(sign | h);
  }
  uint32_t h = sign | (static_cast<uint32_t>(exp) << 10) | (mant >> 13);
  const uint32_t rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem == 0x1000 && (h & 1))) ++h;  // a carry rounds up into the exponent
  return static_cast<uint16_t>(h);
}

float FromHalf(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000) << 16, exp = (h >> 10) & 0x1f;
  uint32_t mant = h & 0x3ff, x;
  if (exp == 0) {
    if (mant == 0) {
      x = sign;
    } else {
      int e = -1;
      do {
        ++e;
        mant <<= 1;
      } while (!(mant & 0x400));
      x = sign | (static_cast<uint32_t>(127 - 15 - e) << 23) | ((mant & 0x3ff) << 13);
    }
  } else if (exp == 31) {
    x = sign | 0x7f800000 | (mant << 13);
  } else {
    x = sign | ((exp - 15 + 127) << 23) | (mant << 13);
  }
  float f;
  std::memcpy(&f, &x, 4);
  return f;
}

}  // namespace

Result<WireCompression> ParseWireCompression(const std::string& s) {
  if (s == "none") return WireCompression::kNone;
  if (s == "fp16") return WireCompression::kFp16;
  if (s == "onebit") return WireCompression::kOneBit;
  return Status::InvalidArgument("unknown dense compression '" + s + "' (none, fp16, onebit)");
}

DenseAllreduce::DenseAllreduce(Communicator* comm, size_t n, WireCompression c) : comm_(comm), n_(n), c_(c) {
  if (c_ == WireCompression::kOneBit) {
    residual_.assign(n_, 0.0f);
    slice_residual_.assign(Begin(comm_->rank() + 1) - Begin(comm_->rank()), 0.0f);
  }
}

// x[0..m) onto the wire; with 1-bit compression, residual[0..m) is added
// before and keeps what the encoding lost.
void DenseAllreduce::Encode(const float* x, size_t m, float* residual, Bytes* out) const {
  switch (c_) {
    case WireCompression::kNone:
      Append(out, x, m);
      return;
    case WireCompression::kFp16: {
      for (size_t i = 0; i < m; ++i) AppendOne(out, ToHalf(x[i]));
      return;
    }
    case WireCompression::kOneBit: {
      for (size_t b = 0; b < m; b += kOneBitBlock) {
        const size_t e = std::min(m, b + kOneBitBlock);
        float scale = 0;
        for (size_t i = b; i < e; ++i) scale += std::fabs(x[i] + residual[i]);
        scale /= static_cast<float>(e - b);
        uint8_t bits[kOneBitBlock / 8] = {};
        for (size_t i = b; i < e; ++i) {
          const float v = x[i] + residual[i];
          const bool pos = v >= 0;
          bits[(i - b) / 8] |= static_cast<uint8_t>(pos) << ((i - b) % 8);
          residual[i] = v - (pos ? scale : -scale);
        }
        AppendOne(out, scale);
        Append(out, bits, (e - b + 7) / 8);
      }
      return;
    }
  }
}

bool DenseAllreduce::Decode(BytesReader* in, size_t m, float* out, bool add) const {
  switch (c_) {
    case WireCompression::kNone:
      if (!add) return in->Read(out, m);
      for (size_t i = 0; i < m; ++i) {
        float v;
        if (!in->ReadOne(&v)) return false;
        out[i] += v;
      }
      return true;
    case WireCompression::kFp16:
      for (size_t i = 0; i < m; ++i) {
        uint16_t h;
        if (!in->ReadOne(&h)) return false;
        out[i] = (add ? out[i] : 0.0f) + FromHalf(h);
      }
      return true;
    case WireCompression::kOneBit:
      for (size_t b = 0; b < m; b += kOneBitBlock) {
        const size_t e = std::min(m, b + kOneBitBlock);
        float scale;
        uint8_t bits[kOneBitBlock / 8];
        if (!in->ReadOne(&scale) || !in->Read(bits, (e - b + 7) / 8)) return false;
        for (size_t i = b; i < e; ++i) {
          const float v = (bits[(i - b) / 8] >> ((i - b) % 8)) & 1 ? scale : -scale;
          out[i] = (add ? out[i] : 0.0f) + v;
        }
      }
      return true;
  }
  return false;
}

Status DenseAllreduce::Sum(float* data, double* count) {
  const int N = comm_->size(), me = comm_->rank();
  send_.assign(N, Bytes());
  // Reduce-scatter: slice p of our data goes to rank p.
  for (int p = 0; p < N; ++p) {
    AppendOne(&send_[p], *count);
    const size_t b = Begin(p), e = Begin(p + 1);
    Encode(data + b, e - b, residual_.empty() ? nullptr : residual_.data() + b, &send_[p]);
  }
  EMBARK_RETURN_IF_ERROR(comm_->Exchange(send_, &recv_));
  const size_t mb = Begin(me), me_n = Begin(me + 1) - mb;
  slice_.assign(me_n, 0.0f);
  double total = 0;
  for (int p = 0; p < N; ++p) {
    BytesReader in(recv_[p]);
    double c;
    if (!in.ReadOne(&c) || !Decode(&in, me_n, slice_.data(), true) || in.left() != 0)
      return Status::Corruption("dense allreduce: malformed message from rank " + std::to_string(p));
    total += c;
  }
  *count = total;
  // Allgather: our summed slice to everyone.
  Bytes mine;
  Encode(slice_.data(), me_n, slice_residual_.empty() ? nullptr : slice_residual_.data(), &mine);
  send_.assign(N, mine);
  EMBARK_RETURN_IF_ERROR(comm_->Exchange(send_, &recv_));
  for (int p = 0; p < N; ++p) {
    BytesReader in(recv_[p]);
    const size_t b = Begin(p), e = Begin(p + 1);
    if (!Decode(&in, e - b, data + b, false) || in.left() != 0)
      return Status::Corruption("dense allreduce: malformed slice from rank " + std::to_string(p));
  }
  return Status::OK();
}

}  // namespace embark
