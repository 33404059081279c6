// Every CUDA layer (trainer/cuda/kernels.hpp) against its CPU twin (trainer/cpu/kernels.hpp,
// in double) on fresh random inputs, forward and backward, in fp32 (normalized error at
// most 1e-6) and in bf16 (at most 1e-2; the CPU gets the bf16-rounded inputs). Outputs the
// CUDA side assigns start as garbage on the GPU, outputs that accumulate start from the
// same random values on both sides, and padding the kernels must not read holds NaN.
// Exits 77 (ctest: skipped) where no GPU can run it.
#include <cmath>
#include <cstdio>
#include <limits>
#include <string>
#include <vector>

#include "cpu/kernels.hpp"
#include "cuda/gpu_test.hpp"
#include "optim/adamw.hpp"

namespace {

using namespace dtb::cuda;
using namespace dtb::cuda::test;

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

// The first COLS of each of ROWS rows LD apart.
std::vector<double> columns(const std::vector<double>& v, size_t rows, size_t ld, size_t cols) {
  std::vector<double> out;
  out.reserve(rows * cols);
  for (size_t r = 0; r < rows; ++r) out.insert(out.end(), v.begin() + long(r * ld), v.begin() + long(r * ld + cols));
  return out;
}

// Rows of COLS values spread to rows LD apart, the padding set to PAD.
std::vector<double> padded(const std::vector<double>& v, size_t rows, size_t ld, size_t cols, double pad) {
  std::vector<double> out(rows * ld, pad);
  for (size_t r = 0; r < rows; ++r)
    for (size_t c = 0; c < cols; ++c) out[r * ld + c] = v[r * cols + c];
  return out;
}

std::string label(const char* layer, const char* what, const std::string& shape, const char* type) {
  return std::string(layer) + " " + what + " " + shape + " " + type;
}

template <typename floatX>
struct Suite {
  Context& ctx;
  Random& rng;
  Checker& check;
  cudaStream_t s() const { return ctx.stream(); }
  static constexpr double tol = tolerance<floatX>();
  static constexpr const char* type = type_name<floatX>();

  void encoder(int B, int T, int C, int V) {
    const size_t BT = size_t(B) * T, P = size_t(T) + 3;
    const std::string shape = "B=" + std::to_string(B) + " T=" + std::to_string(T) + " C=" + std::to_string(C);
    const std::vector<int32_t> inp = rng.tokens(BT, V);
    const auto wte = stored<floatX>(rng.normal(size_t(V) * C)), wpe = stored<floatX>(rng.normal(P * C));
    std::vector<double> out(BT * C);
    dtb::encoder_forward(out.data(), inp.data(), wte.data(), wpe.data(), B, T, C);
    auto d_inp = upload_ints(inp, s());
    auto d_wte = upload<floatX>(wte, s()), d_wpe = upload<floatX>(wpe, s());
    auto d_out = upload<floatX>(rng.normal(BT * C), s());
    encoder_forward(d_out.get(), d_inp.get(), d_wte.get(), d_wpe.get(), B, T, C, s());
    check.check(label("encoder", "out", shape, type), download(d_out, s()), out, tol);

    const auto dout = stored<floatX>(rng.normal(BT * C));
    auto dwte = stored<float>(rng.normal(size_t(V) * C)), dwpe = stored<float>(rng.normal(P * C));
    auto d_dout = upload<floatX>(dout, s());
    auto d_dwte = upload<float>(dwte, s()), d_dwpe = upload<float>(dwpe, s());
    dtb::encoder_backward(dwte.data(), dwpe.data(), dout.data(), inp.data(), B, T, C);
    const EncoderBuckets buckets = encoder_buckets(inp.data(), int(BT));
    auto d_buckets = upload_ints(buckets.data, s());
    encoder_backward(d_dwte.get(), d_dwpe.get(), d_dout.get(), d_buckets.get(), buckets.unique, B, T, C, s());
    check.check(label("encoder", "dwte", shape, type), download(d_dwte, s()), dwte, tol);
    check.check(label("encoder", "dwpe", shape, type), download(d_dwpe, s()), dwpe, tol);
  }

