#include "infer/predict.hpp"

#include <algorithm>
#include <cstdio>

#include "model/flops.hpp"
#include "parallel/grid.hpp"
#include "sim/collective_model.hpp"

namespace dtb::infer {
namespace {

// The world rank that plays grid position (dp 0, PP, TP).
int rank_at(const sim::SimSettings& s, const sim::SimInputs& in, int pp, int tp) {
  return in.placement.ranks[size_t(par::grid_rank(s.grid, {0, pp, tp}))];
}

}  // namespace

TokenPrediction predict_token(const sim::SimSettings& s, const sim::SimInputs& in, int rows) {
  const netem::NetworkModel net = sim::closed_form_model(in.profile);
  const GPTConfig& m = s.model;
  const int P = s.grid.pp, TP = s.grid.tp;
  const double C = m.n_embd, V = m.vocab_size;
  const double peak = s.peak_flops > 0 ? s.peak_flops : in.device.peak(s.compute);
  const double rate = peak * (s.efficiency > 0 ? s.efficiency : in.device.efficiency);
  const double bandwidth = s.memory_bandwidth > 0 ? s.memory_bandwidth : in.device.memory_bandwidth;
  const double weight_bytes = sim::precision_bytes(s.param_precision), act_bytes = sim::precision_bytes(s.compute);
  // One layer's parameters on one TP rank: the model's own per-rank count (model/stage.hpp).
  const double per_layer = double(rank_parameters(m, {0, 1, false, false, 0, TP, false}));
  const std::vector<int> bounds = par::stage_bounds(m.n_layer, P, s.stage_layers);
  const double message = rows * C * act_bytes;

  TokenPrediction p;
  p.rows = rows, p.context = s.seq_len;
  for (int st = 0; st < P; ++st) {
    StagePrediction sp;
    sp.layers = bounds[size_t(st) + 1] - bounds[size_t(st)];
    const bool last = st == P - 1;
    // Weights a step reads: the layers, and on the last stage lnf and the LM head (V, C);
    // the first stage's embedding is a lookup of ROWS rows, not a read of the table.
    sp.params = sp.layers * per_layer + (last ? V * C + 2 * C : 0);
    // What forward_cached issues per row at position seq_len - 1 (model/flops.hpp).
    const StageShard shard{bounds[size_t(st)], bounds[size_t(st) + 1], st == 0, last, 0, TP, false};
    const double flops = rows * decode_flops(m, shard, s.seq_len);
    sp.flops_time = flops / rate;
    sp.memory_time = bandwidth > 0 ? sp.params * weight_bytes / bandwidth : 0;
    sp.compute = std::max(sp.flops_time, sp.memory_time);
    if (TP > 1) {
      std::vector<int> group;
      for (int t = 0; t < TP; ++t) group.push_back(rank_at(s, in, st, t));
      sp.tp = 2.0 * sp.layers * sim::allreduce_time(net, group, {}, message);
    }
    const int a = rank_at(s, in, st, 0), b = rank_at(s, in, last ? 0 : st + 1, 0);
    const double bytes = last ? rows * 4.0 : message;  // the last stage sends the token ids back
    sp.hop = P > 1 ? net.alpha(a, b) + bytes * net.beta(a, b) : 0;
    sp.inter_site_hop = P > 1 && !net.same_site(a, b);
    if (sp.inter_site_hop) p.inter_bytes_per_token += TP * bytes / rows;
    p.compute += sp.compute, p.tp += sp.tp, p.hops += sp.hop;
    p.stages.push_back(sp);
  }
  p.per_token = p.compute + p.tp + p.hops;
  return p;
}

std::string prediction_table(const sim::SimSettings& s, const sim::SimInputs& in, const TokenPrediction& p) {
  std::string out;
  char buf[300];
  std::snprintf(buf, sizeof buf,
                "# predicted decode step: %s, %d layers, C %d, pp %d x tp %d on %s, %s; %d sequence(s), context %d\n"
                "# stage  layers  params/rank   flops ms  memory ms  compute ms     tp ms    hop ms  hop crosses sites\n",
                s.name.c_str(), s.model.n_layer, s.model.n_embd, s.grid.pp, s.grid.tp, in.profile.name.c_str(),
                in.device.name.c_str(), p.rows, p.context);
  out += buf;
  for (size_t i = 0; i < p.stages.size(); ++i) {
    const StagePrediction& st = p.stages[i];
    std::snprintf(buf, sizeof buf, "  %5zu %7d %13.3e %10.3f %10.3f %11.3f %9.3f %9.3f  %s\n", i, st.layers, st.params,
                  st.flops_time * 1e3, st.memory_time * 1e3, st.compute * 1e3, st.tp * 1e3, st.hop * 1e3,
                  st.inter_site_hop ? "yes" : "no");
    out += buf;
  }
  std::snprintf(buf, sizeof buf,
                "# per token: compute %.1f ms + tp %.1f ms + hops %.1f ms = %.1f ms: %.2f steps/s, %.2f tokens/s, "
                "%.0f bytes/token across sites\n",
                p.compute * 1e3, p.tp * 1e3, p.hops * 1e3, p.per_token * 1e3, p.steps_per_s(), p.tokens_per_s(),
                p.inter_bytes_per_token);
  out += buf;
  return out;
}

}  // namespace dtb::infer
