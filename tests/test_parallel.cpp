// The 3D-parallel trainer's pieces on one rank: the rank grid against hand-written groups,
// the pipeline schedules, TP slicing of the initial weights, and the refusal of impossible
// layouts by the binary (one line, exit 2, before any work).
#include <catch2/catch.hpp>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <fstream>
#include <string>

#include "dtbench_runner.hpp"
#include "model/gpt2.hpp"
#include "parallel/grid.hpp"
#include "profile.hpp"
#include "parallel/schedule.hpp"
#include "parallel/stage_compute.hpp"
#include "parallel/stage_model.hpp"
#include "parallel/step_scalars.hpp"
#include "usage_error.hpp"
#include "train_reference.hpp"

using namespace dtb::par;
namespace fs = std::filesystem;

TEST_CASE("grid [2,2,2]: Megatron's rank order and groups, by hand", "[parallel]") {
  const Layout l{2, 2, 2};
  for (int r = 0; r < 8; ++r) CHECK(grid_rank(l, grid_coord(l, r)) == r);
  CHECK(grid_coord(l, 5) == Coord{.dp = 0, .pp = 1, .tp = 1});
  CHECK(grid_coord(l, 6) == Coord{.dp = 1, .pp = 1, .tp = 0});
  CHECK(tp_group(l, grid_coord(l, 2)) == std::vector<int>{2, 3});
  CHECK(tp_group(l, grid_coord(l, 7)) == std::vector<int>{6, 7});
  CHECK(dp_group(l, grid_coord(l, 1)) == std::vector<int>{1, 3});
  CHECK(dp_group(l, grid_coord(l, 4)) == std::vector<int>{4, 6});
  CHECK(pp_group(l, grid_coord(l, 0)) == std::vector<int>{0, 4});
  CHECK(pp_group(l, grid_coord(l, 3)) == std::vector<int>{3, 7});
}

TEST_CASE("grid [dp=2, pp=4, tp=1] and [dp=1, pp=2, tp=4]: groups by hand", "[parallel]") {
  const Layout a{2, 4, 1};
  CHECK(pp_group(a, grid_coord(a, 1)) == std::vector<int>{1, 3, 5, 7});
  CHECK(dp_group(a, grid_coord(a, 6)) == std::vector<int>{6, 7});
  CHECK(tp_group(a, grid_coord(a, 6)) == std::vector<int>{6});
  const Layout b{1, 2, 4};
  CHECK(tp_group(b, grid_coord(b, 5)) == std::vector<int>{4, 5, 6, 7});
  CHECK(pp_group(b, grid_coord(b, 2)) == std::vector<int>{2, 6});
  // Every rank in exactly one group of each kind.
  for (const Layout& l : {a, b, Layout{2, 2, 2}, Layout{3, 1, 2}}) {
    std::vector<int> seen(size_t(l.world()), 0);
    for (int r = 0; r < l.world(); ++r)
      if (tp_color(l, grid_coord(l, r)) == r)
        for (int m : tp_group(l, grid_coord(l, r))) ++seen[size_t(m)];
    for (int s : seen) CHECK(s == 1);
  }
}

TEST_CASE("stages: balanced and given, placements checked", "[parallel]") {
  CHECK(stage_bounds(5, 2) == std::vector<int>{0, 3, 5});
  CHECK(stage_bounds(4, 4) == std::vector<int>{0, 1, 2, 3, 4});
  CHECK(stage_bounds(4, 2, {3, 1}) == std::vector<int>{0, 3, 4});
  CHECK_NOTHROW(check_placement({{3, 1, 2, 0}, {}}, 4, "p"));
  CHECK_THROWS_AS(check_placement({{0, 1, 1, 3}, {}}, 4, "p"), dtb::UsageError);
  CHECK_THROWS_AS(check_placement({{0, 1, 2}, {}}, 4, "p"), dtb::UsageError);
  CHECK(grid_rank_of({{3, 1, 2, 0}, {}}, 3) == 0);
}

TEST_CASE("a placement file giving a key twice is refused with the key and its lines", "[parallel][placement]") {
  const fs::path dir = dtb::test::scratch_dir("test_parallel_dup");
  const std::string path = (dir / "place.yaml").string();
  std::ofstream(path) << "ranks: [0, 1]\nsites: [a, a]\nranks: [1, 0]\n";
  CHECK_THROWS_WITH(load_placement(path, 2),
                    path + ":3: key 'ranks' is given twice (first at line 1); give each key once");
  std::ofstream(path) << "ranks: [1, 0]\nsites: [a, a]\n";
  CHECK(load_placement(path, 2).ranks == std::vector<int>{1, 0});
}

