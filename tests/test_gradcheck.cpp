// Finite-difference gradient checks in double precision: every layer's backward against
// central differences of its forward (loss = sum(out * g) for a random upstream gradient g),
// then the whole model over all of its parameters. Plus the model-level properties that
// a training run relies on: float agrees with double, the loss starts at ln(V), and two
// identical steps give bitwise identical losses and gradients.
#include <catch2/catch.hpp>
#include <cmath>
#include <cstring>
#include <functional>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "cpu/kernels.hpp"
#include "model/flops.hpp"
#include "model/gpt2.hpp"
#include "model/stage.hpp"

using dtb::GPT;
using dtb::GPTConfig;
using Vec = std::vector<double>;

namespace {

// Uniform in [-scale, scale). mt19937_64's raw output is portable, std:: distributions not.
Vec random_vec(size_t n, std::mt19937_64& rng, double scale = 1.0) {
  Vec v(n);
  for (double& x : v) x = scale * (2.0 * double(rng() >> 11) * 0x1p-53 - 1.0);
  return v;
}

std::vector<int32_t> random_tokens(size_t n, int V, std::mt19937_64& rng) {
  std::vector<int32_t> t(n);
  for (int32_t& x : t) x = int32_t(rng() % uint64_t(V));
  return t;
}

double dot(const Vec& a, const Vec& b) {
  double s = 0;
  for (size_t i = 0; i < a.size(); ++i) s += a[i] * b[i];
  return s;
}

constexpr double kTol = 1e-5;  // relative error allowed between analytic and numeric

// Relative error of each analytic entry against its central difference, with a floor at 1%
// of the tensor's largest gradient so that rounding noise on near-zero entries does not
// dominate. Checks the n entries of x, perturbing each in place.
void check_gradient(const std::string& name, double* x, const double* analytic, size_t n,
                    const std::function<double()>& loss, double tol = kTol, double h = 1e-6) {
  Vec numeric(n);
  double maxref = 0;
  for (size_t i = 0; i < n; ++i) {
    const double saved = x[i];
    x[i] = saved + h;
    const double up = loss();
    x[i] = saved - h;
    const double down = loss();
    x[i] = saved;
    numeric[i] = (up - down) / (2 * h);
    maxref = std::max(maxref, std::abs(numeric[i]));
  }
  double maxdiff = 0, maxerr = 0;
  size_t worst = 0;
  for (size_t i = 0; i < n; ++i) {
    const double diff = std::abs(analytic[i] - numeric[i]);
    const double err = diff / (std::abs(numeric[i]) + 0.01 * maxref + 1e-300);
    maxdiff = std::max(maxdiff, diff);
    if (err > maxerr) maxerr = err, worst = i;
  }
  INFO(name << ": " << (maxerr <= tol ? "OK" : "FAIL") << " maxdiff=" << maxdiff
            << " maxrelerr=" << maxerr << " maxgrad=" << maxref << " worst[" << worst
            << "] analytic=" << analytic[worst] << " numeric=" << numeric[worst]);
  CHECK(maxerr <= tol);
  CHECK(maxref > 0);  // a zero gradient everywhere would check nothing
}

// Backward kernels accumulate: they run on buffers pre-filled with `prior`, and the
// gradient is what they added.
Vec added(const Vec& after, const Vec& prior) {
  Vec d(after.size());
  for (size_t i = 0; i < d.size(); ++i) d[i] = after[i] - prior[i];
  return d;
}

}  // namespace

TEST_CASE("gradcheck encoder", "[gradcheck]") {
  std::mt19937_64 rng(1);
  const int B = 2, T = 4, C = 8, V = 5;  // 8 positions, 5 tokens: some tokens repeat
  const auto tokens = random_tokens(B * T, V, rng);
  Vec wte = random_vec(V * C, rng), wpe = random_vec(T * C, rng), out(B * T * C);
  const Vec g = random_vec(out.size(), rng);
  auto loss = [&] {
    dtb::encoder_forward(out.data(), tokens.data(), wte.data(), wpe.data(), B, T, C);
    return dot(out, g);
  };
  const Vec wte0 = random_vec(wte.size(), rng), wpe0 = random_vec(wpe.size(), rng);
  Vec dwte = wte0, dwpe = wpe0;
  dtb::encoder_backward(dwte.data(), dwpe.data(), g.data(), tokens.data(), B, T, C);
  check_gradient("wte", wte.data(), added(dwte, wte0).data(), wte.size(), loss);
  check_gradient("wpe", wpe.data(), added(dwpe, wpe0).data(), wpe.size(), loss);
}

