// The MPI communicator (built when CMake finds MPI). All traffic is
// non-blocking point-to-point, polled against a deadline, so a peer that dies
// or hangs turns into an error naming it instead of a wait forever. Polling
// backs off to short sleeps, so ranks oversubscribing cores do not spin
// against each other.
#include <mpi.h>

#include <chrono>
#include <climits>
#include <cstdio>
#include <string>
#include <thread>

#include "dist/comm.h"

namespace embark {
namespace {

using Clock = std::chrono::steady_clock;

class MpiCommunicator : public Communicator {
 public:
  MpiCommunicator(int rank, int size, double timeout_s) : rank_(rank), size_(size), timeout_s_(timeout_s) {}
  ~MpiCommunicator() override { MPI_Finalize(); }

  int rank() const override { return rank_; }
  int size() const override { return size_; }

  Status Exchange(const std::vector<Bytes>& send, std::vector<Bytes>* recv) override {
    if (static_cast<int>(send.size()) != size_) return Status::InvalidArgument("Exchange: one message per rank expected");
    recv->resize(size_);
    const int tag = static_cast<int>((seq_++ % 16384) * 2);
    std::vector<uint64_t> out_sizes(size_), in_sizes(size_);
    std::vector<MPI_Request> reqs;
    std::vector<int> from;  // peer of each receive request, -1 for sends
    for (int p = 0; p < size_; ++p) {
      if (p == rank_) continue;
      out_sizes[p] = send[p].size();
      if (send[p].size() > static_cast<size_t>(INT_MAX))
        return Status::InvalidArgument("Exchange: a message over 2 GiB to rank " + std::to_string(p));
      reqs.emplace_back();
      from.push_back(p);
      MPI_Irecv(&in_sizes[p], 1, MPI_UINT64_T, p, tag, MPI_COMM_WORLD, &reqs.back());
      reqs.emplace_back();
      from.push_back(-1);
      MPI_Isend(&out_sizes[p], 1, MPI_UINT64_T, p, tag, MPI_COMM_WORLD, &reqs.back());
    }
    EMBARK_RETURN_IF_ERROR(WaitAll(&reqs, from, "message sizes"));
    reqs.clear();
    from.clear();
    for (int p = 0; p < size_; ++p) {
      if (p == rank_) {
        (*recv)[p] = send[p];
        continue;
      }
      if (in_sizes[p] > static_cast<uint64_t>(INT_MAX))
        return Status::Corruption("rank " + std::to_string(p) + " announced a message of " +
                                  std::to_string(in_sizes[p]) + " bytes");
      (*recv)[p].resize(in_sizes[p]);
      if (in_sizes[p] > 0) {
        reqs.emplace_back();
        from.push_back(p);
        MPI_Irecv((*recv)[p].data(), static_cast<int>(in_sizes[p]), MPI_BYTE, p, tag + 1, MPI_COMM_WORLD, &reqs.back());
      }
      if (!send[p].empty()) {
        reqs.emplace_back();
        from.push_back(-1);
        MPI_Isend(send[p].data(), static_cast<int>(send[p].size()), MPI_BYTE, p, tag + 1, MPI_COMM_WORLD,
                  &reqs.back());
        bytes_sent_ += send[p].size();
      }
      bytes_sent_ += sizeof(uint64_t);
    }
    return WaitAll(&reqs, from, "data");
  }

  Status Barrier() override {
    std::vector<MPI_Request> reqs(1);
    MPI_Ibarrier(MPI_COMM_WORLD, &reqs[0]);
    return WaitAll(&reqs, {-2}, "barrier");
  }

  void Abort(int code) override { MPI_Abort(MPI_COMM_WORLD, code); }

 private:
  // Polls until every request completes or the deadline passes; then names
  // the ranks whose messages never came.
  Status WaitAll(std::vector<MPI_Request>* reqs, const std::vector<int>& from, const char* what) {
    const auto deadline = Clock::now() + std::chrono::duration<double>(timeout_s_);
    int spins = 0;
    for (;;) {
      bool pending = false;
      for (auto& r : *reqs) {
        if (r == MPI_REQUEST_NULL) continue;
        int done = 0;
        MPI_Test(&r, &done, MPI_STATUS_IGNORE);
        pending |= !done;
      }
      if (!pending) return Status::OK();
      if (++spins > 200) {
        if (Clock::now() > deadline) break;
        std::this_thread::sleep_for(std::chrono::microseconds(spins > 2000 ? 200 : 20));
      }
    }
    std::string who;
    for (size_t i = 0; i < reqs->size(); ++i) {
      if ((*reqs)[i] == MPI_REQUEST_NULL || from[i] < 0) continue;
      who += (who.empty() ? "" : ", ") + std::to_string(from[i]);
    }
    char buf[160];
    std::snprintf(buf, sizeof(buf), "rank %d: no %s from rank %s within %.0f s (did it die or hang?)", rank_, what,
                  who.empty() ? "(all ranks)" : who.c_str(), timeout_s_);
    return Status::IOError(buf);
  }

  int rank_, size_;
  double timeout_s_;
  uint64_t seq_ = 0;
};

}  // namespace

Result<std::unique_ptr<Communicator>> NewMpiCommunicator(double timeout_s) {
  int provided = 0;
  if (MPI_Init_thread(nullptr, nullptr, MPI_THREAD_SERIALIZED, &provided) != MPI_SUCCESS)
    return Status::IOError("MPI_Init_thread failed");
  if (provided < MPI_THREAD_SERIALIZED) {
    MPI_Finalize();
    return Status::IOError("this MPI library cannot be called from more than one thread (MPI_THREAD_SERIALIZED)");
  }
  int rank = 0, size = 1;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  return std::unique_ptr<Communicator>(new MpiCommunicator(rank, size, timeout_s));
}

}  // namespace embark
