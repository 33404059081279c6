#include "parallel/stage_model.hpp"

#include <algorithm>
#include <stdexcept>

#include "cpu/kernels.hpp"
#include "model/carver.hpp"

namespace dtb::par {
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

}  // namespace

VocabSlice vocab_slice(const GPTConfig& c, const StageShard& s) {
  if (!s.vocab_parallel || s.tp_size == 1) return {0, c.vocab_size};
  const int64_t V = c.vocab_size, r = s.tp_rank, p = s.tp_size;
  return {int(V * r / p), int(V * (r + 1) / p)};
}

namespace {

struct LocalOffsets {
  size_t wte, wpe, layers, layer_size, lnf, total;
};
LocalOffsets local_offsets(const GPTConfig& c, const StageShard& s) {
  const LocalDims d = local_dims(c, s);
  LocalOffsets o{};
  o.wte = 0;
  const VocabSlice v = vocab_slice(c, s);
  o.wpe = (s.first || s.last) ? size_t(v.hi - v.lo) * d.C : 0;
  o.layers = o.wpe + (s.first ? size_t(c.n_ctx) * d.C : 0);
  for (int t = kFirstLayerTensor; t <= kLastLayerTensor; ++t) o.layer_size += local_layer_tensor_size(t, d);
  o.lnf = o.layers + size_t(s.layer_end - s.layer_begin) * o.layer_size;
  o.total = o.lnf + (s.last ? 2 * d.C : 0);
  return o;
}

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

}  // namespace

std::vector<ShardRun> StageModel::shard_runs(const GPTConfig& c, const StageShard& s) {
  const auto g = param_layout(c);
  const LocalOffsets o = local_offsets(c, s);
  const LocalDims d = local_dims(c, s);
  const bool tp0 = s.tp_rank == 0;
  const VocabSlice v = vocab_slice(c, s);
  const bool wte_split = v.hi - v.lo < c.vocab_size;  // each TP rank owns its own rows
  std::vector<ShardRun> runs;
  if (s.first || s.last)
    runs.push_back({kWte, o.wte, g[kWte].offset + size_t(v.lo) * d.C, size_t(v.hi - v.lo) * d.C,
                    s.first && (tp0 || wte_split)});
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
  return runs;
}

size_t StageModel::shard_size(const GPTConfig& c, const StageShard& s) { return local_offsets(c, s).total; }

// ------------------------------------------------------------------------- views

struct StageModel::BlockW {
  float *ln1w, *ln1b;          // (C)
  float *qkvw, *qkvb;          // (3Ct, C), (3Ct): this rank's q, k, v rows
  float *attprojw, *attprojb;  // (C, Ct), (C)
  float *ln2w, *ln2b;          // (C)
  float *fcw, *fcb;            // (Ft, C), (Ft)
  float *fcprojw, *fcprojb;    // (C, Ft), (C)
};

struct StageModel::BlockX {
  float *ln1, *ln1_mean, *ln1_rstd;  // (B, T, C), (B, T), (B, T)
  float* qkv;                        // (B, T, 3Ct)
  float* atty;                       // (B, T, Ct)
  float* att;                        // (B, NHt, T, T)
  float *attproj, *residual2;        // (B, T, C)
  float *ln2, *ln2_mean, *ln2_rstd;  // (B, T, C), (B, T), (B, T)
  float *fch, *fch_gelu;             // (B, T, Ft)
  float *fcproj, *residual3;         // (B, T, C)
};

struct StageModel::Acts {
  float* input;   // (B, T, C) the stage's input residual (first stage: the encoding)
  float* layers;  // Lloc x layer_acts_
  float *lnf, *lnf_mean, *lnf_rstd;  // last stage: (B, T, C), (B, T), (B, T)
  float *logits, *probs, *losses;    // (B, T, Vt), (B, T, Vt) (dlogits in backward), (B, T); Vt: this rank's vocabulary
  float* lse;                        // (B, T) vocabulary-parallel: each row's log-sum-exp
};

