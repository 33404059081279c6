#include "parallel/step_scalars.hpp"

#include <vector>

#include "algorithms.hpp"
#include "registry.hpp"
#include "train/train_config.hpp"

namespace dtb::par {

NormGroup norm_group(const NormInputs& in) {
  StrategySettings strategy;
  strategy.name = in.strategy;
  if (strategy.local()) return NormGroup::kWorker;
  // gossip's averaging is an estimate: replicas end with different gradients.
  const bool replicas_differ = in.compressing || in.spike_on_one_rank ||
                               coll::find_algorithm(coll::Op::kAllreduce, in.dp_algo).estimate;
  return in.zero1 || replicas_differ ? NormGroup::kWorld : NormGroup::kReplica;
}

int norm_floats(NormGroup group) { return group == NormGroup::kReplica ? 1 : 2; }

NormMember norm_member(NormGroup group, const Coord& at, int world_rank) {
  return {group == NormGroup::kWorld ? 0 : at.dp, world_rank};
}

void norm_rounds(NormGroup group, int n, const coll::RoundSink& emit) {
  coll::tree_allreduce_rounds(n, double(norm_floats(group) * sizeof(float)), emit);
}

float tree_sum(std::span<const float> per_rank) {
  std::vector<float> partial(per_rank.begin(), per_rank.end());
  if (partial.empty()) return 0;
  // tree_reduce: each parent adds its children's partial sums, round by round, into its own.
  coll::tree_reduce_rounds(int(partial.size()), sizeof(float), 0, [&](std::span<const coll::Message> round) {
    for (const coll::Message& m : round) partial[size_t(m.to)] += partial[size_t(m.from)];
  });
  return partial[0];
}

}  // namespace dtb::par
