#pragma once
// The one orchestration of the GPT: a pipeline stage holding layers [begin, end) of the
// model, each sliced across the tensor-parallel ranks (Megatron-LM). The single-rank model
// (GPT<T>, model/gpt2.hpp) is the stage that holds every layer at TP = 1; the 3D trainer
// runs one per rank. Templated on the real type: float trains, double is the reference the
// finite-difference tests check (TP > 1 needs float: the TP collectives move floats).
//
//   QKV     column-parallel: this rank's NH/TP heads (its rows of q, k and v)
//   attproj row-parallel: its C/TP input columns; partial sums allreduced, then the bias
//   fc      column-parallel: its 4C/TP output rows
//   fcproj  row-parallel: its 4C/TP input columns; allreduce, then the bias
// So a block makes two allreduces of (B, T, C) in forward (Megatron's g, after each
// row-parallel linear) and two in backward (f, the input gradient of each column-parallel
// linear). LayerNorms and the biases of the row-parallel linears are replicated on the TP
// ranks: their inputs and gradients are the same on all of them.
//
// Embeddings. The first stage holds wte and wpe, the last stage lnf and the LM head. With
// tied embeddings (GPT-2) the LM head is wte: a stage that is last but not first holds a
// copy of wte and the trainer sums the two wte gradients each step. Untied (DT-FM), the
// last stage holds its own lm_head (V, C) and nothing ties the stages. The vocabulary
// tensors are either replicated on the TP ranks, or (vocab_parallel) split by vocabulary
// rows, Megatron's vocabulary-parallel embedding and cross-entropy:
//   embedding      each rank looks up the tokens its rows hold (zeros for the others),
//                  rank 0 adds wpe, and one allreduce of (B, T, C) sums them;
//   LM head        logits of its vocabulary columns only, (B, T, V/TP);
//   cross-entropy  each rank's max, sum of exponentials and target logit per row, one
//                  allgather of 3 numbers per row, the same loss on every rank;
//   backward       the LM head's input gradient is a partial sum: one allreduce of (B, T, C).
//
// Parameter order (StageLayout). kLayerMajor, the pipeline's: [wte][wpe][layer 0]...
// [layer n-1][lnfw lnfb][lm_head], every layer one contiguous slice. The backward finishes
// the buffer from its end towards its start, so DP buckets (contiguous slices) become ready
// one after another while the backward runs. ShardRun maps it onto param_layout (init,
// checkpoints). kTensorMajor is param_layout itself (the checkpoint schema, tensors stored
// (L, ...)), for the stage that holds the whole model at TP = 1: GPT<T>'s buffer. Both
// orders run the same kernels on the same numbers, so the results are bitwise the same.
//
// Kernel set (model/kernel_set.hpp). The stage calls its layers through a KernelSet and
// keeps every buffer in that set's memory: the CPU kernels on host memory by default, or
// the CUDA kernels on device memory (cuda::KernelSet, the one-GPU model). With a device set
// every pointer the stage hands out (params, grads, input, output, logits, dresidual, a
// probe's data) is device memory, and TP > 1 is refused (TpReduce moves host floats).
#include <cstddef>
#include <cstdint>
#include <functional>
#include <span>
#include <vector>

#include "cpu/kernels.hpp"
#include "model/kernel_set.hpp"
#include "model/schema.hpp"