StageModel::BlockW StageModel::block_w(float* base, int li) const {
  const LocalDims d = local_dims(c_, shard_);
  float* p = base + layer_offset(li);
  auto take = [&](int t) {
    float* v = p;
    p += local_layer_tensor_size(t, d);
    return v;
  };
  BlockW w;
  w.ln1w = take(kLn1w), w.ln1b = take(kLn1b), w.qkvw = take(kQkvw), w.qkvb = take(kQkvb);
  w.attprojw = take(kAttprojw), w.attprojb = take(kAttprojb), w.ln2w = take(kLn2w), w.ln2b = take(kLn2b);
  w.fcw = take(kFcw), w.fcb = take(kFcb), w.fcprojw = take(kFcprojw), w.fcprojb = take(kFcprojb);
  return w;
}


// One layer's activations at BASE (null: only counts); returns the elements it spans.
size_t StageModel::carve_block_x(float* base, BlockX* x) const {
  const size_t BT = size_t(BT_), C = size_t(C_), Ct = size_t(Ct_), Ft = size_t(Ft_);
  Carver<float> k(base);
  x->ln1 = k.take(BT * C);
  x->ln1_mean = k.take(BT);
  x->ln1_rstd = k.take(BT);
  x->qkv = k.take(BT * 3 * Ct);
  x->atty = k.take(BT * Ct);
  x->att = k.take(size_t(B_) * NHt_ * T_ * T_);
  x->attproj = k.take(BT * C);
  x->residual2 = k.take(BT * C);
  x->ln2 = k.take(BT * C);
  x->ln2_mean = k.take(BT);
  x->ln2_rstd = k.take(BT);
  x->fch = k.take(BT * Ft);
  x->fch_gelu = k.take(BT * Ft);
  x->fcproj = k.take(BT * C);
  x->residual3 = k.take(BT * C);
  return k.used();
}

// One micro-batch slot's activations at BASE (null: only counts).
size_t StageModel::carve_acts(float* base, Acts* a) const {
  const size_t BT = size_t(BT_), C = size_t(C_), V = size_t(vocab_.hi - vocab_.lo);
  Carver<float> k(base);
  a->input = k.take(BT * C);
  a->layers = k.take(size_t(Lloc_) * layer_acts_);
  const size_t head = shard_.last ? 1 : 0;  // only the last stage has lnf and the LM head
  a->lnf = k.take(head * BT * C);
  a->lnf_mean = k.take(head * BT);
  a->lnf_rstd = k.take(head * BT);
  a->logits = k.take(head * BT * V);
  a->probs = k.take(head * BT * V);
  a->losses = k.take(head * BT);
  a->lse = k.take(head * BT);
  return k.used();
}

StageModel::Acts StageModel::slot_acts(int slot) {
  if (slot < 0 || size_t(slot) >= inputs_.size()) throw std::out_of_range("StageModel: slot out of range");
  Acts a;
  carve_acts(acts_.data() + size_t(slot) * slot_size_, &a);
  return a;
}

StageModel::BlockX StageModel::block_x(const Acts& a, int li) const {
  BlockX x;
  carve_block_x(a.layers + size_t(li) * layer_acts_, &x);
  return x;
}

// ------------------------------------------------------------------------- model

StageModel::StageModel(const GPTConfig& config, const StageShard& shard, int rows, int T, int slots)
    : c_(config), shard_(shard), B_(rows), T_(T), BT_(rows * T), C_(config.n_embd),
      Ct_(config.n_embd / shard.tp_size), Ft_(4 * config.n_embd / shard.tp_size),
      NHt_(config.n_head / shard.tp_size), Lloc_(shard.layer_end - shard.layer_begin),
      vocab_(vocab_slice(config, shard)), vocab_split_(vocab_.hi - vocab_.lo < config.vocab_size) {
  if (config.n_head % shard.tp_size != 0 || Lloc_ < 1 || slots < 1 || vocab_.hi <= vocab_.lo)
    throw std::invalid_argument(
        "StageModel: heads must divide by TP, a stage needs >= 1 layer and 1 slot, a TP rank >= 1 vocabulary row");
  layer_size_ = local_offsets(c_, shard_).layer_size;
  BlockX x;
  layer_acts_ = carve_block_x(nullptr, &x);
  Acts a;
  slot_size_ = carve_acts(nullptr, &a);
  runs_ = shard_runs(c_, shard_);
  params_.assign(shard_size(c_, shard_), 0.0f);
  grads_.assign(params_.size(), 0.0f);
  acts_.assign(slot_size_ * size_t(slots), 0.0f);
  dresidual_.assign(size_t(BT_) * C_, 0.0f);
  inputs_.assign(size_t(slots), nullptr);
  targets_.assign(size_t(slots), nullptr);
  // Backward scratch, reused by every block: dlnf | dfch_gelu dfch | dln2 datty dqkv dln1.
  scratch_.assign(size_t(BT_) * (4 * size_t(C_) + 2 * size_t(Ft_) + 4 * size_t(Ct_)), 0.0f);
  if (vocab_split_ && shard.last) ce_stats_.assign(size_t(shard.tp_size) * BT_ * 3, 0.0f);
}

