#include "nn/train_gemm.h"

#include <cblas.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstring>
#include <oneapi/dnnl/dnnl.hpp>
#include <vector>

#ifdef EMBARK_DNNL_OMP
// oneDNN's OpenMP runtime (libgomp) sizes its parallel regions by the
// calling thread's own nthreads-var, which starts at the core count.
extern "C" void omp_set_num_threads(int);
#endif

#if defined(__SANITIZE_THREAD__)
#define EMBARK_TSAN_BUILD 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define EMBARK_TSAN_BUILD 1
#endif
#endif

#ifdef EMBARK_TSAN_BUILD
// ThreadSanitizer builds (scripts/build.sh --tsan): libdnnl is not
// instrumented, so the synchronisation inside it (the futures of its
// process-wide primitive cache) is invisible, and the reads its own code
// makes through intercepted calls (memcmp of cache keys another thread's
// primitive allocated) are reported as races. Ignore what oneDNN's code
// does inside oneDNN; embark's accesses to the buffers it hands to oneDNN
// are still checked.
extern "C" const char* __tsan_default_suppressions() { return "called_from_lib:libdnnl.so.2\n"; }
#endif

namespace embark {

Result<DensePrecision> ParseDensePrecision(const std::string& s) {
  if (s == "fp32") return DensePrecision::kFp32;
  if (s == "bf16") return DensePrecision::kBf16;
  return Status::InvalidArgument("dense_precision: '" + s + "' is not one of: fp32, bf16");
}

namespace {

// The products of a layer: forward (plain or with ReLU fused), weight
// gradient, input gradient.
enum Op : uint8_t { kForward, kForwardRelu, kWeightGrad, kInputGrad };

// oneDNN in the calling thread only: one thread for its parallel regions,
// so a primitive made here is blocked for one thread and runs on this one.
void OneThread() {
#ifdef EMBARK_DNNL_OMP
  omp_set_num_threads(1);
#endif
}

std::atomic<uint64_t> g_onednn_products{0};  // a statistic: see OneDnnProducts

inline uint32_t Bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, sizeof u);
  return u;
}

// fp32 to bf16, to nearest even; a NaN stays a (quiet) NaN. Branch-free so
// that the loops below vectorise.
inline uint16_t ToBf16(float f) {
  const uint32_t u = Bits(f);
  const uint32_t rounded = (u + 0x7fffu + ((u >> 16) & 1u)) >> 16;
  const uint32_t nan = (u >> 16) | 0x40u;
  return static_cast<uint16_t>((u & 0x7fffffffu) > 0x7f800000u ? nan : rounded);
}

void ToBf16(const float* x, size_t n, std::vector<uint16_t>* out) {
  if (out->size() < n) out->resize(n);
  uint16_t* o = out->data();
  for (size_t i = 0; i < n; ++i) o[i] = ToBf16(x[i]);
}

const float* Rounded(const float* x, size_t n, std::vector<float>* buf) {
  if (buf->size() < n) buf->resize(n);
  RoundToBf16(x, n, buf->data());
  return buf->data();
}

// ---- OpenBLAS ---------------------------------------------------------------

void BlasForward(const float* x, const float* w, const float* bias, int m, int n, int k, bool relu, float* y) {
  for (int r = 0; r < m; ++r) std::memcpy(y + static_cast<size_t>(r) * n, bias, sizeof(float) * n);
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, n, k, 1.0f, x, k, w, k, 1.0f, y, n);
  if (relu) {
    const size_t len = static_cast<size_t>(m) * n;
    for (size_t i = 0; i < len; ++i) y[i] = std::max(y[i], 0.0f);
  }
}

void BlasWeightGrad(const float* dy, const float* x, int m, int n, int k, float* dw) {
  cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, n, k, m, 1.0f, dy, n, x, k, 1.0f, dw, k);
}

void BlasInputGrad(const float* dy, const float* w, int m, int n, int k, float* dx) {
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m, k, n, 1.0f, dy, n, w, k, 0.0f, dx, k);
}

