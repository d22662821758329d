#include "dist/comm.h"

#include <cstdlib>

namespace embark {
namespace {

class LocalCommunicator : public Communicator {
 public:
  int rank() const override { return 0; }
  int size() const override { return 1; }
  Status Exchange(const std::vector<Bytes>& send, std::vector<Bytes>* recv) override {
    if (send.size() != 1) return Status::InvalidArgument("Exchange: one message per rank expected");
    recv->assign(send.begin(), send.end());
    return Status::OK();
  }
  Status Barrier() override { return Status::OK(); }
  void Abort(int code) override { std::exit(code); }
};

int EnvInt(const char* name) {
  const char* v = std::getenv(name);
  return v ? std::atoi(v) : 0;
}

}  // namespace

std::unique_ptr<Communicator> NewLocalCommunicator() { return std::make_unique<LocalCommunicator>(); }

bool LaunchedUnderMpi() {
  return EnvInt("OMPI_COMM_WORLD_SIZE") > 1 || EnvInt("PMI_SIZE") > 1 || EnvInt("PMIX_SIZE") > 1 ||
         (EnvInt("SLURM_NTASKS") > 1 && std::getenv("SLURM_PROCID") != nullptr && std::getenv("PMI_RANK") != nullptr);
}

#ifndef EMBARK_HAVE_MPI
Result<std::unique_ptr<Communicator>> NewMpiCommunicator(double) {
  return Status::InvalidArgument(
      "this process runs under mpirun/srun, but embark was built without MPI (install libopenmpi-dev and rebuild)");
}
#endif

}  // namespace embark
