#include "sim/simulator.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <memory>

#include "algorithms.hpp"
#include "codec.hpp"
#include "compressed_server.hpp"
#include "network.hpp"
#include "parallel/cocktail.hpp"
#include "parallel/demo.hpp"
#include "parallel/dp_strategy.hpp"
#include "parallel/pp_compress.hpp"
#include "parallel/step_scalars.hpp"
#include "sim/collective_model.hpp"
#include "sim/model_costs.hpp"
#include "sim/paths.hpp"
#include "sim/pipeline.hpp"
#include "usage_error.hpp"

namespace dtb::sim {
namespace {

// Everything one simulation needs, computed once.
struct Context {
  const SimSettings& s;
  const par::Layout g;                        // the trainer's grid
  const par::Placement placement;             // which world rank plays each grid position
  const std::vector<par::Coord> coords;       // per world rank: its grid position
  const netem::NetworkModel net;
  const ModelCosts model;
  const std::unique_ptr<coll::Codec> codec;  // null = raw gradients
  const double peak;                          // FLOP/s per device
  const double rate;                          // FLOP/s achieved per device
  const double memory_bandwidth;              // bytes/s; 0 = the optimizer is free
  const double act_bytes;                     // one activation value
  const double grad_bytes;                    // one gradient value as stored

  Context(const SimSettings& settings, const SimInputs& in)
      : s(settings),
        g(settings.grid),
        placement(in.placement),
        coords(coords_of(g, in.placement)),
        net(closed_form_model(in.profile)),
        model(model_costs(settings)),
        codec(coll::make_codec(settings.dp_codec)),
        peak(settings.peak_flops > 0 ? settings.peak_flops : in.device.peak(settings.compute)),
        rate(peak * (settings.efficiency > 0 ? settings.efficiency : in.device.efficiency)),
        memory_bandwidth(settings.memory_bandwidth > 0 ? settings.memory_bandwidth : in.device.memory_bandwidth),
        act_bytes(precision_bytes(settings.compute)),
        grad_bytes(precision_bytes(settings.grad_precision)) {}

  double micro_tokens() const { return double(s.micro_batch()) * s.seq_len; }
  double activation_message() const { return micro_tokens() * s.model.n_embd * act_bytes; }
  // One pipeline message: the activation (FORWARD) or its gradient, as precision.compute
  // stores it, or parallel.pp_compress's wire in steady state (after the warm-up and the
  // first epoch, every sample quantized): the trainer's own count, pp_compress.hpp.
  double pp_message(bool forward) const {
    if (s.pp_compress == "none") return activation_message();
    const int bits = forward ? s.pp_fw_bits : s.pp_bw_bits;
    return double(par::pp_wire_bytes(size_t(s.micro_batch()), 0, s.seq_len, s.model.n_embd, bits));
  }
  // Seconds for FLOPS_PER_TOKEN of one micro-batch.
  double compute(double flops_per_token) const { return flops_per_token * micro_tokens() / rate; }
  // Gradient bytes on the wire for ELEMENTS values: the codec's encoded size, or raw.
  double grad_wire(double elements) const {
    return codec ? double(codec->encoded_bytes(size_t(std::ceil(elements)))) : elements * grad_bytes;
  }
  // The world rank playing grid position (T, D, P), and the world ranks of a group.
  int rank(int t, int d, int p) const { return placement.ranks[size_t(par::grid_rank(g, {d, p, t}))]; }
  std::vector<int> world_ranks(const std::vector<int>& grid_ranks) const {
    std::vector<int> r;
    for (int gr : grid_ranks) r.push_back(placement.ranks[size_t(gr)]);
    return r;
  }
  std::vector<int> tp_group(int pp, int dp) const { return world_ranks(par::tp_group(g, {dp, pp, 0})); }
  std::vector<int> dp_group(int pp, int tp) const { return world_ranks(par::dp_group(g, {0, pp, tp})); }

  // The DP buckets' collective for buckets of ELEMENTS: net.algo's allreduce, or ZeRO-1's
  // ring reduce-scatter; with the codec across sites only, hier's trees carry them raw.
  CollectiveSpec dp_spec(double elements) const {
    return {s.dp_algo, s.dp_servers, s.dp_rounds, s.zero1 ? coll::Op::kReduceScatter : coll::Op::kAllreduce,
            s.dp_codec_across_sites ? elements * grad_bytes : -1};
  }
  // Elements per DP bucket of a buffer of N (parallel.bucket_mb; 0 = one bucket).
  double bucket_elements(double n) const {
    return s.dp_bucket_bytes > 0 ? std::max(1.0, std::floor(s.dp_bucket_bytes / grad_bytes)) : n;
  }
  // Parameter elements whose AdamW step (and moments) this rank holds: ZeRO-1 its DP block.
  double updated(int st) const { return model.stages[size_t(st)].buffer.total() / (s.zero1 ? g.dp : 1); }

