#include "nccl/nccl_comm.hpp"

#include <mpi.h>

#include "partition.hpp"

namespace dtb::coll {

namespace {
std::string where(const std::source_location& at) {
  return std::string(at.file_name()) + ":" + std::to_string(at.line());
}
}  // namespace

void nccl_check(ncclResult_t status, std::source_location at) {
  if (status != ncclSuccess) throw NcclError(where(at) + ": NCCL error: " + ncclGetErrorString(status));
}

void cuda_rt_check(cudaError_t status, std::source_location at) {
  if (status != cudaSuccess)
    throw NcclError(where(at) + ": CUDA error " + cudaGetErrorName(status) + ": " + cudaGetErrorString(status));
}

int bind_local_device(const Communicator& world) {
  MPI_Comm node = MPI_COMM_NULL;
  MPI_Comm_split_type(world.mpi_comm(), MPI_COMM_TYPE_SHARED, world.rank(), MPI_INFO_NULL, &node);
  int local = 0;
  MPI_Comm_rank(node, &local);
  MPI_Comm_free(&node);
  int devices = 0;
  if (cudaGetDeviceCount(&devices) != cudaSuccess || devices == 0) {
    cudaGetLastError();
    throw NcclError("rank " + std::to_string(world.rank()) + ": no CUDA device on this node");
  }
  const int device = local % devices;
  cuda_rt_check(cudaSetDevice(device));
  return device;
}

NcclComm::NcclComm(const Communicator& group) : rank_(group.rank()), size_(group.size()) {
  // The id is control plane (a few bytes, once): plain MPI, not timed by netem.
  ncclUniqueId id{};
  if (rank_ == 0) nccl_check(ncclGetUniqueId(&id));
  MPI_Bcast(&id, int(sizeof id), MPI_BYTE, 0, group.mpi_comm());
  cuda_rt_check(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
  cuda_rt_check(cudaEventCreateWithFlags(&compute_done_, cudaEventDisableTiming));
  cuda_rt_check(cudaEventCreateWithFlags(&comm_done_, cudaEventDisableTiming));
  nccl_check(ncclCommInitRank(&comm_, size_, id, rank_));
}

NcclComm::~NcclComm() {
  // No throwing here: finish what is queued, then release.
  if (stream_) cudaStreamSynchronize(stream_);
  if (comm_) ncclCommDestroy(comm_);
  if (comm_done_) cudaEventDestroy(comm_done_);
  if (compute_done_) cudaEventDestroy(compute_done_);
  if (stream_) cudaStreamDestroy(stream_);
}

void NcclComm::after(cudaStream_t compute) {
  cuda_rt_check(cudaEventRecord(compute_done_, compute));
  cuda_rt_check(cudaStreamWaitEvent(stream_, compute_done_, 0));
}

void NcclComm::wait(cudaStream_t compute) {
  cuda_rt_check(cudaEventRecord(comm_done_, stream_));
  cuda_rt_check(cudaStreamWaitEvent(compute, comm_done_, 0));
}

void NcclComm::synchronize() { cuda_rt_check(cudaStreamSynchronize(stream_)); }

void NcclComm::allreduce(float* data, size_t count, cudaStream_t compute) {
  if (count == 0) return;
  after(compute);
  nccl_check(ncclAllReduce(data, data, count, ncclFloat32, ncclSum, comm_, stream_));
}

void NcclComm::reduce(float* data, size_t count, int root, cudaStream_t compute) {
  if (count == 0) return;
  after(compute);
  nccl_check(ncclReduce(data, data, count, ncclFloat32, ncclSum, root, comm_, stream_));
}

void NcclComm::broadcast(float* data, size_t count, int root, cudaStream_t compute) {
  if (count == 0) return;
  after(compute);
  nccl_check(ncclBroadcast(data, data, count, ncclFloat32, root, comm_, stream_));
}

void NcclComm::reduce_scatter(float* data, size_t count, cudaStream_t compute) {
  if (count == 0) return;
  after(compute);
  const Range mine = block_range(count, size_, rank_);
  if (count % size_t(size_) == 0) {
    // Equal blocks: NCCL's own, in place (recvbuff = sendbuff + rank * recvcount).
    nccl_check(ncclReduceScatter(data, data + mine.offset, mine.count, ncclFloat32, ncclSum, comm_, stream_));
    return;
  }
  // Uneven blocks: one reduce per block to its owner, fused into one NCCL group.
  nccl_check(ncclGroupStart());
  for (int b = 0; b < size_; ++b) {
    const Range r = block_range(count, size_, b);
    if (r.count > 0)
      nccl_check(ncclReduce(data + r.offset, data + r.offset, r.count, ncclFloat32, ncclSum, b, comm_, stream_));
  }
  nccl_check(ncclGroupEnd());
}

void NcclComm::allgather(float* data, size_t count, cudaStream_t compute) {
  if (count == 0) return;
  after(compute);
  const Range mine = block_range(count, size_, rank_);
  if (count % size_t(size_) == 0) {
    // In place: sendbuff = recvbuff + rank * sendcount.
    nccl_check(ncclAllGather(data + mine.offset, data, mine.count, ncclFloat32, comm_, stream_));
    return;
  }
  nccl_check(ncclGroupStart());
  for (int b = 0; b < size_; ++b) {
    const Range r = block_range(count, size_, b);
    if (r.count > 0)
      nccl_check(ncclBroadcast(data + r.offset, data + r.offset, r.count, ncclFloat32, b, comm_, stream_));
  }
  nccl_check(ncclGroupEnd());
}

}  // namespace dtb::coll
