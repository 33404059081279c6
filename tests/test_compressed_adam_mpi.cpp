// 1-bit Adam and QuantizedAdam (trainer/parallel/compressed_adam.hpp) under mpirun, 4
// ranks: the compressed server's messages against its serial steps; the warm-up is DDP
// bitwise; QuantizedAdam's 32 bits is frozen-variance Adam on the exactly averaged momentum
// (a hand-written reference); a resume after the warm-up is bitwise the uninterrupted run
// on DP, DP x PP and DP x TP; the bytes per step are the formula's; convergence within a
// stated margin of DP AdamW, and broken error feedback measurably worse (1 and 2 bits).
// Rank 0 checks; only CHECK, never REQUIRE (no rank may leave early).
#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>
#include <mpi.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <map>
#include <random>
#include <sstream>

#include "compressed_server.hpp"
#include "parallel/parallel_trainer.hpp"
#include "mpi_world.hpp"
#include "optim/adamw.hpp"
#include "train/checkpoint.hpp"
#include "train_reference.hpp"

using namespace dtb;
namespace fs = std::filesystem;

namespace {

coll::Communicator& world() { return test::mpi_world(); }
bool root() { return test::mpi_root(); }

fs::path scratch() {
  static const fs::path dir = test::mpi_scratch("cadam");
  return dir;
}

// Smaller than tiny: 8-rank layouts stay fast on 2 cores.
Config small(const std::vector<std::string>& sets) { return test::small_train_config(scratch(), 6, sets); }

using test::plus;
std::vector<std::string> layout(int dp, int pp, int tp) { return test::layout_sets(dp, pp, tp, pp); }

struct RunResult {
  std::vector<double> losses, val;
  std::vector<float> params;         // GPT layout, rank 0 only
  std::vector<RankStepRecord> ranks;  // rank 0 only
};

// The run on the first dp x pp x tp ranks (the others wait).
RunResult run(const std::vector<std::string>& sets, const std::string& resume = "") {
  const Config config = small(sets);
  const int n = train_settings(config).parallel.world();
  RunResult out;
  std::optional<coll::Communicator> sub = world().split(world().rank() < n ? 0 : -1, world().rank());
  if (sub) {
    std::ostringstream log;
    par::ParallelTrainer t(config, *sub, log);
    if (!resume.empty()) t.resume(resume);
    const TrainRunSummary& s = t.run("test");
    for (const StepRecord& r : s.steps) out.losses.push_back(r.loss);
    for (const ValRecord& v : s.val) out.val.push_back(v.loss);
    out.ranks = s.rank_steps;
    out.params = t.gather_params();
  }
  world().untimed_max(0);
  return out;
}

std::vector<std::string> onebit(int freeze) {
  return {"strategy.name=onebit_adam", "strategy.freeze_step=" + std::to_string(freeze)};
}
std::vector<std::string> quantized(int freeze, int bits) {
  return {"strategy.name=quantized_adam", "strategy.freeze_step=" + std::to_string(freeze),
          "strategy.bits=" + std::to_string(bits)};
}

std::vector<float> seeded(size_t n, uint32_t seed) {
  std::mt19937 gen(seed);
  std::normal_distribution<float> d(0.0f, 0.05f);
  std::vector<float> x(n);
  for (float& v : x) v = d(gen);
  return x;
}

// QuantizedAdam's lossless setting (32 bits) written out on the workers' own gradients
// (train_reference.hpp), independent of the trainer: steps before FREEZE are DP AdamW on
// the mean of the workers' gradients (optim/adamw.hpp, the single-rank loop's); after, the
// variance stays as it was and each worker's momentum b1 m + (1 - b1) c g_w (c: the clip by
// the root mean square of the workers' gradient norms, compressed_adam.hpp) is averaged
// exactly, then p -= lr (m c1(t) / (sqrt(v c2(F)) + eps) + wd p). Losses: the workers' mean.
test::Reference frozen_adam_reference(const Config& config, int workers, int freeze) {
  const TrainSettings s = train_settings(config);
  const OptimSettings& o = s.optim;
  test::WorkerGradients wg(s, workers);
  std::vector<float> params = wg.initial(), m(wg.size()), v(wg.size()), g(wg.size()), sum(wg.size());
  const std::vector<ParamSegment> segments = wg.segments();
  test::Reference ref;
  for (int step = 0; step < s.steps; ++step) {
    std::vector<std::vector<float>> grads(static_cast<size_t>(workers));
    double loss = 0, squares = 0;
    for (int w = 0; w < workers; ++w) {
      loss += wg.at(params, step, w, grads[size_t(w)]) / workers;
      squares += sum_of_squares(grads[size_t(w)].data(), wg.size()) / workers;
    }
    ref.losses.push_back(loss);
    const double lr = learning_rate(o, step, s.steps);
    if (step < freeze) {  // DP AdamW on the mean gradient
      for (size_t i = 0; i < g.size(); ++i) {
        g[i] = 0;
        for (int w = 0; w < workers; ++w) g[i] += grads[size_t(w)][i] / float(workers);
      }
      adamw_update(params.data(), g.data(), m.data(), v.data(), segments, o, lr, step + 1,
                   clip_scale(std::sqrt(sum_of_squares(g.data(), g.size())), o.grad_clip));
      continue;
    }
    const double clip = clip_scale(std::sqrt(squares), o.grad_clip);
    const double c1 = 1.0 / (1.0 - std::pow(o.beta1, step + 1)), c2 = 1.0 / (1.0 - std::pow(o.beta2, freeze));
    for (const ParamSegment& seg : segments)
      for (size_t i = seg.offset; i < seg.offset + seg.size; ++i) {
        double mean = 0;  // the workers' momenta, averaged exactly (in double)
        for (int w = 0; w < workers; ++w) mean += o.beta1 * m[i] + (1 - o.beta1) * clip * grads[size_t(w)][i];
        m[i] = float(mean / workers);
        const double decay = seg.decay ? o.weight_decay : 0.0;
        params[i] = float(params[i] - lr * (m[i] * c1 / (std::sqrt(v[i] * c2) + o.eps) + decay * params[i]));
      }
  }
  ref.params = params;
  return ref;
}

}  // namespace

