#pragma once
// The FLOPs a pipeline stage's kernels issue (model/stage.hpp): the one count behind the
// stage's device-model clock (TransformerStage::flops(), charged kernel call by kernel
// call with linear_flops and attention_flops), the simulator's compute time
// (sim/model_costs.cpp) and the decode prediction (infer/predict.cpp).
//
// Counted: a linear of IN -> OUT features, 2 x IN x OUT per row forward and twice that
// backward (the input's and the weight's gradients); attention's QK^T and AV, 4 x C/TP per
// row and attended position forward, twice that backward. In training a row attends on
// average half the sequence (the causal half), so per token and layer at TP = 1 that is
// 2TC forward and 4TC backward: llm.c's 6LCT. LayerNorm, GELU, biases, residual adds, the
// embedding lookup and the softmax issue none.
//
// The model's own figure for MFU, 6N + 6LCT over every parameter, is flops_per_token()
// (model/schema.hpp); per stage and TP rank the issued count differs from its share by the
// embeddings, biases and LayerNorms (no matmul), and by the LM head, which every TP rank runs
// whole unless the vocabulary is split.
#include "model/stage.hpp"

namespace dtb {

// Forward FLOPs of ROWS rows through a linear of IN -> OUT features (backward: twice).
inline double linear_flops(double rows, double in, double out) { return 2.0 * rows * in * out; }

// Forward FLOPs of ROWS rows of attention on WIDTH features (this rank's heads, C / TP),
// each row attending POSITIONS positions (backward: twice).
inline double attention_flops(double rows, double positions, double width) { return 4.0 * rows * positions * width; }

// One layer on one TP rank, per row, cut where the stage's two blocking TP allreduces of
// each pass sit: forward  qkv, attention, attproj | fc, fcproj;
//               backward  fcproj, fc | attproj, attention, qkv.
struct LayerFlops {
  double fwd_attn = 0, fwd_mlp = 0, bwd_mlp = 0, bwd_attn = 0;
  double forward() const { return fwd_attn + fwd_mlp; }
  double backward() const { return bwd_mlp + bwd_attn; }
};

// One TP rank of a stage, per row (token): its layers (alike) and, on the last stage, the
// LM head over this rank's vocabulary rows.
struct StageFlops {
  int layers = 0;
  LayerFlops layer;
  double head_fwd = 0, head_bwd = 0;
  double forward() const { return layers * layer.forward() + head_fwd; }
  double backward() const { return layers * layer.backward() + head_bwd; }
};

// Training, sequence length T: what TransformerStage::forward and backward issue per token
// of a micro-batch. PARAMS_SCALE multiplies the matmuls (the simulator's model.params:
// another parameter count, this shape); attention keeps the shape's.
StageFlops stage_flops(const GPTConfig& c, const StageShard& s, int T, double params_scale = 1.0);

// Generation: what TransformerStage::forward_cached issues for one row attending CONTEXT
// positions (its position + 1), forward only (the LM head over the whole vocabulary).
double decode_flops(const GPTConfig& c, const StageShard& s, int context);

}  // namespace dtb
