// MPI's own collectives on the communicator's MPI_Comm: the unshaped baseline that
// `dtbench coll --algo mpi` compares the other algorithms against. They bypass netem (no
// timing header, no shaping, no clock: the virtual clock does not move, so time them on
// the wall clock) and take no codec. Which algorithm runs is Open MPI's choice (its
// `coll tuned` decision rules), so there is no cost formula.
#include <climits>
#include <cstring>
#include <stdexcept>
#include <vector>

#include "algorithms.hpp"
#include "partition.hpp"

namespace dtb::coll {
namespace {

int checked(size_t count) {
  if (count > size_t(INT_MAX)) throw std::length_error("mpi baseline: count exceeds MPI's int");
  return int(count);
}

// Per-rank counts and displacements of the blocks of partition.hpp.
void block_layout(size_t count, int p, std::vector<int>& counts, std::vector<int>& displs) {
  counts.resize(size_t(p));
  displs.resize(size_t(p));
  for (int b = 0; b < p; ++b) {
    const Range r = block_range(count, p, b);
    counts[size_t(b)] = checked(r.count);
    displs[size_t(b)] = checked(r.offset);
  }
}

}  // namespace

void mpi_allreduce(Communicator& comm, std::span<float> data) {
  MPI_Allreduce(MPI_IN_PLACE, data.data(), checked(data.size()), MPI_FLOAT, MPI_SUM, comm.mpi_comm());
}

// MPI_Reduce_scatter in place would put rank r's block at the front of the buffer; a
// scratch receive buffer and one copy keep the block where partition.hpp says.
void mpi_reduce_scatter(Communicator& comm, std::span<float> data) {
  std::vector<int> counts, displs;
  block_layout(data.size(), comm.size(), counts, displs);
  const Range mine = block_range(data.size(), comm.size(), comm.rank());
  const std::span<std::byte> out = comm.scratch(0, mine.count * sizeof(float));
  MPI_Reduce_scatter(data.data(), out.data(), counts.data(), MPI_FLOAT, MPI_SUM, comm.mpi_comm());
  if (mine.count) std::memcpy(data.data() + mine.offset, out.data(), out.size());
}

void mpi_allgather(Communicator& comm, std::span<float> data) {
  std::vector<int> counts, displs;
  block_layout(data.size(), comm.size(), counts, displs);
  MPI_Allgatherv(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, data.data(), counts.data(), displs.data(), MPI_FLOAT,
                 comm.mpi_comm());
}

void mpi_broadcast(Communicator& comm, std::span<float> data, int root) {
  MPI_Bcast(data.data(), checked(data.size()), MPI_FLOAT, root, comm.mpi_comm());
}

}  // namespace dtb::coll