void StageModel::init_weights(uint64_t seed) {
  for (const ShardRun& r : runs_) {
    const size_t tensor_start = param_layout(c_)[size_t(r.tensor)].offset;
    init_param_slice(c_, seed, r.tensor, r.global - tensor_start, r.len, params_.data() + r.local);
  }
}

std::vector<ParamSegment> StageModel::segments() const {
  const auto g = param_layout(c_);
  std::vector<ParamSegment> out;
  for (const ShardRun& r : runs_) {
    const bool decay = g[size_t(r.tensor)].decay;
    if (!out.empty() && out.back().offset + out.back().size == r.local && out.back().decay == decay)
      out.back().size += r.len;
    else
      out.push_back({r.local, r.len, decay});
  }
  return out;
}

size_t StageModel::layer_offset(int li) const {
  return local_offsets(c_, shard_).layers + size_t(li) * layer_size_;
}
size_t StageModel::lnf_offset() const { return local_offsets(c_, shard_).lnf; }
size_t StageModel::wte_size() const { return local_offsets(c_, shard_).wpe; }  // wte ends where wpe starts

float* StageModel::input(int slot) { return slot_acts(slot).input; }
const float* StageModel::output(int slot) { return block_x(slot_acts(slot), Lloc_ - 1).residual3; }

void StageModel::zero_grad() { std::fill(grads_.begin(), grads_.end(), 0.0f); }

// ------------------------------------------------------------------- the kernels

void StageModel::matmul_fwd(float* out, const float* inp, const float* w, const float* bias, int in, int out_features) {
  matmul_forward(out, inp, w, bias, BT_, in, out_features);
  flops_ += 2.0 * BT_ * in * out_features;
}

void StageModel::matmul_bwd(float* dinp, float* dw, float* db, const float* dout, const float* inp,
                            const float* w, int in, int out_features) {
  matmul_backward(dinp, dw, db, dout, inp, w, BT_, in, out_features);
  flops_ += 4.0 * BT_ * in * out_features;
}

// A row-parallel linear: this rank's input columns give a partial sum of every output; the
// allreduce completes it and the bias comes after (Megatron's g). One TP rank: GPT's call.
void StageModel::row_parallel_forward(float* out, const float* inp, const float* w, const float* bias,
                                      int in_features, TpReduce& tp) {
  if (shard_.tp_size == 1) return matmul_fwd(out, inp, w, bias, in_features, C_);
  matmul_fwd(out, inp, w, nullptr, in_features, C_);
  tp.allreduce(out, size_t(BT_) * C_);
  for (int i = 0; i < BT_; ++i)
    for (int o = 0; o < C_; ++o) out[size_t(i) * C_ + o] += bias[o];
}

