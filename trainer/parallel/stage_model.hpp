#pragma once
// One rank's part of the GPT under tensor and pipeline parallelism (Megatron-LM):
// the layers of its pipeline stage, each sliced across the TP ranks.
//
//   QKV     column-parallel: this rank's NH/TP heads (its rows of q, k and v)
//   attproj row-parallel: its C/TP input columns; partial sums allreduced, then the bias
//   fc      column-parallel: its 4C/TP output rows
//   fcproj  row-parallel: its 4C/TP input columns; allreduce, then the bias
// So a block makes two allreduces of (B, T, C) in forward (Megatron's g, after each
// row-parallel linear) and two in backward (f, the input gradient of each column-parallel
// linear). LayerNorms and the biases of the row-parallel linears are replicated on the TP
// ranks: their inputs and gradients are the same on all of them. The first stage holds wte
// and wpe, the last stage lnf and a copy of wte (tied LM head); the trainer sums the two
// wte gradients each step. wte is either replicated on the TP ranks, or (vocab_parallel)
// split by vocabulary rows, Megatron's vocabulary-parallel embedding and cross-entropy:
//   embedding      each rank looks up the tokens its rows hold (zeros for the others),
//                  rank 0 adds wpe, and one allreduce of (B, T, C) sums them;
//   LM head        logits of its vocabulary columns only, (B, T, V/TP);
//   cross-entropy  each rank's max, sum of exponentials and target logit per row, one
//                  allgather of 3 numbers per row, the same loss on every rank;
//   backward       the LM head's input gradient is a partial sum: one allreduce of (B, T, C).
//
// The local buffer is layer-major, unlike GPT's tensor-major layout: [wte][wpe][layer 0]
// ...[layer n-1][lnfw lnfb], every layer one contiguous slice. The backward finishes the
// buffer from its end towards its start, so DP buckets (contiguous slices) become ready
// one after another while the backward runs. ShardRun maps the local buffer onto GPT's
// layout (init, checkpoints). The kernels are GPT's (cpu/kernels.hpp); with one TP rank
// every call is the one GPT makes, so the stage computes bitwise what GPT computes.
#include <cstddef>
#include <cstdint>
#include <functional>
#include <vector>

#include "cpu/kernels.hpp"
#include "model/gpt2.hpp"
#include "optim/adamw.hpp"

namespace dtb::par {

struct StageShard {
  int layer_begin = 0, layer_end = 0;  // the stage's global layers [begin, end)
  bool first = true, last = true;      // first: wte + wpe; last: lnf + the tied LM head
  int tp_rank = 0, tp_size = 1;
  bool vocab_parallel = false;  // wte split by vocabulary rows across the TP ranks
};

// The rows of wte (and columns of the logits) this rank holds: all of them unless
// vocabulary-parallel with TP > 1, then [V r / TP, V (r+1) / TP).
VocabSlice vocab_slice(const GPTConfig& c, const StageShard& s);

// LEN elements of GPT tensor TENSOR at LOCAL in this rank's buffer, GLOBAL in GPT's buffer.
// OWNED: this rank is the one that counts them (the grad norm, checkpoints): TP-replicated
// tensors on TP rank 0, the tied wte on the first stage.
struct ShardRun {
  int tensor;
  size_t local, global, len;
  bool owned;
};

// The tensor-parallel collectives the stage calls mid-block: an allreduce (sum, in place),
// and an allgather of COUNT elements of which this rank filled the (tp_rank)-th 1/TP.
class TpReduce {
 public:
  virtual ~TpReduce() = default;
  virtual void allreduce(float* data, size_t count) = 0;
  virtual void allgather(float* data, size_t count) = 0;
};

class StageModel {
 public:
  // ROWS sequences of T tokens per micro-batch; SLOTS micro-batches' activations kept at once.
  StageModel(const GPTConfig& config, const StageShard& shard, int rows, int T, int slots);

  // The same numbers as GPT::init_weights(seed) for this rank's elements.
  void init_weights(uint64_t seed);

  const StageShard& shard() const { return shard_; }
  size_t num_params() const { return params_.size(); }
  float* params() { return params_.data(); }
  float* grads() { return grads_.data(); }
  const std::vector<ShardRun>& runs() const { return runs_; }
  // Runs of GPT's layout for any shard (rank 0 assembles checkpoints with it).
  static std::vector<ShardRun> shard_runs(const GPTConfig& c, const StageShard& s);
  static size_t shard_size(const GPTConfig& c, const StageShard& s);
  std::vector<ParamSegment> segments() const;  // the local tensor pieces, each with its decay rule
  size_t layer_offset(int local_layer) const;      // start of a local layer in the buffer
  size_t lnf_offset() const;                       // start of lnfw (= end of the layers)
  size_t wte_size() const;                         // elements of this rank's wte (at offset 0)

  float* input(int slot);         // (rows, T, C) residual entering the stage (non-first: fill it)
  const float* output(int slot);  // (rows, T, C) residual leaving the stage (non-last)
  // (rows, T, C) the residual-stream gradient: before backward() on a non-last stage, the
  // gradient of output(slot) (fill it); after backward(), that of input(slot).
  float* dresidual() { return dresidual_.data(); }

  // INPUTS (first stage) and TARGETS (last stage) are (rows, T) and must stay alive until
  // this slot's backward(). Returns the micro-batch's mean loss on the last stage, else 0.
  float forward(int slot, const int32_t* inputs, const int32_t* targets, TpReduce& tp);
  void zero_grad();
  // Accumulates LOSS_SCALE x d(micro-batch mean loss)/d(params) into grads(). READY(lo) is
  // called when every gradient at local offset >= lo is final for this micro-batch (after
  // the LM head and after each block); the embeddings are final when backward returns.
  void backward(int slot, float loss_scale, TpReduce& tp, const std::function<void(size_t)>& ready);

  double flops() const { return flops_; }  // FLOPs issued so far (the device-model clock)

 private:
  struct Acts;
  struct BlockW;
  struct BlockX;
  size_t carve_block_x(float* base, BlockX* x) const;
  size_t carve_acts(float* base, Acts* a) const;
  Acts slot_acts(int slot);
  BlockW block_w(float* base, int local_layer) const;
  BlockX block_x(const Acts& a, int local_layer) const;
  void block_forward(const Acts& a, int li, const float* residual, TpReduce& tp);
  void block_backward(const Acts& a, int li, const float* residual, TpReduce& tp);
  void embed(const Acts& a, const int32_t* inputs, TpReduce& tp);
  float cross_entropy(const Acts& a, const int32_t* targets, TpReduce& tp);
  void row_parallel_forward(float* out, const float* inp, const float* w, const float* bias,
                            int in_features, TpReduce& tp);
  void matmul_fwd(float* out, const float* inp, const float* w, const float* bias, int in, int out_features);
  void matmul_bwd(float* dinp, float* dw, float* db, const float* dout, const float* inp,
                  const float* w, int in, int out_features);

  GPTConfig c_;
  StageShard shard_;
  int B_, T_, BT_, C_, Ct_, Ft_, NHt_, Lloc_;
  VocabSlice vocab_;  // this rank's rows of wte
  bool vocab_split_;  // vocabulary-parallel with TP > 1
  size_t layer_size_, layer_acts_, slot_size_;
  std::vector<ShardRun> runs_;
  std::vector<float> params_, grads_, acts_, dresidual_, scratch_;
  std::vector<float> ce_stats_;  // vocabulary-parallel: (TP, B T, 3) cross-entropy statistics
  std::vector<const int32_t*> inputs_, targets_;
  double flops_ = 0;
};

}  // namespace dtb::par
