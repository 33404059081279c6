#pragma once
// What one pipeline stage of the GPT (trainer/model/stage.hpp) holds and computes. Layers
// are split as the trainer splits them (par::stage_bounds: balanced, or parallel.stages).
// Stage 0 holds the embeddings (wte, wpe); the last stage the final LayerNorm and the LM
// head: tied (GPT-2), a copy of wte when PP > 1 (as in Megatron-LM; the two copies'
// gradients are summed after the DP sync); untied (DT-FM), its own lm_head, no sync.
//
// FLOPs per token: 6N + 6LCT (llm.c, PaLM) is the model's figure, for MFU. The time is
// charged for the FLOPs the trainer's kernels issue, model/flops.hpp's stage_flops (which
// the trainer's device model divides by the rate), for the TP rank the others wait for:
// the last, with the most vocabulary rows when parallel.vocab_parallel splits them. Each
// pass is cut where the trainer's blocking TP allreduces sit (LayerFlops).
#include <vector>

#include "model/flops.hpp"
#include "sim/sim_config.hpp"

namespace dtb::sim {

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
  StageFlops flops;            // per token, one TP rank (model/flops.hpp)
  RankBuffer buffer;           // one TP rank's parameters (model/stage.hpp's rank_layout)
  double params = 0;           // parameters it holds, all TP ranks together
  double tied_params = 0;      // of which its copy of wte (first and last stage when PP > 1, tied)
  double wte_rank = 0;         // elements of wte one TP rank holds (first and last stage)
  bool first = false, last = false;
  bool vocab_split = false;    // wte split by vocabulary rows over TP > 1 ranks
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