namespace dtb {

struct StageShard {
  int layer_begin = 0, layer_end = 0;  // the stage's global layers [begin, end)
  bool first = true, last = true;      // first: wte + wpe; last: lnf + the LM head
  int tp_rank = 0, tp_size = 1;
  bool vocab_parallel = false;  // wte (and lm_head) split by vocabulary rows across the TP ranks
};

// The whole model on one rank: every layer, TP = 1.
StageShard whole_model(const GPTConfig& c);

// The rows of wte / lm_head (and columns of the logits) this rank holds: all of them unless
// vocabulary-parallel with TP > 1, then [V r / TP, V (r+1) / TP).
VocabSlice vocab_slice(const GPTConfig& c, const StageShard& s);

enum class StageLayout { kLayerMajor, kTensorMajor };

// The points inside a step where a probe (TransformerStage::set_probe) sees a layer's output:
// the embedding, each block's forward output, the logits, the LM head's input gradient and
// each block's input gradient (the residual stream's gradient leaving the block).
enum class ProbePoint { kEmbed, kBlockForward, kLogits, kHeadBackward, kBlockBackward };

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
// For TP = 1, where the stage never calls it (it throws if called).
TpReduce& no_tensor_parallelism();

// Bytes each part of one rank's model needs (for the memory report and the simulator).
struct MemoryBreakdown {
  size_t params, grads, adam_m, adam_v, activations, activation_grads;
  size_t total() const { return params + grads + adam_m + adam_v + activations + activation_grads; }
};

// Where each part of one rank's layer-major buffer starts (elements), as the stage lays it
// out: [wte][wpe][layers, layer_size each][lnfw lnfb][lm_head], total in all. A part the
// shard does not hold is empty (its start is the next part's).
struct RankLayout {
  size_t wte, wpe, layers, layer_size, lnf, lm_head, total;
};
RankLayout rank_layout(const GPTConfig& c, const StageShard& s);

// The one per-rank count: the parameters a rank holds for shard S (elements), and its
// memory with ROWS sequences of T tokens per micro-batch and SLOTS micro-batches' activations.
// The FLOPs its kernels issue: model/flops.hpp.
size_t rank_parameters(const GPTConfig& c, const StageShard& s);
MemoryBreakdown rank_memory(const GPTConfig& c, const StageShard& s, int rows, int T, int slots,
                            size_t real_size);

// Generation (dtbench infer, infer/generate.hpp): one row of work is one token of one
// sequence at its position. TOKEN is read by the first stage only.
struct TokenRow {
  int32_t seq, pos, token;
};

// A stage's KV cache and the work buffers of forward_cached(): for each local layer the
// keys and values of this rank's heads, SEQS sequences of up to n_ctx positions, and
// buffers for up to MAX_ROWS rows per call. Made by TransformerStage::make_kv_cache.
template <typename Real>
struct KvCache {
  int seqs = 0, max_rows = 0;
  std::vector<Real> keys, values;  // (Lloc, seqs, n_ctx, C/TP)
  std::vector<Real> work;          // forward_cached's activations of MAX_ROWS rows
};

template <typename Real>
class TransformerStage {
 public:
  // ROWS sequences of T tokens per micro-batch; SLOTS micro-batches' activations kept at
  // once; KERNELS computes (it must outlive the stage). Throws std::invalid_argument on a
  // shape the stage (or its kernel set) cannot run.
  TransformerStage(const GPTConfig& config, const StageShard& shard, int rows, int T, int slots,
                   StageLayout layout = StageLayout::kLayerMajor, KernelSet<Real>& kernels = cpu_kernel_set<Real>());

  // The same numbers as a whole model's init_weights(seed) for this rank's elements.
  void init_weights(uint64_t seed);

  const StageShard& shard() const { return shard_; }
  size_t num_params() const { return params_.size(); }
  Real* params() { return params_.data(); }
  Real* grads() { return grads_.data(); }
  const Real* params() const { return params_.data(); }
  const Real* grads() const { return grads_.data(); }
  const std::vector<ShardRun>& runs() const { return runs_; }
  // Runs of GPT's layout for any shard (rank 0 assembles checkpoints with it).
  static std::vector<ShardRun> shard_runs(const GPTConfig& c, const StageShard& s,
                                          StageLayout layout = StageLayout::kLayerMajor);
  static size_t shard_size(const GPTConfig& c, const StageShard& s) { return rank_parameters(c, s); }
  std::vector<ParamSegment> segments() const { return run_segments(c_, runs_); }
  // The local tensor pieces of RUNS, each with its decay rule (adjacent alike ones merged).
  static std::vector<ParamSegment> run_segments(const GPTConfig& c, const std::vector<ShardRun>& runs);
  // Layer-major only (the pipeline's DP buckets):
  size_t layer_offset(int local_layer) const;  // start of a local layer in the buffer
  size_t lnf_offset() const;                   // start of lnfw (= end of the layers)
  size_t wte_size() const;  // elements of this rank's wte (at offset 0); the tied copy to sum

