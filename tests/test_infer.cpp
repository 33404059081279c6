// Decentralized inference (issue 16) on one process: the KV-cache forward against the whole
// prefix recomputed by the training forward, the sampler against its distribution, the
// tokenizer, and dtbench infer's bad input. The layouts and the clock: test_infer_mpi.cpp.
#include <catch2/catch.hpp>

#include <cmath>
#include <vector>

#include "dtbench_runner.hpp"
#include "infer/generate.hpp"
#include "infer/predict.hpp"
#include "model/gpt2.hpp"
#include "model/stage.hpp"

using namespace dtb;

namespace {

GPTConfig small_model() {
  GPTConfig c;
  c.vocab_size = 64, c.n_ctx = 16, c.n_layer = 3, c.n_head = 4, c.n_embd = 32;
  return c;
}

std::vector<int32_t> some_tokens(int n, int V, int salt) {
  std::vector<int32_t> t;
  for (int i = 0; i < n; ++i) t.push_back(int32_t((i * 7 + salt * 13 + 3) % V));
  return t;
}

// The largest |a - b| over the logits of every position of two sequences: the training
// forward over each whole sequence against the KV-cache path, which prefills the first
// PREFILL tokens of both sequences in one call and then feeds one token of each per call.
template <typename Real>
double cached_vs_recomputed(const GPTConfig& c, int prefill) {
  const int T = c.n_ctx, V = c.vocab_size;
  const std::vector<std::vector<int32_t>> seqs = {some_tokens(T, V, 1), some_tokens(T, V, 2)};
  GPT<Real> full(c, 1, T);
  full.init_weights(42);
  TransformerStage<Real> stage(c, whole_model(c), 1, 1, 1);  // layer-major: another buffer order
  stage.init_weights(42);
  KvCache<Real> cache = stage.make_kv_cache(2, 2 * prefill);
  std::vector<std::vector<Real>> cached(2, std::vector<Real>(size_t(T) * V));
  auto run = [&](const std::vector<TokenRow>& rows) {
    const Real* logits = stage.forward_cached(cache, rows, nullptr, no_tensor_parallelism());
    for (size_t r = 0; r < rows.size(); ++r)
      std::copy_n(logits + r * V, V, cached[size_t(rows[r].seq)].begin() + std::ptrdiff_t(rows[r].pos) * V);
  };
  std::vector<TokenRow> rows;
  for (int s = 0; s < 2; ++s)
    for (int p = 0; p < prefill; ++p) rows.push_back({s, p, seqs[size_t(s)][size_t(p)]});
  run(rows);
  for (int p = prefill; p < T; ++p) run({{0, p, seqs[0][size_t(p)]}, {1, p, seqs[1][size_t(p)]}});
  double worst = 0;
  for (int s = 0; s < 2; ++s) {
    full.forward(seqs[size_t(s)].data(), nullptr);
    for (size_t i = 0; i < size_t(T) * V; ++i)
      worst = std::max(worst, std::abs(double(full.logits()[i]) - double(cached[size_t(s)][i])));
  }
  return worst;
}

}  // namespace

TEST_CASE("infer: the KV-cache path gives the logits of recomputing the whole prefix", "[infer]") {
  const GPTConfig c = small_model();
  // Double: the same kernels on fewer gemm rows differ by rounding only (logits are O(1)).
  const double d = cached_vs_recomputed<double>(c, 5);
  INFO("double maxdiff=" << d);
  CHECK(d < 1e-12);
  // Float: gemms on other row counts round differently (measured 7.5e-8 here); 1e-6 absolute.
  const double f = cached_vs_recomputed<float>(c, 5);
  INFO("float maxdiff=" << f);
  CHECK(f < 1e-6);
  CHECK(cached_vs_recomputed<float>(c, c.n_ctx) < 1e-6);  // the whole sequences in one prefill
  GPTConfig untied = c;
  untied.tie_embeddings = false;
  CHECK(cached_vs_recomputed<double>(untied, 3) < 1e-12);
}

