// GPT-2 forward and backward over the CUDA kernels: model/gpt2.cpp's sequence of layers, in
// the order and with the buffers of llm.c's train_gpt2.cu.
#include "cuda/model.hpp"

#include <cuda_bf16.h>
#include <cuda_runtime_api.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <limits>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "cuda/check.hpp"
#include "cuda/context.hpp"
#include "cuda/kernels.hpp"

namespace dtb::cuda {

const char* precision_name(Precision p) { return p == Precision::kBf16 ? "bf16" : "fp32"; }

Precision parse_precision(const std::string& name) {
  if (name == "bf16") return Precision::kBf16;
  if (name == "fp32") return Precision::kFp32;
  throw std::invalid_argument("precision '" + name + "': allowed: bf16, fp32");
}

namespace {

// Rows of the logits are padded to a multiple of this (the vocabulary 50257 -> 50304, as
// llm.c pads): aligned rows for the LM head's gemm and the classifier's 128-bit loads.
constexpr int kVocabPad = 64;
constexpr size_t kAlign = 256;  // bytes; every carved buffer starts on this boundary

// Pinned host memory for the transfers that must be asynchronous or fast.
template <typename T>
class PinnedBuffer {
 public:
  explicit PinnedBuffer(size_t count) {
    if (count > 0) cuda_check(cudaMallocHost(reinterpret_cast<void**>(&ptr_), count * sizeof(T)));
  }
  ~PinnedBuffer() {
    if (ptr_) cudaFreeHost(ptr_);
  }
  PinnedBuffer(const PinnedBuffer&) = delete;
  PinnedBuffer& operator=(const PinnedBuffer&) = delete;
  T* get() const { return ptr_; }

 private:
  T* ptr_ = nullptr;
};

// Hands out aligned, typed slices of one device allocation; with a null base it only
// counts, so the same code gives the size and the views (as gpt2.cpp's Carver).
class Carver {
 public:
  explicit Carver(char* base) : base_(base) {}
  template <typename T>
  T* take(size_t count) {
    used_ = (used_ + kAlign - 1) / kAlign * kAlign;
    T* p = base_ ? reinterpret_cast<T*>(base_ + used_) : nullptr;
    used_ += count * sizeof(T);
    return p;
  }
  size_t used() const { return used_; }

 private:
  char* base_;
  size_t used_ = 0;
};

// Activations, their gradients and the per-step scratch, as gpt2.cpp's Activations and
// ActivationGrads (same names and shapes), in the compute type; statistics and losses in
// float. The gradient buffers after dlnf are per layer, reused by every layer.
template <typename floatX>
struct Buffers {
  floatX* encoded;    // (B, T, C)
  floatX* ln1;        // (L, B, T, C)
  float* ln1_mean;    // (L, B, T)
  float* ln1_rstd;    // (L, B, T)
  floatX* qkv;        // (L, B, T, 3C)
  floatX* atty;       // (L, B, T, C)
  floatX* att;        // (L, B, NH, T, T)
  floatX* attproj;    // (L, B, T, C)
  floatX* residual2;  // (L, B, T, C)
  floatX* ln2;        // (L, B, T, C)
  float* ln2_mean;    // (L, B, T)
  float* ln2_rstd;    // (L, B, T)
  floatX* fch;        // (L, B, T, 4C)
  floatX* fch_gelu;   // (L, B, T, 4C)
  floatX* fcproj;     // (L, B, T, C)
  floatX* residual3;  // (L, B, T, C)
  floatX* lnf;        // (B, T, C)
  float* lnf_mean;    // (B, T)
  float* lnf_rstd;    // (B, T)
  floatX* logits;     // (B, T, Vp): the logits, then (fused classifier) their gradient
  float* losses;      // (B, T)

  floatX* dresidual;  // (B, T, C) gradient of the residual stream at the current layer
  floatX* dlnf;       // (B, T, C)
  floatX* dfch_gelu;  // (B, T, 4C)
  floatX* dfch;       // (B, T, 4C)
  floatX* dln2;       // (B, T, C)
  floatX* datty;      // (B, T, C)
  floatX* dqkv;       // (B, T, 3C)
  floatX* dln1;       // (B, T, C)

