// The stage's kernel set (model/kernel_set.hpp): the one orchestration computes through it
// alone. A CPU kernel set laid out as the CUDA set lays out its memory (buffers on 64-element
// boundaries, logits rows padded to a multiple of 64, the softmax recomputed in the backward
// from the logits) must give bitwise the losses, logits and gradients of the default CPU
// set, and every pointer the stage hands a kernel must lie in memory the set allocated:
// what a device set needs, checked where no GPU is.
#include <catch2/catch.hpp>
#include <cstdint>
#include <cstring>
#include <map>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "model/kernel_set.hpp"
#include "model/stage.hpp"

namespace {

using dtb::KernelSet;
using dtb::VocabSlice;

// The CPU kernels behind the device set's layout. Rows are packed to dense temporaries
// around the kernels that see the logits, so the arithmetic is the CPU set's own.
class DeviceLayoutSet final : public KernelSet<float> {
 public:
  static constexpr size_t kAlign = 64;
  std::vector<std::string> strays;  // kernel arguments outside the set's memory

  ~DeviceLayoutSet() override {
    for (auto& [p, n] : blocks_) delete[] p;
  }
  float* allocate(size_t n, Memory) override {
    float* p = new float[n]();
    blocks_[p] = n;
    return p;
  }
  void release(float* p) override {
    blocks_.erase(p);
    delete[] p;
  }
  void zero(float* p, size_t n) override {
    own(p, "zero");
    cpu().zero(p, n);
  }
  void upload(float* dst, const float* host, size_t n) override {
    own(dst, "upload");
    cpu().upload(dst, host, n);
  }
  void weights_changed(const float* p, size_t) override { own(p, "weights_changed"); }
  size_t align() const override { return kAlign; }
  int vocab_stride(int v) const override { return (v + 63) / 64 * 64; }
  bool tensor_parallel() const override { return false; }

