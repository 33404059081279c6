#include "sim/pipeline.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>

namespace dtb::sim {
namespace {

struct Op {
  bool forward;
  int micro;
};

std::vector<Op> stage_order(Schedule schedule, int pp, int s, int m) {
  std::vector<Op> ops;
  ops.reserve(size_t(2 * m));
  const int warmup = schedule == Schedule::kGpipe ? m : std::min(pp - s - 1, m);
  for (int i = 0; i < warmup; ++i) ops.push_back({true, i});
  for (int i = 0; i < m - warmup; ++i) {  // 1F1B's steady state (empty for GPipe)
    ops.push_back({true, warmup + i});
    ops.push_back({false, i});
  }
  for (int i = m - warmup; i < m; ++i) ops.push_back({false, i});
  return ops;
}

constexpr double kNotYet = std::numeric_limits<double>::quiet_NaN();

// A boundary in one direction: FIFO, netem's rule for one path.
struct Link {
  Hop hop;
  double free = 0;
  double send(double ready) {
    free = std::max(free, ready) + hop.serialize;
    return free + hop.latency;
  }
};

}  // namespace

int microbatches_in_flight(Schedule schedule, int pp, int stage, int microbatches) {
  return schedule == Schedule::kGpipe ? microbatches : std::min(pp - stage, microbatches);
}

PipelineTimes run_pipeline(const PipelineInput& in) {
  const int pp = int(in.stages.size()), m = in.microbatches;
  std::vector<std::vector<Op>> order(static_cast<size_t>(pp));
  for (int s = 0; s < pp; ++s) order[size_t(s)] = stage_order(in.schedule, pp, s, m);
  // act[s][i]: when micro-batch i's activation is at stage s; grad[s][i]: its gradient.
  std::vector<std::vector<double>> act(size_t(pp), std::vector<double>(size_t(m), kNotYet));
  std::vector<std::vector<double>> grad = act;
  std::fill(act[0].begin(), act[0].end(), 0.0);  // the first stage reads its data at once
  std::vector<Link> fwd(size_t(std::max(pp - 1, 0))), bwd = fwd;
  for (int s = 0; s + 1 < pp; ++s) fwd[size_t(s)].hop = in.forward[size_t(s)], bwd[size_t(s)].hop = in.backward[size_t(s)];
  std::vector<double> done_f(size_t(m), kNotYet);  // the last stage's forwards, for its backwards
  std::vector<size_t> next(size_t(pp), 0);
  std::vector<double> free(size_t(pp), 0.0);
  PipelineTimes out{0, std::vector<double>(size_t(pp), 0.0), std::vector<double>(size_t(pp), 0.0)};

  // Sweep the stages, running every operation whose input is there, until all have run.
  // Each sweep runs at least one operation (the schedules cannot deadlock).
  for (size_t remaining = size_t(2 * m * pp); remaining > 0;) {
    size_t ran = 0;
    for (int s = 0; s < pp; ++s) {
      for (; next[size_t(s)] < order[size_t(s)].size(); ++next[size_t(s)], ++ran) {
        const Op op = order[size_t(s)][next[size_t(s)]];
        const bool last = s == pp - 1;
        const double input = op.forward ? act[size_t(s)][size_t(op.micro)]
                                        : (last ? done_f[size_t(op.micro)] : grad[size_t(s)][size_t(op.micro)]);
        if (std::isnan(input)) break;
        const double start = std::max(free[size_t(s)], input);
        const StageTimes& t = in.stages[size_t(s)];
        const double end = start + (op.forward ? t.fwd : t.bwd);
        free[size_t(s)] = end;
        if (op.forward) {
          if (last) done_f[size_t(op.micro)] = end;
          else act[size_t(s + 1)][size_t(op.micro)] = fwd[size_t(s)].send(end);
        } else {
          if (s > 0) grad[size_t(s - 1)][size_t(op.micro)] = bwd[size_t(s - 1)].send(end);
          out.last_start[size_t(s)] = start;
          out.last_end[size_t(s)] = end;
        }
      }
    }
    if (ran == 0) throw std::logic_error("run_pipeline: the schedule deadlocked");
    remaining -= ran;
  }
  out.end = *std::max_element(free.begin(), free.end());
  return out;
}

}  // namespace dtb::sim