  floatX* attn_scratch;  // attention_scratch_elems
  float* col_scratch;    // column_scratch_floats(B*T, 4C): LayerNorm and bias gradients
  float* norm_partials;  // kNormBlocks
  double* norm;          // (1)
  int32_t* tokens;       // inputs (B*T) | targets (B*T) | encoder buckets (<= 3*B*T + 1)
};

size_t token_slots(int BT) { return 5 * size_t(BT) + 1; }

template <typename floatX>
size_t carve(const GPTConfig& c, int B, int T, int Vp, char* base, Buffers<floatX>* a) {
  const size_t L = c.n_layer, C = c.n_embd, BT = size_t(B) * T;
  Carver k(base);
  a->encoded = k.take<floatX>(BT * C);
  a->ln1 = k.take<floatX>(L * BT * C);
  a->ln1_mean = k.take<float>(L * BT);
  a->ln1_rstd = k.take<float>(L * BT);
  a->qkv = k.take<floatX>(L * BT * 3 * C);
  a->atty = k.take<floatX>(L * BT * C);
  a->att = k.take<floatX>(L * B * c.n_head * size_t(T) * T);
  a->attproj = k.take<floatX>(L * BT * C);
  a->residual2 = k.take<floatX>(L * BT * C);
  a->ln2 = k.take<floatX>(L * BT * C);
  a->ln2_mean = k.take<float>(L * BT);
  a->ln2_rstd = k.take<float>(L * BT);
  a->fch = k.take<floatX>(L * BT * 4 * C);
  a->fch_gelu = k.take<floatX>(L * BT * 4 * C);
  a->fcproj = k.take<floatX>(L * BT * C);
  a->residual3 = k.take<floatX>(L * BT * C);
  a->lnf = k.take<floatX>(BT * C);
  a->lnf_mean = k.take<float>(BT);
  a->lnf_rstd = k.take<float>(BT);
  a->logits = k.take<floatX>(BT * Vp);
  a->losses = k.take<float>(BT);
  a->dresidual = k.take<floatX>(BT * C);
  a->dlnf = k.take<floatX>(BT * C);
  a->dfch_gelu = k.take<floatX>(BT * 4 * C);
  a->dfch = k.take<floatX>(BT * 4 * C);
  a->dln2 = k.take<floatX>(BT * C);
  a->datty = k.take<floatX>(BT * C);
  a->dqkv = k.take<floatX>(BT * 3 * C);
  a->dln1 = k.take<floatX>(BT * C);
  a->attn_scratch = k.take<floatX>(attention_scratch_elems(B, T, int(C), c.n_head));
  a->col_scratch = k.take<float>(column_scratch_floats(int(BT), int(4 * C)));
  a->norm_partials = k.take<float>(kNormBlocks);
  a->norm = k.take<double>(1);
  a->tokens = k.take<int32_t>(token_slots(int(BT)));
  return k.used();
}

// Views of a flat parameter (or gradient) buffer of any element type, from param_layout.
template <typename P>
ParamViews<P> views_at(const std::vector<ParamTensorInfo>& l, P* base) {
  auto at = [&](int i) { return base + l[size_t(i)].offset; };
  return {at(kWte),  at(kWpe),  at(kLn1w), at(kLn1b), at(kQkvw),    at(kQkvb),    at(kAttprojw), at(kAttprojb),
          at(kLn2w), at(kLn2b), at(kFcw),  at(kFcb),  at(kFcprojw), at(kFcprojb), at(kLnfw),     at(kLnfb)};
}

// One block's slice of the weights (or of the gradients: same layout), as gpt2.cpp.
template <typename P>
struct BlockParams {
  P *ln1w, *ln1b;          // (C)
  P *qkvw, *qkvb;          // (3C, C), (3C)
  P *attprojw, *attprojb;  // (C, C), (C)
  P *ln2w, *ln2b;          // (C)
  P *fcw, *fcb;            // (4C, C), (4C)
  P *fcprojw, *fcprojb;    // (C, 4C), (C)
};

template <typename P>
BlockParams<P> block_params(const ParamViews<P>& p, int C, int l) {
  const size_t c = size_t(C), lc = size_t(l) * c;
  return {p.ln1w + lc, p.ln1b + lc, p.qkvw + lc * 3 * c, p.qkvb + 3 * lc, p.attprojw + lc * c,    p.attprojb + lc,
          p.ln2w + lc, p.ln2b + lc, p.fcw + lc * 4 * c,  p.fcb + 4 * lc,  p.fcprojw + lc * 4 * c, p.fcprojb + lc};
}

// One block's slice of the activations.
template <typename floatX>
struct BlockActs {
  floatX *ln1, *qkv, *atty, *att, *attproj, *residual2, *ln2, *fch, *fch_gelu, *fcproj, *residual3;
  float *ln1_mean, *ln1_rstd, *ln2_mean, *ln2_rstd;
};

template <typename floatX>
BlockActs<floatX> block_acts(const Buffers<floatX>& a, int B, int T, int C, int NH, int l) {
  const size_t btc = size_t(B) * T * C, bt = size_t(B) * T * l, att = size_t(B) * NH * T * T;
  const size_t L = size_t(l);
  return {a.ln1 + L * btc,          a.qkv + L * 3 * btc,   a.atty + L * btc,      a.att + L * att,
          a.attproj + L * btc,      a.residual2 + L * btc, a.ln2 + L * btc,       a.fch + L * 4 * btc,
          a.fch_gelu + L * 4 * btc, a.fcproj + L * btc,    a.residual3 + L * btc, a.ln1_mean + bt,
          a.ln1_rstd + bt,          a.ln2_mean + bt,       a.ln2_rstd + bt};
}

}  // namespace

struct Model::Impl {
  GPTConfig c;
  int B, T, Vp;
  Precision precision;
  Context ctx;
  std::vector<ParamTensorInfo> layout;
  size_t n;  // parameters
  DeviceBuffer<float> params, grads, adam_m, adam_v;
  DeviceBuffer<bf16> params_bf16;  // the compute copy (bf16 mode only)
  DeviceBuffer<double> storage;    // the carved buffers (double: 8-byte aligned base)
  size_t storage_bytes = 0;
  PinnedBuffer<int32_t> host_tokens;
  PinnedBuffer<float> host_losses;
  PinnedBuffer<double> host_norm;
  bool has_targets = false;  // a forward with targets ran, backward may follow
  int bucket_unique = 0;
  // The carved buffers whose type does not depend on the precision.
  int32_t* tokens = nullptr;
  float* losses = nullptr;
  float* norm_partials = nullptr;
  double* norm = nullptr;

