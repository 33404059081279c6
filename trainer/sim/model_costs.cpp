#include "sim/model_costs.hpp"

#include <cmath>

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

// The trainer's kernels' FLOPs (model/stage.cpp): matmul 2 x weights forward, 4 x
// backward; attention 2TC/TP forward, 4TC/TP backward. SCALE: model.params / the shape's.
LayerFlops layer_flops(double C, double T, int tp, double scale) {
  const double w = C * C * scale / tp, att = T * C / tp;
  return {2 * 4 * w + 2 * att, 2 * 8 * w, 4 * 8 * w, 4 * 4 * w + 4 * att};
}

// One TP rank's layer: the column- and row-parallel weights and biases split, the
// LayerNorms and the row-parallel biases (6C) replicated (model/stage.cpp).
double rank_layer_params(double C, int tp) { return 6 * C + (12 * C * C + 3 * C + 4 * C) / tp; }

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
  const double C = m.n_embd, T = s.seq_len;
  const int pp = s.grid.pp;
  const bool vocab_split = s.vocab_parallel && s.grid.tp > 1;
  const double vocab_rows = vocab_split ? std::ceil(double(m.vocab_size) / s.grid.tp) : double(m.vocab_size);

  ModelCosts out;
  out.params = shape_params * scale;
  out.flops_per_token = flops_per_token(m, s.seq_len, scale);
  const std::vector<int> bounds = par::stage_bounds(m.n_layer, pp, s.stage_layers);  // the trainer's split
  for (int st = 0; st < pp; ++st) {
    Stage g;
    g.first_layer = bounds[size_t(st)];
    g.layers = bounds[size_t(st) + 1] - bounds[size_t(st)];
    const bool first = st == 0, last = st == pp - 1;
    g.first = first, g.last = last, g.vocab_split = vocab_split;
    // Tied (GPT-2): the LM head is wte, so a last stage that is not first holds a copy of
    // it. Untied (DT-FM): the last stage holds its own lm_head (V x C) at its buffer's end.
    const bool tied = m.tie_embeddings;
    g.wte_rank = first || (last && tied) ? vocab_rows * C * scale : 0;
    double params = g.layers * per_layer + (first ? wte + wpe : 0) + (last ? lnf : 0);
    if (tied && pp > 1 && (first || last)) g.tied_params = wte * scale;
    if (last && (!tied || pp > 1)) params += wte;  // the copy of wte, or lm_head (also V x C)
    g.params = params * scale;
    // The stages' shares of 6N + 6LCT: the embeddings and lnf count where the whole-model
    // formula counts them (N holds lm_head too when untied), on the last stage.
    g.flops_per_token = 6 * g.layers * per_layer * scale + 6.0 * g.layers * C * T +
                        (last ? 6 * (wte + wpe + lnf + (tied ? 0 : wte)) * scale : 0);
    g.layer_flops = layer_flops(C, T, s.grid.tp, scale);
    g.head_flops = last ? 6 * vocab_rows * C * scale : 0;
    g.buffer.embeddings = (first || (last && tied) ? g.wte_rank : 0) + (first ? wpe * scale : 0);
    g.buffer.head = last && !tied ? vocab_rows * C * scale : 0;
    g.buffer.layer = rank_layer_params(C, s.grid.tp) * scale;
    g.buffer.lnf = last ? lnf * scale : 0;
    g.buffer.layers = g.layers;
    // The last stage also keeps the logits and their softmax for the loss (its vocabulary
    // rows per token, twice: model/stage.cpp's logits and probs).
    const double logits = last ? 2 * vocab_rows : 0;
    g.activations_per_token = g.layers * layer_activations(m, s.seq_len, s.grid.tp) + logits;
    g.checkpoint_per_token = g.layers * C;
    g.recompute_working_per_token = layer_activations(m, s.seq_len, s.grid.tp) + logits;
    out.stages.push_back(g);
  }
  return out;
}

}  // namespace dtb::sim