  void layernorm(int N, int C) {
    const std::string shape = "N=" + std::to_string(N) + " C=" + std::to_string(C);
    const size_t NC = size_t(N) * C;
    const auto inp = stored<floatX>(rng.normal(NC, 2.0)), w = stored<floatX>(rng.normal(C)),
               b = stored<floatX>(rng.normal(C));
    std::vector<double> out(NC), mean(N), rstd(N);
    dtb::layernorm_forward(out.data(), mean.data(), rstd.data(), inp.data(), w.data(), b.data(), N, C);
    auto d_inp = upload<floatX>(inp, s()), d_w = upload<floatX>(w, s()), d_b = upload<floatX>(b, s());
    auto d_out = upload<floatX>(rng.normal(NC), s());
    DeviceBuffer<float> d_mean(N), d_rstd(N);
    layernorm_forward(d_out.get(), d_mean.get(), d_rstd.get(), d_inp.get(), d_w.get(), d_b.get(), N, C, s());
    check.check(label("layernorm", "out", shape, type), download(d_out, s()), out, tol);
    check.check(label("layernorm", "mean", shape, type), download(d_mean, s()), mean, kTolFp32);
    check.check(label("layernorm", "rstd", shape, type), download(d_rstd, s()), rstd, kTolFp32);

    const auto dout = stored<floatX>(rng.normal(NC));
    auto dinp = stored<floatX>(rng.normal(NC));
    auto dw = stored<float>(rng.normal(C)), db = stored<float>(rng.normal(C));
    auto d_dout = upload<floatX>(dout, s()), d_dinp = upload<floatX>(dinp, s());
    auto d_dw = upload<float>(dw, s()), d_db = upload<float>(db, s());
    DeviceBuffer<float> scratch(column_scratch_floats(N, C));
    dtb::layernorm_backward(dinp.data(), dw.data(), db.data(), dout.data(), inp.data(), w.data(), mean.data(),
                            rstd.data(), N, C);
    layernorm_backward(d_dinp.get(), d_dw.get(), d_db.get(), d_dout.get(), d_inp.get(), d_w.get(), d_mean.get(),
                       d_rstd.get(), N, C, scratch.get(), s());
    check.check(label("layernorm", "dinp", shape, type), download(d_dinp, s()), dinp, tol);
    check.check(label("layernorm", "dweight", shape, type), download(d_dw, s()), dw, tol);
    check.check(label("layernorm", "dbias", shape, type), download(d_db, s()), db, tol);
  }

  void residual_layernorm(int N, int C) {
    const std::string shape = "N=" + std::to_string(N) + " C=" + std::to_string(C);
    const size_t NC = size_t(N) * C;
    const auto a = stored<floatX>(rng.normal(NC)), b = stored<floatX>(rng.normal(NC));
    const auto w = stored<floatX>(rng.normal(C)), bias = stored<floatX>(rng.normal(C));
    std::vector<double> res(NC), out(NC), mean(N), rstd(N);
    dtb::residual_forward(res.data(), a.data(), b.data(), NC);
    res = stored<floatX>(res);  // the GPU stores the residual, then normalizes what it stored
    dtb::layernorm_forward(out.data(), mean.data(), rstd.data(), res.data(), w.data(), bias.data(), N, C);
    auto d_a = upload<floatX>(a, s()), d_b = upload<floatX>(b, s());
    auto d_w = upload<floatX>(w, s()), d_bias = upload<floatX>(bias, s());
    auto d_res = upload<floatX>(rng.normal(NC), s()), d_out = upload<floatX>(rng.normal(NC), s());
    DeviceBuffer<float> d_mean(N), d_rstd(N);
    residual_layernorm_forward(d_res.get(), d_out.get(), d_mean.get(), d_rstd.get(), d_a.get(), d_b.get(), d_w.get(),
                               d_bias.get(), N, C, s());
    check.check(label("residual+layernorm", "residual", shape, type), download(d_res, s()), res, tol);
    check.check(label("residual+layernorm", "out", shape, type), download(d_out, s()), out, tol);
    check.check(label("residual+layernorm", "mean", shape, type), download(d_mean, s()), mean, kTolFp32);
    check.check(label("residual+layernorm", "rstd", shape, type), download(d_rstd, s()), rstd, kTolFp32);
  }