  Impl(const GPTConfig& config, int batch, int seq_len, Precision p, int device)
      : c(config),
        B(batch),
        T(seq_len),
        Vp((config.vocab_size + kVocabPad - 1) / kVocabPad * kVocabPad),
        precision(p),
        ctx(device),
        layout(param_layout(config)),
        n(num_parameters(config)),
        params(n),
        grads(n),
        adam_m(n),
        adam_v(n),
        params_bf16(p == Precision::kBf16 ? n : 0),
        host_tokens(token_slots(batch * seq_len)),
        host_losses(size_t(batch) * seq_len),
        host_norm(1) {
    storage_bytes = p == Precision::kBf16 ? buffers_bytes<bf16>() : buffers_bytes<float>();
    storage = DeviceBuffer<double>((storage_bytes + sizeof(double) - 1) / sizeof(double));
    cuda_check(cudaMemsetAsync(params.get(), 0, n * sizeof(float), ctx.stream()));
    cuda_check(cudaMemsetAsync(grads.get(), 0, n * sizeof(float), ctx.stream()));
    cuda_check(cudaMemsetAsync(adam_m.get(), 0, n * sizeof(float), ctx.stream()));
    cuda_check(cudaMemsetAsync(adam_v.get(), 0, n * sizeof(float), ctx.stream()));
    cuda_check(cudaMemsetAsync(storage.get(), 0, storage_bytes, ctx.stream()));
    if (p == Precision::kBf16) {
      convert(params_bf16.get(), params.get(), n, ctx.stream());
      set_common(buffers<bf16>());
    } else {
      set_common(buffers<float>());
    }
    ctx.synchronize();
  }

