// Forward kernels against naive references written from the definitions (the gradient
// checks only prove that each backward matches its forward), the parameter layout, the
// initialisation and the model's input checks.
#include <catch2/catch.hpp>
#include <cmath>
#include <cstring>
#include <random>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "cpu/kernels.hpp"
#include "model/gpt2.hpp"

using Vec = std::vector<double>;

namespace {

Vec random_vec(size_t n, std::mt19937_64& rng, double scale = 1.0) {
  Vec v(n);
  for (double& x : v) x = scale * (2.0 * double(rng() >> 11) * 0x1p-53 - 1.0);
  return v;
}

void check_close(const std::string& name, const Vec& got, const Vec& want, double tol) {
  REQUIRE(got.size() == want.size());
  double maxdiff = 0;
  for (size_t i = 0; i < got.size(); ++i) maxdiff = std::max(maxdiff, std::abs(got[i] - want[i]));
  INFO(name << ": " << (maxdiff <= tol ? "OK" : "FAIL") << " maxdiff=" << maxdiff);
  CHECK(maxdiff <= tol);
}

dtb::GPTConfig gpt2_124m() {
  dtb::GPTConfig c;
  c.vocab_size = 50257;
  c.n_ctx = 1024;
  c.n_layer = 12;
  c.n_head = 12;
  c.n_embd = 768;
  return c;
}

}  // namespace

TEST_CASE("kernels: matmul forward matches the definition", "[kernels]") {
  std::mt19937_64 rng(1);
  const int N = 9, C = 7, OC = 5;
  const Vec inp = random_vec(N * C, rng), w = random_vec(OC * C, rng), b = random_vec(OC, rng);
  for (bool with_bias : {true, false}) {
    Vec out(N * OC), want(N * OC);
    dtb::matmul_forward(out.data(), inp.data(), w.data(), with_bias ? b.data() : nullptr, N, C, OC);
    for (int r = 0; r < N; ++r)
      for (int o = 0; o < OC; ++o) {
        double s = with_bias ? b[o] : 0.0;
        for (int i = 0; i < C; ++i) s += inp[r * C + i] * w[o * C + i];
        want[r * OC + o] = s;
      }
    check_close(with_bias ? "matmul+bias" : "matmul", out, want, 1e-13);
  }
}

TEST_CASE("kernels: gemm split over threads matches the definition", "[kernels]") {
  // Big enough that gemm() gives each of 2 threads a block: of columns when n >= m, of rows
  // otherwise; every transposition, with and without accumulation.
  std::mt19937_64 rng(5);
  const int threads = dtb::num_threads();
  dtb::set_num_threads(2);
  for (auto [m, n] : {std::pair{200, 300}, std::pair{300, 200}})
    for (int flags = 0; flags < 8; ++flags) {
      const dtb::GemmShape s{bool(flags & 1), bool(flags & 2), m, n, 100, bool(flags & 4)};
      const Vec a = random_vec(size_t(s.m) * s.k, rng), b = random_vec(size_t(s.k) * s.n, rng);
      Vec c = random_vec(size_t(s.m) * s.n, rng), want = c;
      for (int i = 0; i < s.m; ++i)
        for (int j = 0; j < s.n; ++j) {
          double sum = 0;
          for (int p = 0; p < s.k; ++p)
            sum += (s.trans_a ? a[p * s.m + i] : a[i * s.k + p]) *
                   (s.trans_b ? b[j * s.k + p] : b[p * s.n + j]);
          want[i * s.n + j] = sum + (s.accumulate ? want[i * s.n + j] : 0.0);
        }
      dtb::gemm(s, a.data(), b.data(), c.data());
      check_close("gemm m=" + std::to_string(m) + " flags=" + std::to_string(flags), c, want,
                  1e-12);
    }
  dtb::set_num_threads(threads);
}

TEST_CASE("kernels: layernorm forward matches the definition", "[kernels]") {
  std::mt19937_64 rng(2);
  const int N = 4, C = 19;
  const Vec inp = random_vec(N * C, rng, 3.0), w = random_vec(C, rng), b = random_vec(C, rng);
  Vec out(N * C), mean(N), rstd(N), want(N * C);
  dtb::layernorm_forward(out.data(), mean.data(), rstd.data(), inp.data(), w.data(), b.data(), N,
                         C);
  for (int r = 0; r < N; ++r) {
    double m = 0, v = 0;
    for (int i = 0; i < C; ++i) m += inp[r * C + i] / C;
    for (int i = 0; i < C; ++i) v += (inp[r * C + i] - m) * (inp[r * C + i] - m) / C;
    for (int i = 0; i < C; ++i)
      want[r * C + i] = (inp[r * C + i] - m) / std::sqrt(v + 1e-5) * w[i] + b[i];
  }
  check_close("layernorm", out, want, 1e-13);
}

