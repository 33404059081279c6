#include "infer/generate.hpp"

#include <algorithm>
#include <cmath>
#include <optional>
#include <span>

#include "algorithms.hpp"
#include "data/splitmix64.hpp"
#include "model/stage.hpp"
#include "parallel/grid.hpp"
#include "parallel/parallel_trainer.hpp"  // run_placement
#include "parallel/timeline.hpp"
#include "usage_error.hpp"

namespace dtb::infer {
namespace {

using par::Phase;
using par::Traffic;

// Message tags on the pipeline communicator: activations forward, token ids back.
constexpr int kActivationTag = 1, kTokenTag = 2;
// Salt of the sampler's stream, so it shares no numbers with the weights' or the data's.
constexpr uint64_t kSampleSalt = 0x73616d706c65ULL;

// The TP allreduces of the stage, timed as the trainer times them (compute waits).
class TpSum final : public TpReduce {
 public:
  TpSum(coll::Communicator& comm, par::Timeline& tl) : comm_(comm), tl_(tl) {}
  void allreduce(float* data, size_t count) override {
    tl_.blocking(Traffic::kTp, [&] { coll::ring_allreduce(comm_, std::span<float>(data, count)); });
  }
  void allgather(float* data, size_t count) override {
    tl_.blocking(Traffic::kTp, [&] { coll::ring_allgather(comm_, std::span<float>(data, count)); });
  }

