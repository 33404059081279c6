// The one GPT orchestration (model/stage.hpp) over a kernel set (model/kernel_set.hpp).
#include "model/stage.hpp"

#include <algorithm>
#include <limits>
#include <stdexcept>
#include <string>
#include <type_traits>

#include "model/carver.hpp"
#include "model/flops.hpp"

namespace dtb {
namespace {

// The per-layer tensors, kLn1w .. kFcprojb, in GPT's (and the local layer's) order.
constexpr int kFirstLayerTensor = kLn1w, kLastLayerTensor = kFcprojb;

struct LocalDims {
  size_t C, Ct, Ft;  // width, attention width per TP rank (C/TP), MLP width per TP rank (4C/TP)
};
LocalDims local_dims(const GPTConfig& c, const StageShard& s) {
  const size_t C = size_t(c.n_embd);
  return {C, C / size_t(s.tp_size), 4 * C / size_t(s.tp_size)};
}

// Elements of one per-layer tensor on one TP rank.
size_t local_layer_tensor_size(int t, const LocalDims& d) {
  switch (t) {
    case kQkvw: return 3 * d.Ct * d.C;
    case kQkvb: return 3 * d.Ct;
    case kAttprojw: return d.C * d.Ct;
    case kFcw: return d.Ft * d.C;
    case kFcb: return d.Ft;
    case kFcprojw: return d.C * d.Ft;
    default: return d.C;  // LayerNorms and the row-parallel biases: replicated
  }
}

// A stage holds wte when it is first (the embedding) or, tied, last (the LM head).
bool holds_wte(const GPTConfig& c, const StageShard& s) { return s.first || (s.last && c.tie_embeddings); }
bool holds_lm_head(const GPTConfig& c, const StageShard& s) { return s.last && !c.tie_embeddings; }

}  // namespace

RankLayout rank_layout(const GPTConfig& c, const StageShard& s) {
  const LocalDims d = local_dims(c, s);
  const VocabSlice v = vocab_slice(c, s);
  const size_t vocab_rows = size_t(v.hi - v.lo) * d.C;
  RankLayout o{};
  o.wte = 0;
  o.wpe = holds_wte(c, s) ? vocab_rows : 0;
  o.layers = o.wpe + (s.first ? size_t(c.n_ctx) * d.C : 0);
  for (int t = kFirstLayerTensor; t <= kLastLayerTensor; ++t) o.layer_size += local_layer_tensor_size(t, d);
  o.lnf = o.layers + size_t(s.layer_end - s.layer_begin) * o.layer_size;
  o.lm_head = o.lnf + (s.last ? 2 * d.C : 0);
  o.total = o.lm_head + (holds_lm_head(c, s) ? vocab_rows : 0);
  return o;
}

namespace {

// Runs of one per-layer tensor T of global layer L, at local offset LB.
void layer_tensor_runs(std::vector<ShardRun>& out, const GPTConfig& c, const StageShard& s,
                       const ParamTensorInfo& g, int t, int l, size_t lb) {
  const LocalDims d = local_dims(c, s);
  const size_t tp = size_t(s.tp_rank), per_layer = g.size / size_t(c.n_layer);
  const size_t G = g.offset + size_t(l) * per_layer;
  auto run = [&](size_t local, size_t global, size_t len, bool owned) {
    out.push_back({t, local, global, len, owned});
  };
  switch (t) {
    case kQkvw:  // rows part*C + tp*Ct .. of q, k and v
      for (size_t part = 0; part < 3; ++part) run(lb + part * d.Ct * d.C, G + (part * d.C + tp * d.Ct) * d.C, d.Ct * d.C, true);
      break;
    case kQkvb:
      for (size_t part = 0; part < 3; ++part) run(lb + part * d.Ct, G + part * d.C + tp * d.Ct, d.Ct, true);
      break;
    case kFcw: run(lb, G + tp * d.Ft * d.C, d.Ft * d.C, true); break;
    case kFcb: run(lb, G + tp * d.Ft, d.Ft, true); break;
    case kAttprojw:  // columns tp*Ct .. of every output row
      for (size_t o = 0; o < d.C; ++o) run(lb + o * d.Ct, G + o * d.C + tp * d.Ct, d.Ct, true);
      break;
    case kFcprojw:
      for (size_t o = 0; o < d.C; ++o) run(lb + o * d.Ft, G + o * 4 * d.C + tp * d.Ft, d.Ft, true);
      break;
    default: run(lb, G, d.C, s.tp_rank == 0);  // replicated on the TP ranks
  }
}

std::vector<ShardRun> layer_major_runs(const GPTConfig& c, const StageShard& s) {
  const auto g = param_layout(c);
  const RankLayout o = rank_layout(c, s);
  const LocalDims d = local_dims(c, s);
  const bool tp0 = s.tp_rank == 0;
  const VocabSlice v = vocab_slice(c, s);
  const bool vocab_split = v.hi - v.lo < c.vocab_size;  // each TP rank owns its own rows
  const size_t rows_at = size_t(v.lo) * d.C, rows_len = size_t(v.hi - v.lo) * d.C;
  std::vector<ShardRun> runs;
  if (holds_wte(c, s)) runs.push_back({kWte, o.wte, g[kWte].offset + rows_at, rows_len, s.first && (tp0 || vocab_split)});
  if (s.first) runs.push_back({kWpe, o.wpe, g[kWpe].offset, g[kWpe].size, tp0});
  for (int l = s.layer_begin; l < s.layer_end; ++l) {
    size_t lb = o.layers + size_t(l - s.layer_begin) * o.layer_size;
    for (int t = kFirstLayerTensor; t <= kLastLayerTensor; ++t) {
      layer_tensor_runs(runs, c, s, g[t], t, l, lb);
      lb += local_layer_tensor_size(t, d);
    }
  }
  if (s.last) {
    runs.push_back({kLnfw, o.lnf, g[kLnfw].offset, d.C, tp0});
    runs.push_back({kLnfb, o.lnf + d.C, g[kLnfb].offset, d.C, tp0});
  }
  if (holds_lm_head(c, s))
    runs.push_back({kLmHead, o.lm_head, g[kLmHead].offset + rows_at, rows_len, tp0 || vocab_split});
  return runs;
}

bool is_whole_model(const GPTConfig& c, const StageShard& s) {
  return s.layer_begin == 0 && s.layer_end == c.n_layer && s.first && s.last && s.tp_size == 1;
}

void validate(const GPTConfig& c, const StageShard& s, int rows, int T, int slots, StageLayout layout,
              bool real_is_float, bool kernels_tensor_parallel) {
  auto fail = [](const std::string& what) { throw std::invalid_argument("model: " + what); };
  if (c.vocab_size < 1 || c.n_ctx < 1 || c.n_layer < 1 || c.n_head < 1 || c.n_embd < 1)
    fail("vocab_size, n_ctx, n_layer, n_head and n_embd must all be >= 1");
  if (c.n_embd % c.n_head != 0)
    fail("n_embd (" + std::to_string(c.n_embd) + ") must be divisible by n_head (" + std::to_string(c.n_head) + ")");
  if (rows < 1 || T < 1 || T > c.n_ctx)
    fail("batch " + std::to_string(rows) + " x " + std::to_string(T) + " needs B >= 1 and 1 <= T <= n_ctx (" +
         std::to_string(c.n_ctx) + ")");
  if (s.tp_size < 1 || s.tp_rank < 0 || s.tp_rank >= s.tp_size || c.n_head % s.tp_size != 0)
    fail("the heads must divide by TP and 0 <= tp_rank < TP");
  if (s.layer_begin < 0 || s.layer_end > c.n_layer || s.layer_end <= s.layer_begin || slots < 1)
    fail("a stage needs >= 1 layer of the model and 1 activation slot");
  const VocabSlice v = vocab_slice(c, s);
  if (v.hi <= v.lo) fail("a TP rank needs >= 1 vocabulary row");
  if (layout == StageLayout::kTensorMajor && !is_whole_model(c, s))
    fail("param_layout order needs the whole model on one rank (every layer, TP = 1)");
  if (!real_is_float && s.tp_size > 1) fail("tensor parallelism runs in float only");
  if (!kernels_tensor_parallel && s.tp_size > 1) fail("this kernel set runs TP = 1 only");
}

class NoTensorParallelism final : public TpReduce {
 public:
  void allreduce(float*, size_t) override { refuse(); }
  void allgather(float*, size_t) override { refuse(); }

