#pragma once
// What one pipeline stage of the GPT (trainer/model/gpt2.hpp: GPT-2 layout, tied LM head)
// holds and computes. Layers are split into contiguous, balanced stages (the first
// L mod PP stages take one more). Stage 0 holds the embeddings (wte, wpe); the last stage
// the final LayerNorm and, when PP > 1, its own copy of wte for the tied LM head (as in
// Megatron-LM; the two copies' gradients are summed after the DP sync).
//
// FLOPs per token follow the trainer's convention 6N + 6LCT (llm.c, PaLM): 6 per
// parameter (2 forward, 4 backward) plus attention's 6LCT. A stage is charged 6 per
// parameter of its layers and 6CT per layer; the non-layer parameters' 6(V + n_ctx + 2)C
// go to the last stage, where the LM head's matmul runs, so that the stages add up to
// exactly 6N + 6LCT. Forward is 1/3 of it, backward 2/3.
#include <vector>

#include "sim/sim_config.hpp"

namespace dtb::sim {

struct Stage {
  int first_layer = 0, layers = 0;
  double params = 0;           // parameters it holds, all TP ranks together
  double tied_params = 0;      // of which its copy of wte (first and last stage when PP > 1)
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