// ---- FP32 CHOICE --------------------------------------------------------------
// Which library runs each fp32 product when the caller leaves it to embark
// (GemmLibrary::kAuto). Measured by bench/gemm_bench.cc (BM_Train*), one
// thread, on the training shapes of DLRM and DeepFM (bench/README.md).
//
// On an AMD EPYC (Zen 4, avx512_core_bf16) at 1024 and 2048 rows, oneDNN's
// matmul beat OpenBLAS's sgemm on every product of every layer with 16 or
// more outputs (1.0-1.2x on the wide layers, 1.2-2.1x on 13->512 and
// 64->16), and lost on the layers with one output, where the products are
// matrix-vector ones (forward 0.2-0.9x, weight gradient 0.8-0.96x). So:
// oneDNN for layers of 16 outputs or more, OpenBLAS below.
bool OneDnnForFp32(Op, int m, int n, int k) { return n >= 16; }

// bf16 on oneDNN ran 1.3-2.2x OpenBLAS's fp32 on the layers of 16 outputs
// or more, and 0.2-0.3x on the forward and weight-gradient products of the
// one-output layers: there, OpenBLAS on the bf16-rounded values (the same
// numbers) serves bf16 too.
//
// Only where the CPU has bf16 units (avx512_core_bf16, AMX): on AVX-512
// without them oneDNN emulates bf16, and its matmuls ran at 27-37 GFLOP/s
// where fp32 ran at 90-100 (DNNL_MAX_CPU_ISA=AVX512_CORE, 400->400 at 1024
// rows), so there the rounded values go to the fp32 GEMMs instead.
bool Bf16Units() {
  const dnnl::cpu_isa isa = dnnl::get_effective_cpu_isa();
  return isa == dnnl::cpu_isa::avx512_core_bf16 || isa == dnnl::cpu_isa::avx512_core_amx;
}

bool OneDnnForBf16(Op, int m, int n, int k) {
  static const bool units = Bf16Units();  // a property of the CPU
  return units && n >= 16;
}

}  // namespace

void RoundToBf16(const float* x, size_t n, float* out) {
  for (size_t i = 0; i < n; ++i) {
    const uint32_t u = static_cast<uint32_t>(ToBf16(x[i])) << 16;
    std::memcpy(out + i, &u, sizeof u);
  }
}

std::string OneDnnIsa() {
  using isa = dnnl::cpu_isa;
  switch (dnnl::get_effective_cpu_isa()) {
    case isa::sse41: return "sse41";
    case isa::avx: return "avx";
    case isa::avx2: return "avx2";
    case isa::avx2_vnni: return "avx2_vnni";
    case isa::avx512_mic: return "avx512_mic";
    case isa::avx512_mic_4ops: return "avx512_mic_4ops";
    case isa::avx512_core: return "avx512_core";
    case isa::avx512_core_vnni: return "avx512_core_vnni";
    case isa::avx512_core_bf16: return "avx512_core_bf16";
    case isa::avx512_core_amx: return "avx512_core_amx";
    default: return "other";
  }
}

// ---- oneDNN -------------------------------------------------------------------

// A matmul made for one shape and product; `ref` when oneDNN has only its
// reference implementation for it (then OpenBLAS runs the product).
struct TrainGemm::Entry {
  struct Key {
    Op op;
    bool bf16;
    int m, n, k;
    bool operator==(const Key&) const = default;
  };
  Key key;
  bool ref = false;
  dnnl::matmul prim;
  dnnl::memory src, wei, bias, dst, scratch;
  std::vector<uint8_t> scratch_buf;
};

struct TrainGemm::Impl {
  using Key = Entry::Key;
  dnnl::engine eng{dnnl::engine::kind::cpu, 0};
  dnnl::stream strm{eng};
  std::vector<Entry> entries;
  std::vector<uint16_t> a16, b16;  // bf16 copies of a product's operands
  std::vector<float> ar, br;       // bf16-rounded floats, when oneDNN has no bf16 matmul

  Entry* Get(const Key& key) {
    for (auto& e : entries)
      if (e.key == key) return &e;
    entries.push_back(Make(key));
    return &entries.back();
  }

