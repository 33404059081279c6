#include "nccl/site_allreduce.hpp"

#include <stdexcept>

namespace dtb::coll {

SiteAllreduce::SiteAllreduce(Communicator& group, const Algorithm& algo, CollParams params, Compression compression,
                             bool stage_always)
    : group_(group), algo_(algo), params_(params), compression_(compression) {
  if (algo.op != Op::kAllreduce)
    throw std::invalid_argument(std::string("SiteAllreduce: '") + algo.name + "' is not an allreduce");
  SiteGroups& g = group_.site_groups();
  staged_ = stage_always || g.num_sites > 1;
  site_ = std::make_unique<NcclComm>(g.site);
}

SiteAllreduce::~SiteAllreduce() {
  site_.reset();
  if (host_) cudaFreeHost(host_);
}

std::span<float> SiteAllreduce::staging(size_t count) {
  if (count > host_count_) {
    if (host_) cuda_rt_check(cudaFreeHost(host_));
    host_ = nullptr;
    cuda_rt_check(cudaMallocHost(reinterpret_cast<void**>(&host_), count * sizeof(float)));
    host_count_ = count;
  }
  return {host_, count};
}

void SiteAllreduce::run(float* data, size_t count, cudaStream_t compute) {
  if (!staged_) {
    site_->allreduce(data, count, compute);
    site_->wait(compute);
    return;
  }
  SiteGroups& g = group_.site_groups();
  site_->reduce(data, count, 0, compute);
  if (g.leaders) {
    const std::span<float> host = staging(count);
    cuda_rt_check(cudaMemcpyAsync(host.data(), data, count * sizeof(float), cudaMemcpyDeviceToHost, site_->stream()));
    site_->synchronize();
    algo_.run(*g.leaders, host, params_, compression_);
    cuda_rt_check(cudaMemcpyAsync(data, host.data(), count * sizeof(float), cudaMemcpyHostToDevice, site_->stream()));
  }
  // Enqueued behind the upload on the same stream (leaders); the others' broadcast waits
  // inside NCCL for the leader.
  site_->broadcast(data, count, 0, compute);
  site_->wait(compute);
}

}  // namespace dtb::coll