  // LDO > OC pads the rows of out (and of dout) as the LM head does; the padding of dout
  // is NaN, so reading it would show.
  void matmul(int N, int C, int OC, bool bias, int ldo) {
    const std::string shape = "N=" + std::to_string(N) + " C=" + std::to_string(C) + " OC=" + std::to_string(OC) +
                              " ld=" + std::to_string(ldo) + (bias ? " +bias" : "");
    const auto inp = stored<floatX>(rng.normal(size_t(N) * C));
    const auto w = stored<floatX>(rng.normal(size_t(OC) * C, 1.0 / std::sqrt(C)));
    const auto b = stored<floatX>(rng.normal(OC));
    std::vector<double> out(size_t(N) * OC);
    dtb::matmul_forward(out.data(), inp.data(), w.data(), bias ? b.data() : nullptr, N, C, OC);
    auto d_inp = upload<floatX>(inp, s()), d_w = upload<floatX>(w, s()), d_b = upload<floatX>(b, s());
    auto d_out = upload<floatX>(rng.normal(size_t(N) * ldo), s());
    matmul_forward(ctx, d_out.get(), d_inp.get(), d_w.get(), bias ? d_b.get() : nullptr, N, C, OC, ldo);
    check.check(label("matmul", "out", shape, type), columns(download(d_out, s()), N, ldo, OC), out, tol);

    const auto dout = stored<floatX>(rng.normal(size_t(N) * OC));
    std::vector<double> dinp(size_t(N) * C, 0.0);
    auto dw = stored<float>(rng.normal(size_t(OC) * C)), db = stored<float>(rng.normal(OC));
    auto d_dout = upload<floatX>(padded(dout, N, ldo, OC, kNaN), s());
    auto d_dinp = upload<floatX>(rng.normal(dinp.size()), s());  // assigned: garbage first
    auto d_dw = upload<float>(dw, s()), d_db = upload<float>(db, s());
    DeviceBuffer<float> scratch(column_scratch_floats(N, OC));
    dtb::matmul_backward(dinp.data(), dw.data(), bias ? db.data() : nullptr, dout.data(), inp.data(), w.data(), N, C,
                         OC);
    matmul_backward(ctx, d_dinp.get(), d_dw.get(), bias ? d_db.get() : nullptr, d_dout.get(), d_inp.get(), d_w.get(), N,
                    C, OC, scratch.get(), ldo);
    check.check(label("matmul", "dinp", shape, type), download(d_dinp, s()), dinp, tol);
    check.check(label("matmul", "dweight", shape, type), download(d_dw, s()), dw, tol);
    if (bias) check.check(label("matmul", "dbias", shape, type), download(d_db, s()), db, tol);
  }

  void attention(int B, int T, int C, int NH) {
    const std::string shape =
        "B=" + std::to_string(B) + " T=" + std::to_string(T) + " C=" + std::to_string(C) + " NH=" + std::to_string(NH);
    const size_t btc = size_t(B) * T * C, att_n = size_t(B) * NH * T * T;
    const auto qkv = stored<floatX>(rng.normal(3 * btc));
    std::vector<double> out(btc), att(att_n);
    dtb::attention_forward(out.data(), att.data(), qkv.data(), B, T, C, NH);
    auto d_qkv = upload<floatX>(qkv, s());
    auto d_out = upload<floatX>(rng.normal(btc), s()), d_att = upload<floatX>(rng.normal(att_n), s());
    DeviceBuffer<floatX> scratch(attention_scratch_elems(B, T, C, NH));
    attention_forward(ctx, d_out.get(), d_att.get(), d_qkv.get(), B, T, C, NH, scratch.get());
    check.check(label("attention", "out", shape, type), download(d_out, s()), out, tol);
    check.check(label("attention", "att", shape, type), download(d_att, s()), att, tol);

    const auto dout = stored<floatX>(rng.normal(btc));
    std::vector<double> dqkv(3 * btc, 0.0);
    auto d_dout = upload<floatX>(dout, s());
    auto d_dqkv = upload<floatX>(rng.normal(3 * btc), s());  // assigned: garbage first
    dtb::attention_backward(dqkv.data(), dout.data(), qkv.data(), att.data(), B, T, C, NH);
    attention_backward(ctx, d_dqkv.get(), d_dout.get(), d_qkv.get(), d_att.get(), B, T, C, NH, scratch.get());
    check.check(label("attention", "dqkv", shape, type), download(d_dqkv, s()), dqkv, tol);
  }

