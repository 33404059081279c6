// privacy/ (issue 16): the RDP accountant against published epsilons (Opacus' and TF
// Privacy's tests and tutorial), per-sample gradients from the model's own kernels summing
// to the batch gradient, DP-SGD's noise, secure aggregation's exact masked sum and the
// independence of one rank's masked vector from its gradient, and the trainer end to end
// (dtbench train, one rank and under mpirun): DP-SGD with sigma = 0 and an infinite clip
// is plain training bitwise, DP-SGD gives the same run on any layout, secure aggregation
// gives plain DP's sums within its fixed point, bad keys get one line.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdio>
#include <numeric>
#include <random>

#include "dtbench_runner.hpp"
#include "h5file.hpp"
#include "model/stage.hpp"
#include "privacy/accountant.hpp"
#include "privacy/dp_sgd.hpp"
#include "privacy/secure_agg.hpp"
#include "sim/privacy_costs.hpp"

using namespace dtb;
using namespace dtb::privacy;
using Catch::Matchers::Contains;

namespace {

std::vector<double> range_orders(std::vector<double> head, int from, int to, std::vector<double> tail = {}) {
  for (int a = from; a < to; ++a) head.push_back(a);
  head.insert(head.end(), tail.begin(), tail.end());
  return head;
}

// TF Privacy's compute_dp_sgd_privacy orders.
std::vector<double> tf_orders() {
  return range_orders({1.25, 1.5, 1.75, 2.0, 2.25, 2.5, 3.0, 3.5, 4.0, 4.5}, 5, 64, {128, 256, 512});
}

}  // namespace

// opacus/tests/accountants_test.py, test_rdp_accountant: 7.32911117143 (assertAlmostEqual: 7 places).
TEST_CASE("accountant: Opacus' RDP test figure", "[privacy]") {
  const Epsilon e = dp_sgd_epsilon(0.04, 1.5, int(90 / 0.04), 1e-5);
  CHECK(e.epsilon == Approx(7.32911117143).epsilon(1e-8));
}

// opacus/accountants/analysis/rdp.py's docstring: two mechanisms composed, orders 2..32.
TEST_CASE("accountant: Opacus' composition example", "[privacy]") {
  const std::vector<double> orders = range_orders({}, 2, 33);
  std::vector<double> rdp;
  for (double a : orders) rdp.push_back(rdp_sampled_gaussian(1e-5, 1.0, a, 10) + rdp_sampled_gaussian(1e-4, 3.0, a, 4));
  const Epsilon e = epsilon_from_rdp(orders, rdp, 1e-5);
  CHECK(e.epsilon == Approx(0.336).margin(0.0005));
  CHECK(e.order == 23);
}

// tensorflow_privacy/privacy/analysis/compute_dp_sgd_privacy_test.py: (N, batch, sigma,
// epochs, delta) -> (epsilon, order); steps = ceil(epochs N / batch). Test2 (sigma 0.1)
// lands on a fractional order, the other series of the analysis.
TEST_CASE("accountant: TF Privacy's compute_dp_sgd_privacy figures", "[privacy]") {
  struct Case { double n, batch, sigma, epochs, delta, eps, order; };
  for (const Case& c : {Case{60000, 150, 1.3, 15, 1e-5, 0.7242234026109595, 19},
                        Case{100000, 100, 1.0, 30, 1e-7, 1.4154988495444842, 13},
                        Case{100000000, 1024, 0.1, 10, 1e-7, 5907982.3113984, 1.25}}) {
    const Epsilon e = dp_sgd_epsilon(c.batch / c.n, c.sigma, std::ceil(c.epochs * c.n / c.batch), c.delta, tf_orders());
    INFO("sigma " << c.sigma);
    CHECK(e.epsilon == Approx(c.eps).epsilon(1e-7));
    CHECK(e.order == c.order);
  }
}

