#pragma once
// The matrix products of the CUDA layers as cuBLAS sees them, apart from the pointers: a
// column-major D(m, n) = op(A)(m, k) @ op(B)(k, n) + beta * D, BATCH times at the given
// strides. Our tensors are row-major, and a row-major (R, K) matrix is the column-major
// (K, R) matrix with leading dimension K: each plan below is that rewriting, done once.
// Host code without CUDA headers, so a CPU test (tests/cuda/test_cuda_plans.cpp) runs every
// plan through a literal column-major gemm and compares with cpu/kernels.hpp.
namespace dtb::cuda {

struct GemmPlan {
  bool trans_a, trans_b;  // op(X) = X^T when set
  int m, n, k;
  int lda, ldb, ldd;
  long long stride_a = 0, stride_b = 0, stride_d = 0;  // elements between batch members
  int batch = 1;
  float beta = 0.0f;  // 1: D accumulates
};

// A linear layer on row-major tensors: inp (N, C), weight (OC, C), out (N, OC) with rows
// LDO apart, dout (N, OC) with rows LD_DOUT apart, dinp (N, C), dweight (OC, C).
GemmPlan linear_forward_plan(int N, int C, int OC, int ldo);      // A = weight, B = inp, D = out
GemmPlan linear_dinp_plan(int N, int C, int OC, int ld_dout);     // A = weight, B = dout, D = dinp
GemmPlan linear_dweight_plan(int N, int C, int OC, int ld_dout);  // A = inp, B = dout, D = dweight (+=)

// Causal attention over B*NH heads, each a row-major (T, hs) matrix of q, k, v, y and
// their gradients, and a row-major (T, T) matrix of scores / probabilities / their
// gradients (att, datt).
struct AttentionPlans {
  GemmPlan scores;  // A = k, B = q, D = att: att = q @ k^T (unscaled)
  GemmPlan values;  // A = v, B = att, D = y: y = att @ v
  GemmPlan datt;    // A = v, B = dy, D = datt: datt = dy @ v^T
  GemmPlan dv;      // A = dy, B = att, D = dv: dv = att^T @ dy
  GemmPlan dq;      // A = k, B = dscore, D = dq: dq = dscore @ k
  GemmPlan dk;      // A = q, B = dscore, D = dk: dk = dscore^T @ q
};
AttentionPlans attention_plans(int B, int T, int C, int NH);

}  // namespace dtb::cuda
