#include "cuda/gemm_plans.hpp"

namespace dtb::cuda {

GemmPlan linear_forward_plan(int N, int C, int OC, int ldo) {
  // out^T (OC, N) = W (OC, C) @ inp^T (C, N). W is stored as the column-major (C, OC)
  // matrix W^T: op T. inp is stored as inp^T (C, N): op N.
  return {true, false, OC, N, C, C, C, ldo};
}

GemmPlan linear_dinp_plan(int N, int C, int OC, int ld_dout) {
  // dinp^T (C, N) = W^T (C, OC) @ dout^T (OC, N): both stored that way, no transposes.
  return {false, false, C, N, OC, C, ld_dout, C};
}

GemmPlan linear_dweight_plan(int N, int C, int OC, int ld_dout) {
  // dW^T (C, OC) += inp^T (C, N) @ dout (N, OC). inp is stored as inp^T (C, N): op N;
  // dout is stored as dout^T (OC, N): op T.
  GemmPlan p{false, true, C, OC, N, C, ld_dout, C};
  p.beta = 1.0f;
  return p;
}

AttentionPlans attention_plans(int B, int T, int C, int NH) {
  const int hs = C / NH, batch = B * NH;
  const long long head = (long long)T * hs, square = (long long)T * T;
  // Each head's (T, hs) matrix is stored as the column-major (hs, T) one (ld hs), each
  // (T, T) matrix X as the column-major X^T (ld T).
  auto plan = [&](bool ta, bool tb, int m, int n, int k, int lda, long long sa, int ldb, long long sb, int ldd,
                  long long sd) {
    GemmPlan p{ta, tb, m, n, k, lda, ldb, ldd};
    p.stride_a = sa;
    p.stride_b = sb;
    p.stride_d = sd;
    p.batch = batch;
    return p;
  };
  AttentionPlans a;
  // att^T (T, T) = k (T, hs) @ q^T (hs, T): k stored (hs, T), op T; q stored (hs, T).
  a.scores = plan(true, false, T, T, hs, hs, head, hs, head, T, square);
  // y^T (hs, T) = v^T (hs, T) @ att^T (T, T): both stored that way.
  a.values = plan(false, false, hs, T, T, hs, head, T, square, hs, head);
  // datt^T (T, T) = v (T, hs) @ dy^T (hs, T): as the scores.
  a.datt = plan(true, false, T, T, hs, hs, head, hs, head, T, square);
  // dv^T (hs, T) = dy^T (hs, T) @ att (T, T): att stored as att^T, op T.
  a.dv = plan(false, true, hs, T, T, hs, head, T, square, hs, head);
  // dq^T (hs, T) = k^T (hs, T) @ dscore^T (T, T): both stored that way.
  a.dq = plan(false, false, hs, T, T, hs, head, T, square, hs, head);
  // dk^T (hs, T) = q^T (hs, T) @ dscore (T, T): dscore stored as dscore^T, op T.
  a.dk = plan(false, true, hs, T, T, hs, head, T, square, hs, head);
  return a;
}

}  // namespace dtb::cuda
