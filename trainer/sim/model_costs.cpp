#include "sim/model_costs.hpp"


namespace dtb::sim {
namespace {

// Activation elements one layer keeps per token for its backward, with TP ranks: the
// inputs and outputs of the two LayerNorms (4C, replicated on every TP rank: Megatron
// without sequence parallelism) and, split over TP, q, k, v (3C), the attention output
// (C), the MLP's hidden layer before and after GELU (8C) and the attention probabilities
// (NH x T). At TP = 1 that is 16C + NH T, Korthikanti et al. 2022's 34sbh + 5as^2b bytes
// without the dropout masks (GPT-2 here has no dropout).
double layer_activations(const GPTConfig& m, int seq_len, int tp) {
  const double C = m.n_embd;
  return 4 * C + (12 * C + double(m.n_head) * seq_len) / tp;
}

// The TP rank of stage ST that the others wait for: the last, which holds the most
// vocabulary rows when they are split (ceil(V / TP): vocab_slice).
StageShard slowest_rank(const SimSettings& s, const std::vector<int>& bounds, int st) {
  const int pp = s.grid.pp, tp = s.grid.tp;
  return {bounds[size_t(st)], bounds[size_t(st) + 1], st == 0, st == pp - 1, tp - 1, tp, s.vocab_parallel};
}

// One TP rank's buffer, as the stage lays it out (model/stage.hpp's rank_layout), times SCALE.
RankBuffer rank_buffer(const GPTConfig& m, const StageShard& shard, double scale) {
  const RankLayout o = rank_layout(m, shard);
  RankBuffer b;
  b.embeddings = double(o.layers) * scale;
  b.layer = double(o.layer_size) * scale;
  b.lnf = double(o.lm_head - o.lnf) * scale;
  b.head = double(o.total - o.lm_head) * scale;
  b.layers = shard.layer_end - shard.layer_begin;
  return b;
}

}  // namespace

ModelCosts model_costs(const SimSettings& s) {
  const GPTConfig& m = s.model;
  const auto layout = param_layout(m);
  double per_layer = 0;
  for (int i = kLn1w; i <= kFcprojb; ++i) per_layer += double(layout[size_t(i)].size) / m.n_layer;
  const double wte = double(layout[kWte].size), wpe = double(layout[kWpe].size);
  const double lnf = double(layout[kLnfw].size + layout[kLnfb].size);
  const double shape_params = double(num_parameters(m));
  // model.params rescales every parameter count; the shape keeps attention and activations.
  const double scale = s.params > 0 ? s.params / shape_params : 1.0;
  const double C = m.n_embd;
  const int pp = s.grid.pp;
  const bool vocab_split = s.vocab_parallel && s.grid.tp > 1;

  ModelCosts out;
  out.params = shape_params * scale;
  out.flops_per_token = flops_per_token(m, s.seq_len, scale);
  const std::vector<int> bounds = par::stage_bounds(m.n_layer, pp, s.stage_layers);  // the trainer's split
  for (int st = 0; st < pp; ++st) {
    Stage g;
    const StageShard shard = slowest_rank(s, bounds, st);
    g.first_layer = shard.layer_begin;
    g.layers = shard.layer_end - shard.layer_begin;
    const bool first = shard.first, last = shard.last;
    g.first = first, g.last = last, g.vocab_split = vocab_split;
    // Tied (GPT-2): the LM head is wte, so a last stage that is not first holds a copy of
    // it. Untied (DT-FM): the last stage holds its own lm_head (V x C) at its buffer's end.
    const bool tied = m.tie_embeddings;
    double params = g.layers * per_layer + (first ? wte + wpe : 0) + (last ? lnf : 0);
    if (tied && pp > 1 && (first || last)) g.tied_params = wte * scale;
    if (last && (!tied || pp > 1)) params += wte;  // the copy of wte, or lm_head (also V x C)
    g.params = params * scale;
    g.flops = stage_flops(m, shard, s.seq_len, scale);  // what the trainer's kernels issue
    g.buffer = rank_buffer(m, shard, scale);
    const RankLayout o = rank_layout(m, shard);
    g.wte_rank = double(o.wpe - o.wte) * scale;
    // The last stage also keeps the logits and their softmax for the loss (its vocabulary
    // rows per token, twice: model/stage.cpp's logits and probs).
    const VocabSlice v = vocab_slice(m, shard);
    const double logits = last ? 2.0 * (v.hi - v.lo) : 0;
    g.activations_per_token = g.layers * layer_activations(m, s.seq_len, s.grid.tp) + logits;
    g.checkpoint_per_token = g.layers * C;
    g.recompute_working_per_token = layer_activations(m, s.seq_len, s.grid.tp) + logits;
    out.stages.push_back(g);
  }
  return out;
}

}  // namespace dtb::sim