 private:
  [[noreturn]] static void refuse() { throw std::logic_error("a TP collective on a stage without tensor parallelism"); }
};

}  // namespace

StageShard whole_model(const GPTConfig& c) { return {0, c.n_layer, true, true, 0, 1, false}; }

VocabSlice vocab_slice(const GPTConfig& c, const StageShard& s) {
  if (!s.vocab_parallel || s.tp_size == 1) return {0, c.vocab_size};
  const int64_t V = c.vocab_size, r = s.tp_rank, p = s.tp_size;
  return {int(V * r / p), int(V * (r + 1) / p)};
}

TpReduce& no_tensor_parallelism() {
  static NoTensorParallelism none;
  return none;
}

size_t rank_parameters(const GPTConfig& c, const StageShard& s) { return rank_layout(c, s).total; }

MemoryBreakdown rank_memory(const GPTConfig& c, const StageShard& s, int rows, int T, int slots, size_t real_size) {
  const size_t p = rank_parameters(c, s) * real_size;
  const auto a = TransformerStage<float>::activation_count(c, s, rows, T, slots);
  return {p, p, p, p, a.activations * real_size, a.activation_grads * real_size};
}

// ------------------------------------------------------------------------- views

template <typename Real>
struct TransformerStage<Real>::Dims {
  size_t B, T, BT, C, Ct, Ft, NHt, Lloc, Vt, TP;
  bool last, vocab_split;
  size_t align, ldv;  // the kernel set's: buffer alignment, the logits' row stride
};

template <typename Real>
struct TransformerStage<Real>::BlockW {
  Real *ln1w, *ln1b;          // (C)
  Real *qkvw, *qkvb;          // (3Ct, C), (3Ct): this rank's q, k, v rows
  Real *attprojw, *attprojb;  // (C, Ct), (C)
  Real *ln2w, *ln2b;          // (C)
  Real *fcw, *fcb;            // (Ft, C), (Ft)
  Real *fcprojw, *fcprojb;    // (C, Ft), (C)
};

template <typename Real>
struct TransformerStage<Real>::BlockX {
  Real *ln1, *ln1_mean, *ln1_rstd;  // (B, T, C), (B, T), (B, T)
  Real* qkv;                        // (B, T, 3Ct)
  Real* atty;                       // (B, T, Ct)
  Real* att;                        // (B, NHt, T, T)
  Real *attproj, *residual2;        // (B, T, C)
  Real *ln2, *ln2_mean, *ln2_rstd;  // (B, T, C), (B, T), (B, T)
  Real *fch, *fch_gelu;             // (B, T, Ft)
  Real *fcproj, *residual3;         // (B, T, C)
};

template <typename Real>
struct TransformerStage<Real>::Acts {
  Real* input;   // (B, T, C) the stage's input residual (first stage: the encoding)
  Real* layers;  // Lloc x layer_acts_
  Real *lnf, *lnf_mean, *lnf_rstd;  // last stage: (B, T, C), (B, T), (B, T)
  Real *logits, *probs, *losses;    // (B, T, Vt), (B, T, Vt) (dlogits in backward), (B, T); Vt: this rank's vocabulary
  Real* lse;                        // (B, T) vocabulary-parallel: each row's log-sum-exp
};

template <typename Real>
typename TransformerStage<Real>::Dims TransformerStage<Real>::dims_of(const GPTConfig& c, const StageShard& s,
                                                                      int rows, int T, size_t align, int ldv) {
  const VocabSlice v = vocab_slice(c, s);
  const size_t tp = size_t(s.tp_size), C = size_t(c.n_embd);
  return {size_t(rows),
          size_t(T),
          size_t(rows) * size_t(T),
          C,
          C / tp,
          4 * C / tp,
          size_t(c.n_head) / tp,
          size_t(s.layer_end - s.layer_begin),
          size_t(v.hi - v.lo),
          tp,
          s.last,
          v.hi - v.lo < c.vocab_size,
          align,
          ldv > 0 ? size_t(ldv) : size_t(v.hi - v.lo)};
}

template <typename Real>
typename TransformerStage<Real>::Dims TransformerStage<Real>::dims() const {
  return dims_of(c_, shard_, B_, T_, k_->align(), ldv_);
}

// One layer's activations at BASE (null: only counts); returns the elements it spans.
template <typename Real>
size_t TransformerStage<Real>::carve_block_x(Real* base, const Dims& d, BlockX* x) {
  Carver<Real> k(base, d.align);
  x->ln1 = k.take(d.BT * d.C);
  x->ln1_mean = k.take(d.BT);
  x->ln1_rstd = k.take(d.BT);
  x->qkv = k.take(d.BT * 3 * d.Ct);
  x->atty = k.take(d.BT * d.Ct);
  x->att = k.take(d.B * d.NHt * d.T * d.T);
  x->attproj = k.take(d.BT * d.C);
  x->residual2 = k.take(d.BT * d.C);
  x->ln2 = k.take(d.BT * d.C);
  x->ln2_mean = k.take(d.BT);
  x->ln2_rstd = k.take(d.BT);
  x->fch = k.take(d.BT * d.Ft);
  x->fch_gelu = k.take(d.BT * d.Ft);
  x->fcproj = k.take(d.BT * d.C);
  x->residual3 = k.take(d.BT * d.C);
  return k.used();
}

// One micro-batch slot's activations at BASE (null: only counts).
template <typename Real>
size_t TransformerStage<Real>::carve_acts(Real* base, const Dims& d, Acts* a) {
  BlockX x;
  const size_t layer_acts = carve_block_x(nullptr, d, &x);
  Carver<Real> k(base, d.align);
  a->input = k.take(d.BT * d.C);
  a->layers = k.take(d.Lloc * layer_acts);
  const size_t head = d.last ? 1 : 0;  // only the last stage has lnf and the LM head
  a->lnf = k.take(head * d.BT * d.C);
  a->lnf_mean = k.take(head * d.BT);
  a->lnf_rstd = k.take(head * d.BT);
  a->logits = k.take(head * d.BT * d.ldv);
  a->probs = k.take(head * d.BT * d.ldv);
  a->losses = k.take(head * d.BT);
  a->lse = k.take(head * d.BT);
  return k.used();
}

// Backward scratch, reused by every block: dlnf | dfch_gelu dfch | dln2 datty dqkv dln1.
template <typename Real>
size_t TransformerStage<Real>::scratch_size(const Dims& d) {
  return d.BT * (4 * d.C + 2 * d.Ft + 4 * d.Ct);
}

template <typename Real>
typename TransformerStage<Real>::ActivationCount TransformerStage<Real>::activation_count(
    const GPTConfig& c, const StageShard& s, int rows, int T, int slots) {
  const Dims d = dims_of(c, s, rows, T);
  Acts a;
  const size_t ce_stats = d.last && d.vocab_split ? d.TP * d.BT * 3 : 0;
  return {carve_acts(nullptr, d, &a) * size_t(slots) + ce_stats, d.BT * d.C + scratch_size(d)};
}

template <typename Real>
typename TransformerStage<Real>::Acts TransformerStage<Real>::slot_acts(int slot) const {
  if (slot < 0 || size_t(slot) >= inputs_.size()) throw std::out_of_range("stage: slot out of range");
  Acts a;
  carve_acts(acts_.data() + size_t(slot) * slot_size_, dims(), &a);
  return a;
}

template <typename Real>
typename TransformerStage<Real>::BlockX TransformerStage<Real>::block_x(const Acts& a, int li) const {
  BlockX x;
  carve_block_x(a.layers + size_t(li) * layer_acts_, dims(), &x);
  return x;
}

template <typename Real>
typename TransformerStage<Real>::BlockW TransformerStage<Real>::block_w(Real* base, int li) const {
  auto at = [&](int t) { return base + layer_first_[size_t(t)] + size_t(li) * layer_stride_[size_t(t)]; };
  BlockW w;
  w.ln1w = at(kLn1w), w.ln1b = at(kLn1b), w.qkvw = at(kQkvw), w.qkvb = at(kQkvb);
  w.attprojw = at(kAttprojw), w.attprojb = at(kAttprojb), w.ln2w = at(kLn2w), w.ln2b = at(kLn2b);
  w.fcw = at(kFcw), w.fcb = at(kFcb), w.fcprojw = at(kFcprojw), w.fcprojb = at(kFcprojb);
  return w;
}

// ------------------------------------------------------------------------- the stage

template <typename Real>
TransformerStage<Real>::TransformerStage(const GPTConfig& config, const StageShard& shard, int rows, int T,
                                         int slots, StageLayout layout, KernelSet<Real>& kernels)
    : c_(config), shard_(shard), k_(&kernels), layout_(layout), B_(rows), T_(T), BT_(rows * T), C_(config.n_embd),
      Ct_(config.n_embd / std::max(shard.tp_size, 1)), Ft_(4 * config.n_embd / std::max(shard.tp_size, 1)),
      NHt_(config.n_head / std::max(shard.tp_size, 1)), Lloc_(shard.layer_end - shard.layer_begin),
      vocab_(vocab_slice(config, shard)), ldv_(kernels.vocab_stride(vocab_.hi - vocab_.lo)),
      vocab_split_(vocab_.hi - vocab_.lo < config.vocab_size) {
  validate(config, shard, rows, T, slots, layout, std::is_same_v<Real, float>, kernels.tensor_parallel());
  layer_first_.assign(size_t(kLastLayerTensor) + 1, 0);
  layer_stride_.assign(layer_first_.size(), 0);
  if (layout == StageLayout::kLayerMajor) {
    const RankLayout o = rank_layout(c_, shard_);
    const LocalDims d = local_dims(c_, shard_);
    wte_at_ = o.wte, wpe_at_ = o.wpe, lnf_at_ = o.lnf;
    head_at_ = c_.tie_embeddings ? o.wte : o.lm_head;
    size_t first = o.layers;
    for (int t = kFirstLayerTensor; t <= kLastLayerTensor; ++t) {
      layer_first_[size_t(t)] = first, layer_stride_[size_t(t)] = o.layer_size;
      first += local_layer_tensor_size(t, d);
    }
  } else {
    const auto g = param_layout(c_);
    wte_at_ = g[kWte].offset, wpe_at_ = g[kWpe].offset, lnf_at_ = g[kLnfw].offset;
    head_at_ = c_.tie_embeddings ? g[kWte].offset : g[kLmHead].offset;
    for (int t = kFirstLayerTensor; t <= kLastLayerTensor; ++t)
      layer_first_[size_t(t)] = g[size_t(t)].offset, layer_stride_[size_t(t)] = g[size_t(t)].size / size_t(c_.n_layer);
  }
  const Dims d = dims();
  BlockX x;
  layer_acts_ = carve_block_x(nullptr, d, &x);
  Acts a;
  slot_size_ = carve_acts(nullptr, d, &a);
  runs_ = shard_runs(c_, shard_, layout_);
  using Memory = typename KernelSet<Real>::Memory;
  params_ = KernelBuffer<Real>(kernels, rank_parameters(c_, shard_), Memory::kState);
  grads_ = KernelBuffer<Real>(kernels, params_.size(), Memory::kState);
  acts_ = KernelBuffer<Real>(kernels, slot_size_ * size_t(slots), Memory::kActivations);
  dresidual_ = KernelBuffer<Real>(kernels, d.BT * d.C, Memory::kActivations);
  inputs_.assign(size_t(slots), nullptr);
  targets_.assign(size_t(slots), nullptr);
  scratch_ = KernelBuffer<Real>(kernels, scratch_size(d), Memory::kActivations);
  if (vocab_split_ && shard.last) ce_stats_ = KernelBuffer<Real>(kernels, d.TP * d.BT * 3, Memory::kState);
  kernels.weights_changed(params_.data(), params_.size());
}

template <typename Real>
std::vector<ShardRun> TransformerStage<Real>::shard_runs(const GPTConfig& c, const StageShard& s,
                                                         StageLayout layout) {
  if (layout == StageLayout::kLayerMajor) return layer_major_runs(c, s);
  std::vector<ShardRun> runs;  // param_layout itself: every tensor where the checkpoint has it
  const auto g = param_layout(c);
  for (size_t t = 0; t < g.size(); ++t) runs.push_back({int(t), g[t].offset, g[t].offset, g[t].size, true});
  return runs;
}

template <typename Real>
void TransformerStage<Real>::init_weights(uint64_t seed) {
  const auto g = param_layout(c_);
  std::vector<Real> host(params_.size(), Real(0));  // drawn on the host whatever the kernel set
  for (const ShardRun& r : runs_)
    init_param_slice(c_, seed, r.tensor, r.global - g[size_t(r.tensor)].offset, r.len, host.data() + r.local);
  k_->upload(params_.data(), host.data(), host.size());
  k_->weights_changed(params_.data(), params_.size());
}

template <typename Real>
std::vector<ParamSegment> TransformerStage<Real>::run_segments(const GPTConfig& c, const std::vector<ShardRun>& runs) {
  const auto g = param_layout(c);
  std::vector<ParamSegment> out;
  for (const ShardRun& r : runs) {
    const bool decay = g[size_t(r.tensor)].decay;
    if (!out.empty() && out.back().offset + out.back().size == r.local && out.back().decay == decay)
      out.back().size += r.len;
    else
      out.push_back({r.local, r.len, decay});
  }
  return out;
}

template <typename Real>
size_t TransformerStage<Real>::layer_offset(int li) const {
  return layer_first_[size_t(kFirstLayerTensor)] + size_t(li) * layer_stride_[size_t(kFirstLayerTensor)];
}
template <typename Real>
size_t TransformerStage<Real>::lnf_offset() const {
  return lnf_at_;
}
template <typename Real>
size_t TransformerStage<Real>::wte_size() const {
  return holds_wte(c_, shard_) ? size_t(vocab_.hi - vocab_.lo) * size_t(C_) : 0;
}

template <typename Real>
Real* TransformerStage<Real>::input(int slot) {
  return slot_acts(slot).input;
}
template <typename Real>
const Real* TransformerStage<Real>::output(int slot) {
  return block_x(slot_acts(slot), Lloc_ - 1).residual3;
}
template <typename Real>
const Real* TransformerStage<Real>::logits(int slot) const {
  return slot_acts(slot).logits;
}

template <typename Real>
void TransformerStage<Real>::zero_grad() {
  k_->zero(grads_.data(), grads_.size());
}

// ------------------------------------------------------------------- the kernels

template <typename Real>
void TransformerStage<Real>::matmul_fwd(Real* out, const Real* inp, const Real* w, const Real* bias, int in,
                                        int out_features, int ldo, int rows) {
  const int n = rows > 0 ? rows : BT_;
  k_->matmul_forward(out, inp, w, bias, n, in, out_features, ldo > 0 ? ldo : out_features);
  flops_ += linear_flops(n, in, out_features);
}

template <typename Real>
void TransformerStage<Real>::matmul_bwd(Real* dinp, Real* dw, Real* db, const Real* dout, const Real* inp,
                                        const Real* w, int in, int out_features, int ld_dout) {
  k_->matmul_backward(dinp, dw, db, dout, inp, w, BT_, in, out_features, ld_dout > 0 ? ld_dout : out_features);
  flops_ += 2 * linear_flops(BT_, in, out_features);
}

// The TP collectives move floats; the constructor refuses TP > 1 for any other type.
template <typename Real>
void TransformerStage<Real>::tp_allreduce(Real* data, size_t count, TpReduce& tp) {
  if constexpr (std::is_same_v<Real, float>)
    tp.allreduce(data, count);
  else
    throw std::logic_error("tensor parallelism runs in float only");
}

// A row-parallel linear: this rank's input columns give a partial sum of every output; the
// allreduce completes it and the bias comes after (Megatron's g). One TP rank: one plain
// linear, as a whole model makes it.
template <typename Real>
void TransformerStage<Real>::row_parallel_forward(Real* out, const Real* inp, const Real* w, const Real* bias,
                                                  int in_features, TpReduce& tp, int rows) {
  const int n = rows > 0 ? rows : BT_;
  if (shard_.tp_size == 1) return matmul_fwd(out, inp, w, bias, in_features, C_, 0, n);
  matmul_fwd(out, inp, w, nullptr, in_features, C_, 0, n);
  tp_allreduce(out, size_t(n) * C_, tp);
  k_->add_bias(out, bias, n, C_);
}

// Pre-LN block on this rank's heads and MLP columns: residual2 = residual +
// attn(ln1(residual)); residual3 = residual2 + mlp(ln2(residual2)).
template <typename Real>
void TransformerStage<Real>::block_forward(const Acts& a, int li, const Real* residual, TpReduce& tp) {
  const BlockX x = block_x(a, li);
  const BlockW w = block_w(params_.data(), li);
  const size_t btc = size_t(BT_) * C_;
  k_->layernorm_forward(x.ln1, x.ln1_mean, x.ln1_rstd, residual, w.ln1w, w.ln1b, BT_, C_);
  matmul_fwd(x.qkv, x.ln1, w.qkvw, w.qkvb, C_, 3 * Ct_);  // column-parallel
  k_->attention_forward(x.atty, x.att, x.qkv, B_, T_, Ct_, NHt_);
  flops_ += attention_flops(BT_, T_ / 2.0, Ct_);  // each row attends the causal half on average
  row_parallel_forward(x.attproj, x.atty, w.attprojw, w.attprojb, Ct_, tp);
  k_->residual_forward(x.residual2, residual, x.attproj, btc);
  k_->layernorm_forward(x.ln2, x.ln2_mean, x.ln2_rstd, x.residual2, w.ln2w, w.ln2b, BT_, C_);
  matmul_fwd(x.fch, x.ln2, w.fcw, w.fcb, C_, Ft_);  // column-parallel
  k_->gelu_forward(x.fch_gelu, x.fch, size_t(BT_) * Ft_);
  row_parallel_forward(x.fcproj, x.fch_gelu, w.fcprojw, w.fcprojb, Ft_, tp);
  k_->residual_forward(x.residual3, x.residual2, x.fcproj, btc);
}

// wte[token] + wpe[position]; vocabulary-parallel: each rank's rows, summed over the TP ranks.
template <typename Real>
void TransformerStage<Real>::embed(const Acts& a, const int32_t* inputs, TpReduce& tp) {
  const Real* wte = params_.data() + wte_at_;
  const Real* wpe = params_.data() + wpe_at_;
  if (!vocab_split_) return k_->encoder_forward(a.input, inputs, wte, wpe, B_, T_, C_, VocabSlice{});
  // Only rank 0 adds wpe, so the sum holds it once; x + 0 is exact, so the result is
  // bitwise the replicated one.
  k_->encoder_forward(a.input, inputs, wte, shard_.tp_rank == 0 ? wpe : nullptr, B_, T_, C_, vocab_);
  tp_allreduce(a.input, size_t(BT_) * C_, tp);
}

// The LM head's softmax and the mean loss over the rows, from this rank's logits columns.
template <typename Real>
Real TransformerStage<Real>::cross_entropy(const Acts& a, const int32_t* targets, TpReduce& tp) {
  if (!vocab_split_) return k_->crossentropy_forward(a.losses, a.probs, a.logits, targets, BT_, c_.vocab_size, ldv_);
  if constexpr (std::is_same_v<Real, float>) {
    Real* mine = ce_stats_.data() + size_t(shard_.tp_rank) * BT_ * 3;
    k_->crossentropy_partial(mine, a.logits, targets, BT_, vocab_);
    tp.allgather(ce_stats_.data(), ce_stats_.size());
    const Real loss = k_->crossentropy_combine(a.losses, a.lse, ce_stats_.data(), shard_.tp_size, BT_);
    k_->softmax_from_lse(a.probs, a.logits, a.lse, BT_, vocab_.hi - vocab_.lo);
    return loss;
  } else {
    throw std::logic_error("tensor parallelism runs in float only");
  }
}

// lnf, the LM head's logits and, with targets, the loss (NaN without: logits only).
template <typename Real>
Real TransformerStage<Real>::lm_head_forward(const Acts& a, const Real* residual, const int32_t* targets,
                                             TpReduce& tp) {
  const Real* lnfw = params_.data() + lnf_at_;
  k_->layernorm_forward(a.lnf, a.lnf_mean, a.lnf_rstd, residual, lnfw, lnfw + C_, BT_, C_);
  matmul_fwd(a.logits, a.lnf, params_.data() + head_at_, nullptr, C_, vocab_.hi - vocab_.lo, ldv_);
  if (!targets) return std::numeric_limits<Real>::quiet_NaN();
  return cross_entropy(a, targets, tp);
}

template <typename Real>
void TransformerStage<Real>::check_tokens(const int32_t* ids, const char* what) const {
  const int V = c_.vocab_size;
  for (int i = 0; ids && i < BT_; ++i)
    if (ids[i] < 0 || ids[i] >= V)
      throw std::out_of_range(std::string("forward: ") + what + " token id " + std::to_string(ids[i]) +
                              " at position " + std::to_string(i) + " is outside [0, " + std::to_string(V) + ")");
}

template <typename Real>
Real TransformerStage<Real>::forward(int slot, const int32_t* inputs, const int32_t* targets, TpReduce& tp) {
  const Acts a = slot_acts(slot);
  if (shard_.first) check_tokens(inputs, "input");
  if (shard_.last) check_tokens(targets, "target");
  inputs_[size_t(slot)] = inputs;
  targets_[size_t(slot)] = targets;
  const size_t btc = size_t(BT_) * C_;
  if (shard_.first) {
    embed(a, inputs, tp);
    probe(ProbePoint::kEmbed, -1, a.input, btc);
  }
  const Real* residual = a.input;
  for (int li = 0; li < Lloc_; ++li) {
    block_forward(a, li, residual, tp);
    residual = block_x(a, li).residual3;
    probe(ProbePoint::kBlockForward, shard_.layer_begin + li, block_x(a, li).residual3, btc);
  }
  if (!shard_.last) return Real(0);
  const Real loss = lm_head_forward(a, residual, targets, tp);
  probe(ProbePoint::kLogits, -1, a.logits, size_t(BT_) * size_t(ldv_));
  return loss;
}

template <typename Real>
const Real* TransformerStage<Real>::forward_block(int slot, int li, const Real* input) {
  if (li < 0 || li >= Lloc_) throw std::out_of_range("forward_block: local layer " + std::to_string(li) + " outside the stage");
  const Acts a = slot_acts(slot);
  block_forward(a, li, input, no_tensor_parallelism());
  return block_x(a, li).residual3;
}

template <typename Real>
const Real* TransformerStage<Real>::forward_logits(int slot, const Real* input) {
  if (!shard_.last) throw std::logic_error("forward_logits: the LM head is on the last stage");
  const Acts a = slot_acts(slot);
  lm_head_forward(a, input, nullptr, no_tensor_parallelism());
  return a.logits;
}

// On entry dresidual is the gradient of the block's output, on exit that of its input. A
// residual add passes its gradient unchanged to both inputs, so each branch reads dresidual
// directly and the LayerNorm backward adds the branch's share into it. The column-parallel
// linears' input gradients are partial sums over the TP ranks' columns, completed by an
// allreduce before the LayerNorm (Megatron's f).
template <typename Real>
void TransformerStage<Real>::block_backward(const Acts& a, int li, const Real* residual, TpReduce& tp) {
  const BlockX x = block_x(a, li);
  const BlockW w = block_w(params_.data(), li);
  const BlockW g = block_w(grads_.data(), li);
  const size_t BT = size_t(BT_), btc = BT * C_;
  Real* dres = dresidual_.data();
  Real* dfch_gelu = scratch_.data() + btc;  // after dlnf
  Real* dfch = dfch_gelu + BT * Ft_;
  Real* dln2 = dfch + BT * Ft_;
  Real* datty = dln2 + btc;
  Real* dqkv = datty + BT * Ct_;
  Real* dln1 = dqkv + 3 * BT * Ct_;
  k_->zero(dfch_gelu, size_t(dln1 + btc - dfch_gelu));
  matmul_bwd(dfch_gelu, g.fcprojw, g.fcprojb, dres, x.fch_gelu, w.fcprojw, Ft_, C_);
  k_->gelu_backward(dfch, x.fch, dfch_gelu, BT * Ft_);
  matmul_bwd(dln2, g.fcw, g.fcb, dfch, x.ln2, w.fcw, C_, Ft_);
  if (shard_.tp_size > 1) tp_allreduce(dln2, btc, tp);
  k_->layernorm_backward(dres, g.ln2w, g.ln2b, dln2, x.residual2, w.ln2w, x.ln2_mean, x.ln2_rstd, BT_, C_);
  matmul_bwd(datty, g.attprojw, g.attprojb, dres, x.atty, w.attprojw, Ct_, C_);
  k_->attention_backward(dqkv, datty, x.qkv, x.att, B_, T_, Ct_, NHt_);
  flops_ += 2 * attention_flops(BT_, T_ / 2.0, Ct_);
  matmul_bwd(dln1, g.qkvw, g.qkvb, dqkv, x.ln1, w.qkvw, C_, 3 * Ct_);
  if (shard_.tp_size > 1) tp_allreduce(dln1, btc, tp);
  k_->layernorm_backward(dres, g.ln1w, g.ln1b, dln1, residual, w.ln1w, x.ln1_mean, x.ln1_rstd, BT_, C_);
}

// The cross-entropy's gradient (in place over the softmax: the kernels assign dlogits),
// the LM head, then lnf: leaves the gradient of the last block's output in dresidual.
template <typename Real>
void TransformerStage<Real>::lm_head_backward(const Acts& a, int slot, Real loss_scale, TpReduce& tp) {
  const int32_t* targets = targets_[size_t(slot)];
  if (!targets) throw std::logic_error("backward needs a forward() with targets before each backward");
  const int C = C_, V = vocab_.hi - vocab_.lo;  // this rank's vocabulary columns
  const size_t btc = size_t(BT_) * C;
  Real* dlogits = a.probs;
  k_->crossentropy_backward(dlogits, a.probs, a.logits, targets, BT_, V, ldv_, vocab_, loss_scale);
  Real* dlnf = scratch_.data();
  k_->zero(dlnf, btc);
  matmul_bwd(dlnf, grads_.data() + head_at_, nullptr, dlogits, a.lnf, params_.data() + head_at_, C, V, ldv_);
  if (vocab_split_) tp_allreduce(dlnf, btc, tp);  // each rank's columns gave a partial sum
  Real* dres = dresidual_.data();
  k_->zero(dres, btc);
  const Real* lnfw = params_.data() + lnf_at_;
  Real* glnfw = grads_.data() + lnf_at_;
  k_->layernorm_backward(dres, glnfw, glnfw + C, dlnf, block_x(a, Lloc_ - 1).residual3, lnfw, a.lnf_mean, a.lnf_rstd,
                     BT_, C);
  targets_[size_t(slot)] = nullptr;  // the softmax is spent
}

template <typename Real>
void TransformerStage<Real>::backward(int slot, Real loss_scale, TpReduce& tp,
                                      const std::function<void(size_t)>& ready) {
  const Acts a = slot_acts(slot);
  // Partial buffers become final only in the layer-major order.
  auto done_from = [&](size_t lo) {
    if (ready && layout_ == StageLayout::kLayerMajor) ready(lo);
  };
  if (shard_.last) {
    lm_head_backward(a, slot, loss_scale, tp);
    probe(ProbePoint::kHeadBackward, -1, dresidual_.data(), dresidual_.size());
    done_from(lnf_offset());
  }
  for (int li = Lloc_ - 1; li >= 0; --li) {
    block_backward(a, li, li == 0 ? a.input : block_x(a, li - 1).residual3, tp);
    probe(ProbePoint::kBlockBackward, shard_.layer_begin + li, dresidual_.data(), dresidual_.size());
    done_from(layer_offset(li));
  }
  if (shard_.first)
    k_->encoder_backward(grads_.data() + wte_at_, grads_.data() + wpe_at_, dresidual_.data(), inputs_[size_t(slot)],
                         B_, T_, C_, vocab_);
}

// ------------------------------------------------------- generation with a KV cache

// forward_cached's activations for the cache's max_rows rows: the stage's input, one
// block's activations (every layer reuses them: a layer reads its input residual before it
// overwrites residual3 with its output) and the LM head's.
template <typename Real>
struct TransformerStage<Real>::CachedX {
  Real* input;  // (n, C)
  BlockX x;     // (n, ...) one layer's; its attention probabilities (att) stay unused
  Real *lnf, *lnf_mean, *lnf_rstd, *logits;  // last stage: (n, C), (n), (n), (n, V)
};

template <typename Real>
KvCache<Real> TransformerStage<Real>::make_kv_cache(int seqs, int max_rows) const {
  if (vocab_split_) throw std::invalid_argument("model: generation needs the whole vocabulary on each TP rank (no vocab_parallel)");
  if (seqs < 1 || max_rows < 1) throw std::invalid_argument("model: a KV cache needs >= 1 sequence and >= 1 row");
  if (!k_->generates()) throw std::invalid_argument("model: this kernel set does not run generation (a host KV cache)");
  KvCache<Real> cache;
  cache.seqs = seqs, cache.max_rows = max_rows;
  const size_t per_layer = size_t(seqs) * size_t(c_.n_ctx) * size_t(Ct_);
  cache.keys.assign(size_t(Lloc_) * per_layer, Real(0));
  cache.values.assign(cache.keys.size(), Real(0));
  const Dims d = dims_of(c_, shard_, max_rows, 1);
  BlockX x;
  const size_t head = shard_.last ? d.BT * (d.C + 2 + d.Vt) : 0;
  cache.work.assign(d.BT * d.C + carve_block_x(nullptr, d, &x) + head, Real(0));
  return cache;
}

template <typename Real>
typename TransformerStage<Real>::CachedX TransformerStage<Real>::cached_x(KvCache<Real>& cache) const {
  const Dims d = dims_of(c_, shard_, cache.max_rows, 1);
  CachedX cx;
  Carver<Real> k(cache.work.data());
  cx.input = k.take(d.BT * d.C);
  Real* layer = k.take(carve_block_x(nullptr, d, &cx.x));
  carve_block_x(layer, d, &cx.x);
  const size_t head = shard_.last ? 1 : 0;
  cx.lnf = k.take(head * d.BT * d.C);
  cx.lnf_mean = k.take(head * d.BT);
  cx.lnf_rstd = k.take(head * d.BT);
  cx.logits = k.take(head * d.BT * d.Vt);
  return cx;
}

// block_forward's kernels in its order on the rows, the attention reading the cache into
// which this call first writes the rows' keys and values.
template <typename Real>
void TransformerStage<Real>::block_cached(const CachedX& cx, KvCache<Real>& cache, int li,
                                          std::span<const TokenRow> rows, TpReduce& tp) {
  const BlockX& x = cx.x;
  const BlockW w = block_w(params_.data(), li);
  const int n = int(rows.size());
  const size_t nc = size_t(n) * C_, ctx = size_t(c_.n_ctx), Ct = size_t(Ct_);
  const Real* residual = li == 0 ? cx.input : x.residual3;
  k_->layernorm_forward(x.ln1, x.ln1_mean, x.ln1_rstd, residual, w.ln1w, w.ln1b, n, C_);
  matmul_fwd(x.qkv, x.ln1, w.qkvw, w.qkvb, C_, 3 * Ct_, 0, n);  // column-parallel: [q | k | v] of this rank's heads
  Real* keys = cache.keys.data() + size_t(li) * cache.seqs * ctx * Ct;  // (seqs, n_ctx, Ct)
  Real* values = cache.values.data() + size_t(li) * cache.seqs * ctx * Ct;
  std::vector<int32_t> seq(static_cast<size_t>(n)), pos(static_cast<size_t>(n));
  for (int r = 0; r < n; ++r) {
    const TokenRow& t = rows[size_t(r)];
    seq[size_t(r)] = t.seq, pos[size_t(r)] = t.pos;
    const Real* qkv = x.qkv + size_t(r) * 3 * Ct;
    const size_t at = (size_t(t.seq) * ctx + size_t(t.pos)) * Ct;
    std::copy(qkv + Ct, qkv + 2 * Ct, keys + at);
    std::copy(qkv + 2 * Ct, qkv + 3 * Ct, values + at);
    flops_ += attention_flops(1, t.pos + 1, Ct_);  // QK^T and AV over the positions 0..pos
  }
  k_->attention_forward_cached(x.atty, x.qkv, 3 * Ct_, keys, values, seq.data(), pos.data(), n, c_.n_ctx, Ct_, NHt_);
  row_parallel_forward(x.attproj, x.atty, w.attprojw, w.attprojb, Ct_, tp, n);
  k_->residual_forward(x.residual2, residual, x.attproj, nc);
  k_->layernorm_forward(x.ln2, x.ln2_mean, x.ln2_rstd, x.residual2, w.ln2w, w.ln2b, n, C_);
  matmul_fwd(x.fch, x.ln2, w.fcw, w.fcb, C_, Ft_, 0, n);  // column-parallel
  k_->gelu_forward(x.fch_gelu, x.fch, size_t(n) * Ft_);
  row_parallel_forward(x.fcproj, x.fch_gelu, w.fcprojw, w.fcprojb, Ft_, tp, n);
  k_->residual_forward(x.residual3, x.residual2, x.fcproj, nc);
}

template <typename Real>
const Real* TransformerStage<Real>::forward_cached(KvCache<Real>& cache, std::span<const TokenRow> rows,
                                                   const Real* input, TpReduce& tp) {
  const int n = int(rows.size());
  if (n < 1 || n > cache.max_rows)
    throw std::out_of_range("forward_cached: " + std::to_string(n) + " rows, the cache takes 1 to " +
                            std::to_string(cache.max_rows));
  for (const TokenRow& t : rows) {
    if (t.seq < 0 || t.seq >= cache.seqs || t.pos < 0 || t.pos >= c_.n_ctx)
      throw std::out_of_range("forward_cached: row (sequence " + std::to_string(t.seq) + ", position " +
                              std::to_string(t.pos) + ") outside the cache's " + std::to_string(cache.seqs) +
                              " sequences of n_ctx = " + std::to_string(c_.n_ctx));
    if (shard_.first && (t.token < 0 || t.token >= c_.vocab_size))
      throw std::out_of_range("forward_cached: token id " + std::to_string(t.token) + " is outside [0, " +
                              std::to_string(c_.vocab_size) + ")");
  }
  const CachedX cx = cached_x(cache);
  const size_t nc = size_t(n) * C_;
  if (shard_.first) {  // wte[token] + wpe[pos], encoder_forward one row at a time
    for (int r = 0; r < n; ++r) {
      const TokenRow& t = rows[size_t(r)];
      k_->encoder_forward(cx.input + size_t(r) * C_, &t.token, params_.data() + wte_at_,
                          params_.data() + wpe_at_ + size_t(t.pos) * C_, 1, 1, C_, VocabSlice{});
    }
  } else {
    std::copy(input, input + nc, cx.input);
  }
  for (int li = 0; li < Lloc_; ++li) block_cached(cx, cache, li, rows, tp);
  const Real* residual = cx.x.residual3;
  if (!shard_.last) return residual;
  const Real* lnfw = params_.data() + lnf_at_;
  k_->layernorm_forward(cx.lnf, cx.lnf_mean, cx.lnf_rstd, residual, lnfw, lnfw + C_, n, C_);
  matmul_fwd(cx.logits, cx.lnf, params_.data() + head_at_, nullptr, C_, c_.vocab_size, 0, n);
  return cx.logits;
}

template class TransformerStage<float>;
template class TransformerStage<double>;

}  // namespace dtb