// QuantizedAdam with strategy.bits = 32 (fp32 through the same server: every residual is
// exactly zero) against frozen-variance Adam written out above: 3 warm-up steps, then 5
// with the averaged momentum. Not bitwise: the reference averages the gradients and
// momenta in its own order (and in double), the trainer's ring and server in theirs; the
// bounds are the layout test's (test_parallel_mpi.cpp: losses 1e-5, parameters 1e-4 of each
// tensor's largest value). The check can fail: 8 bits, and Adam whose variance keeps
// moving, lie well outside them.
TEST_CASE("QuantizedAdam with 32 bits is frozen-variance Adam on the exactly averaged momentum",
          "[mpi][cadam][lossless]") {
  const std::vector<std::string> l = plus(layout(4, 1, 1), {"train.steps=8"});
  const RunResult q32 = run(plus(l, quantized(3, 32)));
  const RunResult q8 = run(plus(l, quantized(3, 8)));
  if (!root()) return;
  const TrainSettings s = train_settings(small(l));
  const test::Reference ref = frozen_adam_reference(small(l), 4, 3);
  const test::Reference moving = frozen_adam_reference(small(l), 4, s.steps);  // DP AdamW throughout
  test::check_lossless(q32.losses, q32.params, ref, s, {{"8 bits", &q8.params}, {"DP AdamW", &moving.params}});
}

// Every rank computes all p workers' steps in-process (their inputs are seeded by rank)
// and compares its own result and error buffers with what the messages gave.
TEST_CASE("compressed server: the collective equals its steps run serially", "[mpi][cadam]") {
  const int p = world().size(), r = world().rank();
  const std::vector<coll::Range> units = {{0, 50}, {50, 3}, {53, 150}};
  for (const auto& q : {coll::make_onebit_codec(), coll::make_kbit_codec(4)}) {
    coll::ServerErrors mine;
    std::vector<coll::ServerErrors> all(static_cast<size_t>(p));
    for (coll::ServerErrors& e : all) e.worker.assign(203, 0.0f), e.server.assign(203, 0.0f);
    for (int call = 0; call < 2; ++call) {
      std::vector<float> x = seeded(203, uint32_t(10 * call + r));
      coll::compressed_server_allreduce(world(), x, units, *q, mine);
      std::vector<std::vector<std::byte>> pulls(static_cast<size_t>(p));
      for (int j = 0; j < p; ++j) {
        std::vector<std::vector<std::byte>> pushes(static_cast<size_t>(p));
        std::vector<std::span<const std::byte>> views;
        for (int w = 0; w < p; ++w) {
          pushes[size_t(w)].resize(coll::chunk_message_bytes(*q, units, p, j));
          coll::worker_encode(*q, units, p, j, seeded(203, uint32_t(10 * call + w)), all[size_t(w)].worker,
                              pushes[size_t(w)]);
          views.push_back(pushes[size_t(w)]);
        }
        pulls[size_t(j)].resize(coll::chunk_message_bytes(*q, units, p, j));
        coll::server_reduce(*q, units, p, j, views, all[size_t(j)].server, pulls[size_t(j)]);
      }
      std::vector<float> expected(203);
      for (int j = 0; j < p; ++j) coll::decode_chunk(*q, units, p, j, pulls[size_t(j)], expected);
      INFO(q->name() << " call " << call << " rank " << r);
      CHECK(x == expected);
      CHECK(mine.worker == all[size_t(r)].worker);
      CHECK(mine.server == all[size_t(r)].server);
    }
  }
}