// GPT's pre-LN block (gpt2.cpp) on this rank's heads and MLP columns.
void StageModel::block_forward(const Acts& a, int li, const float* residual, TpReduce& tp) {
  const BlockX x = block_x(a, li);
  const BlockW w = block_w(params_.data(), li);
  const size_t btc = size_t(BT_) * C_;
  layernorm_forward(x.ln1, x.ln1_mean, x.ln1_rstd, residual, w.ln1w, w.ln1b, BT_, C_);
  matmul_fwd(x.qkv, x.ln1, w.qkvw, w.qkvb, C_, 3 * Ct_);  // column-parallel
  attention_forward(x.atty, x.att, x.qkv, B_, T_, Ct_, NHt_);
  flops_ += 2.0 * BT_ * T_ * Ct_;  // QK^T and AV, causal half (llm.c's 6LCT per token, fwd+bwd)
  row_parallel_forward(x.attproj, x.atty, w.attprojw, w.attprojb, Ct_, tp);
  residual_forward(x.residual2, residual, x.attproj, btc);
  layernorm_forward(x.ln2, x.ln2_mean, x.ln2_rstd, x.residual2, w.ln2w, w.ln2b, BT_, C_);
  matmul_fwd(x.fch, x.ln2, w.fcw, w.fcb, C_, Ft_);  // column-parallel
  gelu_forward(x.fch_gelu, x.fch, size_t(BT_) * Ft_);
  row_parallel_forward(x.fcproj, x.fch_gelu, w.fcprojw, w.fcprojb, Ft_, tp);
  residual_forward(x.residual3, x.residual2, x.fcproj, btc);
}

// wte[token] + wpe[position]; vocabulary-parallel: each rank's rows, summed over the TP ranks.
void StageModel::embed(const Acts& a, const int32_t* inputs, TpReduce& tp) {
  const LocalOffsets o = local_offsets(c_, shard_);
  const float* wpe = params_.data() + o.wpe;
  if (!vocab_split_) return encoder_forward(a.input, inputs, params_.data() + o.wte, wpe, B_, T_, C_);
  // Only rank 0 adds wpe, so the sum holds it once; x + 0 is exact, so the result is
  // bitwise the replicated one.
  encoder_forward(a.input, inputs, params_.data() + o.wte, shard_.tp_rank == 0 ? wpe : nullptr, B_, T_, C_, vocab_);
  tp.allreduce(a.input, size_t(BT_) * C_);
}

// The LM head's softmax and the mean loss over the rows, from this rank's logits columns.
float StageModel::cross_entropy(const Acts& a, const int32_t* targets, TpReduce& tp) {
  if (!vocab_split_) return crossentropy_forward(a.losses, a.probs, a.logits, targets, BT_, c_.vocab_size);
  float* mine = ce_stats_.data() + size_t(shard_.tp_rank) * BT_ * 3;
  crossentropy_partial(mine, a.logits, targets, BT_, vocab_);
  tp.allgather(ce_stats_.data(), ce_stats_.size());
  const float loss = crossentropy_combine(a.losses, a.lse, ce_stats_.data(), shard_.tp_size, BT_);
  softmax_from_lse(a.probs, a.logits, a.lse, BT_, vocab_.hi - vocab_.lo);
  return loss;
}

float StageModel::forward(int slot, const int32_t* inputs, const int32_t* targets, TpReduce& tp) {
  const Acts a = slot_acts(slot);
  inputs_[size_t(slot)] = inputs;
  targets_[size_t(slot)] = targets;
  if (shard_.first) embed(a, inputs, tp);
  const float* residual = a.input;
  for (int li = 0; li < Lloc_; ++li) {
    block_forward(a, li, residual, tp);
    residual = block_x(a, li).residual3;
  }
  if (!shard_.last) return 0.0f;
  const float* lnfw = params_.data() + lnf_offset();
  layernorm_forward(a.lnf, a.lnf_mean, a.lnf_rstd, residual, lnfw, lnfw + C_, BT_, C_);
  matmul_fwd(a.logits, a.lnf, params_.data(), nullptr, C_, vocab_.hi - vocab_.lo);  // tied LM head: wte at offset 0
  return cross_entropy(a, targets, tp);
}

