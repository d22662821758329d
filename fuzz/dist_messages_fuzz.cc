// Fuzz target for the distributed training messages (dist/): the sparse
// side's key requests, row replies and gradient pushes, the dense
// allreduce's slices (every wire compression) and the validation scores.
// A two-rank job runs as rank 0; "rank 1" answers every exchange with what
// rank 0 sent it (a well-formed message) except the one exchange the input
// picks, which gets the input's bytes. Any bytes must give an error or a
// result of the right shape, never a crash or an allocation the message
// cannot back.
#include <cstdint>
#include <cstring>
#include <vector>

#include "dist/dense.h"
#include "dist/session.h"
#include "dist/sparse.h"
#include "embedding/row_store.h"
#include "fuzz/fuzz_util.h"

using embark::Bytes;
using embark::fuzz::Check;

namespace {

class FuzzComm : public embark::Communicator {
 public:
  FuzzComm(int target, Bytes bytes) : target_(target), bytes_(std::move(bytes)) {}
  int rank() const override { return 0; }
  int size() const override { return 2; }
  embark::Status Exchange(const std::vector<Bytes>& send, std::vector<Bytes>* recv) override {
    recv->assign(2, Bytes());
    (*recv)[0] = send[0];
    (*recv)[1] = calls_++ == target_ ? bytes_ : send[1];
    return embark::Status::OK();
  }
  embark::Status Barrier() override { return embark::Status::OK(); }
  void Abort(int) override {}

 private:
  int target_, calls_ = 0;
  Bytes bytes_;
};

embark::TableConfig Table(const char* name, int dim) {
  embark::TableConfig c;
  c.name = name;
  c.dim = dim;
  return c;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const uint8_t mode = data[0];
  Bytes bytes(reinterpret_cast<const char*>(data + 1), reinterpret_cast<const char*>(data + size));
  FuzzComm comm(mode % 2, bytes);
  switch ((mode / 2) % 4) {
    case 0: {  // sparse fetch (exchange 0: requests, 1: rows), then push
      auto a = embark::NewMemoryStore(Table("embeddings", 4));
      auto b = embark::NewMemoryStore(Table("first_order", 1));
      embark::SparseExchange ex(&comm, {a.get(), b.get()});
      std::vector<uint64_t> keys;
      for (uint64_t k = 1; k <= 16; ++k) keys.push_back(k * 0x9E3779B97F4A7C15ULL);
      embark::StepRows step;
      if (!ex.Fetch(keys, true, true, &step).ok()) return 0;
      Check(step.keys.size() == keys.size() && step.rows.size() == 2 && step.rows[0].size() == keys.size() * 4 &&
            step.rows[1].size() == keys.size());
      for (float& g : step.grads[0]) g = 0.5f;
      FuzzComm push_comm(0, bytes);
      embark::SparseExchange px(&push_comm, {a.get(), b.get()});
      (void)px.Push(step);
      break;
    }
    case 1:
    case 2: {  // dense allreduce (exchange 0: reduce-scatter, 1: allgather)
      static const embark::WireCompression kinds[] = {embark::WireCompression::kNone, embark::WireCompression::kFp16,
                                                      embark::WireCompression::kOneBit};
      const size_t n = 1 + (size > 1 ? data[1] % 300 : 0);
      embark::DenseAllreduce ar(&comm, n, kinds[(mode / 8) % 3]);
      std::vector<float> x(n, 0.25f);
      double count = 3;
      (void)ar.Sum(x.data(), &count);
      break;
    }
    case 3: {  // validation scores
      std::vector<Bytes> recv(2);
      embark::AppendOne(&recv[0], uint64_t{1});  // a well-formed message: one score
      embark::AppendOne(&recv[0], 0.5);
      embark::AppendOne(&recv[0], 1.0f);
      recv[1] = recv[0];
      recv[mode % 2] = bytes;
      std::vector<double> probs;
      std::vector<float> labels;
      if (embark::ReadScores(recv, &probs, &labels).ok()) Check(probs.size() == labels.size());
      break;
    }
  }
  return 0;
}