// Steps up to freeze_step are DDP's code path: the same losses and parameters, bitwise; a
// warm-up covering the run is the DDP run. After it the momentum is compressed: the loss
// after the first compressed update differs.
TEST_CASE("1-bit Adam and QuantizedAdam: the warm-up is DP AdamW bitwise", "[mpi][cadam]") {
  const std::vector<std::string> l = layout(2, 2, 1);
  const RunResult ddp = run(l);
  for (const auto& strategy : {onebit(6), quantized(6, 4)}) {
    const RunResult whole = run(plus(l, strategy));
    if (!root()) continue;
    CHECK(whole.losses == ddp.losses);
    CHECK(whole.params == ddp.params);
  }
  for (const auto& strategy : {onebit(3), quantized(3, 8)}) {
    const RunResult part = run(plus(l, strategy));
    if (!root()) continue;
    CHECK(std::vector<double>(part.losses.begin(), part.losses.begin() + 4) ==
          std::vector<double>(ddp.losses.begin(), ddp.losses.begin() + 4));  // loss 4 is after update 3
    CHECK(part.losses[4] != ddp.losses[4]);
  }
}

// The checkpoint after step 4 (2 compressed steps in: momentum, frozen variance and both
// error buffers non-zero) resumes bitwise, inside each worker DP only, PP or TP.
TEST_CASE("1-bit Adam and QuantizedAdam: resume after the warm-up is bitwise", "[mpi][cadam][checkpoint]") {
  const std::string ck = (scratch() / "cadam.h5").string();
  for (const auto& l : {layout(4, 1, 1), layout(2, 2, 1), layout(2, 1, 2)})
    for (const auto& strategy : {onebit(2), quantized(2, 4)}) {
      const std::vector<std::string> sets = plus(l, strategy);
      const RunResult whole = run(plus(sets, {"train.checkpoint=" + ck, "train.checkpoint_every=4"}));
      const RunResult resumed = run(sets, periodic_checkpoint_path(ck, 4));
      if (!root()) continue;
      INFO(sets[0] << " " << sets[1] << " " << sets[2] << " " << sets[4]);
      CHECK(resumed.params == whole.params);
      CHECK(resumed.losses == std::vector<double>(whole.losses.begin() + 4, whole.losses.end()));
      // The errors are in the checkpoint, per worker, and not zero.
      const CheckpointState state = load_checkpoint(periodic_checkpoint_path(ck, 4));
      const std::string name = strategy[0].substr(strategy[0].find('=') + 1);
      const std::vector<float>* e = state.strategy_array(name + "/worker1/worker_error");
      CHECK((e && std::any_of(e->begin(), e->end(), [](float v) { return v != 0; })));
    }
}

// Quality, with honest loose bounds: the small model on 4 workers, 80 steps, 20 of them
// warm-up. Measured (default seed; seeds 1-3 alike): DP AdamW 3.455, 1-bit Adam 3.469,
// QuantizedAdam 4 bits 3.478 (over seeds 0-3 each within 0.025 of DP AdamW); 1-bit Adam
// without error feedback 3.843 (0.27 to 0.48 worse than with it). Bounds: within 0.08 of DP
// AdamW, and the broken feedback at least 0.15 worse than the working one.
// QuantizedAdam's error feedback shows at 2 bits (measured 2026-12-06, train.seed 1337 / 1
// / 2 / 3: with it 3.466 / 3.525 / 3.417 / 3.474, without 3.533 / 3.541 / 3.489 / 3.591:
// 0.067, 0.016, 0.072, 0.117 worse; over 150 steps 0.171, 0.081, 0.078, 0.092), not at 3
// or 4 bits (without it 0.01 better to 0.03 worse, either sign): held at 2 bits, at least
// 0.01 worse (below the smallest margin measured).
TEST_CASE("1-bit Adam and QuantizedAdam: validation loss near DP AdamW; without error feedback worse",
          "[mpi][cadam][quality]") {
  const std::vector<std::string> l =
      plus(layout(4, 1, 1), {"train.steps=80", "train.val_every=80", "train.val_batches=8"});
  const RunResult ddp = run(l);
  const RunResult one = run(plus(l, onebit(20)));
  const RunResult q4 = run(plus(l, quantized(20, 4)));
  const RunResult broken = run(plus(plus(l, onebit(20)), {"net.error_feedback=off"}));
  const RunResult q2 = run(plus(l, quantized(20, 2)));
  const RunResult q2_broken = run(plus(plus(l, quantized(20, 2)), {"net.error_feedback=off"}));
  if (!root()) return;
  INFO("val: DP AdamW " << ddp.val[0] << ", 1-bit " << one.val[0] << ", 4-bit " << q4.val[0] << ", 1-bit without EF "
                        << broken.val[0] << ", 2-bit " << q2.val[0] << ", 2-bit without EF " << q2_broken.val[0]);
  CHECK(std::abs(one.val[0] - ddp.val[0]) <= 0.08);
  CHECK(std::abs(q4.val[0] - ddp.val[0]) <= 0.08);
  CHECK(std::abs(q2.val[0] - ddp.val[0]) <= 0.08);
  CHECK(broken.val[0] >= one.val[0] + 0.15);
  CHECK(q2_broken.val[0] >= q2.val[0] + 0.01);
}