TEST_CASE("infer: forward_cached refuses rows outside its cache", "[infer]") {
  const GPTConfig c = small_model();
  TransformerStage<float> stage(c, whole_model(c), 1, 1, 1);
  KvCache<float> cache = stage.make_kv_cache(1, 2);
  const std::vector<TokenRow> outside = {{0, c.n_ctx, 1}}, other_seq = {{1, 0, 1}}, bad_token = {{0, 0, 64}};
  CHECK_THROWS_AS(stage.forward_cached(cache, outside, nullptr, no_tensor_parallelism()), std::out_of_range);
  CHECK_THROWS_AS(stage.forward_cached(cache, other_seq, nullptr, no_tensor_parallelism()), std::out_of_range);
  CHECK_THROWS_AS(stage.forward_cached(cache, bad_token, nullptr, no_tensor_parallelism()), std::out_of_range);
  const std::vector<TokenRow> three = {{0, 0, 1}, {0, 1, 1}, {0, 2, 1}};
  CHECK_THROWS_AS(stage.forward_cached(cache, three, nullptr, no_tensor_parallelism()), std::out_of_range);
}

TEST_CASE("infer: greedy takes the argmax, temperature samples the softmax", "[infer]") {
  const std::vector<float> logits = {0.5f, 2.0f, -1.0f, 1.0f};
  infer::SamplingSettings greedy;
  CHECK(infer::sample_token(logits.data(), 4, greedy, 0, 0) == 1);
  const std::vector<float> tie = {3.0f, 1.0f, 3.0f};
  CHECK(infer::sample_token(tie.data(), 3, greedy, 0, 0) == 0);  // the lowest id on a tie

  infer::SamplingSettings warm;
  warm.temperature = 2.0, warm.seed = 7;
  std::vector<double> expect(4), seen(4, 0);
  double z = 0;
  for (int v = 0; v < 4; ++v) z += expect[size_t(v)] = std::exp(logits[size_t(v)] / 2.0);
  const int draws = 40000;
  for (int i = 0; i < draws; ++i) seen[size_t(infer::sample_token(logits.data(), 4, warm, i % 200, i / 200))] += 1;
  for (int v = 0; v < 4; ++v) {
    const double p = expect[size_t(v)] / z, sd = std::sqrt(p * (1 - p) / draws);
    INFO("token " << v << " p=" << p << " seen=" << seen[size_t(v)] / draws);
    CHECK(std::abs(seen[size_t(v)] / draws - p) < 4 * sd);  // 4 standard deviations
  }
  // A draw depends on (seed, sequence, position) only.
  CHECK(infer::sample_token(logits.data(), 4, warm, 3, 5) == infer::sample_token(logits.data(), 4, warm, 3, 5));
}

TEST_CASE("infer: the byte tokenizer round-trips and refuses bytes outside the vocabulary", "[infer]") {
  const std::string text = "Hello, \xc3\xa9t\xc3\xa9!";
  const std::vector<int32_t> t = infer::byte_tokens(text, 256, "here");
  CHECK(t.size() == text.size());
  CHECK(t[0] == 'H');
  CHECK(infer::byte_text(t) == text);
  CHECK_THROWS_AS(infer::byte_tokens("a\xc3", 128, "prompt 1"), UsageError);
}

