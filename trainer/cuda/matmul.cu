// Linear layers on cuBLASLt: bf16 (or fp32) inputs, float accumulation, the bias add fused
// into the gemm's epilogue; the bias gradient by deterministic column sums. The row-major
// to column-major rewriting of each product is in gemm_plans.cpp (tested on the CPU).
#include <cstdint>
#include <stdexcept>
#include <string>

#include "cuda/check.hpp"
#include "cuda/column_sums.cuh"
#include "cuda/common.cuh"
#include "cuda/gemm_plans.hpp"
#include "cuda/kernels.hpp"
#include "cuda/matmul_plans.hpp"

namespace dtb::cuda {
namespace {

// Largest power of two, at most 256, that divides the address (cuBLASLt picks kernels for
// the alignment it is promised).
int64_t alignment(const void* p) {
  const auto a = reinterpret_cast<uintptr_t>(p);
  int64_t al = 256;
  while (al > 1 && a % uintptr_t(al) != 0) al /= 2;
  return al;
}

// One product: the plan (gemm_plans.hpp), the operands, their types.
struct Gemm {
  GemmPlan plan;
  const void* a;
  const void* b;
  void* d;
  cudaDataType_t ab_type, d_type;
  const void* bias;  // (m), of d_type, or null
};

// Owns the descriptors of one call.
struct LtCall {
  cublasLtMatmulDesc_t desc = nullptr;
  cublasLtMatrixLayout_t a = nullptr, b = nullptr, d = nullptr;
  cublasLtMatmulPreference_t pref = nullptr;
  ~LtCall() {
    if (pref) cublasLtMatmulPreferenceDestroy(pref);
    if (d) cublasLtMatrixLayoutDestroy(d);
    if (b) cublasLtMatrixLayoutDestroy(b);
    if (a) cublasLtMatrixLayoutDestroy(a);
    if (desc) cublasLtMatmulDescDestroy(desc);
  }
};

std::string describe(const Gemm& g) {
  const GemmPlan& p = g.plan;
  return "gemm m=" + std::to_string(p.m) + " n=" + std::to_string(p.n) + " k=" + std::to_string(p.k) +
         " lda=" + std::to_string(p.lda) + " ldb=" + std::to_string(p.ldb) + " ldd=" + std::to_string(p.ldd) +
         (g.ab_type == CUDA_R_16BF ? " bf16" : " fp32") + (g.d_type == CUDA_R_16BF ? "->bf16" : "->fp32") +
         (g.bias ? " +bias" : "");
}

// The same product through cublasGemmEx, for the rare shape cuBLASLt's heuristic has no
// kernel for (no epilogue there: only called without a bias).
void gemm_ex(Context& ctx, const Gemm& g) {
  const GemmPlan& p = g.plan;
  const float alpha = 1.0f;
  cublas_check(cublasGemmEx(ctx.blas(), p.trans_a ? CUBLAS_OP_T : CUBLAS_OP_N, p.trans_b ? CUBLAS_OP_T : CUBLAS_OP_N,
                            p.m, p.n, p.k, &alpha, g.a, g.ab_type, p.lda, g.b, g.ab_type, p.ldb, &p.beta, g.d, g.d_type,
                            p.ldd, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
}

void lt_matmul(Context& ctx, const Gemm& g) {
  const GemmPlan& p = g.plan;
  if (p.m == 0 || p.n == 0) return;
  LtCall call;
  const cublasOperation_t op_a = p.trans_a ? CUBLAS_OP_T : CUBLAS_OP_N, op_b = p.trans_b ? CUBLAS_OP_T : CUBLAS_OP_N;
  cublas_check(cublasLtMatmulDescCreate(&call.desc, CUBLAS_COMPUTE_32F, CUDA_R_32F));
  cublas_check(cublasLtMatmulDescSetAttribute(call.desc, CUBLASLT_MATMUL_DESC_TRANSA, &op_a, sizeof op_a));
  cublas_check(cublasLtMatmulDescSetAttribute(call.desc, CUBLASLT_MATMUL_DESC_TRANSB, &op_b, sizeof op_b));
  const cublasLtEpilogue_t epilogue = g.bias ? CUBLASLT_EPILOGUE_BIAS : CUBLASLT_EPILOGUE_DEFAULT;
  cublas_check(cublasLtMatmulDescSetAttribute(call.desc, CUBLASLT_MATMUL_DESC_EPILOGUE, &epilogue, sizeof epilogue));
  if (g.bias) {
    cublas_check(cublasLtMatmulDescSetAttribute(call.desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &g.bias, sizeof g.bias));
    cublas_check(
        cublasLtMatmulDescSetAttribute(call.desc, CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE, &g.d_type, sizeof g.d_type));
  }
  // Stored shapes: op(X) = X^T means X is stored transposed.
  cublas_check(cublasLtMatrixLayoutCreate(&call.a, g.ab_type, p.trans_a ? p.k : p.m, p.trans_a ? p.m : p.k, p.lda));
  cublas_check(cublasLtMatrixLayoutCreate(&call.b, g.ab_type, p.trans_b ? p.n : p.k, p.trans_b ? p.k : p.n, p.ldb));
  cublas_check(cublasLtMatrixLayoutCreate(&call.d, g.d_type, p.m, p.n, p.ldd));

  const LtPlanCache::Key key = {p.trans_a,
                                p.trans_b,
                                p.m,
                                p.n,
                                p.k,
                                p.lda,
                                p.ldb,
                                p.ldd,
                                g.ab_type,
                                g.d_type,
                                epilogue,
                                alignment(g.a),
                                alignment(g.b),
                                alignment(g.d),
                                alignment(g.bias),
                                p.beta != 0.0f};
  auto& algos = ctx.plans().algos;
  auto it = algos.find(key);
  if (it == algos.end()) {
    cublas_check(cublasLtMatmulPreferenceCreate(&call.pref));
    const size_t workspace = ctx.workspace_bytes();
    cublas_check(cublasLtMatmulPreferenceSetAttribute(call.pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &workspace,
                                                      sizeof workspace));
    const uint32_t align_a = uint32_t(key[11]), align_b = uint32_t(key[12]), align_d = uint32_t(key[13]);
    cublas_check(cublasLtMatmulPreferenceSetAttribute(call.pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, &align_a,
                                                      sizeof align_a));
    cublas_check(cublasLtMatmulPreferenceSetAttribute(call.pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, &align_b,
                                                      sizeof align_b));
    cublas_check(cublasLtMatmulPreferenceSetAttribute(call.pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, &align_d,
                                                      sizeof align_d));
    cublas_check(cublasLtMatmulPreferenceSetAttribute(call.pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, &align_d,
                                                      sizeof align_d));
    cublasLtMatmulHeuristicResult_t result{};
    int found = 0;
    cublas_check(cublasLtMatmulAlgoGetHeuristic(ctx.lt(), call.desc, call.a, call.b, call.d, call.d, call.pref, 1,
                                                &result, &found));
    if (found == 0) {
      if (g.bias) throw CudaError("cuBLASLt has no kernel for " + describe(g));
      gemm_ex(ctx, g);
      return;
    }
    it = algos.emplace(key, result.algo).first;
  }
  const float alpha = 1.0f;
  cublas_check(cublasLtMatmul(ctx.lt(), call.desc, &alpha, g.a, call.a, g.b, call.b, &p.beta, g.d, call.d, g.d, call.d,
                              &it->second, ctx.workspace(), ctx.workspace_bytes(), ctx.stream()));
}

void check_dims(int C, int OC, int ld, const char* who) {
  if (C % 8 != 0 || ld % 8 != 0)
    throw std::invalid_argument(std::string(who) + ": C = " + std::to_string(C) + " and the output row stride " +
                                std::to_string(ld) + " must be multiples of 8");
  if (ld < OC)
    throw std::invalid_argument(std::string(who) + ": row stride " + std::to_string(ld) +
                                " is shorter than OC = " + std::to_string(OC));
}

}  // namespace

template <typename floatX>
void matmul_forward(Context& ctx, floatX* out, const floatX* inp, const floatX* weight, const floatX* bias, int N,
                    int C, int OC, int ldo) {
  if (ldo == 0) ldo = OC;
  check_dims(C, OC, ldo, "matmul_forward");
  constexpr cudaDataType_t t = data_type<floatX>();
  lt_matmul(ctx, {linear_forward_plan(N, C, OC, ldo), weight, inp, out, t, t, bias});
}

template <typename floatX>
void matmul_backward(Context& ctx, floatX* dinp, float* dweight, float* dbias, const floatX* dout, const floatX* inp,
                     const floatX* weight, int N, int C, int OC, float* scratch, int ld_dout) {
  if (ld_dout == 0) ld_dout = OC;
  check_dims(C, OC, ld_dout, "matmul_backward");
  constexpr cudaDataType_t t = data_type<floatX>();
  if (dinp) lt_matmul(ctx, {linear_dinp_plan(N, C, OC, ld_dout), weight, dout, dinp, t, t, nullptr});
  // Float output: the gradient accumulates in float whatever the activation type.
  lt_matmul(ctx, {linear_dweight_plan(N, C, OC, ld_dout), inp, dout, dweight, t, CUDA_R_32F, nullptr});
  if (dbias)
    column_sums<floatX>(nullptr, dbias, dout, nullptr, nullptr, nullptr, N, OC, scratch, ctx.stream(), ld_dout);
}

#define DTB_INSTANTIATE(floatX)                                                                                       \
  template void matmul_forward<floatX>(Context&, floatX*, const floatX*, const floatX*, const floatX*, int, int, int, \
                                       int);                                                                          \
  template void matmul_backward<floatX>(Context&, floatX*, float*, float*, const floatX*, const floatX*,              \
                                        const floatX*, int, int, int, float*, int);
DTB_INSTANTIATE(float)
DTB_INSTANTIATE(bf16)
#undef DTB_INSTANTIATE

}  // namespace dtb::cuda