  void elementwise(size_t n) {
    const std::string shape = "n=" + std::to_string(n);
    const auto x = stored<floatX>(rng.normal(n, 2.0)), y = stored<floatX>(rng.normal(n));
    std::vector<double> out(n), dinp(n, 0.0);
    auto d_x = upload<floatX>(x, s()), d_y = upload<floatX>(y, s());
    auto d_out = upload<floatX>(rng.normal(n), s());
    dtb::gelu_forward(out.data(), x.data(), n);
    gelu_forward(d_out.get(), d_x.get(), n, s());
    check.check(label("gelu", "out", shape, type), download(d_out, s()), out, tol);
    dtb::gelu_backward(dinp.data(), x.data(), y.data(), n);
    gelu_backward(d_out.get(), d_x.get(), d_y.get(), n, s());  // assigned over the forward's output
    check.check(label("gelu", "dinp", shape, type), download(d_out, s()), dinp, tol);

    dtb::residual_forward(out.data(), x.data(), y.data(), n);
    residual_forward(d_out.get(), d_x.get(), d_y.get(), n, s());
    check.check(label("residual", "out", shape, type), download(d_out, s()), out, tol);
    auto d1 = stored<floatX>(rng.normal(n)), d2 = stored<floatX>(rng.normal(n));
    auto d_d1 = upload<floatX>(d1, s()), d_d2 = upload<floatX>(d2, s());
    dtb::residual_backward(d1.data(), d2.data(), y.data(), n);
    residual_backward(d_d1.get(), d_d2.get(), d_y.get(), n, s());
    check.check(label("residual", "dinp1", shape, type), download(d_d1, s()), d1, tol);
    check.check(label("residual", "dinp2", shape, type), download(d_d2, s()), d2, tol);
  }

  void classifier(int N, int V) {
    const int ldv = (V + 63) / 64 * 64;
    const std::string shape = "N=" + std::to_string(N) + " V=" + std::to_string(V) + " ld=" + std::to_string(ldv);
    const auto logits = stored<floatX>(rng.normal(size_t(N) * V, 3.0));
    const std::vector<int32_t> targets = rng.tokens(size_t(N), V);
    std::vector<double> losses(N), probs(size_t(N) * V);
    dtb::crossentropy_forward(losses.data(), probs.data(), logits.data(), targets.data(), N, V);
    std::vector<double> dlogits(probs.size());
    dtb::crossentropy_backward(dlogits.data(), probs.data(), targets.data(), N, V);

    auto d_logits = upload<floatX>(padded(logits, N, ldv, V, kNaN), s());
    auto d_targets = upload_ints(targets, s());
    DeviceBuffer<float> d_losses(N);
    crossentropy_forward(d_losses.get(), d_logits.get(), d_targets.get(), N, V, ldv, s());
    check.check(label("crossentropy", "losses", shape, type), download(d_losses, s()), losses, kTolFp32);
    cuda_check(cudaMemsetAsync(d_losses.get(), 0, N * sizeof(float), s()));
    fused_classifier(d_logits.get(), d_losses.get(), d_targets.get(), N, V, ldv, 1.0f / float(N), s());
    check.check(label("fused classifier", "losses", shape, type), download(d_losses, s()), losses, kTolFp32);
    check.check(label("fused classifier", "dlogits", shape, type), columns(download(d_logits, s()), N, ldv, V), dlogits,
                tol);
  }

