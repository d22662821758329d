// The processes of a job and the two collective operations embark needs:
// a personalised exchange (every rank sends its own bytes to every rank) and
// a barrier. Training builds everything else on Exchange: the sparse
// row/gradient traffic and the dense allreduce (src/dist/dense.h).
//
// A Communicator is an object that is passed in, never global state, so the
// single-process path (LocalCommunicator) and tests without MPI work the
// same way. Calls are collective: every rank makes the same calls in the
// same order. A rank that stops answering makes Exchange fail on its peers
// within the timeout, with an error that names it.
#pragma once

#include <algorithm>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "util/status.h"

namespace embark {

using Bytes = std::vector<char>;

class Communicator {
 public:
  virtual ~Communicator() = default;
  virtual int rank() const = 0;
  virtual int size() const = 0;

  // Sends send[p] to rank p for every p (send.size() == size(); send[rank()]
  // is delivered to ourselves) and fills recv[p] with what p sent us.
  virtual Status Exchange(const std::vector<Bytes>& send, std::vector<Bytes>* recv) = 0;
  virtual Status Barrier() = 0;
  // Ends every process of the job (after a failure on this one, so that the
  // others do not wait for it).
  virtual void Abort(int code) = 0;

  // Bytes this rank has sent to other ranks so far.
  uint64_t bytes_sent() const { return bytes_sent_; }

 protected:
  uint64_t bytes_sent_ = 0;
};

// One process: Exchange hands send[0] back.
std::unique_ptr<Communicator> NewLocalCommunicator();

// True when this process was started by mpirun/srun with more than one rank
// (OpenMPI's, PMI's or Slurm's environment says so).
bool LaunchedUnderMpi();

// MPI_COMM_WORLD (initialises MPI; MPI_Finalize when destroyed). timeout_s
// bounds how long Exchange waits for a peer. Fails when this build has no
// MPI.
Result<std::unique_ptr<Communicator>> NewMpiCommunicator(double timeout_s);

// Helpers for message buffers.
template <typename T>
void Append(Bytes* b, const T* p, size_t n) {
  const char* c = reinterpret_cast<const char*>(p);
  b->insert(b->end(), c, c + n * sizeof(T));
}
template <typename T>
void AppendOne(Bytes* b, const T& v) {
  Append(b, &v, 1);
}

// Reads a message written with Append; every read is bounds-checked, so a
// malformed message is an error, never an overrun.
class BytesReader {
 public:
  explicit BytesReader(const Bytes& b) : p_(b.data()), end_(b.data() + b.size()) {}
  template <typename T>
  bool Read(T* out, size_t n) {
    if (n > left() / sizeof(T)) return false;  // n * sizeof(T) could wrap
    std::copy(p_, p_ + n * sizeof(T), reinterpret_cast<char*>(out));
    p_ += n * sizeof(T);
    return true;
  }
  template <typename T>
  bool ReadOne(T* out) {
    return Read(out, 1);
  }
  size_t left() const { return static_cast<size_t>(end_ - p_); }
  // Whether exactly n items of `item_bytes` bytes are left (no overflow for
  // any n a message claims).
  bool LeftIs(uint64_t n, size_t item_bytes) const { return n <= left() / item_bytes && n * item_bytes == left(); }

 private:
  const char* p_;
  const char* end_;
};

}  // namespace embark
