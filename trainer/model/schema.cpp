// The parameter schema: layout, counts, FLOPs and the counter-based initialisation.
#include "model/schema.hpp"

#include <cblas.h>
#include <omp.h>

#include <algorithm>
#include <cmath>

namespace dtb {

const char* const kParamNames[kNumParamTensors] = {
    "wte",  "wpe",  "ln1w", "ln1b", "qkvw",    "qkvb",    "attprojw", "attprojb", "ln2w",
    "ln2b", "fcw",  "fcb",  "fcprojw", "fcprojb", "lnfw",     "lnfb",     "lm_head"};

std::vector<ParamTensorInfo> param_layout(const GPTConfig& c) {
  const size_t V = c.vocab_size, P = c.n_ctx, L = c.n_layer, C = c.n_embd;
  std::vector<std::vector<size_t>> shapes = {
      {V, C}, {P, C}, {L, C}, {L, C}, {L, 3 * C, C}, {L, 3 * C}, {L, C, C}, {L, C},
      {L, C}, {L, C}, {L, 4 * C, C}, {L, 4 * C}, {L, C, 4 * C}, {L, C}, {C}, {C},
  };
  if (!c.tie_embeddings) shapes.push_back({V, C});  // kLmHead, after everything GPT-2 has
  std::vector<ParamTensorInfo> layout;
  size_t offset = 0;
  for (size_t i = 0; i < shapes.size(); ++i) {
    size_t size = 1;
    for (size_t d : shapes[i]) size *= d;
    const bool decay = i == kWte || i == kWpe || i == kQkvw || i == kAttprojw || i == kFcw ||
                       i == kFcprojw || i == kLmHead;
    layout.push_back({kParamNames[i], shapes[i], offset, size, decay});
    offset += size;
  }
  return layout;
}

std::string param_element_name(const GPTConfig& c, size_t index) {
  const std::vector<ParamTensorInfo> layout = param_layout(c);
  for (size_t i = 0; i < layout.size(); ++i) {
    const ParamTensorInfo& t = layout[i];
    if (index >= t.offset + t.size) continue;
    const size_t at = index - t.offset;
    // Per-layer tensors (ln1w .. fcprojb) are stored (L, ...): one layer, one contiguous slice.
    const bool per_layer = i >= kLn1w && i <= kFcprojb;
    if (!per_layer) return "tensor '" + std::string(t.name) + "' (element " + std::to_string(at) + ")";
    const size_t per = t.size / size_t(c.n_layer);
    return "tensor '" + std::string(t.name) + "' (layer " + std::to_string(at / per) + ", element " +
           std::to_string(at % per) + " of the layer's slice)";
  }
  return "element " + std::to_string(index) + " (beyond the model's " + std::to_string(num_parameters(c)) +
         " parameters)";
}

size_t num_parameters(const GPTConfig& c) {
  const auto layout = param_layout(c);
  return layout.back().offset + layout.back().size;
}

std::vector<LinearShape> linear_shapes(const GPTConfig& c) {
  const int L = c.n_layer, C = c.n_embd;
  return {{C, 3 * C, L, true},
          {C, C, L, true},
          {C, 4 * C, L, true},
          {4 * C, C, L, true},
          {C, c.vocab_size, 1, false}};  // LM head
}

double flops_per_token(const GPTConfig& c, int T, double params_scale) {
  return 6.0 * (double(num_parameters(c)) * params_scale) + 6.0 * double(c.n_layer) * c.n_embd * T;
}

// ---------------------------------------------------------------------- initialisation

namespace {

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

}  // namespace

template <typename Real>
void init_param_slice(const GPTConfig& c, uint64_t seed, int tensor, size_t begin, size_t count,
                      Real* dst) {
  const ParamTensorInfo info = param_layout(c)[size_t(tensor)];
  const double stddev = 0.02, residual_stddev = 0.02 / std::sqrt(2.0 * c.n_layer);
  if (tensor == kAttprojw || tensor == kFcprojw)
    fill_normal(dst, begin, count, seed, tensor, residual_stddev);
  else if (info.decay)  // the other matrices, the embeddings and the untied LM head
    fill_normal(dst, begin, count, seed, tensor, stddev);
  else if (tensor == kLn1w || tensor == kLn2w || tensor == kLnfw)
    std::fill(dst, dst + count, Real(1));
  else
    std::fill(dst, dst + count, Real(0));
}
template void init_param_slice(const GPTConfig&, uint64_t, int, size_t, size_t, float*);
template void init_param_slice(const GPTConfig&, uint64_t, int, size_t, size_t, double*);

// ---------------------------------------------------------------------------- threads

void set_num_threads(int n) {
  if (n <= 0) n = omp_get_num_procs();
  omp_set_num_threads(n);
  openblas_set_num_threads(1);  // gemm() gives each OpenMP thread its own block
}

int num_threads() { return omp_get_max_threads(); }

}  // namespace dtb