TEST_CASE("kernels: attention forward matches the definition", "[kernels]") {
  std::mt19937_64 rng(3);
  const int B = 2, T = 6, C = 12, NH = 3, hs = C / NH;
  const Vec qkv = random_vec(B * T * 3 * C, rng, 2.0);
  Vec out(B * T * C), att(B * NH * T * T), want(B * T * C);
  dtb::attention_forward(out.data(), att.data(), qkv.data(), B, T, C, NH);
  auto at = [&](int b, int t, int part, int h, int i) {
    return qkv[(b * T + t) * 3 * C + part * C + h * hs + i];
  };
  for (int b = 0; b < B; ++b)
    for (int h = 0; h < NH; ++h)
      for (int t = 0; t < T; ++t) {
        Vec w(t + 1);
        double z = 0;
        for (int s = 0; s <= t; ++s) {
          double score = 0;
          for (int i = 0; i < hs; ++i) score += at(b, t, 0, h, i) * at(b, s, 1, h, i);
          w[s] = std::exp(score / std::sqrt(double(hs)));
          z += w[s];
        }
        for (int i = 0; i < hs; ++i) {
          double o = 0;
          for (int s = 0; s <= t; ++s) o += w[s] / z * at(b, s, 2, h, i);
          want[(b * T + t) * C + h * hs + i] = o;
        }
        for (int s = t + 1; s < T; ++s) CHECK(att[((b * NH + h) * T + t) * T + s] == 0.0);
      }
  check_close("attention", out, want, 1e-13);
}

TEST_CASE("kernels: gelu, residual, encoder and cross-entropy forwards", "[kernels]") {
  std::mt19937_64 rng(4);
  // The tanh form approximates the exact x * Phi(x) to about 1e-3 (Hendrycks & Gimpel).
  const Vec x = random_vec(200, rng, 5.0), y = random_vec(200, rng);
  Vec out(200), want(200);
  dtb::gelu_forward(out.data(), x.data(), x.size());
  for (size_t i = 0; i < x.size(); ++i)
    want[i] = 0.5 * x[i] * (1 + std::erf(x[i] / std::sqrt(2.0)));
  check_close("gelu vs erf gelu", out, want, 2e-3);

  dtb::residual_forward(out.data(), x.data(), y.data(), x.size());
  for (size_t i = 0; i < x.size(); ++i) want[i] = x[i] + y[i];
  check_close("residual", out, want, 0.0);

  const int B = 2, T = 3, C = 4, V = 5;
  const std::vector<int32_t> tok = {4, 0, 4, 2, 1, 3};
  const Vec wte = random_vec(V * C, rng), wpe = random_vec(T * C, rng);
  Vec enc(B * T * C), enc_want(B * T * C);
  dtb::encoder_forward(enc.data(), tok.data(), wte.data(), wpe.data(), B, T, C);
  for (int bt = 0; bt < B * T; ++bt)
    for (int i = 0; i < C; ++i) enc_want[bt * C + i] = wte[tok[bt] * C + i] + wpe[bt % T * C + i];
  check_close("encoder", enc, enc_want, 0.0);

  const int N = 6;
  Vec logits = random_vec(N * V, rng, 4.0), losses(N), probs(N * V), want_probs(N * V);
  const double mean =
      dtb::crossentropy_forward(losses.data(), probs.data(), logits.data(), tok.data(), N, V);
  double want_mean = 0;
  for (int r = 0; r < N; ++r) {
    double z = 0;
    for (int v = 0; v < V; ++v) z += std::exp(logits[r * V + v]);
    for (int v = 0; v < V; ++v) want_probs[r * V + v] = std::exp(logits[r * V + v]) / z;
    want_mean += (std::log(z) - logits[r * V + tok[r]]) / N;
  }
  CHECK(mean == Approx(want_mean).epsilon(1e-13));
  check_close("softmax", probs, want_probs, 1e-15);
}