// Bytes on the DP channel: the warm-up's are DDP's; after it, 2 (p - 1) W per step over the
// p ranks, W = the quantizer's bytes over every tensor piece's p chunks (compressed_server.hpp).
TEST_CASE("1-bit Adam and QuantizedAdam: DP bytes per step are DDP's, then 2 (p - 1) W", "[mpi][cadam][bytes]") {
  const int p = 4;
  const GPTConfig model = train_settings(small({})).model;
  const std::vector<coll::Range> units =
      par::tensor_units(par::StageModel::shard_runs(model, StageShard{0, model.n_layer, true, true, 0, 1, false}));
  const RunResult ddp = run(layout(p, 1, 1));
  for (const bool one : {true, false}) {
    const RunResult c = run(plus(layout(p, 1, 1), one ? onebit(2) : quantized(2, 4)));
    if (!root()) continue;
    const auto q = one ? coll::make_onebit_codec() : coll::make_kbit_codec(4);
    const double w = double(coll::compressed_server_wire_bytes(*q, units, p));
    std::map<int64_t, uint64_t> bytes, ddp_bytes;
    for (const RankStepRecord& x : c.ranks) bytes[x.step] += x.bytes_dp;
    for (const RankStepRecord& x : ddp.ranks) ddp_bytes[x.step] += x.bytes_dp;
    for (const auto& [step, b] : bytes) {
      INFO(q->name() << " step " << step << ": " << b << " bytes, DDP " << ddp_bytes[step] << ", 2 (p-1) W " << 2 * (p - 1) * w);
      CHECK(double(b) == (step < 2 ? double(ddp_bytes[step]) : 2 * (p - 1) * w));
    }
    // 1 bit: about 32 x less than fp32 (the scales: one per tensor piece and chunk); 4 bits about 8 x.
    const double ratio = double(ddp_bytes[3]) / double(bytes[3]);
    CHECK(ratio > (one ? 15.0 : 6.0));
  }
}

// Bad input: one clear line naming the key and what is allowed.
TEST_CASE("1-bit Adam and QuantizedAdam: what they cannot be combined with is refused", "[cadam][config]") {
  auto refused = [](const std::vector<std::string>& sets, const std::string& what) {
    INFO(sets.back());
    CHECK_THROWS_WITH(train_settings(small(sets)), Catch::Matchers::Contains(what));
  };
  refused(plus(onebit(2), {"parallel.dp=2", "parallel.zero1=true"}), "parallel.zero1 shards the moments");
  refused(plus(onebit(2), {"net.codec=int8"}), "net.codec must be none");
  refused({"strategy.freeze_step=5"}, "needs strategy.name = onebit_adam or quantized_adam");
  refused(plus(onebit(2), {"strategy.bits=4"}), "needs strategy.name = quantized_adam");
  refused(quantized(2, 1), "strategy.bits");
  refused(quantized(2, 16), "quantized_adam takes 2..8 bits, or 32");
  CHECK(train_settings(small(quantized(3, 2))).strategy.bits == 2);
  CHECK(train_settings(small(quantized(3, 32))).strategy.bits == 32);
}

int main(int argc, char** argv) {
  coll::MpiSession mpi(&argc, &argv, /*thread_multiple=*/false);
  const int failed = Catch::Session().run(argc, argv);
  return world().untimed_sum(failed) ? 1 : 0;
}