// tutorials/README.md: MNIST, N = 60000, batch 256, sigma 1.1, 60 epochs, delta 1e-5 ->
// "eps = 3.01", from the accountant of its time: Mironov's conversion eps = rdp - log(delta)
// / (alpha - 1) over orders 1.1..10.9, 12..63. dtbench's (Balle et al.'s) is tighter.
TEST_CASE("accountant: TF Privacy's MNIST tutorial (epsilon 3.01)", "[privacy]") {
  const std::vector<double> orders = default_orders();
  const double q = 256.0 / 60000, steps = std::ceil(60 * 60000 / 256.0);
  double classic = INFINITY;
  for (double a : orders) classic = std::min(classic, rdp_sampled_gaussian(q, 1.1, a, steps) - std::log(1e-5) / (a - 1));
  CHECK(classic == Approx(3.01).margin(0.005));
  const Epsilon e = dp_sgd_epsilon(q, 1.1, steps, 1e-5);
  CHECK(e.epsilon < classic);
  CHECK(e.epsilon > 2.5);
  // No noise: no privacy; no sampling: nothing spent.
  CHECK(std::isinf(dp_sgd_epsilon(q, 0, steps, 1e-5).epsilon));
  CHECK(rdp_sampled_gaussian(0, 1.1, 2, steps) == 0);
  // q = 1 is the Gaussian mechanism: RDP alpha / (2 sigma^2) per step.
  CHECK(rdp_sampled_gaussian(1, 2, 3, 5) == Approx(5 * 3 / 8.0));
}

// The model's backward on a micro-batch of one sample is that sample's gradient: B of them,
// each scaled 1/B, sum to the gradient of the B-row batch (double: only rounding differs).
TEST_CASE("DP-SGD: per-sample gradients from the stage's kernels sum to the batch gradient", "[privacy]") {
  GPTConfig c;
  c.vocab_size = 64, c.n_ctx = 8, c.n_layer = 2, c.n_head = 2, c.n_embd = 16;
  const int B = 4, T = 8;
  std::vector<int32_t> in(size_t(B * T)), tg(in.size());
  for (size_t i = 0; i < in.size(); ++i) in[i] = int32_t((i * 7 + 3) % 64), tg[i] = int32_t((i * 11 + 5) % 64);
  TransformerStage<double> batch(c, whole_model(c), B, T, 1), one(c, whole_model(c), 1, T, 1);
  batch.init_weights(5);
  one.init_weights(5);
  batch.zero_grad();
  batch.forward(0, in.data(), tg.data(), no_tensor_parallelism());
  batch.backward(0, 1.0, no_tensor_parallelism());
  one.zero_grad();
  std::vector<double> norms;
  for (int b = 0; b < B; ++b) {
    one.forward(0, in.data() + b * T, tg.data() + b * T, no_tensor_parallelism());
    one.backward(0, 1.0 / B, no_tensor_parallelism());
  }
  double worst = 0, scale = 0;
  for (size_t i = 0; i < batch.num_params(); ++i) {
    worst = std::max(worst, std::abs(batch.grads()[i] - one.grads()[i]));
    scale = std::max(scale, std::abs(batch.grads()[i]));
  }
  CHECK(scale > 1e-3);
  CHECK(worst <= 1e-12 * scale);
}

TEST_CASE("DP-SGD: clip factor and the seeded noise", "[privacy]") {
  CHECK(clip_factor(0.5, 1.0) == 1.0);
  CHECK(clip_factor(4.0, 1.0) == Approx(0.25));
  CHECK(clip_factor(3.0, 1e9) == 1.0);  // an "infinite" clip never scales
  // Standard normal: mean 0, variance 1, kurtosis 3 over 200k deviates; the same per index.
  const int n = 200000;
  double s1 = 0, s2 = 0, s4 = 0;
  for (int i = 0; i < n; ++i) {
    const double z = gaussian_at(42, 7, uint64_t(i));
    s1 += z, s2 += z * z, s4 += z * z * z * z;
  }
  CHECK(std::abs(s1 / n) < 5 / std::sqrt(n));
  CHECK(s2 / n == Approx(1).margin(0.015));
  CHECK(s4 / n == Approx(3).margin(0.1));
  CHECK(gaussian_at(42, 7, 123) == gaussian_at(42, 7, 123));
  CHECK(gaussian_at(42, 7, 123) != gaussian_at(42, 8, 123));
  // Noise lands by global index: two shards of one tensor get the pieces of the whole one.
  std::vector<float> whole(10, 0.0f), a(6, 0.0f), b(4, 0.0f);
  add_gaussian_noise(whole, {{0, 0, 100, 10, true}}, 1, 2, 0.5);
  add_gaussian_noise(a, {{0, 0, 100, 6, true}}, 1, 2, 0.5);
  add_gaussian_noise(b, {{0, 0, 106, 4, true}}, 1, 2, 0.5);
  for (int i = 0; i < 10; ++i) CHECK(whole[size_t(i)] == (i < 6 ? a[size_t(i)] : b[size_t(i - 6)]));
}

