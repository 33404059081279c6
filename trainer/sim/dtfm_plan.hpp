#pragma once
// `dtbench plan`: DT-FM's scheduler over dtbench's network and simulator. The genetic
// search (dtfm_search.hpp) minimizes the paper's closed form (dtfm_cost.hpp); its best few
// candidates, and Megatron's order, are then run through the simulator (simulator.hpp),
// which sees what the closed form leaves out (the pipeline's boundaries working at once
// and behind compute, where the closed form adds them up; the schedule's bubble; DP
// overlapping only the last backward; the stages' unequal sizes), and the fastest
// simulated one is the plan. Megatron's order is among the candidates because the closed
// form can prefer a placement that the simulator finds slower than it (at GPT3-XL scale,
// pipelines inside a node and DP groups across: see results/dtfm/README.md). Beside it,
// as baselines: Megatron's order (the identity placement: rank = dp + pp D_DP on the
// profile's own sites) and N seeded random placements.
#include <ostream>
#include <string>
#include <vector>

#include "sim/dtfm_search.hpp"
#include "sim/simulator.hpp"

namespace dtb::sim::dtfm {

struct PlanOptions {
  SearchOptions search;
  int random = 20;      // random placements to compare with (their seed: search.seed)
  int candidates = 5;   // the GA's best, run through the simulator
  Volumes given;        // --c-dp / --c-pp: fields > 0 replace the model's c_DP / c_PP
};

struct Scored {
  par::Placement placement;
  Cost cost;          // the closed form of this placement as it is
  double step = 0;    // the simulator's step time
};

struct PlanResult {
  Volumes volumes;
  Scored plan;                  // the fastest simulated of `ranked` and `megatron`
  bool plan_is_megatron = false;  // Megatron's order won (the search's best were slower)
  Scored megatron;              // the identity placement
  std::vector<Scored> ranked;   // the GA's best candidates, in the GA's order
  std::vector<Scored> random;
};

// One line (UsageError) for a layout the planner does not take: TP > 1 (the partition is
// over single devices, as in the paper; give TP ranks their own plan by hand), D_PP >
// kMaxStages, or WORLD (the job's ranks) other than D_DP x D_PP.
void check_plan_layout(const SimSettings& s, int world);

// S's placement key is ignored: every placement is planned on the profile's own sites.
// The plan's placement names each world rank's site.
PlanResult make_plan(const SimSettings& s, const PlanOptions& o);

// The table (nccl-tests style: a '#' header, one row per placement): DP, 2 x PP and their
// sum from the closed form, the simulated step and its ratio to the plan's; then the
// plan's stages by site.
void print_plan(std::ostream& os, const SimSettings& s, const PlanOptions& o, const PlanResult& r);

// The placement as the trainer and simulator read it, with each world rank's site named
// (the profile's), so that a reader sees where each stage runs.
par::Placement with_sites(par::Placement p, const netem::Profile& profile);

}  // namespace dtb::sim::dtfm