  Entry Make(const Key& key) {
    using md = dnnl::memory::desc;
    using dt = dnnl::memory::data_type;
    const dnnl::memory::dim m = key.m, n = key.n, k = key.k;
    const dt in = key.bf16 ? dt::bf16 : dt::f32;
    md src, wei, bias, dst;
    dnnl::post_ops po;
    switch (key.op) {
      case kForward:
      case kForwardRelu:  // x[m, k] times w^T (w is [n, k]), plus bias
        src = md({m, k}, in, {k, 1});
        wei = md({k, n}, in, {1, k});
        bias = md({1, n}, dt::f32, {n, 1});
        dst = md({m, n}, dt::f32, {n, 1});
        if (key.op == kForwardRelu) po.append_eltwise(1.0f, dnnl::algorithm::eltwise_relu, 0.0f, 0.0f);
        break;
      case kWeightGrad:  // dy^T (dy is [m, n]) times x[m, k], added to dw
        src = md({n, m}, in, {1, n});
        wei = md({m, k}, in, {k, 1});
        dst = md({n, k}, dt::f32, {k, 1});
        po.append_sum(1.0f);
        break;
      case kInputGrad:  // dy[m, n] times w[n, k]
        src = md({m, n}, in, {n, 1});
        wei = md({n, k}, in, {k, 1});
        dst = md({m, k}, dt::f32, {k, 1});
        break;
    }
    Entry e;
    e.key = key;
    dnnl::primitive_attr attr;
    attr.set_post_ops(po);
    attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
    OneThread();
    try {
      dnnl::matmul::primitive_desc pd(dnnl::matmul::desc(src, wei, bias, dst), attr, eng);
      if (std::string(pd.impl_info_str()).rfind("ref", 0) == 0) {
        e.ref = true;
        return e;
      }
      e.prim = dnnl::matmul(pd);
      e.src = dnnl::memory(src, eng, DNNL_MEMORY_NONE);
      e.wei = dnnl::memory(wei, eng, DNNL_MEMORY_NONE);
      if (!bias.is_zero()) e.bias = dnnl::memory(bias, eng, DNNL_MEMORY_NONE);
      e.dst = dnnl::memory(dst, eng, DNNL_MEMORY_NONE);
      e.scratch_buf.resize(pd.scratchpad_desc().get_size());
      e.scratch = dnnl::memory(pd.scratchpad_desc(), eng, e.scratch_buf.data());
    } catch (const dnnl::error&) {
      e.ref = true;  // no implementation at all: OpenBLAS runs it
    }
    return e;
  }

  // One product on the entry's matmul. The C API takes the arguments from
  // the stack (the C++ one wants a std::unordered_map per call).
  void Run(Entry* e, const void* src, const void* wei, const float* bias, float* dst) {
    e->src.set_data_handle(const_cast<void*>(src));
    e->wei.set_data_handle(const_cast<void*>(wei));
    e->dst.set_data_handle(dst);
    dnnl_exec_arg_t args[5] = {{DNNL_ARG_SRC, e->src.get()},
                               {DNNL_ARG_WEIGHTS, e->wei.get()},
                               {DNNL_ARG_DST, e->dst.get()},
                               {DNNL_ARG_SCRATCHPAD, e->scratch.get()},
                               {DNNL_ARG_BIAS, nullptr}};
    int nargs = 4;
    if (bias != nullptr) {
      e->bias.set_data_handle(const_cast<float*>(bias));
      args[nargs++].memory = e->bias.get();
    }
    OneThread();
    g_onednn_products.fetch_add(1, std::memory_order_relaxed);
    dnnl::error::wrap_c_api(dnnl_primitive_execute(e->prim.get(), strm.get(), nargs, args), "matmul");
    dnnl::error::wrap_c_api(dnnl_stream_wait(strm.get()), "matmul");
  }
};

std::string TrainGemm::Bf16Method() {
  if (!OneDnnForBf16(kForwardRelu, 256, 256, 256)) return "rounded-fp32";
  Impl impl;
  Entry* e = impl.Get({kForwardRelu, true, 256, 256, 256});
  return e->ref ? "rounded-fp32" : "onednn";
}

uint64_t TrainGemm::OneDnnProducts() { return g_onednn_products.load(std::memory_order_relaxed); }

