#pragma once
// The compute underneath the one orchestration (model/stage.hpp): the set of kernels a
// TransformerStage calls, and the memory they run on. The stage decides what runs in which
// order on which buffers (the layers, TP slices, pipeline slots, buffer layout); a kernel
// set decides where the buffers live and how each layer is computed:
//
//   cpu_kernel_set<Real>(m)  cpu/kernels.hpp on host memory (float trains, double is the
//                            finite-difference reference), in the arithmetic of mode M
//                            (train.kernels: fast, or reproducible; cpu/kernel_set.hpp).
//                            The fast set is the default of every stage.
//   cuda::KernelSet          (trainer/cuda/kernel_set.hpp, -DDTB_CUDA=ON) cuda/kernels.hpp on
//                            device memory, fp32 or bf16 activations; TP = 1 only.
//
// Shapes and argument order are cpu/kernels.hpp's (outputs, inputs, sizes). The stage's
// pointers all point into memory from allocate(); token ids are host arrays (a device set
// copies them over). Two kinds of buffer, so a set may store activations in a narrower type:
//   kState        parameters, gradients, LayerNorm statistics, losses: Real, read as Real;
//   kActivations  activations and activation gradients: a set may keep them in a narrower
//                 type inside the Real-sized slots the stage carved (bf16 in float slots).
// Parameter gradients accumulate (+=). The stage zeroes every activation-gradient buffer
// before the first kernel writes it, so a set may assign or accumulate there; the one
// place two branches meet (layernorm_backward's dinp) must accumulate.
#include <cstddef>
#include <cstdint>
#include <stdexcept>

#include "cpu/kernels.hpp"  // VocabSlice

namespace dtb {

template <typename Real>
class KernelSet {
 public:
  enum class Memory { kState, kActivations };
  virtual ~KernelSet() = default;

  // ---- memory: N zeroed elements; release what allocate gave
  virtual Real* allocate(size_t n, Memory kind) = 0;
  virtual void release(Real* p) = 0;
  virtual void zero(Real* p, size_t n) = 0;
  virtual void upload(Real* dst, const Real* host, size_t n) = 0;  // host -> the set's memory
  // The stage's parameters (kState) changed outside a kernel (init, a checkpoint): a set
  // that computes from a copy of the weights refreshes it.
  virtual void weights_changed(const Real* params, size_t n) = 0;
  // Elements every carved buffer is aligned to (the stage's layout: 1 packs them tightly).
  virtual size_t align() const = 0;
  // The row stride of the logits for V_LOCAL vocabulary columns (a set may pad rows).
  virtual int vocab_stride(int v_local) const = 0;
  // Whether the set runs TP > 1 and vocabulary-parallel stages (TpReduce moves host floats).
  virtual bool tensor_parallel() const = 0;

  // ---- layers (cpu/kernels.hpp's contracts; LD*: row strides of the logits)
  virtual void encoder_forward(Real* out, const int32_t* inp, const Real* wte, const Real* wpe, int B, int T, int C,
                               VocabSlice vocab) = 0;
  virtual void encoder_backward(Real* dwte, Real* dwpe, const Real* dout, const int32_t* inp, int B, int T, int C,
                                VocabSlice vocab) = 0;
  virtual void layernorm_forward(Real* out, Real* mean, Real* rstd, const Real* inp, const Real* weight,
                                 const Real* bias, int N, int C) = 0;
  virtual void layernorm_backward(Real* dinp, Real* dweight, Real* dbias, const Real* dout, const Real* inp,
                                  const Real* weight, const Real* mean, const Real* rstd, int N, int C) = 0;
  virtual void matmul_forward(Real* out, const Real* inp, const Real* weight, const Real* bias, int N, int C, int OC,
                              int ldo) = 0;
  virtual void matmul_backward(Real* dinp, Real* dweight, Real* dbias, const Real* dout, const Real* inp,
                               const Real* weight, int N, int C, int OC, int ld_dout) = 0;
  // out (N, C) += bias (C): the row-parallel linear's bias after its allreduce (TP > 1).
  virtual void add_bias(Real* out, const Real* bias, int N, int C) = 0;
  virtual void attention_forward(Real* out, Real* att, const Real* qkv, int B, int T, int C, int NH) = 0;
  // Generation with a KV cache (model/stage.hpp's forward_cached; cpu/kernels.hpp's
  // contract): the cache lives in host memory, so only a host set generates; a set that
  // cannot keeps these answers.
  virtual bool generates() const { return false; }
  virtual void attention_forward_cached(Real* /*out*/, const Real* /*q*/, int /*q_stride*/, const Real* /*keys*/,
                                        const Real* /*values*/, const int32_t* /*seq*/, const int32_t* /*pos*/,
                                        int /*N*/, int /*n_ctx*/, int /*C*/, int /*NH*/) {
    throw std::logic_error("this kernel set does not run generation with a KV cache (dtbench infer runs on the CPU)");
  }
  virtual void attention_backward(Real* dqkv, const Real* dout, const Real* qkv, const Real* att, int B, int T, int C,
                                  int NH) = 0;
  virtual void gelu_forward(Real* out, const Real* inp, size_t n) = 0;
  virtual void gelu_backward(Real* dinp, const Real* inp, const Real* dout, size_t n) = 0;
  virtual void residual_forward(Real* out, const Real* inp1, const Real* inp2, size_t n) = 0;