TEST_CASE("gradcheck layernorm", "[gradcheck]") {
  std::mt19937_64 rng(2);
  const int N = 6, C = 13;
  Vec inp = random_vec(N * C, rng, 2.0), w = random_vec(C, rng), b = random_vec(C, rng);
  Vec out(N * C), mean(N), rstd(N);
  const Vec g = random_vec(out.size(), rng);
  auto loss = [&] {
    dtb::layernorm_forward(out.data(), mean.data(), rstd.data(), inp.data(), w.data(), b.data(), N,
                           C);
    return dot(out, g);
  };
  loss();
  const Vec dinp0 = random_vec(inp.size(), rng), dw0 = random_vec(C, rng), db0 = random_vec(C, rng);
  Vec dinp = dinp0, dw = dw0, db = db0;
  dtb::layernorm_backward(dinp.data(), dw.data(), db.data(), g.data(), inp.data(), w.data(),
                          mean.data(), rstd.data(), N, C);
  check_gradient("inp", inp.data(), added(dinp, dinp0).data(), inp.size(), loss);
  check_gradient("weight", w.data(), added(dw, dw0).data(), w.size(), loss);
  check_gradient("bias", b.data(), added(db, db0).data(), b.size(), loss);
}

TEST_CASE("gradcheck matmul", "[gradcheck]") {
  std::mt19937_64 rng(3);
  const int N = 7, C = 5, OC = 9;
  for (bool with_bias : {true, false}) {
    INFO("bias " << with_bias);
    Vec inp = random_vec(N * C, rng), w = random_vec(OC * C, rng), b = random_vec(OC, rng);
    Vec out(N * OC);
    const Vec g = random_vec(out.size(), rng);
    auto loss = [&] {
      dtb::matmul_forward(out.data(), inp.data(), w.data(), with_bias ? b.data() : nullptr, N, C,
                          OC);
      return dot(out, g);
    };
    const Vec dinp0 = random_vec(inp.size(), rng), dw0 = random_vec(w.size(), rng),
              db0 = random_vec(OC, rng);
    Vec dinp = dinp0, dw = dw0, db = db0;
    dtb::matmul_backward(dinp.data(), dw.data(), with_bias ? db.data() : nullptr, g.data(),
                         inp.data(), w.data(), N, C, OC);
    check_gradient("inp", inp.data(), added(dinp, dinp0).data(), inp.size(), loss);
    check_gradient("weight", w.data(), added(dw, dw0).data(), w.size(), loss);
    if (with_bias)
      check_gradient("bias", b.data(), added(db, db0).data(), b.size(), loss);
    else
      CHECK(db == db0);  // no bias: dbias is not touched
  }
}

TEST_CASE("gradcheck attention", "[gradcheck]") {
  std::mt19937_64 rng(4);
  const int B = 2, T = 5, C = 12, NH = 3;
  Vec qkv = random_vec(B * T * 3 * C, rng, 1.5), out(B * T * C), att(B * NH * T * T);
  const Vec g = random_vec(out.size(), rng);
  auto loss = [&] {
    dtb::attention_forward(out.data(), att.data(), qkv.data(), B, T, C, NH);
    return dot(out, g);
  };
  loss();
  const Vec dqkv0 = random_vec(qkv.size(), rng);
  Vec dqkv = dqkv0;
  dtb::attention_backward(dqkv.data(), g.data(), qkv.data(), att.data(), B, T, C, NH);
  // Every key and value is seen at least by its own position's query, so q, k and v all
  // carry gradient.
  check_gradient("qkv", qkv.data(), added(dqkv, dqkv0).data(), qkv.size(), loss);
}