  void encoder_forward(float* out, const int32_t* inp, const float* wte, const float* wpe, int B, int T, int C,
                       VocabSlice v) override {
    own({out, wte, wpe}, "encoder_forward");
    cpu().encoder_forward(out, inp, wte, wpe, B, T, C, v);
  }
  void encoder_backward(float* dwte, float* dwpe, const float* dout, const int32_t* inp, int B, int T, int C,
                        VocabSlice v) override {
    own({dwte, dwpe, dout}, "encoder_backward");
    cpu().encoder_backward(dwte, dwpe, dout, inp, B, T, C, v);
  }
  void layernorm_forward(float* out, float* mean, float* rstd, const float* inp, const float* w, const float* b, int N,
                         int C) override {
    own({out, mean, rstd, inp, w, b}, "layernorm_forward");
    cpu().layernorm_forward(out, mean, rstd, inp, w, b, N, C);
  }
  void layernorm_backward(float* dinp, float* dw, float* db, const float* dout, const float* inp, const float* w,
                          const float* mean, const float* rstd, int N, int C) override {
    own({dinp, dw, db, dout, inp, w, mean, rstd}, "layernorm_backward");
    cpu().layernorm_backward(dinp, dw, db, dout, inp, w, mean, rstd, N, C);
  }
  void matmul_forward(float* out, const float* inp, const float* w, const float* bias, int N, int C, int OC,
                      int ldo) override {
    own({out, inp, w}, "matmul_forward");
    if (bias) own(bias, "matmul_forward");
    std::vector<float> dense(size_t(N) * OC);
    cpu().matmul_forward(dense.data(), inp, w, bias, N, C, OC, OC);
    scatter(out, dense.data(), N, OC, ldo);
  }
  void matmul_backward(float* dinp, float* dw, float* db, const float* dout, const float* inp, const float* w, int N,
                       int C, int OC, int ld) override {
    own({dinp, dw, dout, inp, w}, "matmul_backward");
    if (db) own(db, "matmul_backward");
    const std::vector<float> dense = gather(dout, N, OC, ld);
    cpu().matmul_backward(dinp, dw, db, dense.data(), inp, w, N, C, OC, OC);
  }
  void add_bias(float*, const float*, int, int) override { throw std::logic_error("TP = 1 only"); }
  void attention_forward(float* out, float* att, const float* qkv, int B, int T, int C, int NH) override {
    own({out, att, qkv}, "attention_forward");
    cpu().attention_forward(out, att, qkv, B, T, C, NH);
  }
  void attention_backward(float* dqkv, const float* dout, const float* qkv, const float* att, int B, int T, int C,
                          int NH) override {
    own({dqkv, dout, qkv, att}, "attention_backward");
    cpu().attention_backward(dqkv, dout, qkv, att, B, T, C, NH);
  }
  void gelu_forward(float* out, const float* inp, size_t n) override {
    own({out, inp}, "gelu_forward");
    cpu().gelu_forward(out, inp, n);
  }
  void gelu_backward(float* dinp, const float* inp, const float* dout, size_t n) override {
    own({dinp, inp, dout}, "gelu_backward");
    cpu().gelu_backward(dinp, inp, dout, n);
  }
  void residual_forward(float* out, const float* a, const float* b, size_t n) override {
    own({out, a, b}, "residual_forward");
    cpu().residual_forward(out, a, b, n);
  }
  // Like the CUDA set: the losses only; the backward recomputes the softmax from the logits.
  float crossentropy_forward(float* losses, float*, const float* logits, const int32_t* targets, int N, int V,
                             int ldv) override {
    own({losses, logits}, "crossentropy_forward");
    std::vector<float> probs(size_t(N) * V);
    return cpu().crossentropy_forward(losses, probs.data(), gather(logits, N, V, ldv).data(), targets, N, V, V);
  }
  void crossentropy_backward(float* dlogits, const float*, const float* logits, const int32_t* targets, int N, int V,
                             int ldv, VocabSlice v, float scale) override {
    own({dlogits, logits}, "crossentropy_backward");
    std::vector<float> probs(size_t(N) * V);
    std::vector<float> losses(static_cast<size_t>(N));
    cpu().crossentropy_forward(losses.data(), probs.data(), gather(logits, N, V, ldv).data(), targets, N, V, V);
    cpu().crossentropy_backward(probs.data(), probs.data(), nullptr, targets, N, V, V, v, scale);
    scatter(dlogits, probs.data(), N, V, ldv);
  }
  void crossentropy_partial(float*, const float*, const int32_t*, int, VocabSlice) override { tp_only(); }
  float crossentropy_combine(float*, float*, const float*, int, int) override { tp_only(); }
  void softmax_from_lse(float*, const float*, const float*, int, int) override { tp_only(); }

  // Offset of P from the start of its allocation (elements); -1 when the set does not own it.
  long offset_in_block(const float* p) const {
    for (const auto& [base, n] : blocks_)
      if (p >= base && p < base + n) return long(p - base);
    return -1;
  }

