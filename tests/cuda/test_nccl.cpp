// The NCCL backend (collectives/nccl/) on this machine's GPUs, one rank per GPU, under
// mpirun -np P: allreduce, reduce-scatter, allgather, broadcast and reduce on inputs whose
// results are exactly known (small integers: fp32 sums are exact), for counts with even and
// uneven blocks; then SiteAllreduce with every exact MPI allreduce algorithm, through NCCL
// alone (one site), through the host staging path, and across two sites when P >= 2.
// Prints `op count #wrong` lines; exits 1 on any wrong element, 77 (ctest: skipped) with
// the reason when there is no GPU or fewer GPUs than ranks on a node (one GPU: P = 1).
#include <mpi.h>

#include <cstdio>
#include <string>
#include <vector>

#include "algorithms.hpp"
#include "communicator.hpp"
#include "nccl/nccl_comm.hpp"
#include "nccl/site_allreduce.hpp"
#include "partition.hpp"
#include "profile.hpp"
#include "registry.hpp"

namespace {

using namespace dtb::coll;

constexpr int kSkip = 77;
const size_t kCounts[] = {0, 1, 7, 13, 1031, 65537, 1 << 20};

int world_rank() {
  int r = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &r);
  return r;
}
int world_size() {
  int n = 0;
  MPI_Comm_size(MPI_COMM_WORLD, &n);
  return n;
}

// "" when every node has a GPU per rank; else why not (the same answer on every rank).
std::string gpu_shortage() {
  MPI_Comm node = MPI_COMM_NULL;
  MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, world_rank(), MPI_INFO_NULL, &node);
  int local_size = 0;
  MPI_Comm_size(node, &local_size);
  MPI_Comm_free(&node);
  int devices = 0;
  const cudaError_t status = cudaGetDeviceCount(&devices);
  std::string why;
  if (status != cudaSuccess) {
    why = std::string("no CUDA device (cudaGetDeviceCount: ") + cudaGetErrorString(status) + ")";
    cudaGetLastError();
    devices = 0;
  } else if (devices < local_size) {
    why = std::to_string(local_size) + " ranks on a node with " + std::to_string(devices) + " GPU(s)";
  }
  int ok = why.empty() ? 1 : 0, all_ok = 0;
  MPI_Allreduce(&ok, &all_ok, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
  if (all_ok) return "";
  return why.empty() ? "another rank lacks a GPU" : why;
}

// Device floats moved on STREAM (the test's compute stream, non-blocking: plain cudaMemcpy
// would not be ordered with it).
class DeviceFloats {
 public:
  DeviceFloats(size_t n, cudaStream_t stream) : n_(n), stream_(stream) {
    if (n) cuda_rt_check(cudaMalloc(reinterpret_cast<void**>(&p_), n * sizeof(float)));
  }
  ~DeviceFloats() {
    if (p_) cudaFree(p_);
  }
  DeviceFloats(const DeviceFloats&) = delete;
  DeviceFloats& operator=(const DeviceFloats&) = delete;
  float* get() const { return p_; }
  void put(const std::vector<float>& v) {
    if (n_ == 0) return;
    cuda_rt_check(cudaMemcpyAsync(p_, v.data(), n_ * sizeof(float), cudaMemcpyHostToDevice, stream_));
    cuda_rt_check(cudaStreamSynchronize(stream_));
  }
  std::vector<float> get_all() const {
    std::vector<float> v(n_);
    if (n_ == 0) return v;
    cuda_rt_check(cudaMemcpyAsync(v.data(), p_, n_ * sizeof(float), cudaMemcpyDeviceToHost, stream_));
    cuda_rt_check(cudaStreamSynchronize(stream_));
    return v;
  }

 private:
  float* p_ = nullptr;
  size_t n_;
  cudaStream_t stream_;
};

struct Results {
  int wrong_total = 0;
  // Counts the elements of GOT in [first, last) that differ from WANT; rank 0 prints the
  // sum over ranks.
  void report(const std::string& op, size_t count, const std::vector<float>& got, const std::vector<float>& want,
              size_t first, size_t last) {
    long long wrong = 0;
    for (size_t i = first; i < last; ++i) wrong += got[i] != want[i];
    long long all = 0;
    MPI_Allreduce(&wrong, &all, 1, MPI_LONG_LONG, MPI_SUM, MPI_COMM_WORLD);
    if (world_rank() == 0) std::printf("%-40s %9zu %7lld %s\n", op.c_str(), count, all, all ? "FAIL" : "OK");
    wrong_total += int(all);
  }
};

float value(int rank, size_t i) { return float((rank + 1) * int(i % 13 + 1)); }
float summed(int p, size_t i) { return float(p * (p + 1) / 2 * int(i % 13 + 1)); }

