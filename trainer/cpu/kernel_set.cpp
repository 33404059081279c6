// The CPU kernel set (model/kernel_set.hpp): one table of CPU kernels (cpu/kernel_set.hpp:
// fast or reproducible) on host memory. The fast table makes exactly the calls the stage
// made before the kernel set existed, so its numbers are bitwise the same.
#include <algorithm>
#include <cstring>
#include <stdexcept>
#include <string>

#include "cpu/kernel_set.hpp"

namespace dtb {
namespace {

template <typename Real>
class CpuKernelSet final : public KernelSet<Real> {
  using Memory = typename KernelSet<Real>::Memory;

 public:
  explicit CpuKernelSet(const CpuKernels<Real>& k) : k_(k) {}
  Real* allocate(size_t n, Memory) override { return new Real[n](); }
  void release(Real* p) override { delete[] p; }
  void zero(Real* p, size_t n) override { std::fill(p, p + n, Real(0)); }
  void upload(Real* dst, const Real* host, size_t n) override {
    if (n) std::memmove(dst, host, n * sizeof(Real));
  }
  void weights_changed(const Real*, size_t) override {}  // the kernels read the parameters themselves
  size_t align() const override { return 1; }
  int vocab_stride(int v_local) const override { return v_local; }
  bool tensor_parallel() const override { return true; }
  bool generates() const override { return true; }

  void encoder_forward(Real* out, const int32_t* inp, const Real* wte, const Real* wpe, int B, int T, int C,
                       VocabSlice vocab) override {
    k_.encoder_forward(out, inp, wte, wpe, B, T, C, vocab);
  }
  void encoder_backward(Real* dwte, Real* dwpe, const Real* dout, const int32_t* inp, int B, int T, int C,
                        VocabSlice vocab) override {
    k_.encoder_backward(dwte, dwpe, dout, inp, B, T, C, vocab);
  }
  void layernorm_forward(Real* out, Real* mean, Real* rstd, const Real* inp, const Real* weight, const Real* bias,
                         int N, int C) override {
    k_.layernorm_forward(out, mean, rstd, inp, weight, bias, N, C);
  }
  void layernorm_backward(Real* dinp, Real* dweight, Real* dbias, const Real* dout, const Real* inp,
                          const Real* weight, const Real* mean, const Real* rstd, int N, int C) override {
    k_.layernorm_backward(dinp, dweight, dbias, dout, inp, weight, mean, rstd, N, C);
  }
  void matmul_forward(Real* out, const Real* inp, const Real* weight, const Real* bias, int N, int C, int OC,
                      int ldo) override {
    dense_rows(ldo, OC);
    k_.matmul_forward(out, inp, weight, bias, N, C, OC);
  }
  void matmul_backward(Real* dinp, Real* dweight, Real* dbias, const Real* dout, const Real* inp, const Real* weight,
                       int N, int C, int OC, int ld_dout) override {
    dense_rows(ld_dout, OC);
    k_.matmul_backward(dinp, dweight, dbias, dout, inp, weight, N, C, OC);
  }
  void add_bias(Real* out, const Real* bias, int N, int C) override {
    for (int i = 0; i < N; ++i)
      for (int o = 0; o < C; ++o) out[size_t(i) * C + o] += bias[o];
  }
  void attention_forward(Real* out, Real* att, const Real* qkv, int B, int T, int C, int NH) override {
    k_.attention_forward(out, att, qkv, B, T, C, NH);
  }
  void attention_forward_cached(Real* out, const Real* q, int q_stride, const Real* keys, const Real* values,
                                const int32_t* seq, const int32_t* pos, int N, int n_ctx, int C, int NH) override {
    k_.attention_forward_cached(out, q, q_stride, keys, values, seq, pos, N, n_ctx, C, NH);
  }
  void attention_backward(Real* dqkv, const Real* dout, const Real* qkv, const Real* att, int B, int T, int C,
                          int NH) override {
    k_.attention_backward(dqkv, dout, qkv, att, B, T, C, NH);
  }
  void gelu_forward(Real* out, const Real* inp, size_t n) override { k_.gelu_forward(out, inp, n); }
  void gelu_backward(Real* dinp, const Real* inp, const Real* dout, size_t n) override {
    k_.gelu_backward(dinp, inp, dout, n);
  }
  void residual_forward(Real* out, const Real* inp1, const Real* inp2, size_t n) override {
    k_.residual_forward(out, inp1, inp2, n);
  }
  Real crossentropy_forward(Real* losses, Real* probs, const Real* logits, const int32_t* targets, int N, int V,
                            int ldv) override {
    dense_rows(ldv, V);
    return k_.crossentropy_forward(losses, probs, logits, targets, N, V);
  }
  // From the softmax the forward kept in PROBS.
  void crossentropy_backward(Real* dlogits, const Real* probs, const Real*, const int32_t* targets, int N, int V,
                             int ldv, VocabSlice vocab, Real scale) override {
    dense_rows(ldv, V);
    k_.crossentropy_backward(dlogits, probs, targets, N, V, vocab);
    if (scale != Real(1))
      for (size_t i = 0; i < size_t(N) * size_t(V); ++i) dlogits[i] *= scale;
  }
  void crossentropy_partial(Real* stats, const Real* logits, const int32_t* targets, int N,
                            VocabSlice vocab) override {
    k_.crossentropy_partial(stats, logits, targets, N, vocab);
  }
  Real crossentropy_combine(Real* losses, Real* lse, const Real* stats, int P, int N) override {
    return k_.crossentropy_combine(losses, lse, stats, P, N);
  }
  void softmax_from_lse(Real* probs, const Real* logits, const Real* lse, int N, int V_local) override {
    k_.softmax_from_lse(probs, logits, lse, N, V_local);
  }

 private:
  const CpuKernels<Real>& k_;
  // vocab_stride() pads nothing, so every row stride the stage passes is the row length.
  static void dense_rows(int ld, int n) {
    if (ld != n) throw std::logic_error("cpu kernel set: rows are dense (stride " + std::to_string(ld) + " != " +
                                        std::to_string(n) + ")");
  }
};

}  // namespace

const char* kernel_mode_name(KernelMode m) { return m == KernelMode::kFast ? "fast" : "reproducible"; }

template <typename Real>
const CpuKernels<Real>& cpu_kernels(KernelMode mode) {
  static const CpuKernels<Real> fast = DTB_CPU_KERNELS(Real, KernelMode::kFast);
  return mode == KernelMode::kFast ? fast : repro::kernels<Real>();
}

template <typename Real>
std::unique_ptr<KernelSet<Real>> make_cpu_kernel_set(const CpuKernels<Real>& kernels) {
  return std::make_unique<CpuKernelSet<Real>>(kernels);
}

template <typename Real>
KernelSet<Real>& cpu_kernel_set(KernelMode mode) {
  static CpuKernelSet<Real> fast(cpu_kernels<Real>(KernelMode::kFast));
  static CpuKernelSet<Real> reproducible(cpu_kernels<Real>(KernelMode::kReproducible));
  return mode == KernelMode::kFast ? fast : reproducible;
}

#define DTB_INSTANTIATE(Real)                                                              \
  template const CpuKernels<Real>& cpu_kernels<Real>(KernelMode);                         \
  template std::unique_ptr<KernelSet<Real>> make_cpu_kernel_set<Real>(const CpuKernels<Real>&); \
  template KernelSet<Real>& cpu_kernel_set<Real>(KernelMode);
DTB_INSTANTIATE(float)
DTB_INSTANTIATE(double)
#undef DTB_INSTANTIATE

}  // namespace dtb