TEST_CASE("placement sites: a rank moved to a site the profile gives no link refuses", "[parallel][placement]") {
  // Sites a and b, no link between them: the profile's own placement fills a with both
  // ranks, so it loads; a placement file moving rank 1 to b must not get a free link.
  const fs::path dir = dtb::test::scratch_dir("test_parallel_sites");
  const std::string path = (dir / "ab.yaml").string();
  std::ofstream(path) << "sites:\n  - {name: a, ranks: 2, intra: {latency: 1ms, bandwidth: 1Gbps}}\n"
                         "  - {name: b, ranks: 2, intra: {latency: 1ms, bandwidth: 1Gbps}}\n";
  dtb::netem::Profile profile = dtb::netem::load_profile(path, 2);
  CHECK_NOTHROW(place_sites(profile, {{0, 1}, {"a", "a"}}, "place.yaml"));
  try {
    place_sites(profile, {{0, 1}, {"a", "b"}}, "place.yaml");
    FAIL("a rank on b got a link the profile does not give");
  } catch (const dtb::UsageError& e) {
    CHECK_THAT(e.what(), Catch::Matchers::Contains("place.yaml: sites 'a' and 'b' now both hold ranks"));
  }
  // Both ranks on b, whose intra link is given: fine. A site without intra holding two: refused.
  CHECK_NOTHROW(place_sites(profile, {{0, 1}, {"b", "b"}}, "place.yaml"));
  std::ofstream(path) << "sites:\n  - {name: a, ranks: 2, intra: {latency: 1ms, bandwidth: 1Gbps}}\n"
                         "  - {name: b, ranks: 1}\ndefault_link: {latency: 5ms, bandwidth: 1Gbps}\n";
  profile = dtb::netem::load_profile(path, 2);
  CHECK_THROWS_WITH(place_sites(profile, {{0, 1}, {"b", "b"}}, "place.yaml"),
                    Catch::Matchers::Contains("site 'b' now holds 2 ranks"));
}

// Which ranks sum the gradient norm (parallel/step_scalars.hpp), case by case.
TEST_CASE("the norm's group: each replica's TP x PP ranks where replicas hold the same reduced gradient", "[parallel][norm]") {
  auto group = [](const std::string& strategy, bool compressing, bool zero1, const std::string& algo, bool spike) {
    return norm_group({strategy, compressing, zero1, algo, spike});
  };
  for (const char* algo : {"ring", "hd", "tree", "hier", "ps", "mpi"}) CHECK(group("ddp", false, false, algo, false) == NormGroup::kReplica);
  CHECK(group("ddp", false, true, "ring", false) == NormGroup::kWorld);    // ZeRO-1: its DP block only
  CHECK(group("ddp", false, false, "gossip", false) == NormGroup::kWorld);  // an estimate: replicas differ
  CHECK(group("ddp", false, false, "ring", true) == NormGroup::kWorld);     // a spike on one rank
  CHECK(group("onebit_adam", false, false, "ring", false) == NormGroup::kReplica);  // its warm-up is DDP
  CHECK(group("quantized_adam", true, false, "ring", false) == NormGroup::kWorld);  // then local gradients
  for (const char* local : {"diloco", "streaming_diloco", "cocktail", "demo"})
    CHECK(group(local, false, false, "ring", false) == NormGroup::kWorker);
  CHECK(norm_floats(NormGroup::kReplica) == 1);  // the norm; the loss off the clock
  CHECK(norm_floats(NormGroup::kWorld) == 2);
  CHECK(norm_floats(NormGroup::kWorker) == 2);
  // [2,2,2]: world rank 6 = grid (dp 1, pp 1, tp 0) sums with its replica's ranks 2, 3, 6, 7
  // in world-rank order; played by world rank 1 (a placement file), it comes second.
  const Layout l{2, 2, 2};
  const NormMember m = norm_member(NormGroup::kReplica, grid_coord(l, 6), 6);
  CHECK(m.color == 1);
  CHECK(m.key == 6);
  CHECK(norm_member(NormGroup::kReplica, grid_coord(l, 6), 1).key == 1);
  CHECK(norm_member(NormGroup::kWorker, grid_coord(l, 3), 3).color == 1);
  CHECK(norm_member(NormGroup::kWorld, grid_coord(l, 6), 6).color == 0);
  CHECK(norm_member(NormGroup::kWorld, grid_coord(l, 6), 6).key == 6);
}

