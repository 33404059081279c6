#include "sim/article.hpp"

#include <cmath>
#include <iomanip>
#include <limits>
#include <ostream>

#include "codec.hpp"
#include "config.hpp"
#include "model/gpt2.hpp"
#include "network.hpp"
#include "sim/collective_model.hpp"
#include "sim/format.hpp"
#include "sim/paths.hpp"
#include "sim/simulator.hpp"

namespace dtb::sim {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
// The article's figures.
constexpr double kParams = 175e9, kBytesPerParam = 4, kNodes = 100;
constexpr double kWeights = kParams * kBytesPerParam;  // "about 700 GB"
constexpr double kArticleStep = 70e12;                 // "about 70 TB" per step
constexpr double kBatch = 512.0 * 1024 * 4;            // "about 2 MB"

struct Network {
  const char* label;
  const char* profile;
  double article_copy_s;  // the article's time to move 700 GB
};
const Network kNetworks[] = {{"25 Gbps", "configs/net/centralized-25g.yaml", 224},
                             {"1 Gbps", "configs/net/decentralized-1g.yaml", 5600}};

// The article's 100 nodes on NETWORK.
netem::NetworkModel network_of(const Network& n) {
  return closed_form_model(netem::load_profile(find_file(n.profile), int(kNodes)));
}

// One point-to-point copy of BYTES between two nodes: alpha + n beta.
double copy_time(const netem::NetworkModel& net, double bytes) { return net.alpha(0, 1) + bytes * net.beta(0, 1); }

std::string id_suffix(const Network& n) { return n.article_copy_s < 1000 ? "_25g" : "_1g"; }

std::vector<ArticleRow> claim_rows() {
  const netem::NetworkModel fast = network_of(kNetworks[0]), slow = network_of(kNetworks[1]);
  const GPTConfig gpt3{50257, 2048, 96, 96, 12288};
  const double shape = double(num_parameters(gpt3));
  return {
      {"weights", "GPT-3's parameters at 4 bytes", "", "B", 700e9, kWeights, kNaN,
       "175e9 x 4 B; the GPT-3 shape itself (96 x 12288, V 50257, GPT-2 layout) counts " +
           format_fixed(shape / 1e9, 1) + "B: " + format_bytes(shape * 4)},
      {"copy_25g", "700 GB over one link", "25 Gbps", "s", 224, copy_time(fast, kWeights), kNaN,
       "none: n / bandwidth (+10 us latency) is right for one point-to-point copy"},
      {"copy_1g", "700 GB over one link", "1 Gbps", "s", 5600, copy_time(slow, kWeights), kNaN,
       "none: n / bandwidth (+50 ms latency) is right for one point-to-point copy"},
      {"step_bytes", "one step, 100 nodes each sending all params", "", "B", kArticleStep, kNodes * kWeights, kNaN,
       "counts each node's 700 GB once (into one collector: 'ps, 1 server' below); all-to-all copies would be "
       "99x that, " + format_bytes(kNodes * (kNodes - 1) * kWeights) + "; an allreduce does neither"},
      {"batch", "a batch: 512 x 1024 tokens x 4 bytes", "", "B", 2e6, kBatch, kNaN,
       "2 MiB exactly; token ids fit in 2 bytes (V = 50257 < 65536): " + format_bytes(kBatch / 2)},
      {"batch_1g", "that batch over one link", "1 Gbps", "s", kNaN, copy_time(slow, kBatch), kNaN,
       "the article's point stands: data is cheap to move, " + format_bytes(kBatch) + " vs " +
           format_bytes(kWeights) + " of gradients"},
      {"state", "training state, mixed-precision Adam", "", "B", kNaN, kParams * 16, kNaN,
       "700 GB is only the fp32 weights; fp16 weights + grads and fp32 master, m, v are 16 B/param: " +
           format_bytes(kParams * 16 / kNodes) + " on each of 100 nodes before activations"},
  };
}

struct Method {
  const char* id;
  const char* what;
  CollectiveSpec spec;
  const char* codec;  // "none" = fp32 gradients
  const char* why;
};

const Method kMethods[] = {
    {"ring", "ring allreduce, fp32", {Algo::kRing, 0, 0}, "none",
     "reduce-scatter + allgather: each node sends 2(p-1)/p x 700 GB, not 100 x 700 GB; about twice one copy, for any p"},
    {"hier", "hierarchical allreduce, fp32", {Algo::kHier, 0, 0}, "none",
     "both networks are one site, so the hierarchy is a binomial tree: 2 floor(log2 p) = 12 full-buffer hops; it "
     "pays off only with fast sites joined by slow links"},
    {"ps_sharded", "parameter server, 100 shards, fp32", {Algo::kPs, 0, 0}, "none",
     "node j serves shard j: each node pushes 99 shards of 7 GB and returns its sum to 99 nodes: the ring's bytes "
     "in 2 latencies instead of 198"},
    {"ps_1", "parameter server, 1 server, fp32", {Algo::kPs, 1, 0}, "none",
     "the article's picture: 99 x 700 GB into one server's NIC, and back out: 99 copies' time each way"},
    {"ring_fp16", "ring allreduce, fp16 gradients", {Algo::kRing, 0, 0}, "fp16",
     "2 bytes per value: half the ring's bytes and time"},
    {"ring_1bit", "ring allreduce, 1-bit (sign + scale)", {Algo::kRing, 0, 0}, "sign",
     "1 bit per value + one fp32 scale per 512: 23 GB instead of 700; converges with error feedback (1-bit Adam)"},
};

std::vector<ArticleRow> sync_rows(const Network& n) {
  const netem::NetworkModel net = network_of(n);
  std::vector<int> ranks(static_cast<size_t>(kNodes));
  for (int i = 0; i < int(kNodes); ++i) ranks[size_t(i)] = i;
  std::vector<ArticleRow> rows;
  for (const Method& m : kMethods) {
    const auto codec = coll::make_codec(m.codec);
    const double wire = codec ? double(codec->encoded_bytes(size_t(kParams))) : kWeights;
    rows.push_back({std::string(m.id) + id_suffix(n), m.what, n.label, "s", n.article_copy_s,
                    allreduce_time(net, ranks, m.spec, wire), allreduce_traffic(net, ranks, m.spec, wire).busiest, m.why});
  }
  return rows;
}

struct Layout {
  const char* id;
  const char* what;
  int tp, pp;
};
const Layout kLayouts[] = {{"megatron", "Megatron 3D: TP 4 x PP 24, DP 1", 4, 24},
                           {"pipeline", "pipeline only: PP 96, DP 1", 1, 96}};

// GPT-3 175B, the article's batch (512 x 1024), on 96 of the 100 nodes, V100 32 GB in fp16,
// 1F1B with micro-batches of one sequence and full recomputation (as Megatron trains it):
// no gradient sync at all, only activations.
ArticleRow layout_row(const Network& n, const Layout& l) {
  Config c(sim_schema());
  for (const char* kv :
       {"model.name=gpt3-175b", "model.vocab_size=50257", "model.n_ctx=2048", "model.n_layer=96",
        "model.n_head=96", "model.n_embd=12288", "train.batch_size=512", "train.seq_len=1024",
        "parallel.microbatches=512", "parallel.schedule=1f1b", "train.recompute=true", "device.profile=v100",
        "precision.compute=fp16", "precision.params=fp16", "precision.grads=fp16"})
    c.set(kv);
  c.set("parallel.tp=" + std::to_string(l.tp));
  c.set("parallel.pp=" + std::to_string(l.pp));
  c.set(std::string("net.profile=") + n.profile);
  const SimResult r = simulate(sim_settings(c));
  const double sent = r.tp_bytes.total() + r.pp_bytes.total() + r.dp_bytes.total();
  const StepTimes& t = r.time;
  return {std::string(l.id) + id_suffix(n), l.what, n.label, "s", kNaN, t.step, sent,
          "no 700 GB sync (DP 1): the traffic is activations; compute " + format_seconds(t.compute_fwd + t.compute_bwd) +
              ", TP " + format_seconds(t.tp) + ", bubble " + format_seconds(t.bubble) + ", PP exposed " +
              format_seconds(t.pp_exposed) + "; with recomputation a node needs " + format_bytes(r.memory.total()) +
              " of its " + format_bytes(r.memory_capacity) + (r.fits() ? "" : ": ZeRO offload or more nodes")};
}

std::string value_text(double v, const std::string& unit) {
  if (std::isnan(v)) return "-";
  return unit == "s" ? format_seconds(v) : format_bytes(v);
}

}  // namespace