namespace {

// P parties with keys from fixed seeds, every pair's key agreed.
std::vector<std::unique_ptr<SecureAggregator>> parties(int P, int bits) {
  std::vector<std::unique_ptr<SecureAggregator>> out;
  std::vector<PublicKey> keys;
  for (int r = 0; r < P; ++r) {
    std::array<uint8_t, 32> seed{};
    seed[0] = uint8_t(r + 1);
    out.push_back(std::make_unique<SecureAggregator>(r, P, bits, seed.data()));
    keys.push_back(out.back()->public_key());
  }
  for (auto& p : out) p->set_peer_keys(keys);
  return out;
}

// The wire summed as the allreduce sums it: limb by limb in float.
std::vector<float> wire_sum(const std::vector<std::vector<float>>& wires, size_t skip = SIZE_MAX) {
  std::vector<float> sum(wires[0].size(), 0.0f);
  for (size_t r = 0; r < wires.size(); ++r)
    if (r != skip)
      for (size_t i = 0; i < sum.size(); ++i) sum[i] += wires[r][i];
  return sum;
}

}  // namespace

TEST_CASE("secure aggregation: the masked sum is the fixed-point sum exactly", "[privacy]") {
  const int P = 5, bits = 24;
  const size_t n = 1000;
  auto ps = parties(P, bits);
  std::mt19937 rng(3);
  std::normal_distribution<float> g(0.0f, 0.01f);
  std::vector<std::vector<float>> grads(P, std::vector<float>(n)), wires(P);
  std::vector<uint32_t> plain(n, 0);  // the unmasked ring sum
  std::vector<double> exact(n, 0.0);
  for (int r = 0; r < P; ++r) {
    for (size_t i = 0; i < n; ++i) grads[size_t(r)][i] = g(rng);
    wires[size_t(r)].resize(SecureAggregator::wire_size(n));
    ps[size_t(r)]->mask(9, 2, grads[size_t(r)], wires[size_t(r)]);
    for (size_t i = 0; i < n; ++i) plain[i] += ps[size_t(r)]->encode(grads[size_t(r)][i]), exact[i] += grads[size_t(r)][i];
  }
  std::vector<float> out(n);
  REQUIRE(ps[0]->unmask(wire_sum(wires), out));
  for (size_t i = 0; i < n; ++i) {
    CHECK(out[i] == ps[0]->decode(plain[i]));  // bitwise: every mask cancelled
    // Each party rounds to 2^-(bits+1); then one float rounding of the result.
    CHECK(std::abs(double(out[i]) - exact[i]) <= P * std::ldexp(1.0, -bits - 1) + 1e-7 * std::abs(exact[i]));
  }
  // Every party gets the same sum; the masks of one (step, bucket) differ from the next's.
  std::vector<float> other(n), again(SecureAggregator::wire_size(n));
  CHECK(ps[3]->unmask(wire_sum(wires), other));
  CHECK(other == out);
  ps[0]->mask(10, 2, grads[0], again);
  CHECK(again != wires[0]);
  CHECK(ps[0]->saturated() == 0);
}

TEST_CASE("secure aggregation: a dropped rank is detected and the sum refused", "[privacy]") {
  const int P = 4;
  auto ps = parties(P, 20);
  const std::vector<float> x(50, 0.25f);
  std::vector<std::vector<float>> wires(P, std::vector<float>(SecureAggregator::wire_size(x.size())));
  for (int r = 0; r < P; ++r) ps[size_t(r)]->mask(1, 0, x, wires[size_t(r)]);
  std::vector<float> out(x.size(), -1.0f);
  CHECK_FALSE(ps[0]->unmask(wire_sum(wires, 2), out));
  CHECK(out == std::vector<float>(x.size(), -1.0f));  // untouched
  CHECK_THAT(dropped_rank_message(SecureAggregator::parties_in(wire_sum(wires, 2)), P),
             Contains("not 4") && Contains("sum refused"));
  CHECK(ps[0]->unmask(wire_sum(wires), out));
  CHECK(out[0] == 1.0f);
}