TEST_CASE("model: parameter layout", "[model]") {
  const dtb::GPTConfig c = gpt2_124m();
  CHECK(dtb::num_parameters(c) == 124439808);  // llm.c's count for GPT-2 124M
  const auto layout = dtb::param_layout(c);
  REQUIRE(layout.size() == 16);  // GPT-2's tensors: tied embeddings add no LM head
  size_t offset = 0;
  for (size_t i = 0; i < layout.size(); ++i) {
    size_t size = 1;
    for (size_t d : layout[i].shape) size *= d;
    CHECK(layout[i].name == std::string(dtb::kParamNames[i]));
    CHECK(layout[i].offset == offset);
    CHECK(layout[i].size == size);
    offset += size;
    const int t = int(i);
    const bool matrix = t == dtb::kWte || t == dtb::kWpe || t == dtb::kQkvw ||
                        t == dtb::kAttprojw || t == dtb::kFcw || t == dtb::kFcprojw;
    CHECK(layout[i].decay == matrix);
  }
  // The linear layers hold every parameter except wpe and the LayerNorms.
  size_t linear = 0;
  for (const auto& s : dtb::linear_shapes(c))
    linear += size_t(s.count) * s.out * (s.in + (s.bias ? 1 : 0));
  const size_t layernorm = 2 * size_t(c.n_embd) * (2 * c.n_layer + 1);
  CHECK(linear + layout[dtb::kWpe].size + layernorm == dtb::num_parameters(c));

  // Untied (DT-FM): one more tensor at the end, lm_head (V, C) with weight decay; the
  // tensors before it keep their offsets, so tied checkpoints read the same.
  dtb::GPTConfig untied = c;
  untied.tie_embeddings = false;
  const auto u = dtb::param_layout(untied);
  REQUIRE(u.size() == 17);
  for (size_t i = 0; i < layout.size(); ++i) CHECK(u[i].offset == layout[i].offset);
  CHECK(u[dtb::kLmHead].name == std::string("lm_head"));
  CHECK(u[dtb::kLmHead].offset == dtb::num_parameters(c));
  CHECK(u[dtb::kLmHead].size == size_t(c.vocab_size) * c.n_embd);
  CHECK(u[dtb::kLmHead].decay);
  CHECK(dtb::num_parameters(untied) == 124439808 + 50257 * 768);

  const auto mem = dtb::memory_breakdown(c, 4, 64, sizeof(float));
  CHECK(mem.params == 124439808 * sizeof(float));
  CHECK(mem.adam_v == mem.params);
  CHECK(mem.activation_grads < mem.activations / 4);  // scratch, not a mirror of activations
}

TEST_CASE("model: initialisation", "[model]") {
  dtb::GPTConfig c;
  c.vocab_size = 1000;
  c.n_ctx = 64;
  c.n_layer = 4;
  c.n_head = 4;
  c.n_embd = 256;
  dtb::GPT<float> m(c, 1, 8);
  m.init_weights(123);
  for (const auto& t : dtb::param_layout(c)) {
    double sum = 0, sq = 0;
    const float* p = m.params() + t.offset;
    for (size_t i = 0; i < t.size; ++i) sum += p[i], sq += double(p[i]) * p[i];
    const double mean = sum / t.size, sd = std::sqrt(sq / t.size - mean * mean);
    INFO(t.name << " mean " << mean << " sd " << sd);
    const std::string name = t.name;
    if (name == "attprojw" || name == "fcprojw") {
      CHECK(sd == Approx(0.02 / std::sqrt(2.0 * c.n_layer)).epsilon(0.02));
    } else if (t.decay) {
      CHECK(sd == Approx(0.02).epsilon(0.02));
      CHECK(std::abs(mean) < 1e-3);
    } else {
      const bool gain = name == "ln1w" || name == "ln2w" || name == "lnfw";
      CHECK(mean == (gain ? 1.0 : 0.0));
      CHECK(sd == 0.0);
    }
  }
  // Same seed: same weights for any thread count. Another seed: other weights.
  std::vector<float> first(m.params(), m.params() + m.num_params());
  const int threads = dtb::num_threads();
  dtb::set_num_threads(1);
  m.init_weights(123);
  dtb::set_num_threads(threads);
  CHECK(std::memcmp(first.data(), m.params(), first.size() * sizeof(float)) == 0);
  m.init_weights(124);
  CHECK(std::memcmp(first.data(), m.params(), first.size() * sizeof(float)) != 0);
}

TEST_CASE("model: bad shapes and tokens are refused", "[model]") {
  dtb::GPTConfig c;  // V=256, n_ctx=64, C=64, NH=4
  CHECK_THROWS_AS(dtb::GPT<float>(c, 1, 65), std::invalid_argument);
  c.n_head = 5;
  CHECK_THROWS_AS(dtb::GPT<float>(c, 1, 8), std::invalid_argument);
  c.n_head = 4;
  dtb::GPT<float> m(c, 1, 4);
  CHECK_THROWS_AS(m.backward(), std::logic_error);
  const std::vector<int32_t> ok = {1, 2, 3, 4}, bad = {1, 2, 256, 4};
  CHECK_THROWS_AS(m.forward(bad.data(), ok.data()), std::out_of_range);
  CHECK_THROWS_AS(m.forward(ok.data(), bad.data()), std::out_of_range);
  CHECK(std::isnan(m.forward(ok.data(), nullptr)));
}