 private:
  coll::Communicator& comm_;
  par::Timeline& tl_;
};

StageShard shard_of(const TrainSettings& s, const par::Coord& c) {
  const std::vector<int> b = par::stage_bounds(s.model.n_layer, s.parallel.pp, s.parallel.stage_layers);
  return {b[size_t(c.pp)], b[size_t(c.pp) + 1], c.pp == 0, c.pp == s.parallel.pp - 1, c.tp, s.parallel.tp, false};
}

// The round's rows: round 0 every prompt token of every sequence, then one row per
// sequence, its newest token at the position after the ones before.
std::vector<TokenRow> round_rows(const std::vector<std::vector<int32_t>>& tokens,
                                 const std::vector<std::vector<int32_t>>& prompts, int round) {
  std::vector<TokenRow> rows;
  for (size_t i = 0; i < prompts.size(); ++i) {
    const int from = round == 0 ? 0 : int(prompts[i].size()) + round - 1;
    const int to = int(prompts[i].size()) + round;  // exclusive
    for (int p = from; p < to; ++p) rows.push_back({int32_t(i), p, tokens.empty() ? 0 : tokens[i][size_t(p)]});
  }
  return rows;
}

std::span<std::byte> bytes_of(float* p, size_t n) { return std::as_writable_bytes(std::span<float>(p, n)); }
std::span<std::byte> bytes_of(int32_t* p, size_t n) { return std::as_writable_bytes(std::span<int32_t>(p, n)); }

}  // namespace

int32_t sample_token(const float* logits, int V, const SamplingSettings& s, int seq, int pos) {
  if (s.temperature <= 0) return int32_t(std::max_element(logits, logits + V) - logits);
  const double maxv = *std::max_element(logits, logits + V);
  std::vector<double> p(static_cast<size_t>(V));
  double sum = 0;
  for (int v = 0; v < V; ++v) sum += p[size_t(v)] = std::exp((double(logits[v]) - maxv) / s.temperature);
  // 53 random bits: a uniform double in [0, 1), scaled to the unnormalised total.
  const uint64_t counter = (uint64_t(uint32_t(seq)) << 32) | uint32_t(pos);
  const double u = double(splitmix64_at(s.seed ^ kSampleSalt, counter) >> 11) * 0x1.0p-53 * sum;
  double acc = 0;
  for (int v = 0; v < V; ++v)
    if ((acc += p[size_t(v)]) > u) return v;
  return V - 1;  // u within rounding of the total
}

std::vector<int32_t> byte_tokens(const std::string& text, int vocab_size, const std::string& where) {
  std::vector<int32_t> out;
  for (unsigned char c : text) {
    if (int(c) >= vocab_size)
      throw UsageError(where + ": byte " + std::to_string(int(c)) + " is not a token of the model's vocabulary of " +
                       std::to_string(vocab_size) + " (the tokenizer is one token per byte)");
    out.push_back(int32_t(c));
  }
  return out;
}

std::string byte_text(const std::vector<int32_t>& tokens) {
  std::string out;
  for (int32_t t : tokens) out.push_back(char(t & 0xff));
  return out;
}

void check_request(const TrainSettings& s, const std::vector<std::vector<int32_t>>& prompts,
                   const SamplingSettings& sampling) {
  const ParallelSettings& p = s.parallel;
  if (p.dp != 1)
    throw UsageError("infer: parallel.dp = " + std::to_string(p.dp) +
                     ": must be 1 (generation splits the model into PP stages and TP slices; replicas are not built)");
  if (p.vocab_parallel)
    throw UsageError("infer: parallel.vocab_parallel must be false (the sampler needs every logit on the last stage)");
  if (s.backend != "cpu") throw UsageError("infer: device.backend must be cpu (the stage's kernels)");
  if (prompts.empty()) throw UsageError("infer: no prompt (give --prompt TEXT or --prompts FILE)");
  if (sampling.max_new_tokens < 1) throw UsageError("infer: --max-new-tokens must be >= 1");
  if (sampling.temperature < 0 || !std::isfinite(sampling.temperature))
    throw UsageError("infer: --temperature must be >= 0 (0 = greedy)");
  for (size_t i = 0; i < prompts.size(); ++i) {
    const size_t n = prompts[i].size();
    const std::string which = "infer: prompt " + std::to_string(i + 1) + " (" + std::to_string(n) + " tokens)";
    if (n == 0) throw UsageError(which + " is empty");
    if (n + size_t(sampling.max_new_tokens) > size_t(s.model.n_ctx))
      throw UsageError(which + " + --max-new-tokens " + std::to_string(sampling.max_new_tokens) +
                       " exceeds the model's context, model.n_ctx = " + std::to_string(s.model.n_ctx));
  }
  const int threads = s.threads_set ? s.threads : 1;
  if (threads != 1 && p.clock == "virtual" && p.device_gflops == 0)
    throw UsageError("train.threads = " + std::to_string(threads) +
                     ": must be 1 with net.clock=virtual and no device model (the clock charges the main thread's CPU time)");
}

Generation generate(coll::Communicator& world, const TrainSettings& s, const std::vector<float>& params,
                    const std::vector<std::vector<int32_t>>& prompts, const SamplingSettings& sampling) {
  check_request(s, prompts, sampling);
  if (params.size() != num_parameters(s.model))
    throw UsageError("infer: " + std::to_string(params.size()) + " parameters given, the model has " +
                     std::to_string(num_parameters(s.model)));
  const par::Layout layout{s.parallel.dp, s.parallel.pp, s.parallel.tp};
  if (layout.world() != world.size())
    throw UsageError("infer: parallel.pp x parallel.tp = " + std::to_string(layout.world()) + " ranks, but the run has " +
                     std::to_string(world.size()) + " (mpirun -np " + std::to_string(layout.world()) + ")");
  set_num_threads(s.threads_set ? s.threads : 1);
  const par::Placement placement = par::run_placement(s, world.size());
  const par::Coord coord = par::grid_coord(layout, par::grid_rank_of(placement, world.rank()));
  std::optional<coll::Communicator> tp = world.split(par::tp_color(layout, coord), coord.tp);
  std::optional<coll::Communicator> pp = world.split(par::pp_color(layout, coord), coord.pp);
  const bool first = coord.pp == 0, last = coord.pp == layout.pp - 1;

  // The rank's stage with its slices of the checkpoint's tensors (one row, one slot: the
  // training activations are not used; forward_cached has its own).
  TransformerStage<float> stage(s.model, shard_of(s, coord), 1, 1, 1, StageLayout::kLayerMajor,
                                cpu_kernel_set<float>(s.kernels));
  for (const ShardRun& r : stage.runs())
    std::copy_n(params.begin() + std::ptrdiff_t(r.global), r.len, stage.params() + r.local);
  int64_t prompt_tokens = 0;
  for (const auto& p : prompts) prompt_tokens += int64_t(p.size());
  const int seqs = int(prompts.size());
  KvCache<float> cache = stage.make_kv_cache(seqs, int(std::max<int64_t>(prompt_tokens, seqs)));

  const double efficiency = s.parallel.device_efficiency > 0 ? s.parallel.device_efficiency : 1.0;
  par::Timeline tl(world, [&] { return stage.flops(); }, s.parallel.device_gflops * 1e9 * efficiency,
                   s.parallel.device_memory_gbs * 1e9);
  TpSum tp_sum(*tp, tl);
  Generation g;
  g.tokens = prompts;
  GenerationStats& st = g.stats;
  st.sequences = seqs, st.new_tokens = sampling.max_new_tokens, st.prompt_tokens = prompt_tokens;
  std::vector<float> inbox, outbox;  // (rows, C) residual received / being sent
  std::vector<int32_t> new_tokens(static_cast<size_t>(seqs));
  coll::Request act_send, token_send;
  const std::vector<std::vector<int32_t>> no_tokens;  // the rows' token ids matter on the first stage only
  const size_t C = size_t(s.model.n_embd);

  world.sync_clocks();  // every rank starts the clock together, weights in place
  const coll::LinkStats at_start = world.stats();
  tl.start_step(world.rank(), 0);
  const double t0 = world.clock().now(netem::Stream::kCompute);
  for (int round = 0; round < sampling.max_new_tokens; ++round) {
    if (round > 0 && first && !last) {  // the tokens the last stage drew in the round before
      tl.blocking(Traffic::kPp, [&] { pp->recv(layout.pp - 1, bytes_of(new_tokens.data(), new_tokens.size()), kTokenTag); });
      for (int i = 0; i < seqs; ++i) g.tokens[size_t(i)].push_back(new_tokens[size_t(i)]);
    }
    const std::vector<TokenRow> rows = round_rows(first ? g.tokens : no_tokens, prompts, round);
    const size_t n = rows.size();
    if (!first) {
      inbox.resize(n * C);
      tl.blocking(Traffic::kPp, [&] { pp->recv(pp->rank() - 1, bytes_of(inbox.data(), inbox.size()), kActivationTag); });
    }
    tl.set_phase(Phase::kForward);
    const float* out = stage.forward_cached(cache, rows, inbox.data(), tp_sum);
    tl.set_phase(Phase::kHarness);
    if (!last) {
      if (act_send.pending()) tl.post(Traffic::kPp, [&] { pp->wait(act_send); });
      outbox.assign(out, out + n * C);
      tl.post(Traffic::kPp, [&] { act_send = pp->isend(pp->rank() + 1, bytes_of(outbox.data(), outbox.size()), kActivationTag); });
      continue;
    }
    // The last stage: each sequence's token from its last row's logits.
    const int V = s.model.vocab_size;
    for (size_t r = 0; r < n; ++r)
      if (r + 1 == n || rows[r + 1].seq != rows[r].seq)
        new_tokens[size_t(rows[r].seq)] = sample_token(out + r * size_t(V), V, sampling, rows[r].seq, rows[r].pos + 1);
    tl.charge();
    st.token_times.push_back(world.clock().now(netem::Stream::kCompute) - t0);
    if (first) {
      for (int i = 0; i < seqs; ++i) g.tokens[size_t(i)].push_back(new_tokens[size_t(i)]);
    } else {
      if (token_send.pending()) tl.post(Traffic::kPp, [&] { pp->wait(token_send); });
      tl.post(Traffic::kPp, [&] { token_send = pp->isend(0, bytes_of(new_tokens.data(), new_tokens.size()), kTokenTag); });
    }
  }
  if (first && !last) {  // the last round's tokens
    tl.blocking(Traffic::kPp, [&] { pp->recv(layout.pp - 1, bytes_of(new_tokens.data(), new_tokens.size()), kTokenTag); });
    for (int i = 0; i < seqs; ++i) g.tokens[size_t(i)].push_back(new_tokens[size_t(i)]);
  }
  for (coll::Request* r : {&act_send, &token_send})
    if (r->pending()) tl.post(Traffic::kPp, [&] { pp->wait(*r); });
  const RankStepRecord rec = tl.finish_step();

  // Every rank gets the last stage's times (TP rank 0's) and the first stage's tokens.
  const bool reporter = last && coord.tp == 0;
  st.token_times.resize(size_t(sampling.max_new_tokens));
  for (double& t : st.token_times) t = world.untimed_max(reporter ? t : 0.0);
  for (size_t i = 0; i < g.tokens.size(); ++i) {
    g.tokens[i].resize(prompts[i].size() + size_t(sampling.max_new_tokens), -1);  // the other stages' copies
    for (int32_t& t : g.tokens[i]) t = int32_t(world.untimed_max(first && coord.tp == 0 ? double(t) : -1.0));
  }
  const coll::LinkStats& now = world.stats();
  st.bytes_intra = uint64_t(world.untimed_sum(int64_t(now.bytes_intra - at_start.bytes_intra)));
  st.bytes_inter = uint64_t(world.untimed_sum(int64_t(now.bytes_inter - at_start.bytes_inter)));
  st.bytes_pp = uint64_t(world.untimed_sum(int64_t(rec.bytes_pp)));
  st.bytes_tp = uint64_t(world.untimed_sum(int64_t(rec.bytes_tp)));
  st.ttft = st.token_times.front();
  st.total = st.token_times.back();
  st.tpot = sampling.max_new_tokens > 1 ? (st.total - st.ttft) / (sampling.max_new_tokens - 1) : 0;
  st.tokens_per_s = st.total > 0 ? double(seqs) * sampling.max_new_tokens / st.total : 0;
  return g;
}

}  // namespace dtb::infer