  Real* input(int slot);         // (rows, T, C) residual entering the stage (non-first: fill it)
  const Real* output(int slot);  // (rows, T, C) residual leaving the stage (non-last)
  // Last stage, after forward: (rows, T, this rank's vocabulary), rows logits_stride() apart.
  const Real* logits(int slot) const;
  int logits_stride() const { return ldv_; }
  // (rows, T, C) the residual-stream gradient: before backward() on a non-last stage, the
  // gradient of output(slot) (fill it); after backward(), that of input(slot).
  Real* dresidual() { return dresidual_.data(); }

  // INPUTS (first stage) and TARGETS (last stage) are (rows, T) token ids in [0, V) and
  // must stay alive until this slot's backward(). Returns the micro-batch's mean loss on
  // the last stage (NaN without targets: logits only), else 0. Throws std::out_of_range on
  // a token id outside the vocabulary.
  Real forward(int slot, const int32_t* inputs, const int32_t* targets, TpReduce& tp);
  void zero_grad();
  // Accumulates LOSS_SCALE x d(micro-batch mean loss)/d(params) into grads(). READY(lo)
  // (layer-major, may be empty) is called when every gradient at local offset >= lo is
  // final for this micro-batch (after the LM head and after each block); the embeddings
  // are final when backward returns. The last stage needs a forward() with targets first.
  void backward(int slot, Real loss_scale, TpReduce& tp, const std::function<void(size_t)>& ready = {});

  // Generation with a KV cache. ROWS (at most the cache's max_rows; any mix of prompt
  // tokens and single new tokens, of any sequences) run through this stage's layers: each
  // row's key and value enter CACHE first, so a row attends to its sequence's positions
  // 0..pos, which must be in the cache by then (earlier calls or earlier rows). INPUT is
  // the (n, C) residual entering a non-first stage (ignored on the first). Returns the
  // (n, C) residual leaving the stage or, on the last, the (n, V) logits; valid until the
  // next call. Per row the same kernels in the same order as forward(), so the logits are
  // those of forward() over the whole prefix up to the gemms' rounding on fewer rows.
  // Throws std::out_of_range on a row outside the cache or a token outside the vocabulary;
  // vocabulary-parallel stages are refused (their logits are split across TP ranks).
  KvCache<Real> make_kv_cache(int seqs, int max_rows) const;
  const Real* forward_cached(KvCache<Real>& cache, std::span<const TokenRow> rows, const Real* input, TpReduce& tp);

  double flops() const { return flops_; }  // FLOPs issued so far (the device-model clock)

  // One operation alone, as forward() runs it (verify/'s referee re-runs the disputed one):
  // local block LI on INPUT, the (rows, T, C) residual entering it, into SLOT's activations;
  // returns the block's output (what the kBlockForward probe sees). TP = 1; INPUT is in the
  // kernel set's memory and stays alive until the call returns.
  const Real* forward_block(int slot, int li, const Real* input);
  // The last stage's lnf and LM head on INPUT, the last block's output: SLOT's logits (what
  // the kLogits probe sees, rows logits_stride() apart). TP = 1.
  const Real* forward_logits(int slot, const Real* input);

  // An observer of each layer's output (verify/ hashes them for its dispute's second phase;
  // its test-only cheats may alter them in place): LAYER is the global block (-1 outside the
  // blocks), DATA the (rows, T, C) tensor (the logits: (rows, T, this rank's vocabulary)).
  // Unset (the default) it is never called, and the numbers are those of a stage without it.
  using Probe = std::function<void(ProbePoint, int layer, Real* data, size_t n)>;
  void set_probe(Probe probe) { probe_ = std::move(probe); }

