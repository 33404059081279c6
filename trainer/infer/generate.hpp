#pragma once
// Decentralized inference (issue 16): autoregressive generation with the GPT split as the
// trainer splits it, DP x PP x TP ranks of which DP must be 1 (parallel/grid.hpp's grid and
// placement, its stage split), every rank holding its stage's TP slices of the one model
// (model/stage.hpp) with a KV cache, every message timed by netem on either clock.
//
// One round per new token, Petals' and vLLM's decode loop without overlap: the first stage
// embeds one row per sequence, each stage runs its layers on those rows (TP allreduces
// inside) and sends the (rows, C) residual to the next, the last stage computes the logits,
// samples one token per sequence and sends the token ids back to the first stage. The
// first round is the prefill: every prompt token of every sequence at once (one row each,
// keys and values into the cache), its last row's logits giving each sequence's first
// token. All sequences run together (static batching) and generate the same number of
// tokens; sampling draws from (seed, sequence, position), so a sequence's tokens do not
// depend on the layout or on the other sequences in the batch.
#include <cstdint>
#include <string>
#include <vector>

#include "communicator.hpp"
#include "model/schema.hpp"
#include "train/train_config.hpp"

namespace dtb::infer {

struct SamplingSettings {
  int max_new_tokens = 32;
  double temperature = 0;  // 0: greedy (argmax, lowest id on a tie); > 0: softmax(logits / T)
  uint64_t seed = 1337;
};

// The token drawn from LOGITS (V of them) for position POS of sequence SEQ: argmax at
// temperature 0, else inverse-CDF sampling of softmax(logits / temperature) (in double) at
// a uniform number counter-based on (seed, seq, pos).
int32_t sample_token(const float* logits, int V, const SamplingSettings& s, int seq, int pos);

// The project's tokenizer (dtbench prepare: one token per byte, vocabulary 256) and back.
// Throws UsageError naming WHERE if a byte is not in a vocabulary of VOCAB_SIZE tokens.
std::vector<int32_t> byte_tokens(const std::string& text, int vocab_size, const std::string& where);
std::string byte_text(const std::vector<int32_t>& tokens);

// What a generation measured, the same on every rank. Times on the run's clock, from the
// moment every rank has its weights and the clocks are synchronised; "produced" is when the
// last stage has sampled the round's tokens.
struct GenerationStats {
  int sequences = 0, new_tokens = 0;   // per sequence
  int64_t prompt_tokens = 0;           // over all sequences
  std::vector<double> token_times;     // when round k's tokens were produced (k = 0: the prefill's)
  double ttft = 0;                     // time to first token: token_times[0]
  double tpot = 0;                     // time per output token after the first (mean round)
  double total = 0;                    // when the last round's tokens were produced
  double tokens_per_s = 0;             // sequences x new_tokens / total
  uint64_t bytes_intra = 0, bytes_inter = 0;  // payload sent by all ranks, inside / across sites
  uint64_t bytes_pp = 0, bytes_tp = 0;        // of which between stages / inside TP groups
  double inter_bytes_per_token() const { return sequences > 0 && new_tokens > 0 ? double(bytes_inter) / (sequences * new_tokens) : 0; }
};

struct Generation {
  std::vector<std::vector<int32_t>> tokens;  // per sequence: prompt + generated (every rank)
  GenerationStats stats;
};

// Collective over WORLD (dp x pp x tp ranks of S.parallel, with dp = 1): generates for
// PROMPTS with the model S.model whose parameters PARAMS are in param_layout() order (a
// checkpoint's /params). Time is S.parallel's clock and device model on WORLD's profile.
// Throws UsageError for a layout, prompt or length it cannot run (every rank alike).
Generation generate(coll::Communicator& world, const TrainSettings& s, const std::vector<float>& params,
                    const std::vector<std::vector<int32_t>>& prompts, const SamplingSettings& sampling);

// The checks generate() makes before any communication, for the command to run before MPI.
void check_request(const TrainSettings& s, const std::vector<std::vector<int32_t>>& prompts,
                   const SamplingSettings& sampling);

}  // namespace dtb::infer