  template <typename floatX>
  void set_common(const Buffers<floatX>& a) {
    tokens = a.tokens;
    losses = a.losses;
    norm_partials = a.norm_partials;
    norm = a.norm;
  }

  template <typename floatX>
  size_t buffers_bytes() const {
    Buffers<floatX> a;
    return carve<floatX>(c, B, T, Vp, nullptr, &a);
  }
  template <typename floatX>
  Buffers<floatX> buffers() const {
    Buffers<floatX> a;
    carve<floatX>(c, B, T, Vp, reinterpret_cast<char*>(storage.get()), &a);
    return a;
  }
  // The weights the kernels read: the bf16 copy, or the fp32 master itself.
  template <typename floatX>
  ParamViews<const floatX> weights() const {
    if constexpr (std::is_same_v<floatX, bf16>)
      return views_at<const bf16>(layout, params_bf16.get());
    else
      return views_at<const float>(layout, params.get());
  }

  template <typename floatX>
  void forward_pass(bool with_targets);
  template <typename floatX>
  void backward_pass();
};

template <typename floatX>
void Model::Impl::forward_pass(bool with_targets) {
  const int C = c.n_embd, NH = c.n_head, L = c.n_layer, V = c.vocab_size, BT = B * T;
  const Buffers<floatX> a = buffers<floatX>();
  const ParamViews<const floatX> p = weights<floatX>();
  const cudaStream_t s = ctx.stream();

  encoder_forward(a.encoded, a.tokens, p.wte, p.wpe, B, T, C, s);
  // Each block's first LayerNorm is fused into the previous block's last residual add, so
  // the first block's stands alone.
  layernorm_forward(a.ln1, a.ln1_mean, a.ln1_rstd, a.encoded, p.ln1w, p.ln1b, BT, C, s);
  for (int l = 0; l < L; ++l) {
    const BlockActs<floatX> x = block_acts(a, B, T, C, NH, l);
    const BlockParams<const floatX> w = block_params(p, C, l);
    const floatX* residual = l == 0 ? a.encoded : a.residual3 + size_t(l - 1) * BT * C;  // (B, T, C)
    matmul_forward(ctx, x.qkv, x.ln1, w.qkvw, w.qkvb, BT, C, 3 * C);
    attention_forward(ctx, x.atty, x.att, x.qkv, B, T, C, NH, a.attn_scratch);
    matmul_forward(ctx, x.attproj, x.atty, w.attprojw, w.attprojb, BT, C, C);
    residual_layernorm_forward(x.residual2, x.ln2, x.ln2_mean, x.ln2_rstd, residual, x.attproj, w.ln2w, w.ln2b, BT, C,
                               s);
    matmul_forward(ctx, x.fch, x.ln2, w.fcw, w.fcb, BT, C, 4 * C);
    gelu_forward(x.fch_gelu, x.fch, size_t(BT) * 4 * C, s);
    matmul_forward(ctx, x.fcproj, x.fch_gelu, w.fcprojw, w.fcprojb, BT, 4 * C, C);
    if (l + 1 < L) {
      const BlockActs<floatX> next = block_acts(a, B, T, C, NH, l + 1);
      const BlockParams<const floatX> wn = block_params(p, C, l + 1);
      residual_layernorm_forward(x.residual3, next.ln1, next.ln1_mean, next.ln1_rstd, x.residual2, x.fcproj, wn.ln1w,
                                 wn.ln1b, BT, C, s);
    } else {
      residual_layernorm_forward(x.residual3, a.lnf, a.lnf_mean, a.lnf_rstd, x.residual2, x.fcproj, p.lnfw, p.lnfb, BT,
                                 C, s);
    }
  }
  matmul_forward(ctx, a.logits, a.lnf, p.wte, static_cast<const floatX*>(nullptr), BT, C, V, Vp);
  if (with_targets) fused_classifier(a.logits, a.losses, a.tokens + BT, BT, V, Vp, 1.0f / float(BT), s);
}

template <typename floatX>
void Model::Impl::backward_pass() {
  const int C = c.n_embd, NH = c.n_head, L = c.n_layer, V = c.vocab_size, BT = B * T;
  const size_t btc = size_t(BT) * C;
  const Buffers<floatX> a = buffers<floatX>();
  const ParamViews<const floatX> p = weights<floatX>();
  const ParamViews<float> g = views_at<float>(layout, grads.get());
  const cudaStream_t s = ctx.stream();

  // The fused classifier left dlogits in a.logits. The activation gradients on single
  // paths are assigned (see kernels.hpp); only dresidual, where branches meet, is zeroed.
  matmul_backward(ctx, a.dlnf, g.wte, static_cast<float*>(nullptr), a.logits, a.lnf, p.wte, BT, C, V, a.col_scratch,
                  Vp);
  cuda_check(cudaMemsetAsync(a.dresidual, 0, btc * sizeof(floatX), s));
  layernorm_backward(a.dresidual, g.lnfw, g.lnfb, a.dlnf, a.residual3 + size_t(L - 1) * btc, p.lnfw, a.lnf_mean,
                     a.lnf_rstd, BT, C, a.col_scratch, s);
  for (int l = L - 1; l >= 0; --l) {
    const BlockActs<floatX> x = block_acts(a, B, T, C, NH, l);
    const BlockParams<const floatX> w = block_params(p, C, l);
    const BlockParams<float> gw = block_params(g, C, l);
    const floatX* residual = l == 0 ? a.encoded : a.residual3 + size_t(l - 1) * btc;
    matmul_backward(ctx, a.dfch_gelu, gw.fcprojw, gw.fcprojb, a.dresidual, x.fch_gelu, w.fcprojw, BT, 4 * C, C,
                    a.col_scratch);
    gelu_backward(a.dfch, x.fch, a.dfch_gelu, size_t(BT) * 4 * C, s);
    matmul_backward(ctx, a.dln2, gw.fcw, gw.fcb, a.dfch, x.ln2, w.fcw, BT, C, 4 * C, a.col_scratch);
    layernorm_backward(a.dresidual, gw.ln2w, gw.ln2b, a.dln2, x.residual2, w.ln2w, x.ln2_mean, x.ln2_rstd, BT, C,
                       a.col_scratch, s);
    matmul_backward(ctx, a.datty, gw.attprojw, gw.attprojb, a.dresidual, x.atty, w.attprojw, BT, C, C, a.col_scratch);
    attention_backward(ctx, a.dqkv, a.datty, x.qkv, x.att, B, T, C, NH, a.attn_scratch);
    matmul_backward(ctx, a.dln1, gw.qkvw, gw.qkvb, a.dqkv, x.ln1, w.qkvw, BT, C, 3 * C, a.col_scratch);
    layernorm_backward(a.dresidual, gw.ln1w, gw.ln1b, a.dln1, residual, w.ln1w, x.ln1_mean, x.ln1_rstd, BT, C,
                       a.col_scratch, s);
  }
  const int32_t* buckets = a.tokens + 2 * size_t(BT);
  encoder_backward(g.wte, g.wpe, a.dresidual, buckets, bucket_unique, B, T, C, s);
}

Model::Model(const GPTConfig& config, int B, int T, Precision precision, int device) {
  const GPTConfig& c = config;
  auto fail = [](const std::string& what) { throw std::invalid_argument("cuda::Model: " + what); };
  if (c.vocab_size < 1 || c.n_ctx < 1 || c.n_layer < 1 || c.n_head < 1 || c.n_embd < 1)
    fail("vocab_size, n_ctx, n_layer, n_head and n_embd must all be >= 1");
  if (c.n_embd % c.n_head != 0)
    fail("n_embd (" + std::to_string(c.n_embd) + ") must be divisible by n_head (" + std::to_string(c.n_head) + ")");
  if (!c.tie_embeddings) fail("untied embeddings (model.tie_embeddings = false) are CPU-only for now");
  if (c.n_embd % kEmbdMultiple != 0)
    fail("n_embd (" + std::to_string(c.n_embd) + ") must be a multiple of " + std::to_string(kEmbdMultiple) +
         " on the GPU");
  if (B < 1 || T < 1 || T > c.n_ctx)
    fail("batch " + std::to_string(B) + " x " + std::to_string(T) + " needs B >= 1 and 1 <= T <= n_ctx (" +
         std::to_string(c.n_ctx) + ")");
  impl_ = std::make_unique<Impl>(config, B, T, precision, device);
}

Model::~Model() = default;

void Model::set_params(const float* host) {
  Impl& m = *impl_;
  cuda_check(cudaMemcpyAsync(m.params.get(), host, m.n * sizeof(float), cudaMemcpyHostToDevice, m.ctx.stream()));
  if (m.precision == Precision::kBf16) convert(m.params_bf16.get(), m.params.get(), m.n, m.ctx.stream());
  m.ctx.synchronize();
}

void Model::get_params(float* host) const {
  const Impl& m = *impl_;
  cuda_check(cudaMemcpyAsync(host, m.params.get(), m.n * sizeof(float), cudaMemcpyDeviceToHost, m.ctx.stream()));
  m.ctx.synchronize();
}

void Model::get_grads(float* host) const {
  const Impl& m = *impl_;
  cuda_check(cudaMemcpyAsync(host, m.grads.get(), m.n * sizeof(float), cudaMemcpyDeviceToHost, m.ctx.stream()));
  m.ctx.synchronize();
}

void Model::set_adam_state(const float* adam_m, const float* adam_v) {
  Impl& m = *impl_;
  cuda_check(cudaMemcpyAsync(m.adam_m.get(), adam_m, m.n * sizeof(float), cudaMemcpyHostToDevice, m.ctx.stream()));
  cuda_check(cudaMemcpyAsync(m.adam_v.get(), adam_v, m.n * sizeof(float), cudaMemcpyHostToDevice, m.ctx.stream()));
  m.ctx.synchronize();
}

void Model::get_adam_state(float* adam_m, float* adam_v) const {
  const Impl& m = *impl_;
  cuda_check(cudaMemcpyAsync(adam_m, m.adam_m.get(), m.n * sizeof(float), cudaMemcpyDeviceToHost, m.ctx.stream()));
  cuda_check(cudaMemcpyAsync(adam_v, m.adam_v.get(), m.n * sizeof(float), cudaMemcpyDeviceToHost, m.ctx.stream()));
  m.ctx.synchronize();
}

float Model::forward(const int32_t* inputs, const int32_t* targets) {
  Impl& m = *impl_;
  const int V = m.c.vocab_size, BT = m.B * m.T;
  for (const int32_t* ids : {inputs, targets})
    for (int i = 0; ids && i < BT; ++i)
      if (ids[i] < 0 || ids[i] >= V)
        throw std::out_of_range("cuda::Model::forward: token id " + std::to_string(ids[i]) + " at position " +
                                std::to_string(i) + " is outside [0, " + std::to_string(V) + ")");
  // Stage inputs | targets in pinned memory, one copy to the device, then the forward
  // pass. The previous forward's copies from the staging buffer are complete: forward ends
  // with a synchronization.
  int32_t* staged = m.host_tokens.get();
  const size_t bt = size_t(BT);
  std::copy(inputs, inputs + BT, staged);
  if (targets) std::copy(targets, targets + BT, staged + bt);
  cuda_check(cudaMemcpyAsync(m.tokens, staged, (targets ? 2 : 1) * bt * sizeof(int32_t), cudaMemcpyHostToDevice,
                             m.ctx.stream()));
  if (m.precision == Precision::kBf16)
    m.forward_pass<bf16>(targets != nullptr);
  else
    m.forward_pass<float>(targets != nullptr);
  m.has_targets = targets != nullptr;
  if (!targets) {
    m.ctx.synchronize();
    return std::numeric_limits<float>::quiet_NaN();
  }
  // The embedding backward's buckets, sorted on the host while the GPU runs the forward,
  // into another part of the staging buffer.
  const EncoderBuckets buckets = encoder_buckets(inputs, BT);
  std::copy(buckets.data.begin(), buckets.data.end(), staged + 2 * bt);
  m.bucket_unique = buckets.unique;
  cuda_check(cudaMemcpyAsync(m.tokens + 2 * bt, staged + 2 * bt, buckets.data.size() * sizeof(int32_t),
                             cudaMemcpyHostToDevice, m.ctx.stream()));
  cuda_check(cudaMemcpyAsync(m.host_losses.get(), m.losses, size_t(BT) * sizeof(float), cudaMemcpyDeviceToHost,
                             m.ctx.stream()));
  m.ctx.synchronize();
  float total = 0;  // in row order, as cpu/
  for (int i = 0; i < BT; ++i) total += m.host_losses.get()[i];
  return total / float(BT);
}

void Model::get_logits(float* host) const {
  const Impl& m = *impl_;
  if (m.has_targets) throw std::logic_error("cuda::Model::get_logits: a forward() with targets replaced the logits");
  const int V = m.c.vocab_size, BT = m.B * m.T;
  const cudaStream_t s = m.ctx.stream();
  // Rows are Vp apart on the device and V apart on the host.
  DeviceBuffer<float> converted;
  const float* rows = nullptr;
  if (m.precision == Precision::kBf16) {
    converted = DeviceBuffer<float>(size_t(BT) * m.Vp);
    convert(converted.get(), m.buffers<bf16>().logits, size_t(BT) * m.Vp, s);
    rows = converted.get();
  } else {
    rows = m.buffers<float>().logits;
  }
  cuda_check(cudaMemcpy2DAsync(host, size_t(V) * sizeof(float), rows, size_t(m.Vp) * sizeof(float),
                               size_t(V) * sizeof(float), size_t(BT), cudaMemcpyDeviceToHost, s));
  m.ctx.synchronize();
}

void Model::zero_grad() {
  Impl& m = *impl_;
  cuda_check(cudaMemsetAsync(m.grads.get(), 0, m.n * sizeof(float), m.ctx.stream()));
}

void Model::backward() {
  Impl& m = *impl_;
  if (!m.has_targets)
    throw std::logic_error("cuda::Model::backward needs a forward() with targets before each backward");
  if (m.precision == Precision::kBf16)
    m.backward_pass<bf16>();
  else
    m.backward_pass<float>();
  m.has_targets = false;  // the gradient in the logits buffer is spent
}

double Model::grad_norm() {
  Impl& m = *impl_;
  sum_of_squares(m.norm, m.grads.get(), m.n, m.norm_partials, m.ctx.stream());
  cuda_check(cudaMemcpyAsync(m.host_norm.get(), m.norm, sizeof(double), cudaMemcpyDeviceToHost, m.ctx.stream()));
  m.ctx.synchronize();
  return std::sqrt(*m.host_norm.get());
}

void Model::adamw_update(const AdamWSettings& a) {
  Impl& m = *impl_;
  // The constants as optim/adamw.cpp computes them.
  AdamWStep step{};
  step.lr = float(a.lr);
  step.beta1 = float(a.beta1);
  step.beta2 = float(a.beta2);
  step.eps = float(a.eps);
  step.m_corr = float(1.0 / (1.0 - std::pow(a.beta1, double(a.t))));
  step.v_corr = float(1.0 / (1.0 - std::pow(a.beta2, double(a.t))));
  step.grad_scale = float(a.grad_scale);
  for (const ParamTensorInfo& t : m.layout) {
    step.decay = t.decay ? float(a.lr * a.weight_decay) : 0.0f;
    bf16* copy = m.precision == Precision::kBf16 ? m.params_bf16.get() + t.offset : nullptr;
    cuda::adamw_update(m.params.get() + t.offset, m.grads.get() + t.offset, m.adam_m.get() + t.offset,
                       m.adam_v.get() + t.offset, copy, t.size, step, m.ctx.stream());
  }
}

const GPTConfig& Model::config() const { return impl_->c; }
int Model::batch() const { return impl_->B; }
int Model::seq_len() const { return impl_->T; }
Precision Model::precision() const { return impl_->precision; }
size_t Model::num_params() const { return impl_->n; }
double Model::flops_per_token() const { return dtb::flops_per_token(impl_->c, impl_->T); }
size_t Model::device_bytes() const {
  const Impl& m = *impl_;
  return m.n * sizeof(float) * 4 + m.params_bf16.size() * sizeof(bf16) + m.storage_bytes + m.ctx.workspace_bytes();
}
Context& Model::context() { return impl_->ctx; }
float* Model::device_params() { return impl_->params.get(); }
float* Model::device_grads() { return impl_->grads.get(); }

}  // namespace dtb::cuda