TEST_CASE("gradcheck gelu and residual", "[gradcheck]") {
  std::mt19937_64 rng(5);
  const size_t n = 40;
  Vec x = random_vec(n, rng, 4.0), y = random_vec(n, rng), out(n);
  const Vec g = random_vec(n, rng);
  auto gelu_loss = [&] {
    dtb::gelu_forward(out.data(), x.data(), n);
    return dot(out, g);
  };
  const Vec dx0 = random_vec(n, rng), dy0 = random_vec(n, rng);
  Vec dx = dx0, dy = dy0;
  dtb::gelu_backward(dx.data(), x.data(), g.data(), n);
  check_gradient("gelu", x.data(), added(dx, dx0).data(), n, gelu_loss);

  auto residual_loss = [&] {
    dtb::residual_forward(out.data(), x.data(), y.data(), n);
    return dot(out, g);
  };
  dx = dx0;
  dtb::residual_backward(dx.data(), dy.data(), g.data(), n);
  check_gradient("residual inp1", x.data(), added(dx, dx0).data(), n, residual_loss);
  check_gradient("residual inp2", y.data(), added(dy, dy0).data(), n, residual_loss);
}

TEST_CASE("gradcheck softmax cross-entropy", "[gradcheck]") {
  std::mt19937_64 rng(6);
  const int N = 6, V = 11;
  Vec logits = random_vec(N * V, rng, 3.0), losses(N), probs(N * V);
  logits[3] = 40.0;  // a large logit: the max subtraction must keep exp() finite
  const auto targets = random_tokens(N, V, rng);
  auto loss = [&] {
    return dtb::crossentropy_forward(losses.data(), probs.data(), logits.data(), targets.data(), N,
                                     V);
  };
  loss();
  Vec dlogits = random_vec(logits.size(), rng);  // garbage: the backward assigns
  dtb::crossentropy_backward(dlogits.data(), probs.data(), targets.data(), N, V);
  check_gradient("logits", logits.data(), dlogits.data(), logits.size(), loss);
  loss();
  dtb::crossentropy_backward(probs.data(), probs.data(), targets.data(), N, V);
  CHECK(probs == dlogits);  // in place gives the same
}

// ------------------------------------------------------------------------------ model

namespace {

GPTConfig tiny_config() {
  GPTConfig c;
  c.vocab_size = 11;
  c.n_ctx = 7;  // > T: rows of wpe past T must get exactly zero gradient
  c.n_layer = 2;
  c.n_head = 2;
  c.n_embd = 8;
  return c;
}

}  // namespace

// The whole model's loss carries more rounding than one layer's, and its gradients are
// smaller: a larger step keeps the difference quotient's rounding error (~eps*loss/h) well
// below the tolerance, while the truncation error (~h^2) stays negligible.
constexpr double kModelStep = 1e-5;

TEST_CASE("gradcheck whole model, all parameters, tied and untied embeddings", "[gradcheck][model]") {
  GPTConfig cfg = tiny_config();
  cfg.tie_embeddings = GENERATE(true, false);  // untied: lm_head (V, C) is a tensor of its own
  INFO("tie_embeddings " << cfg.tie_embeddings);
  const int B = 2, T = 5;
  GPT<double> model(cfg, B, T);
  std::mt19937_64 rng(7);
  // Large random parameters (LayerNorm gains and biases included) put every layer in its
  // nonlinear range, so each gradient is exercised, not only the near-linear init.
  const Vec init = random_vec(model.num_params(), rng, 0.5);
  std::copy(init.begin(), init.end(), model.params());
  const auto inputs = random_tokens(B * T, cfg.vocab_size, rng);
  const auto targets = random_tokens(B * T, cfg.vocab_size, rng);

  model.zero_grad();
  model.forward(inputs.data(), targets.data());
  model.backward();
  const Vec grads(model.grads(), model.grads() + model.num_params());
  CHECK_THROWS_AS(model.backward(), std::logic_error);  // each backward needs its forward
  auto loss = [&] { return model.forward(inputs.data(), targets.data()); };

  REQUIRE(dtb::param_layout(cfg).size() == (cfg.tie_embeddings ? 16u : 17u));
  for (const auto& t : dtb::param_layout(cfg)) {
    if (t.name == std::string("wpe")) {
      const size_t used = size_t(T) * cfg.n_embd;
      check_gradient(t.name, model.params() + t.offset, grads.data() + t.offset, used, loss, kTol,
                     kModelStep);
      for (size_t i = used; i < t.size; ++i) CHECK(grads[t.offset + i] == 0.0);
    } else {
      check_gradient(t.name, model.params() + t.offset, grads.data() + t.offset, t.size, loss, kTol,
                     kModelStep);
    }
  }

  // Gradients accumulate: a second backward without zero_grad doubles them (up to the
  // rounding of adding tensors that get several contributions, like wte, in another order).
  model.forward(inputs.data(), targets.data());
  model.backward();
  for (size_t i = 0; i < grads.size(); ++i)
    REQUIRE(model.grads()[i] == Approx(2 * grads[i]).epsilon(1e-12).margin(1e-15));
}