// tree_sum adds as the binomial tree does, ((x0 + x1) + (x2 + x3)) + x4, not in a row: in
// float, 1e8 + 1 rounds to 1e8, so the tree gives 3 where the row gives 4.
TEST_CASE("tree_sum: the binomial tree's order, by hand", "[parallel][norm]") {
  const std::vector<float> x = {1e8f, 1.0f, -1e8f, 1.0f, 3.0f};
  CHECK(tree_sum(x) == ((x[0] + x[1]) + (x[2] + x[3])) + x[4]);
  CHECK(tree_sum(x) == 3.0f);
  CHECK((((x[0] + x[1]) + x[2]) + x[3]) + x[4] == 4.0f);
  CHECK(tree_sum(std::vector<float>{2.5f}) == 2.5f);
}

TEST_CASE("schedules: GPipe and 1F1B (warm-up min(PP - stage - 1, M))", "[parallel]") {
  using P = Pass;
  const std::vector<Action> s0 = pipeline_schedule(ScheduleKind::k1F1B, 0, 4, 4);
  CHECK(s0 == std::vector<Action>{{P::kForward, 0}, {P::kForward, 1}, {P::kForward, 2}, {P::kForward, 3},
                                  {P::kBackward, 0}, {P::kBackward, 1}, {P::kBackward, 2}, {P::kBackward, 3}});
  const std::vector<Action> s2 = pipeline_schedule(ScheduleKind::k1F1B, 2, 4, 4);
  CHECK(s2 == std::vector<Action>{{P::kForward, 0}, {P::kForward, 1}, {P::kBackward, 0}, {P::kForward, 2},
                                  {P::kBackward, 1}, {P::kForward, 3}, {P::kBackward, 2}, {P::kBackward, 3}});
  const std::vector<Action> last = pipeline_schedule(ScheduleKind::k1F1B, 3, 4, 2);
  CHECK(last == std::vector<Action>{{P::kForward, 0}, {P::kBackward, 0}, {P::kForward, 1}, {P::kBackward, 1}});
  CHECK(live_microbatches(ScheduleKind::k1F1B, 1, 4, 8) == 3);
  CHECK(live_microbatches(ScheduleKind::kGPipe, 1, 4, 8) == 8);
}

TEST_CASE("TP shards and stages draw exactly the full model's initial weights", "[parallel]") {
  const dtb::GPTConfig c{.vocab_size = 64, .n_ctx = 8, .n_layer = 3, .n_head = 4, .n_embd = 16};
  dtb::GPT<float> full(c, 1, 8);
  full.init_weights(42);
  std::vector<int> covered(dtb::num_parameters(c), 0);
  for (int tp = 0; tp < 2; ++tp)
    for (const auto& [lb, le] : {std::pair{0, 2}, std::pair{2, 3}}) {
      const StageShard s{lb, le, lb == 0, le == 3, tp, 2};
      StageModel stage(c, s, 1, 8, 1);
      stage.init_weights(42);
      for (const ShardRun& r : stage.runs())
        for (size_t i = 0; i < r.len; ++i) {
          CHECK(stage.params()[r.local + i] == full.params()[r.global + i]);
          covered[r.global + i] += r.owned;
        }
    }
  for (int n : covered) CHECK(n == 1);  // every element owned exactly once
}

namespace {

struct NoTp final : TpReduce {  // one TP rank: the sums are the rank's own numbers
  void allreduce(float*, size_t) override {}
  void allgather(float*, size_t) override {}
};

// A compute's state in GPT's layout, through its runs.
std::vector<float> global_of(const StageCompute& c, const std::vector<float>& local) {
  std::vector<float> out(local.size());
  for (const ShardRun& r : c.runs()) std::copy_n(local.begin() + ptrdiff_t(r.local), r.len, out.begin() + ptrdiff_t(r.global));
  return out;
}

}  // namespace