  static std::vector<par::Coord> coords_of(const par::Layout& g, const par::Placement& p) {
    std::vector<par::Coord> out(p.ranks.size());
    for (size_t gr = 0; gr < p.ranks.size(); ++gr) out[size_t(p.ranks[gr])] = par::grid_coord(g, int(gr));
    return out;
  }
};

const CollectiveSpec kTpRing{Algo::kRing, 0, 0};  // Megatron's TP allreduce (NCCL ring)

// One TP allreduce of a micro-batch's activations on stage ST of replica DP (0 at TP = 1).
// The TP allreduces come back to back (a layer's compute between them is the same on every
// TP rank), and a ring's ranks leave it at different times: each next one starts from where
// the previous one left each rank. Charged at that steady pace: the growth per allreduce
// of the latest rank's time over a run of them (the ring's own time where links are alike).
constexpr int kTpRun = 8;
double tp_allreduce(const Context& c, int st, int dp) {
  const std::vector<int> group = c.tp_group(st, dp);
  if (group.size() <= 1) return 0;
  auto rounds = [&](const coll::RoundSink& emit) {
    coll::ring_allreduce_rounds(int(group.size()), c.activation_message(), emit);
  };
  std::vector<double> at(group.size(), 0.0);
  double half = 0;
  for (int k = 1; k <= kTpRun; ++k) {
    at = coll::replay_each(c.net, group, rounds, at);
    if (k == kTpRun / 2) half = *std::max_element(at.begin(), at.end());
  }
  return (*std::max_element(at.begin(), at.end()) - half) / (kTpRun / 2);
}

// The vocabulary-parallel collectives of one micro-batch on the TP group (0 otherwise):
// the embedding's sum and the LM head's input gradient are allreduces of (B, T, C) like
// the blocks'; the cross-entropy gathers 3 floats per row from every rank (ring allgather).
struct VocabComm {
  double embed = 0, loss = 0, head_grad = 0;
};
VocabComm vocab_comm(const Context& c, const Stage& st, int stage, int dp, double ar) {
  if (!st.vocab_split) return {};
  const double gathered = c.micro_tokens() * 3 * sizeof(float) * c.g.tp;
  return {st.first ? ar : 0, st.last ? coll::ring_allgather_model(c.net, c.tp_group(stage, dp), gathered) : 0,
          st.last ? ar : 0};
}

// A layer's forward: two pieces, each ending in a TP allreduce of AR seconds.
void layer_forward(const Context& c, const Stage& st, double ar, std::vector<Piece>& out) {
  out.push_back({c.compute(st.flops.layer.fwd_attn), ar});
  out.push_back({c.compute(st.flops.layer.fwd_mlp), ar});
}

std::vector<Piece> forward_pass(const Context& c, const Stage& st, double ar, const VocabComm& v) {
  std::vector<Piece> out;
  if (v.embed > 0) out.push_back({0, v.embed});
  for (int l = 0; l < st.layers; ++l) layer_forward(c, st, ar, out);
  if (st.last) out.push_back({c.compute(st.flops.head_fwd), v.loss});
  return out;
}

// The backward from the LM head down; after each layer its gradients are final (the
// trainer's ready(layer offset)); with recomputation each layer first redoes its forward.
std::vector<Piece> backward_pass(const Context& c, const Stage& st, double ar, const VocabComm& v) {
  std::vector<Piece> out;
  const RankBuffer& b = st.buffer;
  if (st.last) out.push_back({c.compute(st.flops.head_bwd), v.head_grad, b.layer_offset(st.layers)});
  for (int l = st.layers - 1; l >= 0; --l) {
    if (c.s.recompute) layer_forward(c, st, ar, out);
    out.push_back({c.compute(st.flops.layer.bwd_mlp), ar});
    out.push_back({c.compute(st.flops.layer.bwd_attn), ar, b.layer_offset(l)});
  }
  return out;
}

// The DP buckets of stage ST on replica DP, cut from the end of its buffer
// (parallel/grad_sync.cpp), each allreduced over the DP group with net.algo's cost model:
// when DP's rank of the group is done, all starting together (the latest of the TP ranks').
std::vector<Bucket> dp_buckets(const Context& c, int st, int dp) {
  if (c.g.dp == 1 || !c.s.per_step_buckets()) return {};  // DiLoCo: add_outer_step; 1-bit Adam: add_compressed_momentum
  const double n = c.model.stages[size_t(st)].buffer.total();
  const double per = c.bucket_elements(n);
  if (n / per > 1e6)
    throw UsageError("parallel.bucket_mb = " + std::to_string(c.s.dp_bucket_bytes / 1048576.0) + ": " +
                     std::to_string(int64_t(std::ceil(n / per))) + " buckets per rank; the simulator takes at most 1e6");
  auto cost = [&](double elements) {
    double worst = 0;
    for (int t = 0; t < c.g.tp; ++t)
      worst = std::max(worst, allreduce_each(c.net, c.dp_group(st, t), c.dp_spec(elements), c.grad_wire(elements))[size_t(dp)]);
    return worst;
  };
  // Where a NIC or host cap binds: the bucket's messages on the egress NIC of the stage's
  // first TP rank, which its PP sends share (run_pipeline).
  auto nic = [&](double elements) {
    return allreduce_egress(c.net, c.dp_group(st, 0), c.dp_spec(elements), c.grad_wire(elements))[size_t(dp)];
  };
  std::vector<Bucket> out;
  const double full = cost(per);
  const std::vector<coll::NicBusy> full_nic = nic(per);
  for (double hi = n; hi > 0;) {
    const double lo = std::max(0.0, hi - per);
    const bool whole = hi - lo == per;
    out.push_back({lo, whole ? full : cost(hi - lo), -std::numeric_limits<double>::infinity(),
                   whole ? full_nic : nic(hi - lo)});
    hi = lo;
  }
  return out;
}

// The tied embedding's gradient (raw, as the trainer sends it), summed between the first
// and the last stage of replica DP (PP > 1; null otherwise): a ring of two per TP rank,
// each end done when the ring reaches it (the latest of the TP ranks').
TiedSync tied_embedding_sync(const Context& c, int dp) {
  if (c.g.pp == 1 || !c.s.model.tie_embeddings) return nullptr;  // untied: nothing ties the stages
  const double bytes = c.model.stages[0].wte_rank * c.grad_bytes;  // each TP rank's wte
  return [&c, dp, bytes](double first_ready, double last_ready, netem::NicQueue& first_nic,
                         netem::NicQueue& last_nic) {
    std::pair<double, double> done{first_ready, last_ready};
    const double start[2] = {first_ready, last_ready};
    auto ring = [&](const coll::RoundSink& emit) { coll::ring_allreduce_rounds(2, bytes, emit); };
    // TP rank 0's ring on the stages' NICs (whose buckets dp_buckets books there), the others' on their own.
    const int channel = netem::channel_index(netem::Stream::kComm);
    const coll::SharedNic shared[2] = {{0, &first_nic, channel}, {1, &last_nic, channel}};
    for (int t = 0; t < c.g.tp; ++t) {
      const int pair[2] = {c.rank(t, dp, 0), c.rank(t, dp, c.g.pp - 1)};
      const std::vector<double> end =
          coll::replay_each(c.net, pair, ring, start, t == 0 ? std::span(shared) : std::span<const coll::SharedNic>());
      done = {std::max(done.first, end[0]), std::max(done.second, end[1])};
    }
    return done;
  };
}

// AdamW on one rank of stage ST, memory-bound: it reads params, grads, m and v and writes
// params, m and v (+ the fp32 master copy, read and written, with half parameters).
double optimizer_time(const Context& c, int st) {
  if (c.memory_bandwidth <= 0) return 0;
  const double p = precision_bytes(c.s.param_precision);
  const double master = c.s.param_precision == Precision::kFp32 ? 0 : 8;
  return c.updated(st) * (2 * p + c.grad_bytes + 16 + master) / c.memory_bandwidth;
}

// Boundary ST -> ST+1 of replica DP in one direction: the worst of its TP ranks' links.
Hop boundary(const Context& c, int st, int dp, bool forward) {
  Hop worst;
  for (int t = 0; t < c.g.tp; ++t) {
    int a = c.rank(t, dp, st), b = c.rank(t, dp, st + 1);
    if (!forward) std::swap(a, b);
    worst.latency = std::max(worst.latency, c.net.alpha(a, b));
    worst.serialize = std::max(worst.serialize, c.pp_message(forward) * c.net.beta(a, b));
    const double bytes = c.pp_message(forward);
    worst.nic = std::max(worst.nic, bytes * coll::nic_betas(c.net, a, b, bytes).egress);
  }
  return worst;
}

// When each rank of stage ST can begin its first operation, per replica and TP rank, the
// ranks having left the previous step at LEFT (per world rank): after AdamW (OPTIMIZER[d]
// seconds on replica d: a straggler's is longer), and with ZeRO-1 after the parameter
// allgather, bucket after bucket, each DP group's ring replayed from when its ranks get there.
std::vector<std::vector<double>> stage_ready(const Context& c, int st, const std::vector<double>& optimizer,
                                             const std::vector<double>& left) {
  std::vector<std::vector<double>> ready(size_t(c.g.dp), std::vector<double>(size_t(c.g.tp)));
  const double n = c.model.stages[size_t(st)].buffer.total(), p = precision_bytes(c.s.param_precision);
  const double per = c.bucket_elements(n);
  for (int t = 0; t < c.g.tp; ++t) {
    const std::vector<int> group = c.dp_group(st, t);
    std::vector<double> at;
    for (size_t d = 0; d < group.size(); ++d) at.push_back(left[size_t(group[d])] + optimizer[d]);
    if (c.s.zero1 && c.g.dp > 1)
      for (double hi = n; hi > 0; hi = std::max(0.0, hi - per))
        at = coll::replay_each(c.net, group, [&](const coll::RoundSink& emit) {
          coll::ring_allgather_rounds(c.g.dp, std::min(per, hi) * p, emit);
        }, at);
    for (int d = 0; d < c.g.dp; ++d) ready[size_t(d)][size_t(t)] = at[size_t(d)];
  }
  return ready;
}

// ZeRO-1's parameter allgather on stage ST, every rank starting together: the latest
// rank's time (0 without ZeRO-1).
double param_allgather(const Context& c, int st) {
  double latest = 0;
  const std::vector<double> none(size_t(c.g.dp), 0.0);
  for (const std::vector<double>& ready : stage_ready(c, st, none, std::vector<double>(size_t(c.g.world()), 0.0)))
    latest = std::max(latest, *std::max_element(ready.begin(), ready.end()));
  return latest;
}

struct Replica {  // one DP replica's pipeline
  PipelineInput in;
  std::vector<double> optimizer;    // per stage: AdamW before its first operation
  std::vector<double> allgather;    // per stage: ZeRO-1's parameter allgather after it
  std::vector<double> dp_own;       // per stage: its buckets' own time (the group launching together)
  // Per stage and TP rank: when that rank's DP group is done with the last bucket (as the
  // replicas launch it; empty before the first pass): a TP rank whose group is faster
  // joins before the stage's slowest.
  std::vector<std::vector<double>> dp_done;
  PipelineTimes times, without_pp;  // with PP messages, and with them free
};

// A straggler (faults.slow_ranks) stretches its stage's compute: the stage's TP ranks meet
// in every allreduce, so the slowest of them sets the pace.
double stage_slowdown(const Context& c, int st, int dp) {
  double f = 1;
  for (int t = 0; t < c.g.tp; ++t) f = std::max(f, c.s.faults.factor(c.rank(t, dp, st)));
  return f;
}

std::vector<Piece> slowed(std::vector<Piece> pieces, double f) {
  for (Piece& p : pieces) p.compute *= f;
  return pieces;
}

Replica build_replica(const Context& c, int dp) {
  Replica r;
  r.in.microbatches = c.s.microbatches;
  r.in.schedule = c.s.schedule;
  r.in.tied = tied_embedding_sync(c, dp);
  for (int st = 0; st < c.g.pp; ++st) {
    const Stage& stage = c.model.stages[size_t(st)];
    const double ar = tp_allreduce(c, st, dp);
    const VocabComm v = vocab_comm(c, stage, st, dp, ar);
    const double slow = stage_slowdown(c, st, dp);
    r.optimizer.push_back(slow * optimizer_time(c, st));
    r.allgather.push_back(param_allgather(c, st));
    r.in.stages.push_back({slowed(forward_pass(c, stage, ar, v), slow), slowed(backward_pass(c, stage, ar, v), slow),
                           r.optimizer.back(), dp_buckets(c, st, dp)});
    r.dp_own.push_back(0);
    r.dp_done.emplace_back();
    for (const Bucket& b : r.in.stages.back().buckets) r.dp_own.back() += b.cost;
  }
  for (int st = 0; st + 1 < c.g.pp; ++st) {
    r.in.forward.push_back(boundary(c, st, dp, true));
    r.in.backward.push_back(boundary(c, st, dp, false));
  }
  return r;
}

// One step of replica R, each stage starting its first operation at its start.
void run_replica(Replica& r) {
  r.times = run_pipeline(r.in);
  PipelineInput free_pp = r.in;  // and no waits for DP peers (their time follows the PP messages')
  std::fill(free_pp.forward.begin(), free_pp.forward.end(), Hop{});
  std::fill(free_pp.backward.begin(), free_pp.backward.end(), Hop{});
  for (StageWork& w : free_pp.stages)
    for (Bucket& b : w.buckets) b.until = -std::numeric_limits<double>::infinity();
  r.without_pp = run_pipeline(free_pp);
}

// The trainer's norm group for these settings (parallel/step_scalars.hpp); the step
// simulated for 1-bit Adam / QuantizedAdam is one after the warm-up.
par::NormGroup norm_group(const SimSettings& s) {
  return par::norm_group({s.strategy, !s.momentum_codec.empty(), s.zero1, algo_name(s.dp_algo),
                          s.faults.grad_spike_step > 0 && s.faults.grad_spike_rank >= 0});
}

// The grad-norm (and loss) allreduce that ends the trainer's step, over the trainer's
// groups in their order, with its rounds (step_scalars.hpp: a binomial tree of a few
// floats over the world, each replica's TP x PP ranks, or nothing in pure DP), blocking.
// Each rank enters it when its stage of its replica has joined; returns when each rank
// leaves it.
std::vector<double> norm_ends(const Context& c, const std::vector<Replica>& replicas) {
  std::vector<double> start(size_t(c.g.world()));
  for (int r = 0; r < c.g.world(); ++r) {
    const par::Coord& at = c.coords[size_t(r)];
    const Replica& rep = replicas[size_t(at.dp)];
    const double done = rep.times.done[size_t(at.pp)];
    start[size_t(r)] = done;
    const std::vector<double>& dp = rep.dp_done[size_t(at.pp)];
    if (dp.empty()) continue;
    const double slowest = *std::max_element(dp.begin(), dp.end());
    if (std::abs(done - slowest) <= 1e-12 * std::max(1.0, done))  // the DP sync ends the stage
      start[size_t(r)] = done - (slowest - dp[size_t(at.tp)]);
  }
  const par::NormGroup group = norm_group(c.s);
  std::map<int, std::map<int, int>> groups;  // color -> key -> world rank
  for (int r = 0; r < c.g.world(); ++r) {
    const par::NormMember m = par::norm_member(group, c.coords[size_t(r)], r);
    groups[m.color][m.key] = r;
  }
  std::vector<double> end(start.size());
  for (const auto& [color, members] : groups) {
    std::vector<int> ranks;
    std::vector<double> at;
    for (const auto& [key, r] : members) ranks.push_back(r), at.push_back(start[size_t(r)]);
    const std::vector<double> left = coll::replay_each(c.net, ranks, [&](const coll::RoundSink& emit) {
      par::norm_rounds(group, int(ranks.size()), emit);
    }, at);
    for (size_t i = 0; i < ranks.size(); ++i) end[size_t(ranks[i])] = left[i];
  }
  return end;
}

// The DP buckets as the replicas launched them in the previous pass: each group's
// collective replayed with each rank starting when its replica's stage launched the bucket
// (a replica launching late finds its peers waiting, an early one waits for them). A
// bucket then ends on replica d no earlier than that replay says (UNTIL, the latest of the
// TP ranks' groups), nor sooner after its launch than d's part alone takes (COST: its peers
// long there), so that a launch that moved since does not carry a wait twice. Launch
// patterns repeat from bucket to bucket: each distinct one is replayed once.
void couple_buckets(const Context& c, std::vector<Replica>& replicas) {
  if (c.g.dp == 1 || !c.s.per_step_buckets()) return;
  constexpr double kLongAgo = 1e3;  // seconds before: peers that are long there
  for (int st = 0; st < c.g.pp; ++st) {
    const std::vector<Bucket>& buckets = replicas.front().in.stages[size_t(st)].buckets;
    auto replay = [&](double elements, const std::vector<double>& start) {  // [tp][dp]: when each is done
      std::vector<std::vector<double>> done;
      for (int t = 0; t < c.g.tp; ++t)
        done.push_back(allreduce_each(c.net, c.dp_group(st, t), c.dp_spec(elements), c.grad_wire(elements), start));
      return done;
    };
    auto latest = [](const std::vector<std::vector<double>>& done, size_t d) {
      double t = -std::numeric_limits<double>::infinity();
      for (const std::vector<double>& group : done) t = std::max(t, group[d]);
      return t;
    };
    std::map<std::vector<int64_t>, std::vector<std::vector<double>>> seen;  // elements, launches (ns) -> when each is done
    std::map<int64_t, std::vector<double>> alone;              // elements -> each rank's part alone
    for (size_t b = 0; b < buckets.size(); ++b) {
      const double elements = (b == 0 ? c.model.stages[size_t(st)].buffer.total() : buckets[b - 1].offset) -
                              buckets[b].offset;
      std::vector<double> start;
      for (const Replica& r : replicas) start.push_back(r.times.bucket_start[size_t(st)][b]);
      const double first = *std::min_element(start.begin(), start.end());
      std::vector<int64_t> key = {std::llround(elements)};
      for (double& t : start) key.push_back(std::llround((t -= first) * 1e9));
      auto done = seen.find(key);
      if (done == seen.end()) done = seen.emplace(std::move(key), replay(elements, start)).first;
      auto own = alone.find(std::llround(elements));
      if (own == alone.end()) {
        std::vector<double> part(replicas.size());
        for (size_t d = 0; d < part.size(); ++d) {
          std::vector<double> peers_there(replicas.size(), -kLongAgo);
          peers_there[d] = 0;
          part[d] = latest(replay(elements, peers_there), d);
        }
        own = alone.emplace(std::llround(elements), std::move(part)).first;
      }
      for (size_t d = 0; d < replicas.size(); ++d) {
        Bucket& bucket = replicas[d].in.stages[size_t(st)].buckets[b];
        bucket.cost = own->second[d];
        bucket.until = first + latest(done->second, d);
        if (b + 1 < buckets.size()) continue;
        std::vector<double>& last = replicas[d].dp_done[size_t(st)];
        last.clear();
        for (const std::vector<double>& group : done->second) last.push_back(first + group[d]);
      }
    }
  }
}

// When a stage whose TP ranks start at AT (one time each) is as far as if they had all
// started together: the ranks meet in the TP ring's allreduces, which carry only part of
// a late rank's delay to the others. The difference its run of allreduces makes to the
// latest rank's time (the start itself at TP = 1).
double stage_start(const Context& c, int st, int dp, const std::vector<double>& at) {
  if (at.size() == 1) return at[0];
  const std::vector<int> group = c.tp_group(st, dp);
  auto rounds = [&](const coll::RoundSink& emit) {
    coll::ring_allreduce_rounds(int(group.size()), c.activation_message(), emit);
  };
  std::vector<double> skewed = at, together(at.size(), 0.0);
  for (int k = 0; k < kTpRun; ++k) {
    skewed = coll::replay_each(c.net, group, rounds, skewed);
    together = coll::replay_each(c.net, group, rounds, together);
  }
  return *std::max_element(skewed.begin(), skewed.end()) - *std::max_element(together.begin(), together.end());
}

void fill_times(const Context& c, const std::vector<Replica>& replicas, double step, SimResult& r);

// The mean of TIMES, part by part.
StepTimes mean(const std::vector<StepTimes>& times) {
  StepTimes m;
  for (const StepTimes& t : times)
    for (auto [sum, part] : {std::pair{&m.compute_fwd, t.compute_fwd}, {&m.compute_bwd, t.compute_bwd}, {&m.tp, t.tp},
                             {&m.bubble, t.bubble}, {&m.pp_exposed, t.pp_exposed}, {&m.dp_exposed, t.dp_exposed},
                             {&m.other, t.other}, {&m.optimizer, t.optimizer}, {&m.step, t.step},
                             {&m.pp_total, t.pp_total}, {&m.dp_total, t.dp_total}, {&m.ideal, t.ideal}})
      *sum += part / double(times.size());
  return m;
}

// Steady state: a rank starts its next step when it leaves the norm's allreduce, and the
// ranks leave it at different times (a tree's root first). Steps run from where the
// previous one left each stage (its latest TP rank), on rank 0's clock as the trainer's
// step line reads it, for a few steps. Where the replicas meet in no norm (pure DP, a norm
// inside each replica) only their DP buckets couple them: when they start apart otherwise
// than in the last pass, each pass runs twice, the second time with its buckets' waits for
// this pass's launches (a straggling replica's), not the last pass's; and the period may
// alternate between two values (the trainer's too: 714.5 / 674.5 ms on issue 10's 16
// ranks, and the simulator's 714.9 / 674.8). Returns the mean of the last two steps' times.
constexpr int kSteadyStateSteps = 4, kAveraged = 2;
StepTimes run_steps(const Context& c, std::vector<Replica>& replicas) {
  std::vector<double> left(size_t(c.g.world()), 0.0);  // per world rank: when it left the previous step
  std::vector<double> coupled_at;                      // the LEFT the buckets were last coupled at
  const bool coupled = c.g.dp > 1 && c.s.per_step_buckets();
  std::vector<StepTimes> last;
  for (int k = 0; k < kSteadyStateSteps; ++k) {
    for (int st = 0; st < c.g.pp; ++st) {
      std::vector<double> optimizer;
      for (const Replica& r : replicas) optimizer.push_back(r.optimizer[size_t(st)]);
      const std::vector<std::vector<double>> ready = stage_ready(c, st, optimizer, left);
      for (int d = 0; d < c.g.dp; ++d) replicas[size_t(d)].in.stages[size_t(st)].start = stage_start(c, st, d, ready[size_t(d)]);
    }
    for (Replica& r : replicas) run_replica(r);
    if (coupled && left != coupled_at) {
      couple_buckets(c, replicas);
      for (Replica& r : replicas) run_replica(r);
      coupled_at = left;
    }
    const std::vector<double> end = norm_ends(c, replicas);
    const double period = end[0];
    for (size_t r = 0; r < end.size(); ++r) left[r] = end[r] - period;
    couple_buckets(c, replicas);
    if (k + kAveraged < kSteadyStateSteps) continue;
    SimResult r;
    fill_times(c, replicas, period, r);
    last.push_back(r.time);
  }
  return mean(last);
}

// The same step with every message free: the ideal step.
double ideal_step(const Replica& r) {
  PipelineInput in = r.in;
  in.tied = nullptr;
  for (size_t st = 0; st < in.stages.size(); ++st) in.stages[st].start = r.optimizer[st];
  for (StageWork& w : in.stages) {
    for (auto* pass : {&w.fwd, &w.bwd})
      for (Piece& p : *pass) p.allreduce = 0;
    for (Bucket& b : w.buckets) b = {b.offset, 0, -std::numeric_limits<double>::infinity(), {}};
  }
  std::fill(in.forward.begin(), in.forward.end(), Hop{});
  std::fill(in.backward.begin(), in.backward.end(), Hop{});
  return run_pipeline(in).sync_end();
}

MemoryPerRank memory_per_rank(const Context& c) {
  MemoryPerRank best;
  const double p = precision_bytes(c.s.param_precision);
  const double master = c.s.param_precision == Precision::kFp32 ? 0 : 4;
  for (int st = 0; st < c.g.pp; ++st) {
    const Stage& stage = c.model.stages[size_t(st)];
    const double n = stage.buffer.total();  // one TP rank's parameters, as the trainer lays them out
    MemoryPerRank m;
    m.stage = st;
    m.params = n * p;
    m.grads = n * c.grad_bytes;
    m.optimizer = c.updated(st) * (8 + master);  // Adam's m and v in fp32, and the master copy (ZeRO-1: its block)
    if (c.s.inner_steps > 0) m.optimizer += n * 12;  // DiLoCo: fp32 anchor, outer momentum, pseudo-gradient
    if (!c.s.momentum_codec.empty()) m.optimizer += n * 8;  // 1-bit Adam: fp32 worker and server errors
    const int in_flight = par::live_microbatches(c.s.schedule, st, c.g.pp, c.s.microbatches);
    const double per_token = c.s.recompute
                                 ? in_flight * stage.checkpoint_per_token + stage.recompute_working_per_token
                                 : in_flight * stage.activations_per_token;
    m.activations = per_token * c.micro_tokens() * c.act_bytes;
    if (c.s.pp_compress == "aqsgd") {  // every sample's buffer at both ends of each boundary, fp32 as the trainer's
      const int sides = (st > 0) + (st + 1 < c.g.pp);
      m.pp_buffers = double(par::pp_buffer_bytes(size_t(c.s.epoch_samples), c.s.seq_len, c.s.model.n_embd, sides));
    }
    if (m.total() > best.total()) best = m;
  }
  return best;
}

// Bytes every rank sends per step, by link class, averaged over the ranks; and the
// slowest link and largest latency among the links that carry them.
void count_traffic(const Context& c, SimResult& r) {
  coll::Traffic tp, pp, dps;
  const int m = c.s.microbatches;
  for (int st = 0; st < c.g.pp; ++st) {
    const Stage& stage = c.model.stages[size_t(st)];
    const int allreduces = ((c.s.recompute ? 6 : 4) * stage.layers + (stage.vocab_split ? stage.first + stage.last : 0)) * m;
    const double tp_bytes = c.activation_message() * allreduces;
    const double buckets = c.s.dp_bucket_bytes > 0 ? std::ceil(stage.buffer.total() * c.grad_bytes / c.s.dp_bucket_bytes) : 1;
    const double dp_wire = c.grad_wire(stage.buffer.total() / buckets) * buckets;
    const double gathered = stage.vocab_split && stage.last ? c.micro_tokens() * 3 * sizeof(float) * c.g.tp * m : 0;
    for (int d = 0; d < c.g.dp; ++d) {
      const std::vector<int> group = c.tp_group(st, d);
      tp += allreduce_traffic(c.net, group, kTpRing, tp_bytes);
      if (gathered > 0)
        tp += coll::traffic(c.net, group, [&](const coll::RoundSink& emit) {
          coll::ring_allgather_rounds(int(group.size()), gathered, emit);
        });
    }
    for (int t = 0; t < c.g.tp && c.s.per_step_buckets(); ++t) {  // DiLoCo's: add_outer_step
      const std::vector<int> group = c.dp_group(st, t);
      dps += allreduce_traffic(c.net, group, c.dp_spec(stage.buffer.total()), dp_wire);
      if (c.s.zero1)  // and the parameters back
        dps += coll::traffic(c.net, group, [&](const coll::RoundSink& emit) {
          coll::ring_allgather_rounds(c.g.dp, stage.buffer.total() * precision_bytes(c.s.param_precision), emit);
        });
    }
  }
  for (int d = 0; d < c.g.dp; ++d)
    for (int t = 0; t < c.g.tp; ++t) {
      for (int st = 0; st + 1 < c.g.pp; ++st) {
        const int a = c.rank(t, d, st), b = c.rank(t, d, st + 1);
        pp += coll::p2p_traffic(c.net, a, b, m * c.pp_message(true));
        pp += coll::p2p_traffic(c.net, b, a, m * c.pp_message(false));
      }
      if (c.g.pp > 1 && c.s.model.tie_embeddings) {
        const int pair[2] = {c.rank(t, d, 0), c.rank(t, d, c.g.pp - 1)};
        dps += allreduce_traffic(c.net, pair, kTpRing, c.model.stages[0].wte_rank * c.grad_bytes);
      }
    }
  const double w = c.g.world();
  r.tp_bytes = {tp.intra / w, tp.inter / w};
  r.pp_bytes = {pp.intra / w, pp.inter / w};
  r.dp_bytes = {dps.intra / w, dps.inter / w};
  coll::Traffic all = tp;
  all += pp;
  all += dps;
  r.slowest_link_Bps = all.worst_beta > 0 ? 1 / all.worst_beta : std::numeric_limits<double>::infinity();
  r.largest_latency_s = all.worst_alpha;
}

// Splits the critical path of world rank 0's replica, whose period STEP is, into the parts
// of StepTimes (a wait for a slower replica: in its DP sync, or in the world's norm).
void fill_times(const Context& c, const std::vector<Replica>& replicas, double step, SimResult& r) {
  const Replica& slowest = replicas[size_t(c.coords[0].dp)];
  const int m = c.s.microbatches;
  size_t busiest = 0;  // the stage with the most work per step
  for (size_t st = 0; st < slowest.in.stages.size(); ++st)
    if (slowest.in.stages[st].work() > slowest.in.stages[busiest].work()) busiest = st;
  const StageWork& w = slowest.in.stages[busiest];
  StepTimes& t = r.time;
  for (const Piece& p : w.fwd) t.compute_fwd += m * p.compute, t.tp += m * p.allreduce;
  for (const Piece& p : w.bwd) t.compute_bwd += m * p.compute, t.tp += m * p.allreduce;
  // Stage 0 opens the pipeline: its optimizer, after waiting for the previous step's norm
  // to reach it, which counts to the norm's time.
  const double start = slowest.in.stages.front().start;
  t.optimizer = slowest.optimizer.front();
  const double allgather = std::clamp(start - t.optimizer, 0.0, slowest.allgather.front());
  t.bubble = slowest.without_pp.end - m * w.work() - start;
  t.pp_exposed = slowest.times.end - slowest.without_pp.end;
  t.dp_exposed = slowest.times.sync_end() - slowest.times.end + allgather;
  t.step = step;
  t.other = step - slowest.times.sync_end() + (start - t.optimizer - allgather);
  // These parts are differences of event times; where a part is empty they are zero up to
  // round-off (a bubble of -2.5e-13 s in a 1 s step), which would print as a negative time.
  for (double* part : {&t.bubble, &t.pp_exposed, &t.dp_exposed, &t.other})
    if (std::fabs(*part) <= 1e-12 * step) *part = 0;
  for (const Replica& rep : replicas)
    for (size_t st = 0; st < rep.dp_own.size(); ++st) t.dp_total = std::max(t.dp_total, rep.dp_own[st] + rep.allgather[st]);
  for (size_t b = 0; b < slowest.in.forward.size(); ++b) {
    const Hop &f = slowest.in.forward[b], &back = slowest.in.backward[b];
    t.pp_total = std::max(t.pp_total, m * (f.latency + f.serialize + back.latency + back.serialize));
  }
  t.ideal = ideal_step(slowest);
}

// A strategy's memory-bound passes over the parameters, BYTES_PER_PARAM of the largest
// stage's (the constants beside the strategies' code, which the trainer charges alike), on
// the device's memory bandwidth: added to the optimizer's part of the step.
void add_strategy_memory(const Context& c, double bytes_per_param, SimResult& r) {
  if (c.memory_bandwidth <= 0) return;
  double n = 0;
  for (const Stage& stage : c.model.stages) n = std::max(n, stage.buffer.total());
  const double t = n * bytes_per_param / c.memory_bandwidth;
  r.time.optimizer += t;
  r.time.step += t;
  r.time.ideal += t;  // compute: also there with free communication
}

// DiLoCo (parallel/dp_strategy.hpp): every H steps each rank allreduces its whole
// pseudo-gradient (N elements of its stage, the codec's size on the wire) over its DP
// group, blocking, after the optimizer; amortised over H, per step that adds the slowest
// group's allreduce time / H to the step and to exposed DP time, and its bytes / H.
// Streaming DiLoCo: F syncs of N / F elements per H steps, each overlapping tau steps of
// the step without it: only what exceeds tau steps is exposed. Each sync's outer step
// passes over its N / F parameters' state (kOuterBytesPerParam): N of it per H steps.
void add_outer_step(const Context& c, SimResult& r) {
  if (c.s.inner_steps == 0) return;
  const double h = c.s.inner_steps, f = c.s.fragments;
  const double inner = r.time.step;  // an inner step: what a sync overlaps, tau of them
  add_strategy_memory(c, par::kOuterBytesPerParam / h, r);  // any number of workers
  if (c.g.dp == 1) return;
  double sync = 0;
  coll::Traffic bytes;
  for (int st = 0; st < c.g.pp; ++st) {
    const double n = c.model.stages[size_t(st)].buffer.total() / f;
    for (int t = 0; t < c.g.tp; ++t) {
      const std::vector<int> group = c.dp_group(st, t);
      sync = std::max(sync, allreduce_time(c.net, group, c.dp_spec(n), c.grad_wire(n)));
      bytes += allreduce_traffic(c.net, group, c.dp_spec(n), c.grad_wire(n));
    }
  }
  const double exposed = std::max(0.0, sync - c.s.overlap_steps * inner);
  const double w = c.g.world();
  r.time.step += f * exposed / h;
  r.time.dp_exposed += f * exposed / h;
  r.time.dp_total = f * sync / h;
  r.dp_bytes.intra += f * bytes.intra / w / h;
  r.dp_bytes.inter += f * bytes.inter / w / h;
}

// CocktailSGD and DeMo (parallel/cocktail.hpp, demo.hpp): one sync per step over each DP
// group, its bytes from the strategy's own formula. CocktailSGD: the parameter server with
// p servers (net.algo = ps's rounds) moving p wire(N / p) bytes, launched after the
// optimizer beside the next step's forward and backward and landing before its optimizer,
// so only what exceeds the step without its optimizer is exposed; DeMo: a ring all-gather
// of every rank's payload, blocking after the backward. Both add their memory-bound passes
// (kCocktailBytesPerParam, kDemoBytesPerParam) to the optimizer's part.
void add_compressed_sync(const Context& c, SimResult& r) {
  if (c.s.strategy != "cocktail" && c.s.strategy != "demo") return;
  const bool cocktail = c.s.strategy == "cocktail";
  add_strategy_memory(c, cocktail ? par::kCocktailBytesPerParam : par::kDemoBytesPerParam, r);  // any number of workers
  if (c.g.dp == 1) return;
  const par::CocktailCodec codec{c.s.random_ratio, c.s.topk_ratio, c.s.bits};
  double sync = 0;
  coll::Traffic bytes;
  for (int st = 0; st < c.g.pp; ++st) {
    const double n = c.model.stages[size_t(st)].buffer.total();
    for (int t = 0; t < c.g.tp; ++t) {
      const std::vector<int> group = c.dp_group(st, t);
      const double p = double(group.size());
      CollectiveSpec spec;
      double wire = 0;
      if (cocktail) {
        spec.algo = Algo::kPs;  // servers 0: one per rank
        wire = p * double(codec.wire_bytes(size_t(std::ceil(n / p))));
      } else {
        spec.op = coll::Op::kAllgather;
        wire = p * par::demo_payload_bytes(n, c.s.chunk, c.s.topk);
      }
      sync = std::max(sync, allreduce_time(c.net, group, spec, wire));
      bytes += allreduce_traffic(c.net, group, spec, wire);
    }
  }
  const double exposed = cocktail ? std::max(0.0, sync - (r.time.step - r.time.optimizer)) : sync;
  const double w = c.g.world();
  r.time.step += exposed;
  r.time.dp_exposed += exposed;
  r.time.dp_total = sync;
  r.dp_bytes.intra += bytes.intra / w;
  r.dp_bytes.inter += bytes.inter / w;
  if (bytes.worst_beta > 0 && 1 / bytes.worst_beta < r.slowest_link_Bps) r.slowest_link_Bps = 1 / bytes.worst_beta;
  r.largest_latency_s = std::max(r.largest_latency_s, bytes.worst_alpha);
}

// 1-bit Adam / QuantizedAdam after the warm-up (parallel/compressed_adam.hpp): no per-step
// buckets; after the backward each rank's N parameters' momentum goes through the
// compressed server over its DP group, blocking: W = the quantizer's bytes over the p
// chunks of N (the trainer's chunks are per tensor: 4 more bytes per tensor and chunk for
// 1 bit, negligible at scale), in time a param-server allreduce of W with one server per
// rank, in bytes 2 (p - 1) W per group. DP_BYTES_WARMUP: DDP's, the warm-up's per step.
void add_compressed_momentum(const Context& c, SimResult& r) {
  if (c.s.momentum_codec.empty() || c.g.dp == 1) return;
  const std::unique_ptr<coll::Codec> q = c.s.momentum_codec == "onebit"
                                             ? coll::make_onebit_codec()
                                             : coll::make_kbit_codec(std::stoi(c.s.momentum_codec.substr(4)));
  const CollectiveSpec server{Algo::kPs, 0, 0};
  double sync = 0;
  coll::Traffic bytes, ddp;
  for (int st = 0; st < c.g.pp; ++st) {
    const double n = c.model.stages[size_t(st)].buffer.total();
    const coll::Range all{0, size_t(n)};
    const double w = double(coll::compressed_server_wire_bytes(*q, std::span(&all, 1), c.g.dp));
    for (int t = 0; t < c.g.tp; ++t) {
      const std::vector<int> group = c.dp_group(st, t);
      sync = std::max(sync, allreduce_time(c.net, group, server, w));
      bytes += allreduce_traffic(c.net, group, server, w);
      ddp += allreduce_traffic(c.net, group, c.dp_spec(n), c.grad_wire(n));
    }
  }
  const double w = c.g.world();
  r.time.step += sync;
  r.time.dp_exposed += sync;
  r.time.dp_total += sync;
  r.dp_bytes.intra += bytes.intra / w;
  r.dp_bytes.inter += bytes.inter / w;
  r.dp_bytes_warmup = {r.dp_bytes.intra - bytes.intra / w + ddp.intra / w, r.dp_bytes.inter - bytes.inter / w + ddp.inter / w};
  if (bytes.worst_beta > 0 && 1 / bytes.worst_beta < r.slowest_link_Bps) r.slowest_link_Bps = 1 / bytes.worst_beta;
  r.largest_latency_s = std::max(r.largest_latency_s, bytes.worst_alpha);
}

}  // namespace

netem::NetworkModel closed_form_model(const netem::Profile& profile) { return netem::NetworkModel(profile, 1); }

netem::Profile apply_overrides(netem::Profile p, const NetOverrides& o) {
  auto set_link = [](netem::LinkSpec& link, const std::optional<double>& bw, const std::optional<double>& lat) {
    if (bw) link.bandwidth_Bps = *bw;
    if (lat) link.latency_s = *lat;
  };
  for (netem::Site& site : p.sites) set_link(site.intra, o.bandwidth, o.latency);
  for (netem::LinkSpec& link : p.inter) {
    set_link(link, o.bandwidth, o.latency);
    set_link(link, o.inter_bandwidth, o.inter_latency);
  }
  if (o.bandwidth) {  // a NIC cap (a rank's, a host's) follows the links, or it would cap every faster setting
    for (double* cap : {&p.nic_egress_Bps, &p.nic_ingress_Bps, &p.hosts.egress_Bps, &p.hosts.ingress_Bps})
      if (*cap > 0) *cap = *o.bandwidth;
  }
  return p;
}

SimInputs load_inputs(const SimSettings& s) {
  const int world = s.grid.world();
  netem::Profile profile = s.net_path.empty() ? netem::uniform_profile(world, 0, 0)
                                              : netem::load_profile(find_file(s.net_path), world);
  // The trainer's placement: which world rank plays each grid position, and its sites.
  par::Placement placement =
      s.placement.empty() ? par::identity_placement(world) : par::load_placement(find_file(s.placement), world);
  par::place_sites(profile, placement, s.placement);
  attach_link_faults(profile, s.faults);  // the trainer's link faults (train/faults.hpp); sim/fault_run.hpp walks them
  return {apply_overrides(std::move(profile), s.net), load_device(s.device), std::move(placement)};
}

SimResult simulate(const SimSettings& s, const SimInputs& in) {
  Context c(s, in);
  std::vector<Replica> replicas;
  for (int d = 0; d < c.g.dp; ++d) replicas.push_back(build_replica(c, d));
  const StepTimes times = run_steps(c, replicas);

  SimResult r;
  r.net_name = in.profile.name;
  r.device_name = in.device.name;
  r.world = c.g.world();
  r.micro_batch = s.micro_batch();
  r.dp_buckets = int(replicas.front().in.stages.front().buckets.size());
  r.params = c.model.params;
  r.flops_per_token = c.model.flops_per_token;
  r.tokens_per_step = double(s.batch_size) * s.seq_len;
  r.peak_flops = c.peak;
  r.efficiency = c.rate / r.peak_flops;
  r.time = times;
  count_traffic(c, r);
  add_outer_step(c, r);
  add_compressed_sync(c, r);
  add_compressed_momentum(c, r);
  r.memory = memory_per_rank(c);
  r.memory_capacity = in.device.memory_bytes;
  return r;
}

SimResult simulate(const SimSettings& s) { return simulate(s, load_inputs(s)); }

}  // namespace dtb::sim