// GPT's block backward; the column-parallel linears' input gradients are partial sums over
// the TP ranks' columns, completed by an allreduce before the LayerNorm (Megatron's f).
void StageModel::block_backward(const Acts& a, int li, const float* residual, TpReduce& tp) {
  const BlockX x = block_x(a, li);
  const BlockW w = block_w(params_.data(), li);
  const BlockW g = block_w(grads_.data(), li);
  const size_t BT = size_t(BT_), btc = BT * C_;
  float* dres = dresidual_.data();
  float* dfch_gelu = scratch_.data() + btc;  // after dlnf
  float* dfch = dfch_gelu + BT * Ft_;
  float* dln2 = dfch + BT * Ft_;
  float* datty = dln2 + btc;
  float* dqkv = datty + BT * Ct_;
  float* dln1 = dqkv + 3 * BT * Ct_;
  std::fill(dfch_gelu, dln1 + btc, 0.0f);
  matmul_bwd(dfch_gelu, g.fcprojw, g.fcprojb, dres, x.fch_gelu, w.fcprojw, Ft_, C_);
  gelu_backward(dfch, x.fch, dfch_gelu, BT * Ft_);
  matmul_bwd(dln2, g.fcw, g.fcb, dfch, x.ln2, w.fcw, C_, Ft_);
  if (shard_.tp_size > 1) tp.allreduce(dln2, btc);
  layernorm_backward(dres, g.ln2w, g.ln2b, dln2, x.residual2, w.ln2w, x.ln2_mean, x.ln2_rstd, BT_, C_);
  matmul_bwd(datty, g.attprojw, g.attprojb, dres, x.atty, w.attprojw, Ct_, C_);
  attention_backward(dqkv, datty, x.qkv, x.att, B_, T_, Ct_, NHt_);
  flops_ += 4.0 * BT_ * T_ * Ct_;
  matmul_bwd(dln1, g.qkvw, g.qkvb, dqkv, x.ln1, w.qkvw, C_, 3 * Ct_);
  if (shard_.tp_size > 1) tp.allreduce(dln1, btc);
  layernorm_backward(dres, g.ln1w, g.ln1b, dln1, residual, w.ln1w, x.ln1_mean, x.ln1_rstd, BT_, C_);
}

void StageModel::backward(int slot, float loss_scale, TpReduce& tp, const std::function<void(size_t)>& ready) {
  const Acts a = slot_acts(slot);
  const int C = C_, V = vocab_.hi - vocab_.lo;  // this rank's vocabulary columns
  const size_t btc = size_t(BT_) * C;
  float* dres = dresidual_.data();
  if (shard_.last) {
    const int32_t* targets = targets_[size_t(slot)];
    if (!targets) throw std::logic_error("StageModel::backward needs a forward() with targets first");
    float* dlogits = a.probs;  // in place, as in GPT
    crossentropy_backward(dlogits, a.probs, targets, BT_, V, vocab_);
    if (loss_scale != 1.0f)
      for (size_t i = 0; i < size_t(BT_) * V; ++i) dlogits[i] *= loss_scale;
    float* dlnf = scratch_.data();
    std::fill(dlnf, dlnf + btc, 0.0f);
    matmul_bwd(dlnf, grads_.data(), nullptr, dlogits, a.lnf, params_.data(), C, V);
    if (vocab_split_) tp.allreduce(dlnf, btc);  // each rank's columns gave a partial sum
    std::fill(dres, dres + btc, 0.0f);
    const float* lnfw = params_.data() + lnf_offset();
    float* glnfw = grads_.data() + lnf_offset();
    layernorm_backward(dres, glnfw, glnfw + C, dlnf, block_x(a, Lloc_ - 1).residual3, lnfw, a.lnf_mean,
                       a.lnf_rstd, BT_, C);
    targets_[size_t(slot)] = nullptr;  // the softmax is spent
    ready(lnf_offset());
  }
  for (int li = Lloc_ - 1; li >= 0; --li) {
    block_backward(a, li, li == 0 ? a.input : block_x(a, li - 1).residual3, tp);
    ready(layer_offset(li));
  }
  if (shard_.first) {
    const LocalOffsets o = local_offsets(c_, shard_);
    encoder_backward(grads_.data() + o.wte, grads_.data() + o.wpe, dres, inputs_[size_t(slot)], B_, T_, C, vocab_);
  }
}

}  // namespace dtb::par