// The trainer calls a stage compute as below on one rank (forward, backward, the norm over
// the whole buffer, AdamW, state for checkpoints); the CPU stage (StageModel at TP = 1,
// bitwise GPT) and a Backend behind BackendStage must agree on every number.
TEST_CASE("stage seam: a device Backend behind BackendStage steps as the CPU stage does", "[parallel]") {
  const dtb::Config config = dtb::load_config(
      dtb::train_schema(), {},
      {"model.n_layer=2", "model.n_embd=32", "model.n_head=4", "model.n_ctx=16", "model.vocab_size=64",
       "train.seq_len=16", "train.batch_size=4", "optim.lr=0.01", "optim.grad_clip=0.5"});
  const dtb::TrainSettings s = dtb::train_settings(config);
  dtb::set_num_threads(1);
  const auto cpu = make_stage_compute(s, {0, s.model.n_layer, true, true, 0, 1, false}, s.batch_size, 1);
  const auto dev = make_backend_stage(std::make_unique<dtb::test::GptBackend>(s), s);
  REQUIRE(cpu->num_params() == dev->num_params());
  const size_t n = cpu->num_params();
  std::vector<UpdatePiece> pieces;
  for (const dtb::ParamSegment& g : dev->segments()) pieces.push_back({g.offset, g.size, g.offset, g.decay});
  std::vector<UpdatePiece> cpu_pieces;
  for (const dtb::ParamSegment& g : cpu->segments()) cpu_pieces.push_back({g.offset, g.size, g.offset, g.decay});
  cpu->init_moments(n);
  dev->init_moments(n);
  std::vector<int32_t> in(size_t(s.batch_size) * s.seq_len), tg(in.size());
  NoTp tp;
  for (int step = 0; step < 3; ++step) {
    for (size_t i = 0; i < in.size(); ++i) in[i] = int32_t((i * 7 + step) % 64), tg[i] = int32_t((i * 5 + 3 * step) % 64);
    std::vector<size_t> ready_cpu, ready_dev;
    cpu->zero_grad();
    dev->zero_grad();
    const float loss_cpu = cpu->forward(0, in.data(), tg.data(), tp), loss_dev = dev->forward(0, in.data(), tg.data(), tp);
    cpu->backward(0, 1.0f, tp, [&](size_t lo) { ready_cpu.push_back(lo); });
    dev->backward(0, 1.0f, tp, [&](size_t lo) { ready_dev.push_back(lo); });
    INFO("step " << step);
    CHECK(loss_cpu == loss_dev);
    CHECK(ready_dev == std::vector<size_t>{0});  // every gradient final at once: the DP sync's one bucket
    const std::vector<Range> buckets = {{n / 2, n - n / 2}, {0, n / 2}};  // as the DP sync cuts them
    const double ss_cpu = cpu->sum_of_squares(buckets), ss_dev = dev->sum_of_squares(buckets);
    CHECK(ss_dev == Approx(ss_cpu).epsilon(1e-12));
    const double scale = dtb::clip_scale(std::sqrt(ss_dev), s.optim.grad_clip);
    CHECK(scale < 1);  // clipping exercised
    cpu->adamw(cpu_pieces, s.optim, 0.01, step + 1, scale);
    dev->adamw(pieces, s.optim, 0.01, step + 1, scale);
  }
  std::vector<float> cp, cm, cv, dp, dm, dv;
  cpu->get_state(&cp, &cm, &cv);
  dev->get_state(&dp, &dm, &dv);
  CHECK(global_of(*cpu, cp) == dp);
  CHECK(global_of(*cpu, cm) == dm);
  CHECK(global_of(*cpu, cv) == dv);
  CHECK(global_of(*dev, dp) == dp);  // a device's local layout is GPT's
  // Checkpoint round trip: the state set is the state read back.
  std::vector<float> zeros(n, 0.0f), p2, m2, v2;
  dev->set_state(cp, zeros, dv);
  dev->get_state(&p2, &m2, &v2);
  CHECK(p2 == cp);
  CHECK(m2 == zeros);
  CHECK(v2 == dv);
  // The device-model clock charges the FLOPs the CPU stage's kernels issued, call by call.
  CHECK(dev->flops() == cpu->flops());
  CHECK(dev->flops() > 0);
}

TEST_CASE("impossible layouts: one line, exit 2, before any work", "[parallel]") {
  const std::string base = "--set data.path=/nonexistent.h5 --set train.steps=1 ";
  const std::pair<std::string, std::string> cases[] = {
      {"--set parallel.dp=2", "ranks, but the run has 1"},
      {"--set parallel.tp=3", "parallel.tp"},
      {"--set parallel.pp=5 --set model.n_layer=4", "parallel.pp"},
      {"--set parallel.dp=2 --set parallel.microbatches=3 --set train.batch_size=8", "train.batch_size"},
      {"--set parallel.pp=2 --set parallel.stages=3:2 --set model.n_layer=4", "parallel.stages"},
      {"--set parallel.schedule=zigzag", "parallel.schedule"},
      {"--set parallel.dp=2 --set parallel.zero1=true --set net.algo=tree", "needs net.algo = ring"},
      {"--set parallel.tp=4 --set model.n_head=4 --set model.vocab_size=3 --set parallel.vocab_parallel=true",
       "every TP rank needs a vocabulary row"},
  };
  const fs::path dir = dtb::test::scratch_dir("test_parallel");
  for (const auto& [sets, expect] : cases) {
    const std::string args = "train " + base + sets;
    dtb::test::expect_usage_error(dtb::test::run_dtbench(args, dir), args, {expect});
  }
  fs::remove_all(dir);
}