TEST_CASE("model: float forward and backward agree with double", "[model]") {
  GPTConfig cfg;
  cfg.vocab_size = 97;
  cfg.n_ctx = 16;
  cfg.n_layer = 2;
  cfg.n_head = 4;
  cfg.n_embd = 32;
  const int B = 3, T = 16;
  GPT<float> f(cfg, B, T);
  GPT<double> d(cfg, B, T);
  f.init_weights(42);
  d.init_weights(42);
  for (size_t i = 0; i < d.num_params(); ++i) REQUIRE(f.params()[i] == float(d.params()[i]));

  std::mt19937_64 rng(8);
  const auto inputs = random_tokens(B * T, cfg.vocab_size, rng);
  const auto targets = random_tokens(B * T, cfg.vocab_size, rng);
  const double lf = f.forward(inputs.data(), targets.data());
  const double ld = d.forward(inputs.data(), targets.data());
  INFO("float " << lf << " double " << ld << " reldiff " << std::abs(lf - ld) / ld);
  CHECK(std::abs(lf - ld) / ld < 1e-5);

  f.zero_grad();
  d.zero_grad();
  f.backward();
  d.backward();
  for (const auto& t : dtb::param_layout(cfg)) {
    double maxdiff = 0, maxref = 0;
    for (size_t i = t.offset; i < t.offset + t.size; ++i) {
      maxdiff = std::max(maxdiff, std::abs(double(f.grads()[i]) - d.grads()[i]));
      maxref = std::max(maxref, std::abs(d.grads()[i]));
    }
    INFO(t.name << " maxdiff=" << maxdiff << " maxgrad=" << maxref);
    CHECK(maxdiff <= 1e-4 * maxref);
  }
}

TEST_CASE("model: loss at init is ln(V)", "[model]") {
  GPTConfig cfg = tiny_config();
  cfg.vocab_size = 256;
  const int B = 2, T = 5;
  GPT<float> model(cfg, B, T);
  model.init_weights(1);
  std::mt19937_64 rng(9);
  const auto inputs = random_tokens(B * T, cfg.vocab_size, rng);
  const auto targets = random_tokens(B * T, cfg.vocab_size, rng);
  const double loss = model.forward(inputs.data(), targets.data());
  INFO("loss " << loss << " ln(V) " << std::log(256.0));
  CHECK(std::abs(loss - std::log(256.0)) < 0.1);
}

