#pragma once
// NCCL for GPU ranks (built with -DDTB_CUDA=ON). One NcclComm per group (TP, DP, PP, a
// site): NCCL's unique id is made on the group's rank 0 and broadcast over MPI, then every
// rank joins. Operations run on the communicator's own stream, ordered behind the compute
// stream with an event, so they overlap whatever compute comes after them; wait() orders
// compute behind them again. Buffers are fp32 device memory, reduced in place, cut into
// per-rank blocks by partition.hpp's rule exactly as the MPI algorithms cut them.
//
// What NCCL carries is not timed by netem: it is the fast path inside a site. Traffic
// between sites goes through SiteAllreduce (site_allreduce.hpp), which uses the MPI path.
#include <cuda_runtime_api.h>
#include <nccl.h>

#include <cstddef>
#include <source_location>
#include <stdexcept>
#include <string>

#include "communicator.hpp"

namespace dtb::coll {

struct NcclError : std::runtime_error {
  using std::runtime_error::runtime_error;
};
void nccl_check(ncclResult_t status, std::source_location at = std::source_location::current());
void cuda_rt_check(cudaError_t status, std::source_location at = std::source_location::current());

// Makes device (node-local rank) % (devices on the node) current for this rank and returns
// it: the usual one-GPU-per-rank binding. Collective over WORLD (a shared-memory split).
// Throws NcclError when the node has no CUDA device.
int bind_local_device(const Communicator& world);

class NcclComm {
 public:
  // Collective over GROUP, on the current CUDA device.
  explicit NcclComm(const Communicator& group);
  ~NcclComm();
  NcclComm(const NcclComm&) = delete;
  NcclComm& operator=(const NcclComm&) = delete;

  int rank() const { return rank_; }
  int size() const { return size_; }
  cudaStream_t stream() const { return stream_; }

  // In place on COUNT floats at DATA (device memory), enqueued after all work already on
  // COMPUTE; the host returns at once.
  void allreduce(float* data, size_t count, cudaStream_t compute);
  // Rank r's block_range(count, size, r) ends holding the sum; the rest is left as it was
  // or partially reduced (scratch), as ring_reduce_scatter.
  void reduce_scatter(float* data, size_t count, cudaStream_t compute);
  // Rank r's block_range(count, size, r) in, the whole buffer out.
  void allgather(float* data, size_t count, cudaStream_t compute);
  void broadcast(float* data, size_t count, int root, cudaStream_t compute);
  void reduce(float* data, size_t count, int root, cudaStream_t compute);  // the sum on ROOT

  // COMPUTE waits (on the GPU) for everything enqueued here so far.
  void wait(cudaStream_t compute);
  // The host waits for everything enqueued here so far.
  void synchronize();

 private:
  void after(cudaStream_t compute);  // the comm stream waits for COMPUTE's work so far

  ncclComm_t comm_ = nullptr;
  cudaStream_t stream_ = nullptr;
  cudaEvent_t compute_done_ = nullptr, comm_done_ = nullptr;
  int rank_ = 0, size_ = 1;
};

}  // namespace dtb::coll
