#include "sim/simulator.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <memory>

#include "codec.hpp"
#include "network.hpp"
#include "sim/collective_model.hpp"
#include "sim/model_costs.hpp"
#include "sim/paths.hpp"
#include "sim/pipeline.hpp"

namespace dtb::sim {
namespace {

// Everything one simulation needs, computed once.
struct Context {
  const SimSettings& s;
  const Grid g;
  const netem::NetworkModel net;
  const ModelCosts model;
  const std::unique_ptr<coll::Codec> codec;  // null = raw gradients
  const double rate;                          // FLOP/s achieved per device
  const double act_bytes;                     // one activation value
  const double grad_bytes;                    // one gradient value as stored
  coll::AlphaBeta worst_used;                 // over every link that carries traffic

  Context(const SimSettings& settings, const SimInputs& in)
      : s(settings),
        g(settings.grid),
        net(closed_form_model(in.profile)),
        model(model_costs(settings)),
        codec(coll::make_codec(settings.dp_codec)),
        rate(in.device.peak(settings.compute) * (settings.efficiency > 0 ? settings.efficiency : in.device.efficiency)),
        act_bytes(precision_bytes(settings.compute)),
        grad_bytes(precision_bytes(settings.grad_precision)) {}

  double micro_tokens() const { return double(s.micro_batch()) * s.seq_len; }
  double activation_message() const { return micro_tokens() * s.model.n_embd * act_bytes; }
  // Gradient bytes on the wire for ELEMENTS values: the codec's encoded size, or raw.
  double grad_wire(double elements) const {
    return codec ? double(codec->encoded_bytes(size_t(std::ceil(elements)))) : elements * grad_bytes;
  }
  void note(const coll::AlphaBeta& l) {
    worst_used.alpha = std::max(worst_used.alpha, l.alpha);
    worst_used.beta = std::max(worst_used.beta, l.beta);
  }
  std::vector<int> tp_group(int pp, int dp) const {
    std::vector<int> r;
    for (int t = 0; t < g.tp; ++t) r.push_back(g.rank(t, dp, pp));
    return r;
  }
  std::vector<int> dp_group(int pp, int tp) const {
    std::vector<int> r;
    for (int d = 0; d < g.dp; ++d) r.push_back(g.rank(tp, d, pp));
    return r;
  }
};

const CollectiveSpec kTpRing{Algo::kRing, 0, 0};  // Megatron's TP allreduce (NCCL ring)

// Compute of one micro-batch on stage ST (no communication). Recomputation runs the
// forward again inside the backward.
StageTimes stage_compute(const Context& c, int st) {
  const double seconds = c.model.stages[size_t(st)].flops_per_token * c.micro_tokens() / c.g.tp / c.rate;
  return {seconds / 3, (c.s.recompute ? 3 : 2) * seconds / 3};
}

// One TP allreduce of a micro-batch's activations on stage ST of replica DP.
double tp_allreduce(Context& c, int st, int dp) {
  const std::vector<int> group = c.tp_group(st, dp);
  const GroupLinks l = group_links(c.net, group, kTpRing);
  if (c.g.tp > 1) c.note(l.used);
  return allreduce_time(c.net, l, c.activation_message());
}

// Boundary ST -> ST+1 of replica DP in one direction: the worst of its TP ranks' links.
Hop boundary(Context& c, int st, int dp, bool forward) {
  coll::AlphaBeta w;
  for (int t = 0; t < c.g.tp; ++t) {
    int a = c.g.rank(t, dp, st), b = c.g.rank(t, dp, st + 1);
    if (!forward) std::swap(a, b);
    w.alpha = std::max(w.alpha, c.net.alpha(a, b));
    w.beta = std::max(w.beta, c.net.beta(a, b));
  }
  c.note(w);
  return {w.alpha, c.activation_message() * w.beta};
}

struct Replica {  // one DP replica's pipeline
  PipelineInput in;
  std::vector<double> tp;           // per stage: TP comm of one micro-batch, forward + backward
  PipelineTimes times, without_pp;  // with PP messages, and with them free
};

Replica run_replica(Context& c, int dp) {
  Replica r;
  r.in.microbatches = c.s.microbatches;
  r.in.schedule = c.s.schedule;
  for (int st = 0; st < c.g.pp; ++st) {
    const StageTimes t = stage_compute(c, st);
    const double tp = 2 * c.model.stages[size_t(st)].layers * tp_allreduce(c, st, dp);  // one pass
    const double tp_bwd = c.s.recompute ? 2 * tp : tp;  // the recomputed forward reduces again
    r.in.stages.push_back({t.fwd + tp, t.bwd + tp_bwd});
    r.tp.push_back(tp + tp_bwd);
  }
  for (int st = 0; st + 1 < c.g.pp; ++st) {
    r.in.forward.push_back(boundary(c, st, dp, true));
    r.in.backward.push_back(boundary(c, st, dp, false));
  }
  r.times = run_pipeline(r.in);
  PipelineInput free_pp = r.in;
  std::fill(free_pp.forward.begin(), free_pp.forward.end(), Hop{});
  std::fill(free_pp.backward.begin(), free_pp.backward.end(), Hop{});
  r.without_pp = run_pipeline(free_pp);
  return r;
}

// The same pipeline with every message free (TP, PP): the ideal step's pipeline.
double ideal_pipeline(const Context& c) {
  PipelineInput in;
  in.microbatches = c.s.microbatches;
  in.schedule = c.s.schedule;
  for (int st = 0; st < c.g.pp; ++st) in.stages.push_back(stage_compute(c, st));
  in.forward.assign(size_t(c.g.pp - 1), Hop{});
  in.backward = in.forward;
  return run_pipeline(in).end;
}

struct DpSync {
  double done = 0, busy = 0;  // when the stage's last bucket is reduced; comm-stream time
  int buckets = 1;
  double wire = 0;            // bytes on the wire per rank, all buckets
};

// The DP sync of stage ST: buckets produced during the last backward of every replica,
// reduced one after another (the overlap model in simulator.hpp).
DpSync dp_sync(Context& c, int st, const std::vector<Replica>& replicas) {
  DpSync out;
  const double elements = c.model.stages[size_t(st)].params / c.g.tp;
  const double grad_bytes = elements * c.grad_bytes;
  out.buckets = c.s.dp_bucket_bytes > 0 ? std::max(1, int(std::ceil(grad_bytes / c.s.dp_bucket_bytes))) : 1;
  const double wire = c.grad_wire(elements / out.buckets);
  out.wire = wire * out.buckets;
  const CollectiveSpec spec{c.s.dp_algo, c.s.dp_servers, c.s.dp_rounds};
  double cost = 0;
  for (int t = 0; t < c.g.tp; ++t) {
    const GroupLinks l = group_links(c.net, c.dp_group(st, t), spec);
    if (c.g.dp > 1) c.note(l.used);
    cost = std::max(cost, allreduce_time(c.net, l, wire));
  }
  for (int k = 1; k <= out.buckets; ++k) {
    double ready = 0;
    for (const Replica& r : replicas) {
      const double start = r.times.last_start[size_t(st)], end = r.times.last_end[size_t(st)];
      ready = std::max(ready, start + (end - start) * k / out.buckets);
    }
    out.done = std::max(out.done, ready) + cost;
  }
  out.busy = cost * out.buckets;
  return out;
}

// The tied embedding's gradient, summed between the first and the last stage (PP > 1).
double tied_embedding_sync(Context& c) {
  if (c.g.pp == 1) return 0;
  const double wire = c.grad_wire(c.model.stages[0].tied_params / c.g.tp);
  double cost = 0;
  for (int d = 0; d < c.g.dp; ++d)
    for (int t = 0; t < c.g.tp; ++t) {
      const int pair[2] = {c.g.rank(t, d, 0), c.g.rank(t, d, c.g.pp - 1)};
      const GroupLinks l = group_links(c.net, pair, kTpRing);
      c.note(l.used);
      cost = std::max(cost, allreduce_time(c.net, l, wire));
    }
  return cost;
}

double optimizer_time(const Context& c, const Device& device) {
  if (device.memory_bandwidth <= 0) return 0;
  const double p = precision_bytes(c.s.param_precision);
  const double master = c.s.param_precision == Precision::kFp32 ? 0 : 8;
  double largest = 0;
  for (const Stage& st : c.model.stages) largest = std::max(largest, st.params / c.g.tp);
  return largest * (2 * p + c.grad_bytes + 16 + master) / device.memory_bandwidth;
}

MemoryPerRank memory_per_rank(const Context& c) {
  MemoryPerRank best;
  const double p = precision_bytes(c.s.param_precision);
  const double master = c.s.param_precision == Precision::kFp32 ? 0 : 4;
  for (int st = 0; st < c.g.pp; ++st) {
    const Stage& stage = c.model.stages[size_t(st)];
    const double n = stage.params / c.g.tp;
    MemoryPerRank m;
    m.stage = st;
    m.params = n * p;
    m.grads = n * c.grad_bytes;
    m.optimizer = n * (8 + master);  // Adam's m and v in fp32, and the master copy
    const int in_flight = microbatches_in_flight(c.s.schedule, c.g.pp, st, c.s.microbatches);
    const double per_token = c.s.recompute
                                 ? in_flight * stage.checkpoint_per_token + stage.recompute_working_per_token
                                 : in_flight * stage.activations_per_token;
    m.activations = per_token * c.micro_tokens() * c.act_bytes;
    if (m.total() > best.total()) best = m;
  }
  return best;
}

// Bytes every rank sends per step, by link class, averaged over the ranks.
void count_traffic(const Context& c, const std::vector<DpSync>& dp, SimResult& r) {
  Traffic tp, pp, dps;
  const int m = c.s.microbatches;
  const CollectiveSpec spec{c.s.dp_algo, c.s.dp_servers, c.s.dp_rounds};
  for (int st = 0; st < c.g.pp; ++st) {
    const int allreduces = (c.s.recompute ? 6 : 4) * c.model.stages[size_t(st)].layers * m;
    const double tp_bytes = c.activation_message() * allreduces;
    for (int d = 0; d < c.g.dp; ++d) tp += allreduce_traffic(c.net, c.tp_group(st, d), kTpRing, tp_bytes);
    for (int t = 0; t < c.g.tp; ++t) dps += allreduce_traffic(c.net, c.dp_group(st, t), spec, dp[size_t(st)].wire);
  }
  for (int d = 0; d < c.g.dp; ++d)
    for (int t = 0; t < c.g.tp; ++t) {
      for (int st = 0; st + 1 < c.g.pp; ++st) {
        const int a = c.g.rank(t, d, st), b = c.g.rank(t, d, st + 1);
        pp += p2p_traffic(c.net, a, b, m * c.activation_message());
        pp += p2p_traffic(c.net, b, a, m * c.activation_message());
      }
      if (c.g.pp > 1) {
        const int pair[2] = {c.g.rank(t, d, 0), c.g.rank(t, d, c.g.pp - 1)};
        dps += allreduce_traffic(c.net, pair, kTpRing, c.grad_wire(c.model.stages[0].tied_params / c.g.tp));
      }
    }
  const double w = c.g.world();
  r.tp_bytes = {tp.intra / w, tp.inter / w};
  r.pp_bytes = {pp.intra / w, pp.inter / w};
  r.dp_bytes = {dps.intra / w, dps.inter / w};
}

// Splits the critical path into the parts of StepTimes.
void fill_times(const Context& c, const std::vector<Replica>& replicas, const std::vector<DpSync>& dp,
                double tied, double optimizer, SimResult& r) {
  const Replica& slowest = *std::max_element(replicas.begin(), replicas.end(), [](const Replica& a, const Replica& b) {
    return a.times.end < b.times.end;
  });
  const int m = c.s.microbatches;
  int busiest = 0;  // the stage with the most work per step
  for (int st = 0; st < c.g.pp; ++st) {
    const StageTimes& a = slowest.in.stages[size_t(st)];
    const StageTimes& b = slowest.in.stages[size_t(busiest)];
    if (a.fwd + a.bwd > b.fwd + b.bwd) busiest = st;
  }
  const StageTimes compute = stage_compute(c, busiest);
  const StageTimes& with_tp = slowest.in.stages[size_t(busiest)];
  StepTimes& t = r.time;
  t.compute_fwd = m * compute.fwd;
  t.compute_bwd = m * compute.bwd;
  t.tp = m * slowest.tp[size_t(busiest)];
  t.bubble = slowest.without_pp.end - m * (with_tp.fwd + with_tp.bwd);
  t.pp_exposed = slowest.times.end - slowest.without_pp.end;
  double sync_end = slowest.times.end, dp_busy = 0;
  for (const DpSync& d : dp) sync_end = std::max(sync_end, d.done), dp_busy = std::max(dp_busy, d.busy);
  if (c.g.pp > 1) sync_end = std::max(sync_end, std::max(dp.front().done, dp.back().done) + tied);
  t.dp_exposed = sync_end - slowest.times.end;
  t.dp_total = dp_busy + tied;
  t.optimizer = optimizer;
  t.step = sync_end + optimizer;
  for (size_t b = 0; b < slowest.in.forward.size(); ++b) {
    const Hop &f = slowest.in.forward[b], &back = slowest.in.backward[b];
    t.pp_total = std::max(t.pp_total, m * (f.latency + f.serialize + back.latency + back.serialize));
  }
  t.ideal = ideal_pipeline(c) + optimizer;
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
  if (o.bandwidth) {  // a NIC cap follows the links, or it would cap every faster setting
    if (p.nic_egress_Bps > 0) p.nic_egress_Bps = *o.bandwidth;
    if (p.nic_ingress_Bps > 0) p.nic_ingress_Bps = *o.bandwidth;
  }
  return p;
}

SimInputs load_inputs(const SimSettings& s) {
  const int world = s.grid.world();
  netem::Profile profile = s.net_path.empty() ? netem::uniform_profile(world, 0, 0)
                                              : netem::load_profile(find_file(s.net_path), world);
  return {apply_overrides(std::move(profile), s.net), load_device(s.device)};
}

SimResult simulate(const SimSettings& s, const SimInputs& in) {
  Context c(s, in);
  std::vector<Replica> replicas;
  for (int d = 0; d < c.g.dp; ++d) replicas.push_back(run_replica(c, d));
  std::vector<DpSync> dp;
  for (int st = 0; st < c.g.pp; ++st) dp.push_back(dp_sync(c, st, replicas));
  const double tied = tied_embedding_sync(c);

  SimResult r;
  r.net_name = in.profile.name;
  r.device_name = in.device.name;
  r.world = c.g.world();
  r.micro_batch = s.micro_batch();
  r.dp_buckets = dp.front().buckets;
  r.params = c.model.params;
  r.flops_per_token = c.model.flops_per_token;
  r.tokens_per_step = double(s.batch_size) * s.seq_len;
  r.peak_flops = in.device.peak(s.compute);
  r.efficiency = c.rate / r.peak_flops;
  fill_times(c, replicas, dp, tied, optimizer_time(c, in.device), r);
  count_traffic(c, dp, r);
  r.memory = memory_per_rank(c);
  r.memory_capacity = in.device.memory_bytes;
  r.slowest_link_Bps = c.worst_used.beta > 0 ? 1 / c.worst_used.beta : std::numeric_limits<double>::infinity();
  r.largest_latency_s = c.worst_used.alpha;
  return r;
}

SimResult simulate(const SimSettings& s) { return simulate(s, load_inputs(s)); }

}  // namespace dtb::sim
