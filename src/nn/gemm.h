// The inference GEMM: y = act(x W^T + b) with every output computed as
// bias + one fused-multiply-add chain over the inputs in index order. A row's
// result therefore never depends on how many rows share its call or where it
// sits among them, which BLAS does not promise (OpenBLAS picks kernels and
// blockings by shape). That is what lets `embark serve`, batching requests
// as they arrive, answer bit for bit what `embark predict` writes.
//
// Weights are packed once into panels of kPanel output columns (in x kPanel
// floats each, zero padded) so the kernel streams them contiguously.
#pragma once

#include <cstddef>

namespace embark {

constexpr int kPanel = 16;

// Floats needed for the packed form of an [out x in] weight matrix.
size_t PackedSize(int in, int out);

// Packs w [out x in], row-major (one row per output), into `packed`.
void PackWeights(const float* w, int in, int out, float* packed);

// y [rows x out] = x [rows x in] W^T + bias, then ReLU when `relu`.
void InferenceLinear(const float* x, int rows, int in, const float* packed, const float* bias, int out, float* y,
                     bool relu);

}  // namespace embark
