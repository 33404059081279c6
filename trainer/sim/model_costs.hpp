#pragma once
// What one pipeline stage of the GPT (trainer/model/stage.hpp) holds and computes. Layers
// are split as the trainer splits them (par::stage_bounds: balanced, or parallel.stages).
// Stage 0 holds the embeddings (wte, wpe); the last stage the final LayerNorm and the LM
// head: tied (GPT-2), a copy of wte when PP > 1 (as in Megatron-LM; the two copies'
// gradients are summed after the DP sync); untied (DT-FM), its own lm_head, no sync.
//
// FLOPs per token: 6N + 6LCT (llm.c, PaLM) is the model's figure, for MFU. The time is
// charged for the FLOPs the trainer's kernels issue (model/stage.cpp, which its
// device model divides by the rate): the matmuls, 2 per weight in forward and 4 in
// backward, and attention's QK^T and AV, 2TC per layer and token in forward, 4TC in
// backward; LayerNorm, GELU, biases, the embedding lookup and the softmax issue none. Per
// layer and TP rank the matmul weights are 12C^2 / TP; the LM head (C x V, the tied wte)
// runs whole on every TP rank of the last stage, or with parallel.vocab_parallel on the
// rank's rows of wte only (the largest slice: ceil(V / TP) rows). Each pass is cut where
// the trainer's blocking TP allreduces sit (Pass).
#include <vector>

#include "sim/sim_config.hpp"

namespace dtb::sim {

// FLOPs per token of one layer on one TP rank, cut at its two TP allreduces: forward
// qkv, attention, attproj | fc, fcproj; backward fcproj, fc | attproj, attention, qkv.
struct LayerFlops {
  double fwd_a = 0, fwd_b = 0, bwd_a = 0, bwd_b = 0;
};

// One TP rank's flat buffer (elements), as model/stage.cpp lays it out:
// [wte: first, or last when tied][wpe: first][layers][lnf: last][lm_head: last when untied].
// The backward finishes it from the end: the DP buckets (cut from the end) are ready after
// the layer that completes them.
struct RankBuffer {
  double embeddings = 0;  // wte + wpe at the start
  double layer = 0;       // one layer
  double lnf = 0;         // after the layers
  double head = 0;        // untied embeddings: the last stage's own lm_head, at the end
  int layers = 0;
  double total() const { return embeddings + layers * layer + lnf + head; }
  double layer_offset(int local_layer) const { return embeddings + local_layer * layer; }
};

struct Stage {
  int first_layer = 0, layers = 0;
  LayerFlops layer_flops;      // per token, one TP rank
  double head_flops = 0;       // per token, forward + backward: the LM head (last stage)
  RankBuffer buffer;           // one TP rank's parameters
  double params = 0;           // parameters it holds, all TP ranks together
  double tied_params = 0;      // of which its copy of wte (first and last stage when PP > 1, tied)
  double wte_rank = 0;         // elements of wte one TP rank holds (first and last stage)
  bool first = false, last = false;
  bool vocab_split = false;    // wte split by vocabulary rows over TP > 1 ranks
  double flops_per_token = 0;  // forward + backward, all TP ranks together
  // Activation elements one TP rank keeps per token of one micro-batch (model_costs.cpp):
  // everything backward needs, or with recomputation only each layer's input (C), plus,
  // for the one micro-batch in backward, one layer's full set and the logits.
  double activations_per_token = 0;
  double checkpoint_per_token = 0, recompute_working_per_token = 0;
};

struct ModelCosts {
  double params = 0;           // N (model.params, or counted from the shape)
  double flops_per_token = 0;  // 6N + 6LCT
  std::vector<Stage> stages;   // PP entries
};

ModelCosts model_costs(const SimSettings& s);

}  // namespace dtb::sim