void nccl_ops(Communicator& comm, cudaStream_t compute, Results& out) {
  NcclComm nccl(comm);
  const int p = comm.size(), r = comm.rank();
  for (size_t n : kCounts) {
    std::vector<float> mine(n), sums(n), owned(n), garbage(n, -1.0f);
    for (size_t i = 0; i < n; ++i) {
      mine[i] = value(r, i);
      sums[i] = summed(p, i);
      owned[i] = float(block_of(n, p, i) * 100 + int(i % 7));
    }
    DeviceFloats d(n, compute);
    auto run = [&](const std::vector<float>& in, auto op) {
      d.put(in);
      op();
      nccl.wait(compute);
      cuda_rt_check(cudaStreamSynchronize(compute));
      return d.get_all();
    };
    out.report("nccl allreduce", n, run(mine, [&] { nccl.allreduce(d.get(), n, compute); }), sums, 0, n);
    const Range block = block_range(n, p, r);
    out.report("nccl reducescatter", n, run(mine, [&] { nccl.reduce_scatter(d.get(), n, compute); }), sums,
               block.offset, block.end());
    std::vector<float> partial = garbage;
    for (size_t i = block.offset; i < block.end(); ++i) partial[i] = owned[i];
    out.report("nccl allgather", n, run(partial, [&] { nccl.allgather(d.get(), n, compute); }), owned, 0, n);
    const int root = p - 1;
    out.report("nccl broadcast (root p-1)", n,
               run(r == root ? owned : garbage, [&] { nccl.broadcast(d.get(), n, root, compute); }), owned, 0, n);
    const std::vector<float> reduced = run(mine, [&] { nccl.reduce(d.get(), n, 0, compute); });
    out.report("nccl reduce (root 0)", n, reduced, sums, 0, r == 0 ? n : 0);
  }
}

void site_allreduce(Communicator& comm, const std::string& where, bool stage_always, cudaStream_t compute,
                    Results& out) {
  const int p = comm.size(), r = comm.rank();
  for (const Algorithm& algo : all_algorithms()) {
    if (algo.op != Op::kAllreduce || algo.estimate) continue;
    SiteAllreduce reducer(comm, algo, CollParams{}, Compression{}, stage_always);
    for (size_t n : kCounts) {
      std::vector<float> mine(n), sums(n);
      for (size_t i = 0; i < n; ++i) {
        mine[i] = value(r, i);
        sums[i] = summed(p, i);
      }
      DeviceFloats d(n, compute);
      d.put(mine);
      reducer.run(d.get(), n, compute);
      cuda_rt_check(cudaStreamSynchronize(compute));
      const std::string name =
          "site allreduce " + std::string(algo.name) + " " + where + (reducer.staged() ? " staged" : " nccl");
      out.report(name, n, d.get_all(), sums, 0, n);
    }
  }
}

dtb::netem::Profile two_sites(int p) {
  dtb::netem::Profile prof = dtb::netem::uniform_profile(p, 0, 0);
  prof.name = "two-sites";
  prof.sites = {{"a", prof.sites[0].intra}, {"b", prof.sites[0].intra}};
  prof.inter.assign(4, prof.sites[0].intra);
  for (int q = 0; q < p; ++q) prof.rank_site[size_t(q)] = q < p / 2 ? 0 : 1;
  return prof;
}

int run() {
  const int p = world_size();
  if (const std::string why = gpu_shortage(); !why.empty()) {
    if (world_rank() == 0) std::printf("SKIP test_nccl (%d ranks): %s\n", p, why.c_str());
    return kSkip;
  }
  Communicator comm(MPI_COMM_WORLD, dtb::netem::uniform_profile(p, 0, 0), dtb::netem::ClockKind::kVirtual);
  const int device = bind_local_device(comm);
  if (comm.rank() == 0) {
    int version = 0;
    ncclGetVersion(&version);
    std::printf("test_nccl: %d rank(s), NCCL %d, rank 0 on device %d\n%-40s %9s %7s\n", p, version, device, "op",
                "count", "#wrong");
  }
  cudaStream_t compute = nullptr;
  cuda_rt_check(cudaStreamCreateWithFlags(&compute, cudaStreamNonBlocking));
  Results out;
  nccl_ops(comm, compute, out);
  site_allreduce(comm, "one site", false, compute, out);
  site_allreduce(comm, "one site", true, compute, out);
  if (p >= 2) {
    Communicator split(MPI_COMM_WORLD, two_sites(p), dtb::netem::ClockKind::kVirtual);
    site_allreduce(split, "two sites", false, compute, out);
  }
  cudaStreamDestroy(compute);
  if (comm.rank() == 0) std::printf("test_nccl: %d wrong element(s)\n", out.wrong_total);
  return out.wrong_total == 0 ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  int rc = 1;
  try {
    rc = run();
  } catch (const std::exception& e) {
    std::printf("FAIL test_nccl rank %d: %s\n", world_rank(), e.what());
    MPI_Abort(MPI_COMM_WORLD, 1);
  }
  MPI_Finalize();
  return rc;
}
