#pragma once
// The CPU kernels a stage runs (model/kernel_set.hpp's CPU implementation), as one table of
// function pointers per mode, so that the fast and the reproducible arithmetic share the
// seam the CUDA kernels use. Two tables exist (train.kernels):
//
//   fast          cpu/kernels.cpp: OpenBLAS gemms, glibc's exp and log, built for the
//                 build's -march with the compiler's FMA contraction. Bitwise the same for a
//                 given thread count on one CPU and build, not across CPUs.
//   reproducible  cpu/repro_kernels.cpp, in the spirit of Gensyn's RepOps (Verde, arXiv
//                 2502.19405): the same kernel sources (cpu/kernel_bodies.inc) with a gemm
//                 of its own whose every sum runs in one fixed order, exp and log of its own
//                 (cpu/repro_math.hpp: + - * / only), compiled with -ffp-contract=off and
//                 without -ffast-math. Every output element is a sequence of IEEE-754
//                 operations fixed by the source alone, so the bits do not depend on the
//                 thread count, the vector width or the -march the file was built for.
//
// The signatures are those of cpu/kernels.hpp (the default VocabSlice argument spelt out).
#include <memory>

#include "cpu/kernels.hpp"
#include "model/kernel_set.hpp"  // KernelSet, KernelMode

namespace dtb {

template <typename Real>
struct CpuKernels {
  KernelMode mode;
  decltype(&dtb::encoder_forward<Real>) encoder_forward;
  decltype(&dtb::encoder_backward<Real>) encoder_backward;
  decltype(&dtb::layernorm_forward<Real>) layernorm_forward;
  decltype(&dtb::layernorm_backward<Real>) layernorm_backward;
  decltype(&dtb::matmul_forward<Real>) matmul_forward;
  decltype(&dtb::matmul_backward<Real>) matmul_backward;
  decltype(&dtb::attention_forward<Real>) attention_forward;
  decltype(&dtb::attention_forward_cached<Real>) attention_forward_cached;
  decltype(&dtb::attention_backward<Real>) attention_backward;
  decltype(&dtb::gelu_forward<Real>) gelu_forward;
  decltype(&dtb::gelu_backward<Real>) gelu_backward;
  decltype(&dtb::residual_forward<Real>) residual_forward;
  decltype(&dtb::residual_backward<Real>) residual_backward;
  decltype(&dtb::crossentropy_forward<Real>) crossentropy_forward;
  decltype(&dtb::crossentropy_backward<Real>) crossentropy_backward;
  decltype(&dtb::crossentropy_partial<Real>) crossentropy_partial;
  decltype(&dtb::crossentropy_combine<Real>) crossentropy_combine;
  decltype(&dtb::softmax_from_lse<Real>) softmax_from_lse;
  decltype(&dtb::gemm<Real>) gemm;
};

// The set of the kernels of these names in the namespace where it is used: kernels.cpp's
// (dtb) and repro_kernels.cpp's (dtb::repro) fill their sets alike.
#define DTB_CPU_KERNELS(Real, mode) \
  CpuKernels<Real> { \
    mode, &encoder_forward<Real>, &encoder_backward<Real>, &layernorm_forward<Real>, \
        &layernorm_backward<Real>, &matmul_forward<Real>, &matmul_backward<Real>, \
        &attention_forward<Real>, &attention_forward_cached<Real>, &attention_backward<Real>, &gelu_forward<Real>, \
        &gelu_backward<Real>, &residual_forward<Real>, &residual_backward<Real>, \
        &crossentropy_forward<Real>, &crossentropy_backward<Real>, &crossentropy_partial<Real>, \
        &crossentropy_combine<Real>, &softmax_from_lse<Real>, &gemm<Real> \
  }

// The table of MODE (float and double are instantiated).
template <typename Real>
const CpuKernels<Real>& cpu_kernels(KernelMode mode = KernelMode::kFast);

// model/kernel_set.hpp on host memory, computing with one table of CPU kernels (the stage's
// default is cpu_kernel_set(mode), one shared instance per mode; a test may wrap a table
// built another way, e.g. repro_kernels.cpp compiled for another -march).
template <typename Real>
std::unique_ptr<KernelSet<Real>> make_cpu_kernel_set(const CpuKernels<Real>& kernels);

// The reproducible set as cpu/repro_kernels.cpp defines it in namespace dtb::DTB_REPRO_NS
// (dtb::repro in the library; a test builds the same file a second time under another
// namespace and -march to compare the bits of two code paths).
namespace repro {
template <typename Real>
const CpuKernels<Real>& kernels();
const char* isa();  // the vector instructions this copy was built with: "avx512", "avx2", "sse2"
}  // namespace repro

}  // namespace dtb