 private:
  static KernelSet<float>& cpu() { return dtb::cpu_kernel_set<float>(); }
  [[noreturn]] static void tp_only() { throw std::logic_error("TP = 1 only"); }
  void own(const float* p, const char* who) {
    if (offset_in_block(p) < 0) strays.push_back(who);
  }
  void own(std::initializer_list<const float*> ps, const char* who) {
    for (const float* p : ps) own(p, who);
  }
  static std::vector<float> gather(const float* rows, int N, int n, int ld) {
    std::vector<float> dense(size_t(N) * n);
    for (int i = 0; i < N; ++i) std::memcpy(dense.data() + size_t(i) * n, rows + size_t(i) * ld, size_t(n) * 4);
    return dense;
  }
  static void scatter(float* rows, const float* dense, int N, int n, int ld) {
    for (int i = 0; i < N; ++i) std::memcpy(rows + size_t(i) * ld, dense + size_t(i) * n, size_t(n) * 4);
  }
  std::map<float*, size_t> blocks_;
};

std::vector<int32_t> tokens(size_t n, int V, std::mt19937_64& rng) {
  std::vector<int32_t> t(n);
  for (int32_t& x : t) x = int32_t(rng() % uint64_t(V));
  return t;
}

// Two micro-batches accumulated with LOSS_SCALE on a whole model in LAYOUT, on each set.
void compare(const dtb::GPTConfig& c, dtb::StageLayout layout, float loss_scale) {
  constexpr int B = 2, T = 8;
  std::mt19937_64 rng(11);
  const auto in0 = tokens(B * T, c.vocab_size, rng), tg0 = tokens(B * T, c.vocab_size, rng);
  const auto in1 = tokens(B * T, c.vocab_size, rng), tg1 = tokens(B * T, c.vocab_size, rng);
  DeviceLayoutSet dev;
  dtb::TransformerStage<float> want(c, dtb::whole_model(c), B, T, 2, layout);
  dtb::TransformerStage<float> got(c, dtb::whole_model(c), B, T, 2, layout, dev);
  auto& none = dtb::no_tensor_parallelism();
  for (auto* s : {&want, &got}) {
    s->init_weights(5);
    s->zero_grad();
  }
  REQUIRE(std::memcmp(want.params(), got.params(), want.num_params() * 4) == 0);
  for (int slot = 0; slot < 2; ++slot) {
    const int32_t* in = slot ? in1.data() : in0.data();
    const int32_t* tg = slot ? tg1.data() : tg0.data();
    const float lw = want.forward(slot, in, tg, none), lg = got.forward(slot, in, tg, none);
    CHECK(lg == lw);
    // The logits, row by row (padded rows on the device layout).
    REQUIRE(got.logits_stride() == (c.vocab_size + 63) / 64 * 64);
    for (int r = 0; r < B * T; ++r)
      REQUIRE(std::memcmp(want.logits(slot) + size_t(r) * c.vocab_size,
                          got.logits(slot) + size_t(r) * got.logits_stride(), size_t(c.vocab_size) * 4) == 0);
  }
  for (int slot = 1; slot >= 0; --slot) {
    want.backward(slot, loss_scale, none);
    got.backward(slot, loss_scale, none);
  }
  CHECK(std::memcmp(want.grads(), got.grads(), want.num_params() * 4) == 0);
  // Every kernel argument was the set's memory; the carved buffers start on its boundary.
  CHECK(dev.strays.empty());
  for (const float* p : std::initializer_list<const float*>{got.input(1), got.logits(1), got.dresidual()}) {
    REQUIRE(dev.offset_in_block(p) >= 0);
    CHECK(dev.offset_in_block(p) % long(DeviceLayoutSet::kAlign) == 0);
  }
}

}  // namespace

TEST_CASE("a kernel set with the GPU's layout computes bitwise what the CPU set computes", "[kernel_set]") {
  // V = 67: logits rows padded to 128; C = 32, two layers.
  const dtb::GPTConfig tied{67, 16, 2, 4, 32};
  SECTION("GPT's order, tied embeddings, one micro-batch scale") { compare(tied, dtb::StageLayout::kTensorMajor, 1.0f); }
  SECTION("the pipeline's order, untied head, a loss scale") {
    dtb::GPTConfig untied = tied;
    untied.tie_embeddings = false;
    compare(untied, dtb::StageLayout::kLayerMajor, 0.5f);
  }
}

TEST_CASE("a kernel set that runs TP = 1 only refuses a tensor-parallel stage", "[kernel_set]") {
  const dtb::GPTConfig c{67, 16, 2, 4, 32};
  DeviceLayoutSet dev;
  dtb::StageShard s = dtb::whole_model(c);
  s.tp_size = 2;
  CHECK_THROWS_AS(dtb::TransformerStage<float>(c, s, 2, 8, 1, dtb::StageLayout::kLayerMajor, dev),
                  std::invalid_argument);
  CHECK_NOTHROW(dtb::TransformerStage<float>(c, s, 2, 8, 1, dtb::StageLayout::kLayerMajor));  // the CPU set runs it
}