  // ---- the loss over the whole vocabulary (rows LDV apart)
  // losses per row and the mean loss (returned to the host); the set may keep the softmax
  // in PROBS for the backward, or recompute it there from LOGITS.
  virtual Real crossentropy_forward(Real* losses, Real* probs, const Real* logits, const int32_t* targets, int N,
                                    int V, int ldv) = 0;
  // dlogits = SCALE x (softmax - onehot(target)) / N over the slice's columns (assigned;
  // DLOGITS is the PROBS buffer).
  virtual void crossentropy_backward(Real* dlogits, const Real* probs, const Real* logits, const int32_t* targets,
                                     int N, int V, int ldv, VocabSlice vocab, Real scale) = 0;
  // Vocabulary-parallel cross-entropy (tensor_parallel() sets only; cpu/kernels.hpp).
  virtual void crossentropy_partial(Real* stats, const Real* logits, const int32_t* targets, int N,
                                    VocabSlice vocab) = 0;
  virtual Real crossentropy_combine(Real* losses, Real* lse, const Real* stats, int P, int N) = 0;
  virtual void softmax_from_lse(Real* probs, const Real* logits, const Real* lse, int N, int V_local) = 0;
};

// train.kernels: the CPU arithmetic (cpu/kernel_set.hpp says what each guarantees).
enum class KernelMode { kFast, kReproducible };
const char* kernel_mode_name(KernelMode m);  // "fast" | "reproducible"

// The CPU kernels of MODE on host memory: one shared instance per type and mode (it holds
// no state).
template <typename Real>
KernelSet<Real>& cpu_kernel_set(KernelMode mode = KernelMode::kFast);

// Owns N elements allocated by a kernel set (moves, never copies).
template <typename Real>
class KernelBuffer {
 public:
  KernelBuffer() = default;
  KernelBuffer(KernelSet<Real>& k, size_t n, typename KernelSet<Real>::Memory kind)
      : k_(&k), p_(n ? k.allocate(n, kind) : nullptr), n_(n) {}
  ~KernelBuffer() {
    if (p_) k_->release(p_);
  }
  KernelBuffer(KernelBuffer&& o) noexcept : k_(o.k_), p_(o.p_), n_(o.n_) { o.p_ = nullptr, o.n_ = 0; }
  KernelBuffer& operator=(KernelBuffer&& o) noexcept {
    if (this != &o) {
      if (p_) k_->release(p_);
      k_ = o.k_, p_ = o.p_, n_ = o.n_;
      o.p_ = nullptr, o.n_ = 0;
    }
    return *this;
  }
  KernelBuffer(const KernelBuffer&) = delete;
  KernelBuffer& operator=(const KernelBuffer&) = delete;
  Real* data() const { return p_; }
  size_t size() const { return n_; }

 private:
  KernelSet<Real>* k_ = nullptr;
  Real* p_ = nullptr;
  size_t n_ = 0;
};

}  // namespace dtb