  // Elements of the activations (SLOTS micro-batches) and of the activation gradients a
  // stage of this shape allocates (rank_memory's count).
  struct ActivationCount {
    size_t activations, activation_grads;
  };
  static ActivationCount activation_count(const GPTConfig& c, const StageShard& s, int rows, int T, int slots);

 private:
  struct Dims;
  struct Acts;
  struct BlockW;
  struct BlockX;
  static Dims dims_of(const GPTConfig& c, const StageShard& s, int rows, int T, size_t align = 1, int ldv = 0);
  Dims dims() const;
  static size_t carve_block_x(Real* base, const Dims& d, BlockX* x);
  static size_t carve_acts(Real* base, const Dims& d, Acts* a);
  static size_t scratch_size(const Dims& d);
  Acts slot_acts(int slot) const;
  BlockW block_w(Real* base, int local_layer) const;
  BlockX block_x(const Acts& a, int local_layer) const;
  void block_forward(const Acts& a, int li, const Real* residual, TpReduce& tp);
  void block_backward(const Acts& a, int li, const Real* residual, TpReduce& tp);
  void embed(const Acts& a, const int32_t* inputs, TpReduce& tp);
  Real lm_head_forward(const Acts& a, const Real* residual, const int32_t* targets, TpReduce& tp);
  void lm_head_backward(const Acts& a, int slot, Real loss_scale, TpReduce& tp);
  Real cross_entropy(const Acts& a, const int32_t* targets, TpReduce& tp);
  void tp_allreduce(Real* data, size_t count, TpReduce& tp);
  // ROWS: the rows of INP (0: the micro-batch's B x T; forward_cached passes its own).
  void row_parallel_forward(Real* out, const Real* inp, const Real* w, const Real* bias,
                            int in_features, TpReduce& tp, int rows = 0);
  // ROWS: how many rows (0: the micro-batch's B x T; forward_cached's fewer); LDO: the
  // output's row stride (0: OUT_FEATURES; the kernel set's padded logits).
  void matmul_fwd(Real* out, const Real* inp, const Real* w, const Real* bias, int in, int out_features,
                  int ldo = 0, int rows = 0);
  void matmul_bwd(Real* dinp, Real* dw, Real* db, const Real* dout, const Real* inp,
                  const Real* w, int in, int out_features, int ld_dout = 0);
  void check_tokens(const int32_t* ids, const char* what) const;
  // forward_cached's pieces.
  struct CachedX;
  CachedX cached_x(KvCache<Real>& cache) const;
  void block_cached(const CachedX& x, KvCache<Real>& cache, int li, std::span<const TokenRow> rows, TpReduce& tp);

  GPTConfig c_;
  StageShard shard_;
  KernelSet<Real>* k_;
  StageLayout layout_;
  int B_, T_, BT_, C_, Ct_, Ft_, NHt_, Lloc_;
  VocabSlice vocab_;  // this rank's rows of wte / lm_head
  int ldv_;           // the logits' row stride (the kernel set's choice)
  bool vocab_split_;  // vocabulary-parallel with TP > 1
  // Where the pieces sit in the local buffer (the layout's choice): the embeddings, lnf,
  // the LM head's weight, and per-layer tensor t of local layer li at
  // layer_first_[t] + li * layer_stride_[t].
  size_t wte_at_, wpe_at_, lnf_at_, head_at_;
  std::vector<size_t> layer_first_, layer_stride_;
  size_t layer_acts_, slot_size_;
  std::vector<ShardRun> runs_;
  KernelBuffer<Real> params_, grads_, acts_, dresidual_, scratch_;
  KernelBuffer<Real> ce_stats_;  // vocabulary-parallel: (TP, B T, 3) cross-entropy statistics
  std::vector<const int32_t*> inputs_, targets_;
  double flops_ = 0;
  Probe probe_;
  void probe(ProbePoint at, int layer, Real* data, size_t n) {
    if (probe_) probe_(at, layer, data, n);
  }
};

extern template class TransformerStage<float>;
extern template class TransformerStage<double>;

}  // namespace dtb