// Megatron's vocabulary-parallel embedding and cross-entropy, cut into P uneven slices as
// the trainer cuts them, against the whole-vocabulary kernels: the slices' embeddings sum
// to the embedding, their statistics combine to the same losses and softmax, and each
// slice's gradient is the matching rows or columns of the whole one.
TEST_CASE("kernels: vocabulary slices reproduce the whole-vocabulary embedding and cross-entropy", "[kernels]") {
  std::mt19937_64 rng(11);
  const int B = 2, T = 5, C = 3, V = 11, N = B * T, P = 3;
  std::vector<int32_t> tok(N);
  for (int32_t& t : tok) t = int32_t(rng() % V);
  tok[0] = 0, tok[1] = V - 1;  // both ends of the vocabulary
  const Vec wte = random_vec(V * C, rng), wpe = random_vec(T * C, rng), dout = random_vec(N * C, rng);
  const Vec logits = random_vec(N * V, rng, 6.0);
  Vec enc(N * C), dwte(V * C), dwpe(T * C), losses(N), probs(N * V), dlogits(N * V);
  dtb::encoder_forward(enc.data(), tok.data(), wte.data(), wpe.data(), B, T, C);
  dtb::encoder_backward(dwte.data(), dwpe.data(), dout.data(), tok.data(), B, T, C);
  const double mean = dtb::crossentropy_forward(losses.data(), probs.data(), logits.data(), tok.data(), N, V);
  dtb::crossentropy_backward(dlogits.data(), probs.data(), tok.data(), N, V);

  Vec enc_sum(N * C), stats(size_t(P) * N * 3);
  std::vector<dtb::VocabSlice> slices;
  for (int p = 0; p < P; ++p) slices.push_back({V * p / P, V * (p + 1) / P});  // 3, 4, 4 rows
  for (int p = 0; p < P; ++p) {
    const dtb::VocabSlice s = slices[size_t(p)];
    const int Vs = s.hi - s.lo;
    Vec part(N * C), slice_logits(size_t(N) * Vs);
    dtb::encoder_forward(part.data(), tok.data(), wte.data() + s.lo * C, p == 0 ? wpe.data() : nullptr, B, T, C, s);
    for (size_t i = 0; i < part.size(); ++i) enc_sum[i] += part[i];
    Vec slice_dwte(size_t(Vs) * C);
    dtb::encoder_backward(slice_dwte.data(), static_cast<double*>(nullptr), dout.data(), tok.data(), B, T, C, s);
    check_close("embedding gradient rows of slice " + std::to_string(p), slice_dwte,
                Vec(dwte.begin() + s.lo * C, dwte.begin() + s.hi * C), 0.0);
    for (int r = 0; r < N; ++r)
      for (int v = 0; v < Vs; ++v) slice_logits[size_t(r) * Vs + v] = logits[size_t(r) * V + s.lo + v];
    dtb::crossentropy_partial(stats.data() + size_t(p) * N * 3, slice_logits.data(), tok.data(), N, s);
  }
  check_close("embedding: slices summed", enc_sum, enc, 0.0);

  Vec slice_losses(N), lse(N);
  CHECK(dtb::crossentropy_combine(slice_losses.data(), lse.data(), stats.data(), P, N) == Approx(mean).epsilon(1e-14));
  check_close("losses", slice_losses, losses, 1e-14);
  for (int p = 0; p < P; ++p) {
    const dtb::VocabSlice s = slices[size_t(p)];
    const int Vs = s.hi - s.lo;
    Vec slice_logits(size_t(N) * Vs), want_probs(slice_logits.size()), want_d(slice_logits.size());
    for (int r = 0; r < N; ++r)
      for (int v = 0; v < Vs; ++v) {
        slice_logits[size_t(r) * Vs + v] = logits[size_t(r) * V + s.lo + v];
        want_probs[size_t(r) * Vs + v] = probs[size_t(r) * V + s.lo + v];
        want_d[size_t(r) * Vs + v] = dlogits[size_t(r) * V + s.lo + v];
      }
    Vec slice_probs(slice_logits.size()), slice_d(slice_logits.size());
    dtb::softmax_from_lse(slice_probs.data(), slice_logits.data(), lse.data(), N, Vs);
    check_close("softmax columns of slice " + std::to_string(p), slice_probs, want_probs, 1e-15);
    dtb::crossentropy_backward(slice_d.data(), slice_probs.data(), tok.data(), N, Vs, s);
    check_close("dlogits columns of slice " + std::to_string(p), slice_d, want_d, 1e-15);
  }
}