// What one rank sends: for a gradient of zeros and for a large ramp alike, the ring
// elements are uniform on Z_2^32 (chi-square over 64 bins of the top bits, p = 0.001
// critical value 103.4 at 63 degrees of freedom) and uncorrelated with the gradient.
TEST_CASE("secure aggregation: one rank's masked vector is independent of its gradient", "[privacy]") {
  const int P = 3;
  const size_t n = 1 << 16;
  auto ps = parties(P, 24);
  std::vector<float> ramp(n), zeros(n, 0.0f);
  for (size_t i = 0; i < n; ++i) ramp[i] = float(i) / n * 20.0f - 10.0f;
  for (const std::vector<float>* grad : {&zeros, &ramp}) {
    std::vector<float> wire(SecureAggregator::wire_size(n));
    ps[1]->mask(5, 0, *grad, wire);
    std::vector<double> bins(64, 0.0);
    double sx = 0, sy = 0, sxx = 0, syy = 0, sxy = 0;
    for (size_t i = 0; i < n; ++i) {
      const uint32_t u = uint32_t(wire[2 * i]) | (uint32_t(wire[2 * i + 1]) << 16);
      bins[u >> 26] += 1;
      const double x = (*grad)[i], y = double(u);
      sx += x, sy += y, sxx += x * x, syy += y * y, sxy += x * y;
    }
    double chi2 = 0;
    for (double b : bins) chi2 += (b - n / 64.0) * (b - n / 64.0) / (n / 64.0);
    CHECK(chi2 < 103.4);
    const double vx = sxx - sx * sx / n, vy = syy - sy * sy / n;
    if (vx > 0) CHECK(std::abs((sxy - sx * sy / n) / std::sqrt(vx * vy)) < 0.02);  // |r| << 4 / sqrt(n)
  }
}

// ---- dtbench train end to end ---------------------------------------------------------

namespace {

const std::filesystem::path& scratch() {
  static test::ScratchDir dir("privacy");
  return dir.path;
}
const std::string& fortunes() {
  static const std::string path = test::prepared_fortunes(scratch());
  return path;
}

struct Run {
  test::Outcome outcome;
  std::vector<double> losses, val, bytes_dp;
  double epsilon = NAN;
};

// dtbench train on NP ranks (mpirun when NP > 1) of a small model: 4 sequences of 16
// tokens per step from an epoch of 64, one sample per micro-batch.
Run train(const std::string& name, int np, const std::vector<std::string>& sets) {
  const std::string results = (scratch() / (name + ".h5")).string();
  std::string args = "train --overwrite";
  for (const std::string& s : std::vector<std::string>{
           "data.path=" + fortunes(), "train.results=" + results, "model.n_layer=2", "model.n_embd=32",
           "model.n_head=4", "model.n_ctx=16", "model.vocab_size=256", "train.seq_len=16", "train.batch_size=4",
           "train.steps=4", "train.val_every=4", "train.val_batches=2", "train.threads=1", "optim.lr=0.01",
           "data.sampler=epoch", "data.epoch_samples=64"})
    args += " --set " + s;
  for (const std::string& s : sets) args += " --set " + s;
  const std::string launcher =
      np == 1 ? "" : "OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 mpirun -np " + std::to_string(np) +
                         " --oversubscribe --mca mpi_yield_when_idle 1 ";
  Run r;
  r.outcome = test::run_shell(launcher + test::dtbench_binary() + " " + args, scratch());
  INFO(name << ": " << r.outcome.out << r.outcome.err);
  REQUIRE(r.outcome.exit_code == 0);
  h5::File f = h5::File::open_read(results);
  r.losses = f.read<double>("steps/loss");
  r.val = f.read<double>("val/loss");
  if (f.exists("ranks/bytes_dp"))
    for (int64_t b : f.read<int64_t>("ranks/bytes_dp")) r.bytes_dp.push_back(double(b));
  if (f.exists("privacy/orders")) {
    const std::vector<double> orders = f.read<double>("privacy/orders"), rdp = f.read<double>("privacy/rdp");
    r.epsilon = epsilon_from_rdp(orders, rdp, 1e-5).epsilon;
  }
  return r;
}

const std::vector<std::string> kNoNoise = {"privacy.dp_sgd=on", "privacy.noise_multiplier=0",
                                           "privacy.clip_norm=1000000000"};

}  // namespace

