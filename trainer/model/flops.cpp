// The stage's FLOP count (model/flops.hpp), over the linears TransformerStage calls.
#include "model/flops.hpp"

namespace dtb {
namespace {

// One layer's forward per row on one TP rank of S, attending POSITIONS positions, its
// matmuls times SCALE; the backward is twice each piece.
LayerFlops layer_flops(const GPTConfig& c, const StageShard& s, double positions, double scale) {
  const double C = c.n_embd, Ct = C / s.tp_size, Ft = 4 * C / s.tp_size;
  const double qkv = linear_flops(1, C, 3 * Ct), attproj = linear_flops(1, Ct, C);  // column-, row-parallel
  const double fc = linear_flops(1, C, Ft), fcproj = linear_flops(1, Ft, C);
  const double attention = attention_flops(1, positions, Ct);
  LayerFlops f;
  f.fwd_attn = (qkv + attproj) * scale + attention;
  f.fwd_mlp = (fc + fcproj) * scale;
  f.bwd_mlp = 2 * f.fwd_mlp;
  f.bwd_attn = 2 * f.fwd_attn;
  return f;
}

// The LM head's forward per row: lnf's output times this rank's vocabulary rows.
double head_flops(const GPTConfig& c, const StageShard& s) {
  const VocabSlice v = vocab_slice(c, s);
  return s.last ? linear_flops(1, c.n_embd, v.hi - v.lo) : 0;
}

}  // namespace

StageFlops stage_flops(const GPTConfig& c, const StageShard& s, int T, double params_scale) {
  StageFlops f;
  f.layers = s.layer_end - s.layer_begin;
  f.layer = layer_flops(c, s, T / 2.0, params_scale);  // the causal half of the sequence
  f.head_fwd = head_flops(c, s) * params_scale;
  f.head_bwd = 2 * f.head_fwd;
  return f;
}

double decode_flops(const GPTConfig& c, const StageShard& s, int context) {
  return (s.layer_end - s.layer_begin) * layer_flops(c, s, context, 1.0).forward() + head_flops(c, s);
}

}  // namespace dtb