std::vector<ArticleRow> article_rows() {
  std::vector<ArticleRow> rows = claim_rows();
  for (const Network& n : kNetworks)
    for (ArticleRow& r : sync_rows(n)) rows.push_back(std::move(r));
  for (const Network& n : kNetworks)
    for (const Layout& l : kLayouts) rows.push_back(layout_row(n, l));
  return rows;
}

void print_article(std::ostream& out, const std::vector<ArticleRow>& rows) {
  out << "The article's arithmetic (Foresight Ventures 2023): GPT-3 175B, 100 nodes; times per step from netem's\n"
         "alpha-beta model of configs/net/centralized-25g.yaml and decentralized-1g.yaml and the collectives' "
         "cost formulas.\n\n";
  out << std::left << std::setw(46) << "what" << std::setw(9) << "network" << std::right << std::setw(10)
      << "article" << std::setw(13) << "dtbench" << std::setw(9) << "ratio" << std::setw(12) << "sent/node"
      << "  why it differs\n";
  for (const ArticleRow& r : rows) {
    const double ratio = r.ours / r.article;
    out << std::left << std::setw(46) << r.what << std::setw(9) << r.network << std::right << std::setw(10)
        << value_text(r.article, r.unit) << std::setw(13) << value_text(r.ours, r.unit) << std::setw(9)
        << (std::isnan(ratio) ? "-" : format_fixed(ratio, 2) + "x") << std::setw(12) << value_text(r.sent, "B")
        << "  " << r.why << "\n";
  }
  out << "\nsent/node: bytes the busiest node sends per step (layout rows: the mean over nodes). Sync rows: 175e9\n"
         "fp32 gradients allreduced over all 100 nodes, beside the article's time for one 700 GB copy.\n";
}

}  // namespace dtb::sim