// Clip factors of exactly 1, no noise: pass 2 is the plain step with the same loss scale
// 1/B, so the run is bitwise the plain one (pass 1 changes no state).
TEST_CASE("DP-SGD with sigma 0 and an infinite clip is plain training, bitwise", "[privacy]") {
  const Run plain = train("plain1", 1, {"parallel.microbatches=4"});
  const Run dp = train("dpsgd1", 1, {"parallel.microbatches=4", kNoNoise[0], kNoNoise[1], kNoNoise[2]});
  CHECK(dp.losses == plain.losses);
  CHECK(dp.val == plain.val);
  // Under mpirun, DP and TP split the samples and the norms.
  const Run plain4 = train("plain4", 4, {"parallel.dp=2", "parallel.tp=2", "parallel.microbatches=2"});
  const Run dp4 = train("dpsgd4", 4, {"parallel.dp=2", "parallel.tp=2", "parallel.microbatches=2",
                                      kNoNoise[0], kNoNoise[1], kNoNoise[2]});
  CHECK(dp4.losses == plain4.losses);
  CHECK(dp4.val == plain4.val);
  CHECK_THAT(dp.outcome.out, Contains("privacy: DP-SGD sigma 0"));
}

// With clipping and noise on: the same run on one rank, on DP x TP and on DP x PP (the
// per-sample norm summed over the ranks that split the sample's parameters; the noise by
// parameter index, added once), within float rounding; and not the plain run.
TEST_CASE("DP-SGD clips and noises alike on every layout, epsilon reported", "[privacy]") {
  const std::vector<std::string> dp = {"privacy.dp_sgd=on", "privacy.noise_multiplier=0.5", "privacy.clip_norm=0.1",
                                       "model.tie_embeddings=false"};
  auto with = [&](std::vector<std::string> more) {
    more.insert(more.end(), dp.begin(), dp.end());
    return more;
  };
  const Run one = train("dp_one", 1, with({"parallel.microbatches=4"}));
  const Run tp = train("dp_tp", 4, with({"parallel.dp=2", "parallel.tp=2", "parallel.microbatches=2"}));
  const Run pp = train("dp_pp", 4, with({"parallel.dp=2", "parallel.pp=2", "parallel.microbatches=2"}));
  const Run plain = train("dp_plain", 1, {"parallel.microbatches=4", "model.tie_embeddings=false"});
  for (size_t i = 0; i < one.losses.size(); ++i) {
    CHECK(tp.losses[i] == Approx(one.losses[i]).epsilon(1e-4));
    CHECK(pp.losses[i] == Approx(one.losses[i]).epsilon(1e-4));
  }
  CHECK(std::abs(one.val[0] - plain.val[0]) > 1e-3);
  // q = 4/64, 4 steps, sigma 0.5: the accountant's figure, in the results and the log.
  const Epsilon want = dp_sgd_epsilon(4.0 / 64, 0.5, 4, 1e-5);
  CHECK(one.epsilon == Approx(want.epsilon).epsilon(1e-12));
  CHECK_THAT(one.outcome.out, Contains("q = 4/64, 4 steps: epsilon"));
}

// Secure aggregation on 4 DP ranks: the sums of plain DP within the fixed point's rounding,
// twice the DP bytes (two 16-bit limbs per value), the key exchange in the log.
TEST_CASE("secure aggregation trains like plain DP and costs its bytes", "[privacy]") {
  const std::vector<std::string> layout = {"parallel.dp=4", "parallel.microbatches=1", "parallel.bucket_mb=0"};
  std::vector<std::string> masked = layout;
  masked.push_back("privacy.secure_agg=on");
  const Run plain = train("sa_plain", 4, layout);
  const Run sa = train("sa_on", 4, masked);
  for (size_t i = 0; i < plain.losses.size(); ++i) CHECK(sa.losses[i] == Approx(plain.losses[i]).epsilon(1e-4));
  CHECK_THAT(sa.outcome.out, Contains("secure aggregation over 4 DP ranks") && Contains("key exchange 384 bytes"));
  // Step 2 on (step 1 also carries the keys): bytes per rank and step.
  REQUIRE(sa.bytes_dp.size() == plain.bytes_dp.size());
  CHECK(sa.bytes_dp[1] / plain.bytes_dp[1] == Approx(2.0).epsilon(0.001));
}

TEST_CASE("privacy keys: bad combinations get one line", "[privacy]") {
  auto refused = [](const std::vector<std::string>& sets, const std::vector<std::string>& pieces) {
    std::string args = "train --set data.path=" + fortunes();
    for (const std::string& s : sets) args += " --set " + s;
    test::expect_usage_error(test::run_dtbench(args, scratch()), args, pieces);
  };
  refused({"privacy.dp_sgd=on", "data.sampler=epoch"}, {"parallel.microbatches", "train.batch_size / parallel.dp = 8"});
  refused({"privacy.dp_sgd=on", "parallel.microbatches=8"}, {"data.sampler", "epoch"});
  refused({"privacy.secure_agg=on", "net.codec=fp16", "parallel.dp=2"}, {"net.codec", "must be none"});
  refused({"privacy.clip_norm=0"}, {"privacy.clip_norm"});
}