TEST_CASE("model: identical steps are bitwise identical", "[model][determinism]") {
  GPTConfig cfg;
  cfg.vocab_size = 500;
  cfg.n_ctx = 32;
  cfg.n_layer = 2;
  cfg.n_head = 4;
  cfg.n_embd = 64;
  const int B = 4, T = 32;
  std::mt19937_64 rng(10);
  const auto inputs = random_tokens(B * T, cfg.vocab_size, rng);
  const auto targets = random_tokens(B * T, cfg.vocab_size, rng);
  auto step = [&](GPT<float>& m, std::vector<float>* grads) {
    m.zero_grad();
    const float loss = m.forward(inputs.data(), targets.data());
    m.backward();
    grads->assign(m.grads(), m.grads() + m.num_params());
    return loss;
  };
  GPT<float> a(cfg, B, T), b(cfg, B, T);
  a.init_weights(5);
  b.init_weights(5);
  REQUIRE(std::memcmp(a.params(), b.params(), a.num_params() * sizeof(float)) == 0);
  std::vector<float> ga1, ga2, gb;
  const float la1 = step(a, &ga1), la2 = step(a, &ga2), lb = step(b, &gb);
  CHECK(std::memcmp(&la1, &la2, sizeof(float)) == 0);
  CHECK(std::memcmp(&la1, &lb, sizeof(float)) == 0);
  CHECK(std::memcmp(ga1.data(), ga2.data(), ga1.size() * sizeof(float)) == 0);
  CHECK(std::memcmp(ga1.data(), gb.data(), ga1.size() * sizeof(float)) == 0);
}

// The pipeline split run by hand in one process: stage 0 (layers 0-1, the embeddings) hands
// its output to stage 1 (layer 2, lnf and the LM head), which hands back the gradient of
// that output. The same kernels on the same numbers as the whole model, so the loss and
// every gradient are bitwise the whole model's, except the tied wte: its two copies' sum
// adds the embedding's and the LM head's gradients in another order.
TEST_CASE("stages: a pipeline split computes the whole model, tied and untied", "[model][stage]") {
  GPTConfig cfg{.vocab_size = 37, .n_ctx = 8, .n_layer = 3, .n_head = 2, .n_embd = 16};
  cfg.tie_embeddings = GENERATE(true, false);
  INFO("tie_embeddings " << cfg.tie_embeddings);
  const int B = 2, T = 8;
  std::mt19937_64 rng(12);
  const auto inputs = random_tokens(B * T, cfg.vocab_size, rng);
  const auto targets = random_tokens(B * T, cfg.vocab_size, rng);
  GPT<float> whole(cfg, B, T);
  whole.init_weights(3);
  const float want = whole.forward(inputs.data(), targets.data());
  whole.backward();

  using Stage = dtb::TransformerStage<float>;
  dtb::TpReduce& none = dtb::no_tensor_parallelism();
  Stage s0(cfg, {0, 2, true, false, 0, 1, false}, B, T, 1);
  Stage s1(cfg, {2, 3, false, true, 0, 1, false}, B, T, 1);
  for (Stage* s : {&s0, &s1}) s->init_weights(3);
  const size_t btc = size_t(B) * T * cfg.n_embd;
  CHECK(s0.forward(0, inputs.data(), nullptr, none) == 0.0f);  // not the last stage: no loss
  std::copy(s0.output(0), s0.output(0) + btc, s1.input(0));
  const float loss = s1.forward(0, nullptr, targets.data(), none);
  CHECK(std::memcmp(&loss, &want, sizeof loss) == 0);
  s1.backward(0, 1.0f, none);
  std::copy(s1.dresidual(), s1.dresidual() + btc, s0.dresidual());
  s0.backward(0, 1.0f, none);

  // Tied: the last stage's wte copy holds the LM head's gradient; the trainer sums the two.
  CHECK(s1.wte_size() == (cfg.tie_embeddings ? size_t(cfg.vocab_size) * cfg.n_embd : 0u));
  std::vector<float> wte_sum(size_t(cfg.vocab_size) * cfg.n_embd, 0.0f);
  std::vector<int> seen(whole.num_params(), 0);
  for (const Stage* s : {&s0, &s1})
    for (const dtb::ShardRun& r : s->runs())
      for (size_t i = 0; i < r.len; ++i) {
        const float got = s->grads()[r.local + i], ref = whole.grads()[r.global + i];
        CHECK(s->params()[r.local + i] == whole.params()[r.global + i]);
        seen[r.global + i] += 1;
        if (r.tensor == dtb::kWte)
          wte_sum[r.global + i] += got;
        else
          REQUIRE(std::memcmp(&got, &ref, sizeof got) == 0);
      }
  for (size_t i = 0; i < wte_sum.size(); ++i)
    REQUIRE(wte_sum[i] == Approx(whole.grads()[i]).epsilon(1e-5).margin(1e-7));
  for (size_t i = 0; i < seen.size(); ++i)  // every element on a stage; only the tied wte on two
    REQUIRE(seen[i] == (cfg.tie_embeddings && i < wte_sum.size() ? 2 : 1));
}

