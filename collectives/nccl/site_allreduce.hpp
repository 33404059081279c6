#pragma once
// Allreduce of a GPU buffer over a group that may span sites: NCCL inside each site, the
// MPI algorithms (timed by netem, with any codec) between the sites, staged through pinned
// host memory. So the WAN emulation applies to GPU runs too:
//   1. NCCL reduce to the site's leader (its lowest rank, as SiteGroups),
//   2. the leader copies the sum to the host, runs ALGO among the leaders, copies back,
//   3. NCCL broadcast from the leader.
// With one site it is a single NCCL allreduce. The host of a leader blocks in step 2 (it
// is the comm thread's work in wall mode); the other ranks only enqueue.
#include <memory>
#include <span>

#include "codec.hpp"
#include "communicator.hpp"
#include "nccl/nccl_comm.hpp"
#include "registry.hpp"

namespace dtb::coll {

class SiteAllreduce {
 public:
  // Collective over GROUP (which must outlive this). ALGO: an allreduce of registry.hpp
  // (ring, hd, tree, ...), used between the site leaders. STAGE_ALWAYS takes the host
  // path even with one site: it measures the staging and lets one GPU test it.
  SiteAllreduce(Communicator& group, const Algorithm& algo, CollParams params = {}, Compression compression = {},
                bool stage_always = false);
  ~SiteAllreduce();
  SiteAllreduce(const SiteAllreduce&) = delete;
  SiteAllreduce& operator=(const SiteAllreduce&) = delete;

  // In place on COUNT floats of device memory, after the work already on COMPUTE; on
  // return COMPUTE is ordered behind the result.
  void run(float* data, size_t count, cudaStream_t compute);
  bool staged() const { return staged_; }  // whether run() goes through the host

 private:
  std::span<float> staging(size_t count);

  Communicator& group_;
  const Algorithm& algo_;
  CollParams params_;
  Compression compression_;
  bool staged_ = false;
  std::unique_ptr<NcclComm> site_;
  float* host_ = nullptr;  // pinned, host_count_ floats
  size_t host_count_ = 0;
};

}  // namespace dtb::coll