// dtbench sim --privacy: each modelled row is its rule applied to the simulated step, and
// every figure from the literature is marked so.
TEST_CASE("sim: privacy's step at paper scale, term by term", "[privacy]") {
  const Config c = load_config(sim::sim_schema(), {},
                               {"model.n_layer=24", "model.n_embd=2048", "model.n_head=16", "model.n_ctx=2048",
                                "model.vocab_size=50257", "train.seq_len=2048", "train.batch_size=64", "parallel.dp=8",
                                "parallel.microbatches=8", "device.profile=h100",
                                std::string("net.profile=") + DTB_SOURCE_DIR + "/configs/net/decentralized-1g.yaml"});
  const sim::SimSettings s = sim::sim_settings(c);
  const sim::SimResult base = sim::simulate(s);
  const std::vector<sim::PrivacyCost> rows = sim::privacy_costs(s, base);
  REQUIRE(rows.size() == 7);
  const sim::StepTimes& t = base.time;
  CHECK(rows[0].step_s == t.step);
  CHECK(rows[1].step_s == Approx(t.step + t.compute_fwd + t.compute_bwd + std::max(0.0, t.dp_total - t.dp_exposed)));
  const double mask = 7 * base.params * 4 / sim::kChaCha20BytesPerS;
  CHECK(rows[2].step_s == Approx(t.step + t.dp_total + mask));
  CHECK(rows[2].dp_bytes == Approx(2 * base.dp_bytes.total()));
  CHECK(rows[3].dp_bytes == Approx(100 * base.dp_bytes.total()));
  CHECK(rows[5].step_s == Approx(base.flops_per_token * base.tokens_per_step / (2 * 7e9 / 300 * 8)));
  for (size_t i = 0; i < rows.size(); ++i) CHECK(rows[i].literature == (i >= 3));
  CHECK(t.dp_total > 0);
}

// dtbench report's Privacy table: each run's techniques, its compute and bytes, its epsilon
// (the accountant's figure for the run) and n/a without DP-SGD.
TEST_CASE("report: the Privacy table shows epsilon and the costs", "[privacy]") {
  const std::filesystem::path dir = scratch() / "report";
  std::filesystem::create_directories(dir);
  train("rep_dp", 1, {"parallel.microbatches=4", "privacy.dp_sgd=on", "privacy.noise_multiplier=1.1"});
  train("rep_plain", 1, {"parallel.microbatches=4", "privacy.secure_agg=on"});
  for (const char* name : {"rep_dp", "rep_plain"})
    std::filesystem::copy_file(scratch() / (std::string(name) + ".h5"), dir / (std::string(name) + ".h5"));
  const test::Outcome o = test::run_dtbench("report " + dir.string(), scratch());
  INFO(o.out << o.err);
  REQUIRE(o.exit_code == 0);
  char eps[32];
  std::snprintf(eps, sizeof eps, "%.4f", dp_sgd_epsilon(4.0 / 64, 1.1, 4, 1e-5).epsilon);
  CHECK_THAT(o.out, Contains("Privacy:") && Contains("sigma 1.10, C 1.00") && Contains(eps));
  const std::string report = test::slurp(dir / "report.md");
  CHECK_THAT(report, Contains("## Privacy") && Contains("| rep_plain"));
}

TEST_CASE("bench masks: the keystream rate is printed beside the simulator's, from the same constant", "[privacy]") {
  const test::Outcome o = test::run_dtbench("bench masks", scratch());
  INFO(o.out << o.err);
  REQUIRE(o.exit_code == 0);
  double measured = 0, charged = 0, ratio = 0;
  REQUIRE(std::sscanf(o.out.c_str(), "ChaCha20 keystream (libsodium, 64 MiB, best of 5, thread CPU time): %lf GB/s per core; "
                                     "dtbench sim --privacy charges %lf GB/s (measured/charged %lf)",
                      &measured, &charged, &ratio) == 3);
  CHECK(measured > 0);
  CHECK(charged == Approx(dtb::sim::kChaCha20BytesPerS / 1e9).epsilon(1e-3));
  CHECK(ratio == Approx(measured / charged).epsilon(0.02));
  test::expect_usage_error(test::run_dtbench("bench nonsense", scratch()), "bench nonsense", {"train or masks"});
}