TEST_CASE("infer: bad input gets one line and exit code 2", "[infer][cli]") {
  static const test::ScratchDir dir("infer_cli");
  const std::string ck = (dir.path / "ck.h5").string();
  const auto train = test::run_dtbench(
      "train --set model.n_layer=2 --set model.n_embd=32 --set model.n_ctx=16 --set train.seq_len=16 "
      "--set train.batch_size=2 --set train.steps=1 --set train.val_every=0 --set data.path=" +
          test::prepared_fortunes(dir.path) + " --set train.checkpoint=" + ck +
          " --set train.results=" + (dir.path / "r.h5").string(),
      dir.path);
  REQUIRE(train.exit_code == 0);
  struct Case {
    std::string args;
    std::vector<std::string> pieces;
  };
  const std::vector<Case> cases = {
      {"infer --checkpoint " + (dir.path / "missing.h5").string() + " --prompt hi", {"missing.h5"}},
      {"infer --checkpoint " + ck + " --prompt 0123456789abcdef --max-new-tokens 1",
       {"prompt 1 (16 tokens)", "model.n_ctx = 16"}},
      {"infer --checkpoint " + ck + " --prompt hi --max-new-tokens 15", {"--max-new-tokens 15", "n_ctx = 16"}},
      {"infer --checkpoint " + ck + " --prompt hi --max-new-tokens 4 --set parallel.dp=2", {"parallel.dp = 2", "must be 1"}},
      {"infer --checkpoint " + ck + " --prompt hi --max-new-tokens 4 --set parallel.pp=3", {"parallel.pp", "model.n_layer = 2"}},
      {"infer --checkpoint " + ck + " --prompt hi --max-new-tokens 4 --set parallel.pp=2", {"2 ranks", "mpirun -np 2"}},
      {"infer --checkpoint " + ck + " --prompt hi --max-new-tokens 4 --set model.n_layer=4", {"model.* shape differs"}},
      {"infer --checkpoint " + ck, {"no prompt"}},
  };
  for (const Case& c : cases) test::expect_usage_error(test::run_dtbench(c.args, dir.path), c.args, c.pieces);

  // And a good request: the prompt comes back first, then the tokens asked for.
  const auto ok = test::run_dtbench("infer --checkpoint " + ck + " --prompt abc --max-new-tokens 4", dir.path);
  REQUIRE(ok.exit_code == 0);
  CHECK_THAT(ok.out, Catch::Matchers::Contains("--- sequence 1\nabc"));
  CHECK_THAT(ok.out, !Catch::Matchers::Contains("warning"));
  // Two stages that a multi-site profile puts on one machine: one warning line, as train,
  // coll and sim print (Open MPI's mpirun, as the other CLI tests that launch ranks).
  const auto one_site = test::run_shell("OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 mpirun -np 2 --oversubscribe --mca mpi_yield_when_idle 1 " + test::dtbench_binary() +
                                            " infer --checkpoint " + ck + " --prompt abc --max-new-tokens 2 --set parallel.pp=2"
                                            " --set net.profile=" + std::string(DTB_SOURCE_DIR) + "/configs/net/dtfm-1-dc-ondemand.yaml",
                                        dir.path);
  INFO(one_site.out << one_site.err);
  REQUIRE(one_site.exit_code == 0);
  CHECK_THAT(one_site.out, Catch::Matchers::Contains("# warning: network profile 'dtfm-1-dc-ondemand' has "));
  CHECK_THAT(one_site.out, Catch::Matchers::Contains(" sites but puts all 2 ranks on "));
}

TEST_CASE("infer: the predicted decode step is the closed form of its stages and hops", "[infer][sim]") {
  // 4 layers, C 64, V 256 in 2 stages on a uniform 20 ms / 100 MB/s network; a device of
  // 1 TFLOP/s at efficiency 0.5 with 10 GB/s of memory, bf16 weights and activations.
  sim::SimSettings s;
  s.name = "t";
  s.model.vocab_size = 256, s.model.n_ctx = 128, s.model.n_layer = 4, s.model.n_head = 4, s.model.n_embd = 64;
  s.seq_len = 100;
  s.grid = {1, 2, 1};
  s.compute = s.param_precision = sim::Precision::kBf16;
  sim::Device d;
  d.name = "toy";
  d.peak_flops[size_t(sim::Precision::kBf16)] = 1e12;
  d.efficiency = 0.5, d.memory_bandwidth = 1e10;
  const double L = 0.02, R = 1e8;
  const sim::SimInputs in{netem::uniform_profile(2, L, R), d, par::identity_placement(2)};
  const double C = 64, V = 256, layer = 12 * C * C + 13 * C;  // a block's weights and biases, by hand
  const double matmuls = 12 * C * C;                            // of which the matmuls' weights
  for (int rows : {1, 64}) {
    const infer::TokenPrediction p = infer::predict_token(s, in, rows);
    REQUIRE(p.stages.size() == 2);
    double expect = 0;
    for (int st = 0; st < 2; ++st) {
      const double params = 2 * layer + (st == 1 ? V * C + 2 * C : 0);
      // 2 FLOPs per matmul weight and row (biases and LayerNorms issue none), attention 4 x 100 x C.
      const double flops = 2 * rows * (2 * matmuls + (st == 1 ? V * C : 0)) + 2 * 4.0 * rows * 100 * C;
      CHECK(p.stages[size_t(st)].params == params);
      expect += std::max(flops / 0.5e12, params * 2 / 1e10);
    }
    expect += (L + rows * C * 2 / R) + (L + rows * 4.0 / R);  // activations forward, token ids back
    INFO("rows " << rows);
    CHECK(p.per_token == Approx(expect).epsilon(1e-12));
    CHECK(p.tokens_per_s() == Approx(rows / expect).epsilon(1e-12));
  }
  // One row: the weights' bytes bound the step; 64 rows of this small model: still memory.
  const infer::TokenPrediction one = infer::predict_token(s, in, 1);
  CHECK(one.stages[0].memory_time > one.stages[0].flops_time);
}
