// Decentralized inference (issue 16) under mpirun on 4 ranks: generation through PP and TP
// layouts gives exactly the tokens of one rank, and on the virtual clock each round takes
// what the closed form says: the stages' compute (a device model, FLOPs / rate) plus the
// hops (latency + bytes / bandwidth) of the activations forward and the tokens back.
#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>
#include <mpi.h>

#include <algorithm>
#include <optional>
#include <vector>

#include "infer/generate.hpp"
#include "model/gpt2.hpp"
#include "profile.hpp"

using namespace dtb;

namespace {

constexpr double kL = 0.01, kR = 1.25e8;  // 10 ms and 1 Gbps on every path, no NIC cap
constexpr double kRate = 1e9;             // the device model: 1 GFLOP/s

TrainSettings settings(int pp, int tp) {
  TrainSettings s{};
  s.model.vocab_size = 64, s.model.n_ctx = 24, s.model.n_layer = 4, s.model.n_head = 4, s.model.n_embd = 32;
  s.parallel.pp = pp, s.parallel.tp = tp;
  s.parallel.clock = "virtual";
  s.parallel.device_gflops = kRate / 1e9;
  s.backend = "cpu";
  return s;
}

std::vector<float> weights(const GPTConfig& c) {
  GPT<float> m(c, 1, 1);
  m.init_weights(5);
  return {m.params(), m.params() + m.num_params()};
}

const std::vector<std::vector<int32_t>> kPrompts = {{1, 2, 3, 4, 5}, {9, 8}, {17, 33, 40}};

// Generation by the first PP x TP ranks of the world (nullopt on the others, which wait).
std::optional<infer::Generation> on_ranks(const TrainSettings& s, const infer::SamplingSettings& sampling) {
  int me = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &me);
  const int n = s.parallel.pp * s.parallel.tp;
  MPI_Comm sub;
  MPI_Comm_split(MPI_COMM_WORLD, me < n ? 0 : MPI_UNDEFINED, me, &sub);
  std::optional<infer::Generation> g;
  if (me < n) {
    coll::Communicator comm(sub, netem::uniform_profile(4, kL, kR), netem::ClockKind::kVirtual);
    g = infer::generate(comm, s, weights(s.model), kPrompts, sampling);
    MPI_Comm_free(&sub);
  }
  MPI_Barrier(MPI_COMM_WORLD);
  return g;
}

// One rank alone: the reference every rank computes for itself.
infer::Generation single_rank(const infer::SamplingSettings& sampling) {
  coll::Communicator self(MPI_COMM_SELF, netem::uniform_profile(4, kL, kR), netem::ClockKind::kVirtual);
  return infer::generate(self, settings(1, 1), weights(settings(1, 1).model), kPrompts, sampling);
}

// The device model's FLOPs of a round on a stage of LAYERS layers (TP ranks: its 1/TP of
// the heads and the MLP), counted by hand: per row and layer the four linears, 2 x 12 C^2
// / TP, and the attention over positions 0..pos, 4 (pos + 1) C / TP; the last stage adds
// the LM head, 2 C V per row.
double round_flops(const GPTConfig& c, const std::vector<TokenRow>& rows, int layers, bool last, int tp) {
  const double C = c.n_embd, V = c.vocab_size;
  double f = 0;
  for (const TokenRow& r : rows) f += layers * (24 * C * C + 4 * (r.pos + 1) * C) / tp + (last ? 2 * C * V : 0);
  return f;
}

// The rows of round K (the prefill, then one per sequence).
std::vector<TokenRow> rows_of(int k) {
  std::vector<TokenRow> rows;
  for (size_t i = 0; i < kPrompts.size(); ++i) {
    const int len = int(kPrompts[i].size());
    for (int p = k == 0 ? 0 : len + k - 1; p < len + k; ++p) rows.push_back({int32_t(i), p, 0});
  }
  return rows;
}

double hop(double bytes) { return kL + bytes / kR; }

}  // namespace

TEST_CASE("infer: every PP x TP layout generates exactly the tokens of one rank", "[mpi][infer]") {
  infer::SamplingSettings greedy, warm;
  greedy.max_new_tokens = warm.max_new_tokens = 12;
  warm.temperature = 0.8, warm.seed = 3;
  for (const infer::SamplingSettings& sampling : {greedy, warm}) {
    const infer::Generation ref = single_rank(sampling);
    REQUIRE(ref.tokens.size() == kPrompts.size());
    for (size_t i = 0; i < kPrompts.size(); ++i) {
      REQUIRE(ref.tokens[i].size() == kPrompts[i].size() + 12);
      CHECK(std::equal(kPrompts[i].begin(), kPrompts[i].end(), ref.tokens[i].begin()));
    }
    for (auto [pp, tp] : {std::pair{2, 1}, {4, 1}, {1, 2}, {2, 2}, {1, 4}}) {
      const auto g = on_ranks(settings(pp, tp), sampling);
      INFO("pp=" << pp << " tp=" << tp << " temperature " << sampling.temperature);
      if (g) CHECK(g->tokens == ref.tokens);
    }
  }
}

TEST_CASE("infer: a round on the virtual clock is the stages' compute plus the hops (closed form)", "[mpi][infer]") {
  infer::SamplingSettings sampling;
  sampling.max_new_tokens = 6;
  for (int tp : {1, 2}) {
    const TrainSettings s = settings(2, tp);
    const auto g = on_ranks(s, sampling);
    if (!g) continue;
    const double C = s.model.n_embd, seqs = double(kPrompts.size());
    double expect = 0;  // when round k's tokens are drawn
    for (int k = 0; k < sampling.max_new_tokens; ++k) {
      const std::vector<TokenRow> rows = rows_of(k);
      const double n = double(rows.size());
      // Compute of both stages (2 layers each), then the activations' hop forward.
      double round = (round_flops(s.model, rows, 2, false, tp) + round_flops(s.model, rows, 2, true, tp)) / kRate +
                     hop(n * C * 4);
      // TP: two allreduces per layer, a ring of 2: two steps of half the (n, C) floats each.
      if (tp == 2) round += 2 * 2 * 2 * 2 * hop(n * C * 4 / 2);
      // After the first round: the token ids' hop back from the last stage to the first.
      if (k > 0) round += hop(seqs * 4);
      expect += round;
      INFO("tp=" << tp << " round " << k);
      CHECK(g->stats.token_times[size_t(k)] == Approx(expect).epsilon(1e-9));
    }
    CHECK(g->stats.ttft == g->stats.token_times[0]);
    CHECK(g->stats.tpot == Approx((expect - g->stats.ttft) / (sampling.max_new_tokens - 1)).epsilon(1e-12));
    // Bytes between the stages: every round's activations (rows x C floats per TP rank) and the tokens.
    double pp_bytes = 0;
    for (int k = 0; k < sampling.max_new_tokens; ++k) pp_bytes += tp * (double(rows_of(k).size()) * C * 4 + seqs * 4);
    CHECK(double(g->stats.bytes_pp) == pp_bytes);
  }
}

int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  const int result = Catch::Session().run(argc, argv);
  MPI_Finalize();
  return result;
}