TrainGemm::TrainGemm() = default;
TrainGemm::~TrainGemm() = default;
TrainGemm::TrainGemm(TrainGemm&&) noexcept = default;
TrainGemm& TrainGemm::operator=(TrainGemm&&) noexcept = default;

TrainGemm::Impl* TrainGemm::impl() {
  if (!impl_) impl_ = std::make_unique<Impl>();
  return impl_.get();
}

TrainGemm::Entry* TrainGemm::Matmul(int op, int m, int n, int k) {
  const bool bf16 = precision_ == DensePrecision::kBf16;
  const Op o = static_cast<Op>(op);
  const bool want = m > 0 && n > 0 && k > 0 &&
                    (bf16 ? OneDnnForBf16(o, m, n, k)
                          : fp32_lib_ == GemmLibrary::kOneDnn ||
                                (fp32_lib_ == GemmLibrary::kAuto && OneDnnForFp32(o, m, n, k)));
  if (!want) return nullptr;
  Entry* e = impl()->Get({o, bf16, m, n, k});
  return e->ref ? nullptr : e;
}

void TrainGemm::Forward(const float* x, const float* w, const float* bias, int m, int n, int k, bool relu, float* y) {
  const bool bf16 = precision_ == DensePrecision::kBf16;
  if (Entry* e = Matmul(relu ? kForwardRelu : kForward, m, n, k)) {
    Impl* d = impl();
    if (bf16) {
      ToBf16(x, static_cast<size_t>(m) * k, &d->a16);
      ToBf16(w, static_cast<size_t>(n) * k, &d->b16);
      d->Run(e, d->a16.data(), d->b16.data(), bias, y);
    } else {
      d->Run(e, x, w, bias, y);
    }
  } else if (bf16) {
    Impl* d = impl();
    BlasForward(Rounded(x, static_cast<size_t>(m) * k, &d->ar), Rounded(w, static_cast<size_t>(n) * k, &d->br), bias,
                m, n, k, relu, y);
  } else {
    BlasForward(x, w, bias, m, n, k, relu, y);
  }
}

void TrainGemm::Backward(const float* dy, const float* x, const float* w, int m, int n, int k, float* dw, float* dx) {
  const bool bf16 = precision_ == DensePrecision::kBf16;
  const size_t mn = static_cast<size_t>(m) * n, mk = static_cast<size_t>(m) * k, nk = static_cast<size_t>(n) * k;
  // In bf16, dy's bf16 copy (a16) or bf16-rounded copy (ar) serves both products.
  bool dy16 = false, dyr = false;
  if (dw != nullptr) {
    if (Entry* e = Matmul(kWeightGrad, m, n, k)) {
      Impl* d = impl();
      if (bf16) {
        ToBf16(dy, mn, &d->a16);
        dy16 = true;
        ToBf16(x, mk, &d->b16);
        d->Run(e, d->a16.data(), d->b16.data(), nullptr, dw);
      } else {
        d->Run(e, dy, x, nullptr, dw);
      }
    } else if (bf16) {
      Impl* d = impl();
      dyr = true;
      BlasWeightGrad(Rounded(dy, mn, &d->ar), Rounded(x, mk, &d->br), m, n, k, dw);
    } else {
      BlasWeightGrad(dy, x, m, n, k, dw);
    }
  }
  if (dx != nullptr) {
    if (Entry* e = Matmul(kInputGrad, m, n, k)) {
      Impl* d = impl();
      if (bf16) {
        if (!dy16) ToBf16(dy, mn, &d->a16);
        ToBf16(w, nk, &d->b16);
        d->Run(e, d->a16.data(), d->b16.data(), nullptr, dx);
      } else {
        d->Run(e, dy, w, nullptr, dx);
      }
    } else if (bf16) {
      Impl* d = impl();
      const float* dyb = dyr ? d->ar.data() : Rounded(dy, mn, &d->ar);
      BlasInputGrad(dyb, Rounded(w, nk, &d->br), m, n, k, dx);
    } else {
      BlasInputGrad(dy, w, m, n, k, dx);
    }
  }
}

}  // namespace embark
