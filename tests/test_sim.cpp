// The step-time simulator (trainer/sim/, issue 6): closed forms it must reproduce exactly
// (compute = FLOPs / (peak x efficiency), pipeline bubbles, DP time = the collectives' own
// cost formula on the profile's alpha and beta), the article's figures, byte accounting,
// speed, the results file, and bad input (exit 2, one line).
// Agreement with the 3D trainer's virtual clock within 5%: tests/test_sim_agreement.cpp.
#include <catch2/catch.hpp>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>

#include "algorithms.hpp"
#include "dtbench_runner.hpp"
#include "h5file.hpp"
#include "model/stage.hpp"
#include "network.hpp"
#include "parallel/cocktail.hpp"
#include "parallel/demo.hpp"
#include "sim/article.hpp"
#include "sim/format.hpp"
#include "sim/model_costs.hpp"
#include "sim/pipeline.hpp"
#include "sim/report.hpp"
#include "sim/simulator.hpp"
#include "sim/sweep.hpp"

namespace fs = std::filesystem;
using Catch::Matchers::Contains;
using namespace dtb;
using namespace dtb::sim;

namespace {

const std::string kSource = DTB_SOURCE_DIR;

fs::path scratch() {
  static const fs::path dir = dtb::test::scratch_dir("test_sim");
  return dir;
}

std::string write_file(const std::string& name, const std::string& text) {
  const fs::path p = scratch() / name;
  std::ofstream(p) << text;
  return p.string();
}

// Two sites of 4 ranks: different links inside each, a slow one between.
std::string two_sites() {
  static const std::string path = write_file("two-sites.yaml",
                                             "name: two-sites\n"
                                             "sites:\n"
                                             "  - {name: A, ranks: 4, intra: {latency: 1ms, bandwidth: 10Gbps}}\n"
                                             "  - {name: B, ranks: 4, intra: {latency: 2ms, bandwidth: 5Gbps}}\n"
                                             "links:\n"
                                             "  - {between: [A, B], latency: 20ms, bandwidth: 1Gbps}\n");
  return path;
}

Config config(const std::vector<std::string>& sets, const std::string& preset = "") {
  Config c(sim_schema());
  if (!preset.empty()) c.merge_file(kSource + "/configs/sim/" + preset + ".yaml");
  for (const std::string& s : sets) c.set(s);
  return c;
}

SimResult run(const std::vector<std::string>& sets, const std::string& preset = "") {
  return simulate(sim_settings(config(sets, preset)));
}

using dtb::test::plus;

using dtb::test::Outcome;

Outcome dtbench(const std::string& args) { return dtb::test::run_dtbench(args, scratch()); }

void expect_usage_error(const std::string& args, const std::vector<std::string>& pieces) {
  dtb::test::expect_usage_error(dtbench(args), args, pieces);
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace

// The FLOPs per token the trainer's kernels issue on one rank, by hand (the reference for
// model/flops.hpp's stage_flops): every matmul weight 6 times (12C^2 per layer, the LM
// head's CV), attention 6TC per layer.
double issued_flops_per_token(const GPTConfig& m, int T) {
  const double C = m.n_embd;
  return 6 * (12 * C * C * m.n_layer + C * m.vocab_size) + 6.0 * m.n_layer * T * C;
}

TEST_CASE("compute time is the trainer's FLOPs / (peak x efficiency), exactly", "[sim]") {
  // One rank, no network: the step is compute + optimizer.
  for (const char* device : {"cpu-this-machine", "a100", "h100"}) {
    const std::string precision = std::string(device) == "cpu-this-machine" ? "fp32" : "bf16";
    const Config c = config({"device.profile=" + std::string(device), "precision.compute=" + precision,
                             "model.n_layer=4", "train.batch_size=16", "parallel.microbatches=4"});
    const SimResult r = simulate(sim_settings(c));
    const Device d = load_device(device);
    const double flops = issued_flops_per_token(sim_settings(c).model, 64) * r.tokens_per_step;
    const double rate = d.peak(parse_precision(precision)) * d.efficiency;
    INFO(device);
    CHECK(r.time.compute_fwd + r.time.compute_bwd == Approx(flops / rate).epsilon(1e-12));
    CHECK(r.time.compute_bwd == Approx(2 * r.time.compute_fwd).epsilon(1e-12));
    CHECK(r.time.step == Approx(flops / rate + r.time.optimizer).epsilon(1e-12));
  }
  // device.efficiency and device.peak_gflops override the file's; TP divides the work but
  // the LM head, which every TP rank runs whole.
  const GPTConfig m = sim_settings(config({})).model;
  const SimResult half = run({"device.profile=a100", "precision.compute=bf16", "device.efficiency=0.25"});
  CHECK(half.time.compute_fwd + half.time.compute_bwd ==
        Approx(issued_flops_per_token(m, 64) * half.tokens_per_step / (312e12 * 0.25)).epsilon(1e-12));
  const SimResult peak = run({"device.profile=a100", "device.peak_gflops=1000", "device.efficiency=0.5"});
  CHECK(peak.time.compute_fwd + peak.time.compute_bwd ==
        Approx(issued_flops_per_token(m, 64) * peak.tokens_per_step / 500e9).epsilon(1e-12));
  const SimResult tp = run({"device.profile=a100", "precision.compute=bf16", "device.efficiency=0.25", "parallel.tp=4"});
  const double head_fwd = 2.0 * m.n_embd * m.vocab_size * half.tokens_per_step / (312e12 * 0.25);
  CHECK(tp.time.compute_fwd == Approx((half.time.compute_fwd - head_fwd) / 4 + head_fwd).epsilon(1e-12));
}

TEST_CASE("the parts of the step add up to the step", "[sim]") {
  for (const char* net : {"dtfm-1-dc-ondemand", "dtfm-3-two-dcs", "dtfm-5-cities"})
    for (const char* schedule : {"gpipe", "1f1b"}) {
      const SimResult r = run({"net.profile=configs/net/" + std::string(net) + ".yaml", "parallel.schedule=" + std::string(schedule),
                               "parallel.tp=2", "parallel.dp=4", "parallel.micro_batch=2"},
                              "gpt3-xl");
      const StepTimes& t = r.time;
      INFO(net << " " << schedule);
      CHECK(r.world == 64);
      CHECK(t.compute_fwd + t.compute_bwd + t.tp + t.bubble + t.pp_exposed + t.dp_exposed + t.other + t.optimizer ==
            Approx(t.step).epsilon(1e-12));
      CHECK(t.bubble >= 0);
      CHECK(t.pp_exposed >= 0);
      CHECK(t.dp_exposed >= 0);
      CHECK(t.ideal <= t.step);
    }
}

TEST_CASE("the stages' FLOPs are the trainer's, adding up to the closed form, and their parameters to N", "[sim]") {
  for (const std::string tie : {"true", "false"})
    for (int pp : {1, 3, 7})
      for (int tp : {1, 4}) {
        const SimSettings s = sim_settings(config({"parallel.pp=" + std::to_string(pp), "parallel.tp=" + std::to_string(tp),
                                                   "parallel.dp=" + std::to_string(8 / tp), "model.tie_embeddings=" + tie,
                                                   "parallel.vocab_parallel=" + std::string(tp > 1 ? "true" : "false")},
                                                  "gpt3-xl"));
        const ModelCosts m = model_costs(s);
        double flops = 0, params = 0;
        const GPTConfig& g = s.model;
        INFO("tie_embeddings " << tie << ", pp " << pp << ", tp " << tp);
        const std::vector<int> bounds = par::stage_bounds(g.n_layer, pp);
        for (int st = 0; st < pp; ++st) {
          const Stage& stage = m.stages[size_t(st)];
          // Each stage's FLOPs and buffer are the trainer's own counts (model/flops.hpp,
          // model/stage.hpp) for its last TP rank, the one with the most vocabulary rows.
          const StageShard shard{bounds[size_t(st)], bounds[size_t(st) + 1], st == 0, st == pp - 1, tp - 1, tp, tp > 1};
          const StageFlops f = stage_flops(g, shard, s.seq_len);
          CHECK(stage.flops.forward() == f.forward());
          CHECK(stage.flops.backward() == f.backward());
          CHECK(stage.flops.layer.fwd_attn == f.layer.fwd_attn);
          CHECK(stage.flops.layer.bwd_mlp == f.layer.bwd_mlp);
          CHECK(stage.buffer.total() == double(rank_parameters(g, shard)));
          flops += stage.flops.forward() + stage.flops.backward(), params += stage.params;
        }
        // Summed over the stages, TP x what one rank issues, with the LM head whole on every
        // TP rank unless the vocabulary is split (V = 50257 = 4 x 12564 + 1: ceil(V / 4) rows).
        const double C = g.n_embd, head_rows = tp > 1 ? std::ceil(g.vocab_size / double(tp)) * tp : g.vocab_size;
        CHECK(flops * tp == Approx(issued_flops_per_token(g, s.seq_len) + 6 * C * (head_rows - g.vocab_size)).epsilon(1e-12));
        CHECK(m.params == double(num_parameters(g)));
        // Tied with PP > 1, the last stage holds its own copy of wte; untied, its lm_head is in N.
        const double copy = tie == "true" && pp > 1 ? double(g.vocab_size) * g.n_embd : 0;
        CHECK(m.stages.front().tied_params == copy);
        CHECK(params == Approx(m.params + copy).epsilon(1e-12));
      }
  // model.params rescales the parameter count; the shape keeps the attention term.
  const SimSettings s = sim_settings(config({"model.params=175e9"}, "gpt3-175b"));
  CHECK(model_costs(s).params == 175e9);
}

TEST_CASE("pipeline bubbles: (PP - 1)(f + b) for GPipe and 1F1B", "[sim]") {
  for (par::ScheduleKind schedule : {par::ScheduleKind::kGPipe, par::ScheduleKind::k1F1B})
    for (int pp : {1, 2, 4, 8})
      for (int m : {1, 3, 8, 32}) {
        PipelineInput in;
        in.stages.assign(size_t(pp), StageWork::plain({1.0, 2.0}));
        in.forward.assign(size_t(pp - 1), Hop{});
        in.backward = in.forward;
        in.microbatches = m;
        in.schedule = schedule;
        const PipelineTimes t = run_pipeline(in);
        INFO("pp " << pp << " m " << m << (schedule == par::ScheduleKind::kGPipe ? " gpipe" : " 1f1b"));
        CHECK(t.end == Approx((m + pp - 1) * 3.0).epsilon(1e-12));
        // bubble / step = (PP - 1) / (M + PP - 1)
        CHECK((t.end - m * 3.0) / t.end == Approx(double(pp - 1) / (m + pp - 1)).epsilon(1e-12));
      }
}

TEST_CASE("pipeline messages: latency on the fill, serialization in the steady state", "[sim]") {
  // Two stages, messages slower than compute: GPipe's forward phase is link-bound.
  PipelineInput in;
  in.stages.assign(2, StageWork::plain({1.0, 2.0}));
  in.forward.assign(1, Hop{0.5, 4.0});
  in.backward.assign(1, Hop{0.5, 4.0});
  in.microbatches = 3;
  in.schedule = par::ScheduleKind::kGPipe;
  // Stage 0's forwards end at 1, 2, 3; the link serializes them one after another, so they
  // arrive at 5.5, 9.5, 13.5 and stage 1's forwards end at 14.5. Its backwards run back to
  // back, ending 16.5, 18.5, 20.5; the gradients arrive at 21, 25, 29, and stage 0's last
  // backward ends at 31.
  CHECK(run_pipeline(in).end == Approx(31.0));
}

TEST_CASE("pipeline channels: a gradient send does not wait behind the DP bucket", "[sim][channels]") {
  // Two stages, one micro-batch, GPipe; the last stage launches a 10 s bucket when its
  // backward ends at 8.5 (forward 1..; activation 1 + 4 + 0.5 = 5.5; forward to 6.5,
  // backward to 8.5). Its gradient leaves at once on the TP/PP channel: it arrives at
  // 8.5 + 4 + 0.5 = 13 and stage 0's backward ends at 15. The bucket ends at 18.5. On one
  // channel the send would have left at 18.5 and the pipeline ended at 25.
  PipelineInput in;
  in.stages = {StageWork::plain({1.0, 2.0}), StageWork{{{1.0}}, {{2.0, 0.0, 0.0}}, 0, {{0.0, 10.0, -std::numeric_limits<double>::infinity(), {}}}}};
  in.forward.assign(1, Hop{0.5, 4.0});
  in.backward.assign(1, Hop{0.5, 4.0});
  in.schedule = par::ScheduleKind::kGPipe;
  const PipelineTimes t = run_pipeline(in);
  CHECK(t.end == Approx(15.0).epsilon(1e-12));
  CHECK(t.done == std::vector<double>{15.0, 18.5});
  CHECK(t.dp_busy == std::vector<double>{0.0, 10.0});
}

TEST_CASE("DP time equals the collectives' own cost model on the group's ranks", "[sim]") {
  const netem::NetworkModel net(netem::load_profile(two_sites(), 8), 8);
  const double intra_a = net.alpha(0, 1), intra_b = net.alpha(4, 5), inter_a = net.alpha(0, 4);
  const double worst_intra_beta = std::max(net.beta(0, 1), net.beta(4, 5)), inter_b = net.beta(0, 4);
  const double n = double(num_parameters(GPTConfig{})) * 4;  // the default model's fp32 gradients
  const std::vector<int> ranks = {0, 1, 2, 3, 4, 5, 6, 7};
  const double expected[] = {
      coll::ring_allreduce_model(net, ranks, n),
      coll::halving_doubling_allreduce_model(net, ranks, n),
      coll::tree_allreduce_model(net, ranks, n),
      coll::hierarchical_allreduce_model(net, ranks, n),
      coll::param_server_allreduce_model(net, ranks, n, 8),
      coll::gossip_allreduce_model(net, ranks, n, 10),
  };
  // Two equal sites, alike links inside each: the hierarchical closed form holds; the flat
  // ring costs less than the worst link on every hop (two of its eight hops cross).
  CHECK(expected[3] == Approx(coll::hierarchical_allreduce_cost(4, 2, n, std::max(intra_a, intra_b), worst_intra_beta,
                                                                 inter_a, inter_b)));
  CHECK(expected[0] < 0.9 * coll::ring_allreduce_cost(8, n, inter_a, inter_b));
  int i = 0;
  for (const char* algo : {"ring", "hd", "tree", "hier", "ps", "gossip"}) {
    const SimResult r = run({"parallel.dp=8", "train.batch_size=8", "parallel.bucket_mb=0", "net.profile=" + two_sites(),
                             "net.algo=" + std::string(algo), "net.servers=8"});
    INFO(algo);
    CHECK(r.time.dp_total == Approx(expected[i]).epsilon(1e-12));
    ++i;
  }
  // Pure DP has no norm message (each replica holds the whole reduced gradient), so every
  // replica launches its one bucket together when the only backward ends, and all of the
  // sync is exposed: the closed forms.
  const std::string flat = write_file("flat.yaml", "name: flat\nsites: per_rank\ndefault_link: {latency: 0ms, bandwidth: 1Gbps}\n");
  const double b = netem::NetworkModel(netem::load_profile(flat, 8), 8).beta(0, 1);
  const double closed[] = {coll::ring_allreduce_cost(8, n, 0, b), coll::halving_doubling_allreduce_cost(8, n, 0, b),
                           coll::tree_allreduce_cost(8, n, 0, b), coll::param_server_allreduce_cost(8, 8, n, 0, b, 0, 0)};
  i = 0;
  for (const char* algo : {"ring", "hd", "tree", "ps"}) {
    const SimResult r = run({"parallel.dp=8", "train.batch_size=8", "parallel.bucket_mb=0", "net.profile=" + flat,
                             "net.algo=" + std::string(algo), "net.servers=8"});
    INFO(algo);
    CHECK(r.time.dp_total == Approx(closed[i]).epsilon(1e-9));
    CHECK(r.time.dp_exposed == Approx(closed[i]).margin(1e-6));
    ++i;
  }
  // Codecs: the model at the encoded size.
  const SimResult fp16 = run({"parallel.dp=8", "train.batch_size=8", "parallel.bucket_mb=0", "net.profile=" + two_sites(),
                              "net.codec=fp16"});
  CHECK(fp16.time.dp_total == Approx(coll::ring_allreduce_model(net, ranks, n / 2)).epsilon(1e-12));
}

// The trainer's norm group (parallel/step_scalars.hpp) on uniform 1 ms links: pure DP
// charges nothing; otherwise the binomial tree over each replica's TP ranks, one float,
// its closed form 2 floor(log2 n) (alpha + 4 beta) per step; ZeRO-1 the world's tree with
// the loss, 8 bytes.
TEST_CASE("the norm's allreduce: nothing in pure DP, the tree over TP x PP otherwise", "[sim][norm]") {
  const std::vector<std::string> uniform = {"net.latency=1ms", "net.bandwidth=800Mbps", "parallel.bucket_mb=0"};
  const netem::NetworkModel net(load_inputs(sim_settings(config(plus(uniform, {"parallel.dp=4"})))).profile, 1);
  const double alpha = net.alpha(0, 1), beta = net.beta(0, 1);
  CHECK(alpha == 1e-3);
  CHECK(beta == Approx(1 / 100e6).epsilon(1e-12));
  auto tree = [&](int n, double bytes) { return 2 * std::floor(std::log2(n)) * (alpha + bytes * beta); };
  for (const char* dp : {"parallel.dp=2", "parallel.dp=8"}) {
    INFO(dp);
    CHECK(run(plus(uniform, {dp, "train.batch_size=8"})).time.other == 0);
  }
  const SimResult tp2 = run(plus(uniform, {"parallel.dp=2", "parallel.tp=2"}));
  CHECK(tp2.time.other == Approx(tree(2, 4)).epsilon(1e-9));
  const SimResult tp4 = run(plus(uniform, {"parallel.tp=4"}));
  CHECK(tp4.time.other == Approx(tree(4, 4)).epsilon(1e-9));
  // ZeRO-1: the world's tree of 4 ranks and 2 floats, deeper than the replica's (in steady
  // state rank 0 also waits there for the ranks that left the last one after it).
  const SimResult zero1 = run(plus(uniform, {"parallel.dp=2", "parallel.tp=2", "parallel.zero1=true"}));
  INFO("ZeRO-1: " << zero1.time.other << " s, the replica's tree " << tp2.time.other << " s, the world's " << tree(4, 8));
  CHECK(zero1.time.other >= tree(4, 8) * (1 - 1e-9));
}

TEST_CASE("DP overlaps the last micro-batch's backward, bucket by bucket", "[sim]") {
  const std::vector<std::string> base = {"parallel.dp=4", "train.batch_size=64", "parallel.microbatches=4",
                                         "model.n_layer=4", "model.n_embd=256", "net.profile=" + kSource +
                                         "/configs/net/aqsgd-1g.yaml", "device.profile=a100", "precision.compute=bf16"};
  auto with = [&](const std::string& bucket) {
    std::vector<std::string> sets = base;
    sets.push_back("parallel.bucket_mb=" + bucket);
    return run(sets);
  };
  const SimResult one = with("0"), many = with("0.25");
  CHECK(one.dp_buckets == 1);
  CHECK(many.dp_buckets > 8);
  // One bucket hides nothing: what is exposed is its time and the replicas' skew (the norm's
  // tree reaches them one latency apart: the first replica's bucket waits for the last).
  const double skew = one.time.dp_exposed - one.time.dp_total;
  CHECK(skew >= 0);
  CHECK(skew < 0.01 * one.time.dp_total);
  CHECK(many.time.dp_exposed < many.time.dp_total + skew);
  // What hides is at most the last backward: one micro-batch's.
  const double last_backward = many.time.compute_bwd / 4;
  CHECK(many.time.dp_total - many.time.dp_exposed <= last_backward * (1 + 1e-12));
}

TEST_CASE("bytes per rank by link class follow the placement", "[sim]") {
  // DP 2 x PP 2 x TP 2 on two sites of 4: rank = tp + 2 dp + 4 pp, so stage 0 is site A,
  // stage 1 site B: TP and DP stay inside a site, PP crosses.
  const SimResult r = run({"parallel.dp=2", "parallel.pp=2", "parallel.tp=2", "parallel.microbatches=2",
                           "train.batch_size=8", "net.profile=" + two_sites(), "net.algo=ring"});
  const double act = 2.0 * 64 * 64 * 4;  // micro-batch 2 x T 64 x C 64, fp32
  CHECK(r.tp_bytes.inter == 0);
  CHECK(r.pp_bytes.intra == 0);
  // Every rank sends M activations forward or M gradients back: 2 x M x act per pair of ranks.
  CHECK(r.pp_bytes.inter == Approx(2 * act));
  // TP: ring of 2, 4 allreduces per layer and micro-batch, each sends (p-1)/p x 2 = 1 x the message.
  CHECK(r.tp_bytes.intra == Approx(4 * 1 * 2 * act));
  CHECK(r.dp_bytes.intra > 0);
  CHECK(r.dp_bytes.inter > 0);  // the tied embedding, between stage 0 (A) and stage 1 (B)
}

// DiLoCo in the simulator: no per-step buckets; one allreduce of the whole pseudo-gradient
// every H steps, its time and bytes amortised over H. The papers' communication
// reductions are the arithmetic of H and the bytes per value: DiLoCo's 500x (fp32, H =
// 500) exactly; INTELLECT-1's 400x (int8, H = 100) less the int8 codec's scale per 512
// values (4 / (1 + 4/512) = 3.97 bytes saved per 4): 396.9x.
TEST_CASE("DiLoCo: bytes per step H x less than DDP (500x, INTELLECT-1's 400x), step amortised", "[sim][diloco]") {
  for (const auto& [preset, expected] : {std::pair<std::string, double>{"diloco", 500.0},
                                         std::pair<std::string, double>{"intellect1", 100.0 * 4 * 512 / 516}}) {
    const SimResult d = run({}, preset);
    const SimResult ddp = run({"strategy.name=ddp", "net.codec=none"}, preset);
    INFO(preset << ": DDP " << ddp.dp_bytes.total() << " B/step, DiLoCo " << d.dp_bytes.total());
    CHECK(ddp.dp_bytes.total() / d.dp_bytes.total() == Approx(expected).epsilon(1e-9));
    CHECK(d.dp_bytes.intra == 0);  // a site per worker: it all crosses
    // The step: the step without DP, plus one outer allreduce (the ring's own model) / H.
    const SimSettings s = sim_settings(config({}, preset));
    const SimInputs in = load_inputs(s);
    std::vector<int> ranks(size_t(s.grid.dp));
    for (int i = 0; i < s.grid.dp; ++i) ranks[size_t(i)] = i;
    const auto codec = coll::make_codec(s.dp_codec);
    const double n = d.params, wire = codec ? double(codec->encoded_bytes(size_t(n))) : 4 * n;
    const double outer = coll::ring_allreduce_model(closed_form_model(in.profile), ranks, wire);
    const SimResult alone = run({"parallel.dp=1", "train.batch_size=" + std::to_string(s.batch_size / s.grid.dp)}, preset);
    CHECK(d.time.step == Approx(alone.time.step + outer / s.inner_steps).epsilon(1e-6));
    CHECK(d.time.step < ddp.time.step);
  }
}

// 1-bit Adam in its paper's setting (preset onebit-bert-large: fp16 gradients, 64 GPUs):
// after the warm-up each rank sends 2 (p-1)/p W against DDP's ring 2 (p-1)/p 2N, W = N / 8
// + one 4-byte scale per chunk: 16x less less the scales; over 152,000 steps with 23,000 of
// warm-up the blog's 1 / (f + (1 - f) / 16) ~ 4.9x. The warm-up's bytes are DDP's own run's.
TEST_CASE("1-bit Adam: 16x less after the warm-up, ~4.9x over the run (DeepSpeed's 5x)", "[sim][cadam]") {
  const SimResult one = run({}, "onebit-bert-large");
  const SimResult ddp = run({"strategy.name=ddp"}, "onebit-bert-large");
  const double n = one.params, p = 64;
  CHECK(one.dp_bytes_warmup.total() == Approx(ddp.dp_bytes.total()).epsilon(1e-9));
  CHECK(one.dp_bytes.total() == Approx(2 * (p - 1) / p * (n / 8 + 4 * p)).epsilon(1e-5));  // + ceil per chunk
  const double after = ddp.dp_bytes.total() / one.dp_bytes.total(), f = 23000.0 / 152000.0;
  CHECK(after == Approx(16.0).epsilon(1e-3));
  CHECK(1 / (f + (1 - f) / after) == Approx(4.89).epsilon(0.005));
  CHECK(one.time.step < ddp.time.step);
}

// Streaming DiLoCo: the same bytes per step on average (F syncs of N / F per H steps);
// one fragment without overlap is DiLoCo; each sync hidden behind tau steps when those
// last longer than it (DiLoCo's preset: a fragment of 4 takes about 5 s, 20 steps 7.6 s).
TEST_CASE("Streaming DiLoCo: DiLoCo's bytes, the outer step hidden behind tau steps", "[sim][diloco][streaming]") {
  const SimResult d = run({}, "diloco");
  const SimResult one = run({"strategy.name=streaming_diloco", "strategy.fragments=1", "strategy.overlap_steps=0"}, "diloco");
  CHECK(one.time.step == d.time.step);
  CHECK(one.dp_bytes.total() == d.dp_bytes.total());
  const SimResult hidden =
      run({"strategy.name=streaming_diloco", "strategy.fragments=4", "strategy.overlap_steps=20"}, "diloco");
  const SimResult alone = run({"parallel.dp=1", "train.batch_size=64"}, "diloco");
  CHECK(hidden.dp_bytes.total() == Approx(d.dp_bytes.total()).epsilon(1e-9));
  CHECK(hidden.time.step == Approx(alone.time.step).epsilon(1e-12));
  CHECK(hidden.time.dp_total > 0);
}

TEST_CASE("codec across sites only: hier's trees raw, its leaders' ring compressed", "[sim][scope]") {
  const std::vector<std::string> base = {"parallel.dp=8", "train.batch_size=8", "net.profile=" + two_sites(),
                                         "net.algo=hier", "parallel.bucket_mb=0"};
  const SimResult raw = run(base);
  const SimResult every = run(plus(base, {"net.codec=int8"}));
  const SimResult across = run(plus(base, {"net.codec=int8", "net.codec_scope=across_sites"}));
  CHECK(across.dp_bytes.intra == Approx(raw.dp_bytes.intra));
  CHECK(across.dp_bytes.inter == Approx(every.dp_bytes.inter));
  CHECK(every.dp_bytes.intra < raw.dp_bytes.intra);
}

TEST_CASE("the article's figures: 700 GB, 224 s, 5,600 s, 70 TB, 2 MB", "[sim]") {
  const std::vector<ArticleRow> rows = article_rows();
  auto find = [&](const std::string& id) -> const ArticleRow& {
    for (const ArticleRow& r : rows)
      if (r.id == id) return r;
    FAIL("no article row " << id);
    return rows.front();
  };
  CHECK(find("weights").ours == Approx(700e9).epsilon(1e-3));
  CHECK(find("copy_25g").ours == Approx(224).epsilon(1e-3));
  CHECK(find("copy_1g").ours == Approx(5600).epsilon(1e-3));
  CHECK(find("step_bytes").ours == Approx(70e12).epsilon(1e-3));
  CHECK(find("batch").ours == Approx(2.1e6).epsilon(1e-2));
  // A ring allreduce costs 2(p-1)/p of the copy plus 2(p-1) latencies.
  CHECK(find("ring_25g").ours == Approx(2 * 99 * (10e-6 + 7e9 * 8 / 25e9)).epsilon(1e-9));
  CHECK(find("ring_25g").sent == Approx(2 * 0.99 * 700e9).epsilon(1e-9));
  CHECK(find("ps_1_1g").sent == Approx(99 * 700e9).epsilon(1e-9));
  CHECK(find("ring_fp16_1g").ours < find("ring_1g").ours / 1.9);
  CHECK(find("ring_1bit_1g").ours < find("ring_1g").ours / 25);
  for (const ArticleRow& r : rows) CHECK(std::isfinite(r.ours));
}

TEST_CASE("sweeps: ranges, units and marks", "[sim]") {
  const Config base = config({}, "gpt3-xl");
  const SweepAxis bw = parse_axis(base, "net.bandwidth=100Mbps:400Gbps:log20", "--sweep");
  REQUIRE(bw.values.size() == 20);
  CHECK(bw.values.front() == "100Mbps");
  CHECK(bw.values.back() == "400Gbps");
  CHECK(bw.x.front() == Approx(1e8));
  const SweepAxis dp = parse_axis(base, "parallel.microbatches=1:128:log8", "--sweep");
  CHECK(dp.values == std::vector<std::string>{"1", "2", "4", "8", "16", "32", "64", "128"});
  const SweepAxis list = parse_axis(base, "net.algo=ring,ps", "--sweep");
  CHECK(std::isnan(list.x[0]));

  // Slower links never make a step faster.
  const std::vector<SweepPoint> points = run_sweep(base, parse_axis(base, "net.bandwidth=100Mbps:100Gbps:log7", "--sweep"));
  for (size_t i = 1; i < points.size(); ++i) CHECK(points[i].result.time.step <= points[i - 1].result.time.step);
  CHECK(points.front().result.slowdown() > points.back().result.slowdown());
  // A mark on a bandwidth sweep sits at the slowest link it uses: scenario 1's 25 Gbps per
  // node, shared by its 8 GPUs (configs/net/dtfm-1-dc-ondemand.yaml, hosts).
  const std::vector<SweepPoint> marks =
      run_marks(base, parse_axis(base, "net.profile=configs/net/dtfm-1-dc-ondemand.yaml", "--mark"), bw);
  CHECK(marks.front().label == "dtfm-1-dc-ondemand");
  CHECK(marks.front().x == Approx(25e9 / 8));
}

TEST_CASE("speed: 175B on 1,024 ranks, and a 50-point sweep", "[sim][benchmark]") {
  const Config c = config({"parallel.dp=8", "parallel.microbatches=192", "net.profile=configs/net/centralized-25g.yaml"},
                          "gpt3-175b");
  auto t0 = std::chrono::steady_clock::now();
  const SimResult r = simulate(sim_settings(c));
  const double one = seconds_since(t0);
  CHECK(r.world == 1024);
  t0 = std::chrono::steady_clock::now();
  const std::vector<SweepPoint> points = run_sweep(c, parse_axis(c, "net.bandwidth=1Gbps:400Gbps:log50", "--sweep"));
  const double sweep = seconds_since(t0);
  CHECK(points.size() == 50);
  WARN("benchmark: GPT-3 175B on 1024 ranks in " << one * 1e3 << " ms; 50-point sweep in " << sweep << " s");
  CHECK(one < 10);  // generous: the machine is shared
  CHECK(sweep < 60);
}

TEST_CASE("dtbench sim: a table, a sweep with its plot, and an HDF5 result", "[sim][cli]") {
  const Outcome one = dtbench("sim --config " + kSource + "/configs/model/tiny.yaml --out none");  // a trainer config
  CHECK(one.exit_code == 0);
  CHECK_THAT(one.out, Contains("step"));
  const std::string h5 = (scratch() / "sweep.h5").string();
  const Outcome sweep = dtbench("sim --preset gpt3-xl --sweep parallel.microbatches=32,64,128 --metric slowdown --out " + h5);
  INFO(sweep.err);
  REQUIRE(sweep.exit_code == 0);
  CHECK(fs::exists(scratch() / "sweep.gp"));
  const h5::File f = h5::File::open_read(h5);
  CHECK(f.attr_string("/", "kind") == "sim");
  CHECK(f.attr_string("/", "sweep_key") == "parallel.microbatches");
  CHECK(f.read<double>("points/step_s").size() == 3);
  CHECK(f.read<double>("points/x") == std::vector<double>{32, 64, 128});
  CHECK_THAT(f.read_string("config"), Contains("gpt3-xl"));
  const std::string table = (scratch() / "article.h5").string();
  const Outcome article = dtbench("sim --preset article --out " + table);
  CHECK(article.exit_code == 0);
  CHECK_THAT(article.out, Contains("5,600 s"));
  const h5::File a = h5::File::open_read(table);
  CHECK(a.attr_string("/", "preset") == "article");
  CHECK(a.read<double>("article/ours").size() == article_rows().size());
  CHECK_THAT(a.read_string("article/id"), Contains("copy_1g"));
}

TEST_CASE("dtbench sim: bad input exits 2 with one line", "[sim][cli]") {
  expect_usage_error("sim --set parallel.tp=3", {"parallel.tp", "must divide model.n_head = 4"});
  expect_usage_error("sim --set parallel.pp=3", {"parallel.pp", "model.n_layer = 2"});
  expect_usage_error("sim --set parallel.dp=3", {"train.batch_size", "parallel.dp x parallel.microbatches = 3 x 1"});
  expect_usage_error("sim --set train.seq_len=65", {"train.seq_len", "model.n_ctx = 64"});
  expect_usage_error("sim --set parallel.dp=2 --set parallel.zero1=true --set net.algo=hd",
                     {"parallel.zero1", "needs net.algo = ring"});
  expect_usage_error("sim --set parallel.pp=2 --set parallel.stages=1:2", {"parallel.stages", "summing to model.n_layer"});
  expect_usage_error("sim --set parallel.placement=/no/such/placement.yaml", {"/no/such/placement.yaml"});
  expect_usage_error("sim --device x100", {"device.profile 'x100'", "no such device", "h100"});
  expect_usage_error("sim --device v100 --set precision.compute=bf16", {"precision.compute", "no bf16 peak", "fp16"});
  expect_usage_error("sim --net /no/such/profile.yaml", {"/no/such/profile.yaml"});
  expect_usage_error("sim --preset gpt3-xl --set parallel.dp=16 --set parallel.microbatches=64",
                     {"dtfm-1-dc-ondemand.yaml", "rank"});
  expect_usage_error("sim --set net.bandwidth=fast", {"net.bandwidth", "25Gbps"});
  expect_usage_error("sim --set net.latency=5parsecs", {"net.latency", "10ms"});
  expect_usage_error("sim --set parallel.bucket_mb=lots", {"parallel.bucket_mb", "lots"});
  expect_usage_error("sim --set net.codec=zip", {"net.codec", "zip"});
  expect_usage_error("sim --set net.algo=magic", {"net.algo", "ring"});
  expect_usage_error("sim --set net.algo=mpi", {"net.algo", "outside the network model"});
  expect_usage_error("sim --set net.servers=2", {"net.servers", "parallel.dp = 1"});
  expect_usage_error("sim --preset nope", {"--preset 'nope'", "gpt3-xl"});
  expect_usage_error("sim --sweep net.bandwidth=1Gbps:fast:log5", {"--sweep", "lo:hi:logN"});
  expect_usage_error("sim --sweep parallel.dpp=1,2", {"parallel.dpp", "did you mean 'parallel.dp'"});
  expect_usage_error("sim --sweep net.bandwidth=1Gbps,fast", {"'fast'", "bandwidth"});
  expect_usage_error("sim --mark net.profile=a.yaml", {"--mark", "--sweep"});
  expect_usage_error("sim --sweep parallel.dp=1,2 --metric speed --out none", {"--metric", "slowdown"});
  expect_usage_error("sim --preset article --sweep parallel.dp=1,2", {"article"});
  expect_usage_error("sim --no-such-option", {"no-such-option"});
}

TEST_CASE("stragglers: a slow rank's stage computes slower and gates the step", "[sim][faults]") {
  // Free communication (no profile): the step is compute and AdamW, so a slowdown of k on
  // a world of one multiplies it by k exactly; on DP = 2 the slow replica sets the step (its
  // DP peers wait for its buckets); on TP = 2 the slow TP rank holds its stage back (they
  // meet in every allreduce). The other replica or rank alone slowed gives the same step.
  const double one = run({}).time.step;
  CHECK(run({"faults.slow_ranks=0", "faults.slowdown=3"}).time.step == Approx(3 * one).epsilon(1e-12));
  CHECK(run({"faults.slow_ranks=0", "faults.slowdown=1"}).time.step == one);
  for (const char* layout : {"parallel.dp=2", "parallel.tp=2"}) {
    INFO(layout);
    const double base = run({layout}).time.step;
    CHECK(run({layout, "faults.slow_ranks=1", "faults.slowdown=2.5"}).time.step == Approx(2.5 * base).epsilon(1e-12));
    CHECK(run({layout, "faults.slow_ranks=0", "faults.slowdown=2.5"}).time.step == Approx(2.5 * base).epsilon(1e-12));
  }
  CHECK_THROWS_WITH(run({"parallel.dp=2", "faults.slow_ranks=2", "faults.slowdown=2"}),
                    Catch::Matchers::Contains("faults.slow_ranks: rank 2 is outside the world's ranks [0, 2)"));
  CHECK_THROWS_WITH(run({"faults.slow_ranks=1;2", "faults.slowdown=2"}),
                    Catch::Matchers::Contains("faults.slow_ranks") && Catch::Matchers::Contains("e.g. 1,3"));
}

TEST_CASE("times and shares print as numbers: round-off is 0, tiny values keep their digits", "[sim][format]") {
  CHECK(format_seconds(3.71e-16) == "0 s");    // round-off of a sum of seconds
  CHECK(format_seconds(-2.53e-13) == "0 s");   // a bubble of -2.53e-07 us: round-off, not a time
  CHECK(format_seconds(3.71e-10) == "0.371 ns");
  CHECK(format_seconds(5e-9) == "5 ns");
  CHECK(format_seconds(12.3e-6) == "12.3 us");
  CHECK(format_seconds(-0.5) == "-500 ms");
  CHECK(format_seconds(5600) == "5,600 s");
  CHECK(format_percent_sig(0.417) == "41.7%");
  CHECK(format_percent_sig(0.0321) == "3.21%");
  CHECK(format_percent_sig(2.99e-6) == "0.000299%");  // the tiny model's MFU on an H100 model
  CHECK(format_percent_sig(1) == "100%");
  CHECK(format_percent_sig(0) == "0%");
  // Every sweep column is 12 wide for values up to 11 characters: neighbours never touch.
  const Config base = config({}, "gpt3-xl");
  std::ostringstream table;
  print_sweep(table, "net.latency", run_sweep(base, parse_axis(base, "net.latency=1us,10s", "--sweep")));
  std::istringstream lines(table.str());
  std::string head, row;
  std::getline(lines, head);
  while (std::getline(lines, row)) {
    INFO(row);
    CHECK(std::regex_search(row, std::regex(R"(^\S+( +-?[0-9.,]+(k|M|B)?( [a-zA-Z]+|x|%)?)+( \(no fit\))?$)")));
    CHECK(row.find("e-") == std::string::npos);
  }
}

TEST_CASE("dtbench sim: two --sweep flags, bars for a text key, titles naming what is swept", "[sim][cli]") {
  const std::string h5 = (scratch() / "two.h5").string(), svg = (scratch() / "two.svg").string();
  const Outcome two = dtbench("sim --preset gpt3-xl --sweep parallel.microbatches=32,64 --sweep net.codec=none,sign --out " +
                              h5 + " --plot " + svg);
  INFO(two.out << two.err);
  REQUIRE(two.exit_code == 0);
  CHECK_THAT(two.out, Contains("# sweep of parallel.microbatches over 2 values, one table and curve per value of net.codec (2)"));
  CHECK_THAT(two.out, Contains("\n# net.codec = none\nparallel.microbatches "));
  CHECK_THAT(two.out, Contains("\n# net.codec = sign\nparallel.microbatches "));
  const h5::File f = h5::File::open_read(h5);
  CHECK(f.attr_string("/", "sweep_key") == "parallel.microbatches");
  CHECK(f.attr_string("/", "series_key") == "net.codec");
  CHECK(f.read_string("points/series") == "none\nnone\nsign\nsign");
  CHECK(f.read<double>("points/x") == std::vector<double>{32, 64, 32, 64});
  // Each curve is the one-key sweep with the second key set: the simulator called in-process.
  const std::vector<double> step = f.read<double>("points/step_s");
  for (const char* codec : {"none", "sign"}) {
    const Config base = config({std::string("net.codec=") + codec}, "gpt3-xl");
    const std::vector<SweepPoint> one = run_sweep(base, parse_axis(base, "parallel.microbatches=32,64", "--sweep"));
    const size_t at = std::string(codec) == "none" ? 0 : 2;
    CHECK(step[at] == one[0].result.time.step);
    CHECK(step[at + 1] == one[1].result.time.step);
  }
  CHECK(step[2] < step[0]);  // sign sends 1/32 of the bytes
  const std::string gp = dtb::test::slurp(scratch() / "two.gp");
  CHECK_THAT(gp, Contains("title \"net.codec = none\""));
  CHECK_THAT(gp, Contains("title \"net.codec = sign\""));
  CHECK_THAT(gp, Contains("GPipe, net.algo ring"));
  CHECK_THAT(gp, Contains("dt 2"));  // the second curve dashed
  // Beside the curves, the heat map (microbatches across, codec up): SVG, PNG, the script,
  // and the data file it draws, whose cells are the step times of the results file.
  const fs::path map = scratch() / "two-heatmap";
  for (const char* ext : {".svg", ".png", ".gp", ".dat"}) CHECK(fs::exists(map.string() + ext));
  CHECK_THAT(two.out, Contains("# heat map: " + map.string() + ".svg, " + map.string() + ".png (data " + map.string() + ".dat"));
  CHECK_THAT(dtb::test::slurp(map.string() + ".gp"), Contains("matrix rowheaders columnheaders using 1:2:3 with image"));
  std::istringstream dat(dtb::test::slurp(map.string() + ".dat"));
  std::string line;
  std::getline(dat, line);
  CHECK(line == "# dtbench sim: step time (s); rows: net.codec, columns: parallel.microbatches");
  std::getline(dat, line);
  CHECK(line == "net.codec\\parallel.microbatches\t32\t64");
  for (const size_t at : {0, 2}) {
    std::getline(dat, line);
    std::istringstream cells(line);
    std::string codec;
    double a = 0, b = 0;
    cells >> codec >> a >> b;
    CHECK(codec == (at == 0 ? "none" : "sign"));
    CHECK(a == step[at]);  // every digit: the same doubles
    CHECK(b == step[at + 1]);
  }
  CHECK_FALSE(std::getline(dat, line));

  // A text key alone: bars, and the title names the swept key instead of its base value.
  const Outcome codecs = dtbench("sim --preset gpt3-xl --sweep net.codec=none,fp16,sign --out none --plot " +
                                 (scratch() / "codecs.svg").string());
  REQUIRE(codecs.exit_code == 0);
  const std::string bars = dtb::test::slurp(scratch() / "codecs.gp");
  CHECK_FALSE(fs::exists(scratch() / "codecs-heatmap.svg"));  // one key: no heat map
  CHECK_THAT(bars, Contains("with boxes"));
  CHECK_THAT(bars, Contains("xtic(3)"));
  const Outcome dp = dtbench("sim --sweep parallel.dp=1,2 --out none --plot " + (scratch() / "dp.svg").string());
  INFO(dp.out << dp.err);
  REQUIRE(dp.exit_code == 0);
  CHECK_THAT(dp.out, Contains("# sweep of parallel.dp over 2 values: "));
  CHECK_THAT(dp.out, Contains(", DP [x] x PP 1 x TP 1, "));
  CHECK_THAT(dtb::test::slurp(scratch() / "dp.gp"), Contains(", DP [x] x PP 1 x TP 1, "));

  expect_usage_error("sim --sweep parallel.dp=1,2 --sweep net.codec=none,sign --sweep net.algo=ring,ps --out none",
                     {"--sweep given 3 times"});
  expect_usage_error("sim --sweep parallel.dp=1,2 --sweep parallel.dp=1,2 --out none", {"parallel.dp given twice"});
  expect_usage_error("sim --sweep net.bandwidth=1Gbps,10Gbps --sweep net.codec=none,sign --mark net.latency=1ms --out none",
                     {"--mark", "one-key sweep"});
}

// CocktailSGD and DeMo in the simulator: each sync's bytes per rank are the strategy's own
// formula (parallel/cocktail.hpp, demo.hpp). CocktailSGD (random 0.1, top-k 0.2, 4 bits,
// 4 workers): 2 (p-1) wire(N / p) per rank, 87.6x less than DDP's bf16 ring, all of it
// hidden behind the next step. DeMo (32 of 4096 per chunk, 64 workers): the ring
// all-gather sends (p-1) payloads per rank; its own payload is demo.py's "85x": the ring's
// ~2 x 4N bytes against 32 (int64 index + fp32 value) pairs per 4096 values.
TEST_CASE("CocktailSGD and DeMo: the simulator's bytes are the strategies' formulas", "[sim][cocktail][demo]") {
  const std::vector<std::string> one_stage = {"parallel.pp=1", "parallel.microbatches=16", "train.batch_size=64"};
  const SimResult c = run(one_stage, "cocktail");
  const SimResult cd = run(plus(one_stage, {"strategy.name=ddp"}), "cocktail");
  const par::CocktailCodec codec{0.1, 0.2, 4};
  CHECK(c.dp_bytes.total() == Approx(par::cocktail_bytes_per_rank(codec, c.params, 4)).epsilon(1e-9));
  CHECK(c.dp_bytes.intra == 0);
  CHECK(cd.dp_bytes.total() / c.dp_bytes.total() == Approx(16.0 / (0.1 + 0.02 * 4 + 0.02 * 16 / 128)).epsilon(1e-3));
  CHECK(c.time.dp_exposed == 0);  // 4 x 8 = 32 ranks of A100s: the exchange hides behind the step
  const SimResult d = run({}, "demo");
  const double payload = par::demo_payload_bytes(d.params, 4096, 32);
  CHECK(payload == Approx(8.0 * 32 * std::ceil(d.params / 4096)).epsilon(1e-12));
  CHECK(d.dp_bytes.total() == Approx(63 * payload).epsilon(1e-9));
  CHECK(2 * 4 * d.params / (payload * 12 / 8) == Approx(8.0 / (12.0 * 32 / 4096)).epsilon(1e-3));  // 85.3x
}
