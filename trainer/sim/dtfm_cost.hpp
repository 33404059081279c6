#pragma once
// DT-FM's scheduling cost model (Yuan et al., "Decentralized Training of Foundation Models
// in Heterogeneous Environments", NeurIPS 2022, section 3; DS3Lab/DT-FM,
// scheduler/heuristic_evolutionary_solver/scheduler.py). D devices are split into D_PP
// groups of D_DP (a balanced partition); each group runs one pipeline stage as D_DP
// data-parallel replicas. Over netem's closed-form terms (NetworkModel::alpha, beta: one-way
// latency and seconds per payload byte of the path a->b, host NIC shares included):
//
// - data parallelism, a sharded parameter server per group: device i of group g sends and
//   receives 1/D_DP of its stage's gradient to and from every other member,
//     DP(g) = max_i sum_{j in g, j != i} 2 (alpha(i, j) + c_DP / D_DP * beta(i, j)),
//   and the step waits for the slowest group: DP = max_g DP(g).
// - pipeline parallelism: between two groups g, h the D_DP pipelines pair their devices by
//   a perfect matching; the pair that takes longest sets the pace, so the cost is the
//   bottleneck perfect matching  B(g, h) = min_matching max_(i,j) (alpha + c_PP beta), with
//   alpha + c_PP beta the mean of the two directions (activations go forward, their
//   gradients back). The stages' order is the shortest open path through all groups in
//   the complete graph weighted by B (an open-loop travelling salesman path; exact, by
//   dynamic programming over subsets, for D_PP <= kMaxStages): PP = that path's length.
// - total = DP + 2 PP, as the paper's scheduler scores a candidate (the 2: forward
//   activations and backward gradients, each over every boundary once per step).
//
// c_DP: the gradient bytes of the mean stage (every parameter's gradient at
// precision.grads, or net.codec's encoded size, / D_PP; the paper takes 1.3B x 4 bytes x
// 3/24). c_PP: the activations one pipeline sends over one boundary per step,
// (batch / D_DP) x seq_len x n_embd x bytes at precision.compute. DT-FM's scheduler code
// uses its own figures (config.py: 1 GB / 0.28 GB for its first three scenarios); `dtbench
// plan --c-dp / --c-pp` takes them (results/dtfm/README.md). TP must be 1: the partition
// is over single devices, as in the paper.
#include <vector>

#include "network.hpp"
#include "parallel/grid.hpp"
#include "sim/sim_config.hpp"

namespace dtb::sim::dtfm {

inline constexpr int kMaxStages = 16;  // the TSP's subset table: 2^16 x 16 entries

struct Volumes {
  double dp_bytes = 0;  // c_DP: one stage's gradient
  double pp_bytes = 0;  // c_PP: one pipeline's activations over one boundary, per step
};
// GIVEN's fields > 0 replace the model's figures (`dtbench plan --c-dp / --c-pp`: e.g.
// DT-FM's scheduler code's volumes, results/dtfm/README.md).
Volumes volumes(const SimSettings& s, const Volumes& given = {});

// The model's edge weights in seconds, per ordered pair of devices (world ranks).
struct EdgeCosts {
  int devices = 0, dp = 1, pp = 1;  // dp: devices per group (D_DP); pp: groups (D_PP)
  std::vector<double> dp_edge;      // 2 (alpha(a, b) + c_DP / D_DP beta(a, b))
  std::vector<double> pp_edge;      // alpha + c_PP beta, mean of a->b and b->a
  double dp_cost(int a, int b) const { return dp_edge[size_t(a) * size_t(devices) + size_t(b)]; }
  double pp_cost(int a, int b) const { return pp_edge[size_t(a) * size_t(devices) + size_t(b)]; }
};
EdgeCosts edge_costs(const netem::NetworkModel& net, const par::Layout& grid, const Volumes& v);

using Group = std::vector<int>;  // the devices of one group

// DP(g): the slowest member's parameter-server time within its group.
double group_dp_cost(const EdgeCosts& e, const Group& g);

// B(g, h) and the pairing that attains it: match[i] = the index in H of G[i]'s partner.
struct Matching {
  double bottleneck = 0;
  std::vector<int> match;
};
Matching bottleneck_matching(const EdgeCosts& e, const Group& g, const Group& h);

// The shortest open path through N nodes (DIST: n x n, symmetric), any start and end.
struct Path {
  double length = 0;
  std::vector<int> order;
};
Path open_tsp_path(const std::vector<double>& dist, int n);

struct Cost {
  double dp = 0, pp = 0;  // pp: one direction's path length
  double total() const { return dp + 2 * pp; }
};

// The cost of a balanced partition with the best stage order and pairings.
Cost partition_cost(const EdgeCosts& e, const std::vector<Group>& groups);
// That best order and pairing as a placement (TP = 1): pipeline k's stage s is played by
// the device ranks[k + s D_DP] (the trainer's grid order, parallel/grid.hpp).
par::Placement realize(const EdgeCosts& e, const std::vector<Group>& groups);
// The cost of a given placement, its order and pairing as they are (Megatron's order, a
// random permutation): the groups are the grid's stages, B the slowest of its pairs.
Cost placement_cost(const EdgeCosts& e, const par::Placement& p);

}  // namespace dtb::sim::dtfm