TEST_CASE("model: the counts are the stage's: parameters, memory and 6N + 6LCT", "[model]") {
  GPTConfig cfg{.vocab_size = 50, .n_ctx = 16, .n_layer = 4, .n_head = 4, .n_embd = 32};
  for (const bool tie : {true, false}) {
    cfg.tie_embeddings = tie;
    const size_t N = dtb::num_parameters(cfg);
    // The whole model's N is what GPT holds; the stages of a split hold N plus the tied copy.
    CHECK(dtb::rank_parameters(cfg, dtb::whole_model(cfg)) == N);
    const size_t a = dtb::rank_parameters(cfg, {0, 1, true, false, 0, 1, false});
    const size_t b = dtb::rank_parameters(cfg, {1, 4, false, true, 0, 1, false});
    CHECK(a + b == N + (tie ? size_t(cfg.vocab_size) * cfg.n_embd : 0));
    CHECK(GPT<float>(cfg, 2, 16).num_params() == N);
    // 6 FLOPs per parameter and token, plus attention's 6 L C T (llm.c).
    CHECK(dtb::flops_per_token(cfg, 16) == 6.0 * double(N) + 6.0 * 4 * 32 * 16);
    const auto m = dtb::memory_breakdown(cfg, 2, 16, sizeof(float));
    CHECK(m.params == N * sizeof(float));
    CHECK(m.adam_m == m.params);
  }
}

namespace {

// A TP group played by one process: the allreduce leaves this rank's partial sums and the
// allgather copies its block over the others' (the numbers are then not the model's, but
// the kernels called, and so the FLOPs, are each TP rank's own). Each call records the
// FLOPs the stage had issued when it came: the points where the trainer's clock and the
// simulator cut a pass.
class RecordingTp final : public dtb::TpReduce {
 public:
  RecordingTp(const dtb::StageShard& s) : rank_(size_t(s.tp_rank)), size_(size_t(s.tp_size)) {}
  void allreduce(float*, size_t) override { at.push_back(stage->flops()); }
  void allgather(float* data, size_t count) override {
    const size_t per = count / size_;
    for (size_t r = 0; r < size_; ++r)
      if (r != rank_) std::copy_n(data + rank_ * per, per, data + r * per);
    at.push_back(stage->flops());
  }
  const dtb::TransformerStage<float>* stage = nullptr;
  std::vector<double> at;

 private:
  size_t rank_, size_;
};

// Where RecordingTp must see the stage's FLOPs in one forward and backward of BT rows, from
// the shared count F: the vocabulary-parallel embedding's sum; per layer after attproj and
// after fcproj; the cross-entropy's gather; the LM head's input gradient; per layer after
// fc's and after qkv's input gradients (Megatron's f). The blocks' only at TP > 1.
std::vector<double> collective_points(const dtb::StageShard& s, bool vocab_split, const dtb::StageFlops& f, double BT) {
  std::vector<double> at;
  double sum = 0;
  auto mark = [&](double flops) { at.push_back(sum += flops * BT); };
  const bool blocks = s.tp_size > 1;
  if (s.first && vocab_split) mark(0);
  for (int l = 0; l < f.layers && blocks; ++l) mark(f.layer.fwd_attn), mark(f.layer.fwd_mlp);
  if (s.last && vocab_split) mark(f.head_fwd);
  sum = f.forward() * BT;  // where the forward ends
  mark(f.head_bwd);        // the LM head's input gradient: summed when split
  if (!(s.last && vocab_split)) at.pop_back();
  for (int l = 0; l < f.layers && blocks; ++l) mark(f.layer.bwd_mlp), mark(f.layer.bwd_attn);
  return at;
}

}  // namespace

