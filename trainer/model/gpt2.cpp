// GPT-2 forward and backward over the CPU kernels (llm.c's train_gpt2.c, in C++).
#include "model/gpt2.hpp"

#include <cblas.h>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>

#include "cpu/kernels.hpp"
#include "model/carver.hpp"

namespace dtb {

const std::array<const char*, kNumParamTensors> kParamNames = {
    "wte",  "wpe",  "ln1w", "ln1b", "qkvw",    "qkvb",    "attprojw", "attprojb",
    "ln2w", "ln2b", "fcw",  "fcb",  "fcprojw", "fcprojb", "lnfw",     "lnfb"};

// ------------------------------------------------------------------------ parameters

std::array<ParamTensorInfo, kNumParamTensors> param_layout(const GPTConfig& c) {
  const size_t V = c.vocab_size, P = c.n_ctx, L = c.n_layer, C = c.n_embd;
  const std::array<std::vector<size_t>, kNumParamTensors> shapes = {{
      {V, C},
      {P, C},
      {L, C},
      {L, C},
      {L, 3 * C, C},
      {L, 3 * C},
      {L, C, C},
      {L, C},
      {L, C},
      {L, C},
      {L, 4 * C, C},
      {L, 4 * C},
      {L, C, 4 * C},
      {L, C},
      {C},
      {C},
  }};
  std::array<ParamTensorInfo, kNumParamTensors> layout;
  size_t offset = 0;
  for (int i = 0; i < kNumParamTensors; ++i) {
    size_t size = 1;
    for (size_t d : shapes[i]) size *= d;
    const bool decay =
        i == kWte || i == kWpe || i == kQkvw || i == kAttprojw || i == kFcw || i == kFcprojw;
    layout[i] = {kParamNames[i], shapes[i], offset, size, decay};
    offset += size;
  }
  return layout;
}

size_t num_parameters(const GPTConfig& c) {
  const auto layout = param_layout(c);
  return layout.back().offset + layout.back().size;
}

template <typename T>
ParamViews<T> param_views(const GPTConfig& c, T* base) {
  const auto l = param_layout(c);
  auto at = [&](int i) { return base + l[i].offset; };
  return {.wte = at(kWte),
          .wpe = at(kWpe),
          .ln1w = at(kLn1w),
          .ln1b = at(kLn1b),
          .qkvw = at(kQkvw),
          .qkvb = at(kQkvb),
          .attprojw = at(kAttprojw),
          .attprojb = at(kAttprojb),
          .ln2w = at(kLn2w),
          .ln2b = at(kLn2b),
          .fcw = at(kFcw),
          .fcb = at(kFcb),
          .fcprojw = at(kFcprojw),
          .fcprojb = at(kFcprojb),
          .lnfw = at(kLnfw),
          .lnfb = at(kLnfb)};
}
template ParamViews<float> param_views(const GPTConfig&, float*);
template ParamViews<double> param_views(const GPTConfig&, double*);

std::vector<LinearShape> linear_shapes(const GPTConfig& c) {
  const int L = c.n_layer, C = c.n_embd;
  return {{C, 3 * C, L, true},
          {C, C, L, true},
          {C, 4 * C, L, true},
          {4 * C, C, L, true},
          {C, c.vocab_size, 1, false}};  // LM head, tied to wte
}

namespace {

void validate(const GPTConfig& c, int B, int T) {
  auto fail = [](const std::string& what) { throw std::invalid_argument("GPT: " + what); };
  if (c.vocab_size < 1 || c.n_ctx < 1 || c.n_layer < 1 || c.n_head < 1 || c.n_embd < 1)
    fail("vocab_size, n_ctx, n_layer, n_head and n_embd must all be >= 1");
  if (c.n_embd % c.n_head != 0)
    fail("n_embd (" + std::to_string(c.n_embd) + ") must be divisible by n_head (" +
         std::to_string(c.n_head) + ")");
  if (B < 1 || T < 1 || T > c.n_ctx)
    fail("batch " + std::to_string(B) + " x " + std::to_string(T) +
         " needs B >= 1 and 1 <= T <= n_ctx (" + std::to_string(c.n_ctx) + ")");
}

struct Dims {
  int B, T, C, NH, BT;
  size_t btc;  // B * T * C
};

// llm.c's ActivationTensors: named views into one flat buffer, in buffer order.
template <typename Real>
struct Activations {
  Real* encoded;    // (B, T, C)
  Real* ln1;        // (L, B, T, C)
  Real* ln1_mean;   // (L, B, T)
  Real* ln1_rstd;   // (L, B, T)
  Real* qkv;        // (L, B, T, 3C)
  Real* atty;       // (L, B, T, C)
  Real* att;        // (L, B, NH, T, T)
  Real* attproj;    // (L, B, T, C)
  Real* residual2;  // (L, B, T, C)
  Real* ln2;        // (L, B, T, C)
  Real* ln2_mean;   // (L, B, T)
  Real* ln2_rstd;   // (L, B, T)
  Real* fch;        // (L, B, T, 4C)
  Real* fch_gelu;   // (L, B, T, 4C)
  Real* fcproj;     // (L, B, T, C)
  Real* residual3;  // (L, B, T, C)
  Real* lnf;        // (B, T, C)
  Real* lnf_mean;   // (B, T)
  Real* lnf_rstd;   // (B, T)
  Real* logits;     // (B, T, V)
  Real* losses;     // (B, T)
};

// Gradients of the activations. Only the residual stream's gradient lives through the
// whole backward; the rest is scratch: dlogits is dead once the LM head's backward is done,
// so the per-layer buffers after it reuse the same memory. The forward leaves the softmax
// probabilities in dlogits, which the backward turns into the gradient in place.
template <typename Real>
struct ActivationGrads {
  Real* dresidual;       // (B, T, C) gradient of the residual stream at the current layer
  Real* dlnf;            // (B, T, C)
  Real* dlogits;         // (B, T, V)   } one shared region (probs after forward)
  Real* dfch_gelu;       // (B, T, 4C)  }
  Real* dfch;            // (B, T, 4C)  }
  Real* dln2;            // (B, T, C)   }
  Real* datty;           // (B, T, C)   }
  Real* dqkv;            // (B, T, 3C)  }
  Real* dln1;            // (B, T, C)   }
  size_t layer_scratch;  // elements from dfch_gelu to the end of dln1, zeroed per layer
};

template <typename Real>
size_t carve_activations(const GPTConfig& c, int B, int T, Real* base, Activations<Real>* a) {
  const size_t L = c.n_layer, C = c.n_embd, BT = size_t(B) * T;
  Carver<Real> k(base);
  a->encoded = k.take(BT * C);
  a->ln1 = k.take(L * BT * C);
  a->ln1_mean = k.take(L * BT);
  a->ln1_rstd = k.take(L * BT);
  a->qkv = k.take(L * BT * 3 * C);
  a->atty = k.take(L * BT * C);
  a->att = k.take(L * B * c.n_head * T * T);
  a->attproj = k.take(L * BT * C);
  a->residual2 = k.take(L * BT * C);
  a->ln2 = k.take(L * BT * C);
  a->ln2_mean = k.take(L * BT);
  a->ln2_rstd = k.take(L * BT);
  a->fch = k.take(L * BT * 4 * C);
  a->fch_gelu = k.take(L * BT * 4 * C);
  a->fcproj = k.take(L * BT * C);
  a->residual3 = k.take(L * BT * C);
  a->lnf = k.take(BT * C);
  a->lnf_mean = k.take(BT);
  a->lnf_rstd = k.take(BT);
  a->logits = k.take(BT * c.vocab_size);
  a->losses = k.take(BT);
  return k.used();
}

template <typename Real>
size_t carve_activation_grads(const GPTConfig& c, int B, int T, Real* base,
                              ActivationGrads<Real>* g) {
  const size_t C = c.n_embd, BT = size_t(B) * T;
  Carver<Real> k(base);
  g->dresidual = k.take(BT * C);
  g->dlnf = k.take(BT * C);
  const size_t shared = k.used();
  g->dlogits = k.take(BT * c.vocab_size);
  const size_t after_logits = k.used();
  k.rewind(shared);
  g->dfch_gelu = k.take(BT * 4 * C);
  g->dfch = k.take(BT * 4 * C);
  g->dln2 = k.take(BT * C);
  g->datty = k.take(BT * C);
  g->dqkv = k.take(BT * 3 * C);
  g->dln1 = k.take(BT * C);
  g->layer_scratch = k.used() - shared;
  return std::max(k.used(), after_logits);
}

size_t activation_count(const GPTConfig& c, int B, int T) {
  Activations<float> a;
  return carve_activations<float>(c, B, T, nullptr, &a);
}
size_t activation_grad_count(const GPTConfig& c, int B, int T) {
  ActivationGrads<float> g;
  return carve_activation_grads<float>(c, B, T, nullptr, &g);
}

// Counter-based normal numbers: element i of a tensor is a pure function of (seed, tensor,
// i), so any slice of a tensor (a TP shard, a PP stage's layers) can be drawn on its own,
// in parallel, and gives the same numbers. splitmix64 hashes the counter; Box-Muller in
// double turns a pair of uniforms into the pair of normals for elements 2j and 2j+1.
uint64_t mix64(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}
constexpr uint64_t kGolden = 0x9e3779b97f4a7c15ULL;

double uniform_open01(uint64_t bits) { return (double(bits >> 11) + 0.5) * 0x1p-53; }

// Elements [begin, begin + n) of the tensor's normal sequence: element i is the cosine
// (even i) or sine (odd i) half of pair i/2, so a slice draws only its own pairs.
template <typename Real>
void fill_normal(Real* dst, size_t begin, size_t n, uint64_t seed, int tensor, double stddev) {
  const uint64_t stream = mix64(seed + kGolden * uint64_t(tensor + 1));
  const double two_pi = 6.283185307179586476925286766559;
#pragma omp parallel for schedule(static)
  for (size_t k = 0; k < n; ++k) {
    const size_t i = begin + k, j = i / 2;
    const double u1 = uniform_open01(mix64(stream + kGolden * (2 * j + 1)));
    const double u2 = uniform_open01(mix64(stream + kGolden * (2 * j + 2)));
    const double r = std::sqrt(-2.0 * std::log(u1)) * stddev;
    dst[k] = Real(i % 2 == 0 ? r * std::cos(two_pi * u2) : r * std::sin(two_pi * u2));
  }
}

// One transformer block's slice of the parameters (or of the gradients: same layout).
template <typename Real>
struct BlockParams {
  Real *ln1w, *ln1b;          // (C)
  Real *qkvw, *qkvb;          // (3C, C), (3C)
  Real *attprojw, *attprojb;  // (C, C), (C)
  Real *ln2w, *ln2b;          // (C)
  Real *fcw, *fcb;            // (4C, C), (4C)
  Real *fcprojw, *fcprojb;    // (C, 4C), (C)
};

template <typename Real>
BlockParams<Real> block_params(const ParamViews<Real>& p, int C, int l) {
  const size_t c = C, lc = size_t(l) * C;
  return {.ln1w = p.ln1w + lc,
          .ln1b = p.ln1b + lc,
          .qkvw = p.qkvw + lc * 3 * c,
          .qkvb = p.qkvb + 3 * lc,
          .attprojw = p.attprojw + lc * c,
          .attprojb = p.attprojb + lc,
          .ln2w = p.ln2w + lc,
          .ln2b = p.ln2b + lc,
          .fcw = p.fcw + lc * 4 * c,
          .fcb = p.fcb + 4 * lc,
          .fcprojw = p.fcprojw + lc * 4 * c,
          .fcprojb = p.fcprojb + lc};
}

// One block's slice of the activations.
template <typename Real>
struct BlockActs {
  Real *ln1, *ln1_mean, *ln1_rstd;  // (B, T, C), (B, T), (B, T)
  Real* qkv;                        // (B, T, 3C)
  Real* atty;                       // (B, T, C)
  Real* att;                        // (B, NH, T, T)
  Real *attproj, *residual2;        // (B, T, C)
  Real *ln2, *ln2_mean, *ln2_rstd;  // (B, T, C), (B, T), (B, T)
  Real *fch, *fch_gelu;             // (B, T, 4C)
  Real *fcproj, *residual3;         // (B, T, C)
};

template <typename Real>
BlockActs<Real> block_acts(const Activations<Real>& a, const Dims& d, int l) {
  const size_t btc = d.btc, bt = size_t(d.BT) * l, att = size_t(d.B) * d.NH * d.T * d.T;
  return {.ln1 = a.ln1 + l * btc,
          .ln1_mean = a.ln1_mean + bt,
          .ln1_rstd = a.ln1_rstd + bt,
          .qkv = a.qkv + l * 3 * btc,
          .atty = a.atty + l * btc,
          .att = a.att + l * att,
          .attproj = a.attproj + l * btc,
          .residual2 = a.residual2 + l * btc,
          .ln2 = a.ln2 + l * btc,
          .ln2_mean = a.ln2_mean + bt,
          .ln2_rstd = a.ln2_rstd + bt,
          .fch = a.fch + l * 4 * btc,
          .fch_gelu = a.fch_gelu + l * 4 * btc,
          .fcproj = a.fcproj + l * btc,
          .residual3 = a.residual3 + l * btc};
}

// Pre-LN block: residual2 = residual + attn(ln1(residual)); residual3 = residual2 +
// mlp(ln2(residual2)).
template <typename Real>
void block_forward(const BlockActs<Real>& x, const BlockParams<Real>& w, const Real* residual,
                   const Dims& d) {
  const int BT = d.BT, C = d.C;
  layernorm_forward(x.ln1, x.ln1_mean, x.ln1_rstd, residual, w.ln1w, w.ln1b, BT, C);
  matmul_forward(x.qkv, x.ln1, w.qkvw, w.qkvb, BT, C, 3 * C);
  attention_forward(x.atty, x.att, x.qkv, d.B, d.T, C, d.NH);
  matmul_forward(x.attproj, x.atty, w.attprojw, w.attprojb, BT, C, C);
  residual_forward(x.residual2, residual, x.attproj, d.btc);
  layernorm_forward(x.ln2, x.ln2_mean, x.ln2_rstd, x.residual2, w.ln2w, w.ln2b, BT, C);
  matmul_forward(x.fch, x.ln2, w.fcw, w.fcb, BT, C, 4 * C);
  gelu_forward(x.fch_gelu, x.fch, 4 * d.btc);
  matmul_forward(x.fcproj, x.fch_gelu, w.fcprojw, w.fcprojb, BT, 4 * C, C);
  residual_forward(x.residual3, x.residual2, x.fcproj, d.btc);
}

// On entry dg.dresidual is the gradient of the block's output, on exit that of its input.
// A residual add passes its gradient unchanged to both inputs, so each branch reads
// dg.dresidual directly and the LayerNorm backward adds the branch's share into it.
template <typename Real>
void block_backward(const ActivationGrads<Real>& dg, const BlockParams<Real>& g,
                    const BlockActs<Real>& x, const BlockParams<Real>& w, const Real* residual,
                    const Dims& d) {
  const int BT = d.BT, C = d.C;
  std::fill(dg.dfch_gelu, dg.dfch_gelu + dg.layer_scratch, Real(0));
  matmul_backward(dg.dfch_gelu, g.fcprojw, g.fcprojb, dg.dresidual, x.fch_gelu, w.fcprojw, BT,
                  4 * C, C);
  gelu_backward(dg.dfch, x.fch, dg.dfch_gelu, 4 * d.btc);
  matmul_backward(dg.dln2, g.fcw, g.fcb, dg.dfch, x.ln2, w.fcw, BT, C, 4 * C);
  layernorm_backward(dg.dresidual, g.ln2w, g.ln2b, dg.dln2, x.residual2, w.ln2w, x.ln2_mean,
                     x.ln2_rstd, BT, C);
  matmul_backward(dg.datty, g.attprojw, g.attprojb, dg.dresidual, x.atty, w.attprojw, BT, C, C);
  attention_backward(dg.dqkv, dg.datty, x.qkv, x.att, d.B, d.T, C, d.NH);
  matmul_backward(dg.dln1, g.qkvw, g.qkvb, dg.dqkv, x.ln1, w.qkvw, BT, C, 3 * C);
  layernorm_backward(dg.dresidual, g.ln1w, g.ln1b, dg.dln1, residual, w.ln1w, x.ln1_mean,
                     x.ln1_rstd, BT, C);
}

}  // namespace

MemoryBreakdown memory_breakdown(const GPTConfig& c, int B, int T, size_t real_size) {
  const size_t p = num_parameters(c) * real_size;
  return {p,
          p,
          p,
          p,
          activation_count(c, B, T) * real_size,
          activation_grad_count(c, B, T) * real_size};
}

// ------------------------------------------------------------------------------- GPT

template <typename Real>
GPT<Real>::GPT(const GPTConfig& config, int B, int T) : config_(config), B_(B), T_(T) {
  validate(config, B, T);
  params_.assign(num_parameters(config), Real(0));
  grads_.assign(params_.size(), Real(0));
  acts_.assign(activation_count(config, B, T), Real(0));
  grad_acts_.assign(activation_grad_count(config, B, T), Real(0));
}

template <typename Real>
void init_param_slice(const GPTConfig& c, uint64_t seed, int tensor, size_t begin, size_t count,
                      Real* dst) {
  const ParamTensorInfo info = param_layout(c)[size_t(tensor)];
  const double stddev = 0.02, residual_stddev = 0.02 / std::sqrt(2.0 * c.n_layer);
  if (tensor == kAttprojw || tensor == kFcprojw)
    fill_normal(dst, begin, count, seed, tensor, residual_stddev);
  else if (info.decay)  // the other matrices and the embeddings
    fill_normal(dst, begin, count, seed, tensor, stddev);
  else if (tensor == kLn1w || tensor == kLn2w || tensor == kLnfw)
    std::fill(dst, dst + count, Real(1));
  else
    std::fill(dst, dst + count, Real(0));
}
template void init_param_slice(const GPTConfig&, uint64_t, int, size_t, size_t, float*);
template void init_param_slice(const GPTConfig&, uint64_t, int, size_t, size_t, double*);

template <typename Real>
void GPT<Real>::init_weights(uint64_t seed) {
  const auto layout = param_layout(config_);
  for (int i = 0; i < kNumParamTensors; ++i)
    init_param_slice(config_, seed, i, 0, layout[i].size, params_.data() + layout[i].offset);
}

template <typename Real>
const Real* GPT<Real>::logits() const {
  Activations<Real> a;
  carve_activations(config_, B_, T_, const_cast<Real*>(acts_.data()), &a);
  return a.logits;
}

template <typename Real>
double GPT<Real>::flops_per_token() const {
  const double L = config_.n_layer, C = config_.n_embd;
  return 6.0 * double(num_params()) + 6.0 * L * C * T_;
}

template <typename Real>
Real GPT<Real>::forward(const int32_t* inputs, const int32_t* targets) {
  const int V = config_.vocab_size, C = config_.n_embd, BT = B_ * T_;
  for (const int32_t* ids : {inputs, targets})
    for (int i = 0; ids && i < BT; ++i)
      if (ids[i] < 0 || ids[i] >= V)
        throw std::out_of_range("GPT::forward: token id " + std::to_string(ids[i]) +
                                " at position " + std::to_string(i) + " is outside [0, " +
                                std::to_string(V) + ")");
  inputs_ = inputs;
  targets_ = targets;
  const Dims d{B_, T_, C, config_.n_head, BT, size_t(BT) * C};
  const ParamViews<Real> p = param_views(config_, params_.data());
  Activations<Real> a;
  carve_activations(config_, B_, T_, acts_.data(), &a);

  encoder_forward(a.encoded, inputs, p.wte, p.wpe, B_, T_, C);
  const Real* residual = a.encoded;  // (B, T, C) input of the current block
  for (int l = 0; l < config_.n_layer; ++l) {
    const BlockActs<Real> x = block_acts(a, d, l);
    block_forward(x, block_params(p, C, l), residual, d);
    residual = x.residual3;
  }
  layernorm_forward(a.lnf, a.lnf_mean, a.lnf_rstd, residual, p.lnfw, p.lnfb, BT, C);
  matmul_forward(a.logits, a.lnf, p.wte, static_cast<const Real*>(nullptr), BT, C, V);
  if (!targets) return std::numeric_limits<Real>::quiet_NaN();
  ActivationGrads<Real> dg;
  carve_activation_grads(config_, B_, T_, grad_acts_.data(), &dg);
  return crossentropy_forward(a.losses, dg.dlogits, a.logits, targets, BT, V);
}

template <typename Real>
void GPT<Real>::zero_grad() {
  std::fill(grads_.begin(), grads_.end(), Real(0));
}

template <typename Real>
void GPT<Real>::backward() {
  if (!targets_)
    throw std::logic_error("GPT::backward needs a forward() with targets before each backward");
  const int V = config_.vocab_size, L = config_.n_layer, C = config_.n_embd, BT = B_ * T_;
  const Dims d{B_, T_, C, config_.n_head, BT, size_t(BT) * C};
  const ParamViews<Real> p = param_views(config_, params_.data());
  const ParamViews<Real> g = param_views(config_, grads_.data());
  Activations<Real> a;
  carve_activations(config_, B_, T_, acts_.data(), &a);
  ActivationGrads<Real> dg;
  carve_activation_grads(config_, B_, T_, grad_acts_.data(), &dg);

  // The backward kernels accumulate into activation gradients, so each buffer is zeroed
  // before its first use (dlogits is assigned, in place over the probabilities).
  crossentropy_backward(dg.dlogits, dg.dlogits, targets_, BT, V);
  std::fill(dg.dlnf, dg.dlnf + d.btc, Real(0));
  matmul_backward(dg.dlnf, g.wte, static_cast<Real*>(nullptr), dg.dlogits, a.lnf, p.wte, BT, C, V);
  std::fill(dg.dresidual, dg.dresidual + d.btc, Real(0));
  layernorm_backward(dg.dresidual, g.lnfw, g.lnfb, dg.dlnf, a.residual3 + (L - 1) * d.btc, p.lnfw,
                     a.lnf_mean, a.lnf_rstd, BT, C);
  for (int l = L - 1; l >= 0; --l) {
    const Real* residual = l == 0 ? a.encoded : a.residual3 + (l - 1) * d.btc;
    block_backward(dg, block_params(g, C, l), block_acts(a, d, l), block_params(p, C, l), residual,
                   d);
  }
  encoder_backward(g.wte, g.wpe, dg.dresidual, inputs_, B_, T_, C);
  targets_ = nullptr;  // the softmax in dlogits is spent
}

template class GPT<float>;
template class GPT<double>;

// ---------------------------------------------------------------------------- threads

void set_num_threads(int n) {
  if (n <= 0) n = omp_get_num_procs();
  omp_set_num_threads(n);
  openblas_set_num_threads(1);  // gemm() gives each OpenMP thread its own block
}

int num_threads() { return omp_get_max_threads(); }

}  // namespace dtb