  void run() {
    encoder(3, 37, 64, 251);
    layernorm(74, 64);
    layernorm(16, 768);
    residual_layernorm(74, 64);
    residual_layernorm(16, 768);
    matmul(74, 64, 192, true, 192);
    matmul(74, 64, 251, false, 256);  // the LM head: no bias, padded rows
    matmul(128, 768, 2304, true, 2304);
    attention(2, 37, 64, 4);
    attention(1, 64, 128, 2);
    attention(2, 1, 64, 4);
    elementwise(8 * 123);
    classifier(74, 251);
    classifier(8, 50257);
  }
};

// AdamW and the grad norm: fp32 both sides (the optimizer state is fp32 in both modes).
void optimizer(Context& ctx, Random& rng, Checker& check) {
  const cudaStream_t s = ctx.stream();
  for (const bool decay : {true, false}) {
    const size_t n = 1037;
    auto p = stored<float>(rng.normal(n, 0.02)), g = stored<float>(rng.normal(n, 0.1));
    auto m = stored<float>(rng.normal(n, 0.01)), v = rng.normal(n, 0.01);
    for (double& x : v) x = stored<float>(x * x);
    auto d_p = upload<float>(p, s), d_g = upload<float>(g, s), d_m = upload<float>(m, s), d_v = upload<float>(v, s);
    DeviceBuffer<bf16> d_copy(n);
    std::vector<float> pf(p.begin(), p.end()), gf(g.begin(), g.end()), mf(m.begin(), m.end()), vf(v.begin(), v.end());
    const dtb::OptimSettings o{3e-4, 0.1, 0.9, 0.95, 1e-8, 0.1, 1.0, 0};
    const double lr = 2e-4, scale = 0.5;
    const int64_t t = 3;
    const dtb::ParamSegment seg{0, n, decay};
    dtb::adamw_update(pf.data(), gf.data(), mf.data(), vf.data(), {&seg, 1}, o, lr, t, scale);
    AdamWStep step{float(lr),
                   float(o.beta1),
                   float(o.beta2),
                   float(o.eps),
                   decay ? float(lr * o.weight_decay) : 0.0f,
                   float(1.0 / (1.0 - std::pow(o.beta1, double(t)))),
                   float(1.0 / (1.0 - std::pow(o.beta2, double(t)))),
                   float(scale)};
    adamw_update(d_p.get(), d_g.get(), d_m.get(), d_v.get(), d_copy.get(), n, step, s);
    const std::string name = decay ? " (decay)" : " (no decay)";
    check.check("adamw params" + name, download(d_p, s), {pf.begin(), pf.end()}, kTolFp32);
    check.check("adamw m" + name, download(d_m, s), {mf.begin(), mf.end()}, kTolFp32);
    check.check("adamw v" + name, download(d_v, s), {vf.begin(), vf.end()}, kTolFp32);
    check.check("adamw bf16 copy" + name, download(d_copy, s), stored<bf16>(std::vector<double>(pf.begin(), pf.end())),
                kTolBf16);
  }
  const size_t n = 1000003;
  const auto g = stored<float>(rng.normal(n, 0.01));
  const std::vector<float> gf(g.begin(), g.end());
  auto d_g = upload<float>(g, s);
  DeviceBuffer<float> partials(kNormBlocks);
  DeviceBuffer<double> d_sum(1);
  sum_of_squares(d_sum.get(), d_g.get(), n, partials.get(), s);
  double sum = 0;
  cuda_check(cudaMemcpyAsync(&sum, d_sum.get(), sizeof sum, cudaMemcpyDeviceToHost, s));
  cuda_check(cudaStreamSynchronize(s));
  check.check("sum_of_squares n=1000003", {sum}, {dtb::sum_of_squares(gf.data(), n)}, kTolFp32);
}

}  // namespace

int main() {
  if (skip_without_gpu("test_cuda_kernels")) return kSkip;
  try {
    const uint64_t seed = test_seed();
    std::printf("test_cuda_kernels: seed %llu (DTB_TEST_SEED=%llu repeats this run)\n",
                static_cast<unsigned long long>(seed), static_cast<unsigned long long>(seed));
    Context ctx(0);
    std::printf("device: %s (sm_%d)\n", ctx.device_name().c_str(), ctx.compute_capability());
    Random rng(seed);
    Checker check;
    Suite<float>{ctx, rng, check}.run();
    Suite<bf16>{ctx, rng, check}.run();
    optimizer(ctx, rng, check);
    return check.finish("test_cuda_kernels");
  } catch (const std::exception& e) {
    std::printf("FAIL test_cuda_kernels: %s\n", e.what());
    return 1;
  }
}