TEST_CASE("model: a stage's kernels issue exactly stage_flops, cut where its TP collectives sit", "[model]") {
  // V 50 over 4 TP ranks: vocabulary slices of 12 and 13 rows; T 7: an odd causal half.
  GPTConfig cfg{.vocab_size = 50, .n_ctx = 16, .n_layer = 4, .n_head = 4, .n_embd = 32};
  const int B = 2, T = 7, BT = B * T;
  std::mt19937_64 rng(5);
  for (const bool tie : {true, false})
    for (const auto& [begin, end] : {std::pair{0, 4}, {0, 1}, {1, 3}, {3, 4}})
      for (const int tp : {1, 2, 4})
        for (int rank = 0; rank < tp; ++rank)
          for (const bool vocab : {false, true}) {
            if (vocab && tp == 1) continue;
            cfg.tie_embeddings = tie;
            const dtb::StageShard s{begin, end, begin == 0, end == cfg.n_layer, rank, tp, vocab};
            dtb::TransformerStage<float> stage(cfg, s, B, T, 1);
            stage.init_weights(3);
            RecordingTp tp_group(s);
            tp_group.stage = &stage;
            const std::vector<int32_t> inputs = random_tokens(size_t(BT), cfg.vocab_size, rng);
            const std::vector<int32_t> targets = random_tokens(size_t(BT), cfg.vocab_size, rng);
            const size_t btc = size_t(BT) * size_t(cfg.n_embd);
            if (!s.first) std::fill_n(stage.input(0), btc, 0.1f);
            const dtb::StageFlops f = dtb::stage_flops(cfg, s, T);
            INFO("tied " << tie << " layers [" << begin << ", " << end << ") tp " << rank << "/" << tp << " vocab " << vocab);
            stage.forward(0, s.first ? inputs.data() : nullptr, s.last ? targets.data() : nullptr, tp_group);
            CHECK(stage.flops() == f.forward() * BT);
            if (!s.last) std::fill_n(stage.dresidual(), btc, 0.01f);
            stage.backward(0, 1.0f, tp_group);
            CHECK(stage.flops() == (f.forward() + f.backward()) * BT);
            CHECK(tp_group.at == collective_points(s, vocab && tp > 1, f, BT));
          }
}

TEST_CASE("model: generation issues decode_flops per row, whatever its position", "[model]") {
  const GPTConfig cfg{.vocab_size = 50, .n_ctx = 16, .n_layer = 4, .n_head = 4, .n_embd = 32};
  for (const dtb::StageShard& s : {dtb::whole_model(cfg), dtb::StageShard{1, 3, false, false, 1, 2, false},
                                   dtb::StageShard{2, 4, false, true, 0, 4, false}}) {
    dtb::TransformerStage<float> stage(cfg, s, 1, 1, 1);
    stage.init_weights(3);
    RecordingTp tp_group(s);
    tp_group.stage = &stage;
    dtb::KvCache<float> cache = stage.make_kv_cache(2, 8);
    const std::vector<float> input(8 * size_t(cfg.n_embd), 0.1f);
    // A prompt of 5 tokens and a second sequence's first, then one new token of each.
    const std::vector<dtb::TokenRow> prefill = {{0, 0, 1}, {0, 1, 2}, {0, 2, 3}, {0, 3, 4}, {0, 4, 5}, {1, 0, 6}};
    const std::vector<dtb::TokenRow> decode = {{0, 5, 7}, {1, 1, 8}};
    double expect = 0;
    for (const auto* rows : {&prefill, &decode}) {
      stage.forward_cached(cache, *rows, input.data(), tp_group);
      for (const dtb::TokenRow& r : *rows) expect += dtb::decode_flops(cfg, s, r.pos + 1);
      INFO("layers [" << s.layer_begin << ", " << s.layer_end << ") tp " << s.tp_rank << "/" << s.tp_size);
      CHECK(stage.flops() == expect);
    }
  }
}
