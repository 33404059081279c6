// DT-FM's scheduler (trainer/sim/dtfm_*.hpp, `dtbench plan`, issue 11): the cost model
// against hand-computed 2 x 2 and 3 x 2 cases, the matching and the path against brute
// force, the genetic search against the exhaustive optimum for several seeds, the plan's
// placement file through the trainer's and the simulator's readers, and bad input.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <numeric>

#include "data/splitmix64.hpp"
#include "dtbench_runner.hpp"
#include "parallel/parallel_trainer.hpp"
#include "sim/dtfm_plan.hpp"
#include "train/train_config.hpp"

namespace fs = std::filesystem;
using Catch::Matchers::Contains;
using namespace dtb;
using namespace dtb::sim::dtfm;

namespace {

const std::string kSource = DTB_SOURCE_DIR;

fs::path scratch() {
  static const fs::path dir = dtb::test::scratch_dir("test_dtfm");
  return dir;
}

std::string write_file(const std::string& name, const std::string& text) {
  const fs::path p = scratch() / name;
  std::ofstream(p) << text;
  return p.string();
}

// Sites of two ranks each: 1 ms and 8 Gbps (1e9 B/s) inside; LINKS between them.
std::string sites_of_two(const std::string& name, const std::vector<std::string>& sites, const std::string& links) {
  std::string text = "name: " + name + "\nsites:\n";
  for (const std::string& s : sites) text += "  - {name: " + s + ", ranks: 2, intra: {latency: 1ms, bandwidth: 8Gbps}}\n";
  return write_file(name + ".yaml", text + "links:\n" + links);
}

EdgeCosts edges(const std::string& profile, int dp, int pp, Volumes v) {
  const par::Layout grid{dp, pp, 1};
  return edge_costs(netem::NetworkModel(netem::load_profile(profile, grid.world()), grid.world()), grid, v);
}

// c_DP = 100 MB, c_PP = 10 MB: on 1e9 B/s inside a site and 1e8 B/s between sites.
const Volumes kVolumes{1e8, 1e7};

par::Placement placement(std::vector<int> ranks) { return {std::move(ranks), {}}; }

// A random symmetric network, every device its own site (latency 1-100 ms, 0.1-10 Gbps).
EdgeCosts random_edges(int dp, int pp, uint64_t seed) {
  const int n = dp * pp;
  netem::Profile p;
  p.name = "random";
  for (int i = 0; i < n; ++i) p.sites.push_back({"d" + std::to_string(i), {}, false});
  p.rank_site.resize(size_t(n));
  std::iota(p.rank_site.begin(), p.rank_site.end(), 0);
  p.inter.assign(size_t(n * n), {});
  SplitMix64 rng(seed);
  auto unit = [&] { return double(rng.next() >> 11) / double(1ULL << 53); };
  for (int a = 0; a < n; ++a)
    for (int b = a + 1; b < n; ++b) {
      netem::LinkSpec l;
      l.latency_s = 1e-3 * (1 + 99 * unit());
      l.bandwidth_Bps = 1.25e7 * std::pow(100.0, unit());
      p.inter[size_t(a * n + b)] = p.inter[size_t(b * n + a)] = l;
    }
  return edge_costs(netem::NetworkModel(p, n), {dp, pp, 1}, kVolumes);
}

}  // namespace

TEST_CASE("DT-FM cost model: a hand-computed 2 x 2 case", "[dtfm]") {
  // Ranks 0, 1 in A, 2, 3 in B; A-B 10 ms and 0.8 Gbps (1e8 B/s).
  const EdgeCosts e = edges(sites_of_two("two-by-two", {"A", "B"}, "  - {between: [A, B], latency: 10ms, bandwidth: 0.8Gbps}\n"),
                            2, 2, kVolumes);
  // DP edge 2 (alpha + c_DP / 2 beta): inside 2 (1 ms + 50 ms) = 0.102 s, across 2 (10 ms + 500 ms) = 1.02 s.
  CHECK(e.dp_cost(0, 1) == Approx(0.102));
  CHECK(e.dp_cost(0, 2) == Approx(1.02));
  // PP edge alpha + c_PP beta: inside 1 ms + 10 ms, across 10 ms + 100 ms.
  CHECK(e.pp_cost(1, 0) == Approx(0.011));
  CHECK(e.pp_cost(3, 1) == Approx(0.11));
  // The three partitions: by site, DP 0.102 and every pairing across (0.11): 0.102 + 2 x 0.11.
  CHECK(partition_cost(e, {{0, 1}, {2, 3}}).total() == Approx(0.322));
  // Across sites: DP 1.02, but each pipeline pair inside one site (0-1, 2-3): 1.02 + 2 x 0.011.
  const Cost mixed = partition_cost(e, {{0, 2}, {1, 3}});
  CHECK(mixed.dp == Approx(1.02));
  CHECK(mixed.pp == Approx(0.011));
  CHECK(partition_cost(e, {{0, 3}, {1, 2}}).total() == Approx(1.042));
  CHECK(exhaustive_search(e).cost.total() == Approx(0.322));
  // Placements as they are: Megatron's order (stages {0,1} and {2,3}) is the optimum here;
  // stages {0,2}, {3,1} pair 0-3 and 2-1, both across: 1.02 + 2 x 0.11.
  CHECK(placement_cost(e, par::identity_placement(4)).total() == Approx(0.322));
  CHECK(placement_cost(e, placement({0, 2, 1, 3})).total() == Approx(1.042));
  CHECK(placement_cost(e, placement({0, 2, 3, 1})).total() == Approx(1.24));
  // The realized plan of the mixed partition pairs within sites: its cost as a placement.
  CHECK(placement_cost(e, realize(e, {{0, 3}, {1, 2}})).total() == Approx(1.042));
}

TEST_CASE("DT-FM cost model: a hand-computed 3 x 2 case, the stage order an open path", "[dtfm]") {
  // X-Y and Y-Z 10 ms / 0.8 Gbps; X-Z 50 ms / 80 Mbps (1e7 B/s): Y belongs in the middle.
  const std::string links =
      "  - {between: [X, Y], latency: 10ms, bandwidth: 0.8Gbps}\n"
      "  - {between: [Y, Z], latency: 10ms, bandwidth: 0.8Gbps}\n"
      "  - {between: [X, Z], latency: 50ms, bandwidth: 80Mbps}\n";
  const EdgeCosts e = edges(sites_of_two("three-by-two", {"X", "Y", "Z"}, links), 2, 3, kVolumes);
  CHECK(e.pp_cost(0, 4) == Approx(0.05 + 1.0));
  // By site: DP 0.102; path X-Y-Z = 0.11 + 0.11 (X-Z costs 1.05): 0.102 + 2 x 0.22.
  const std::vector<Group> by_site{{0, 1}, {2, 3}, {4, 5}};
  CHECK(partition_cost(e, by_site).total() == Approx(0.542));
  const Candidate best = exhaustive_search(e);
  CHECK(best.cost.total() == Approx(0.542));
  CHECK(best.groups == by_site);
  // The plan puts Y's devices at stage 1; given in the order X, Z, Y the groups cost
  // 0.102 + 2 (1.05 + 0.11) as a placement.
  const par::Placement plan = realize(e, {{4, 5}, {0, 1}, {2, 3}});
  CHECK(std::min(plan.ranks[2], plan.ranks[3]) == 2);
  CHECK(std::max(plan.ranks[2], plan.ranks[3]) == 3);
  CHECK(placement_cost(e, plan).total() == Approx(0.542));
  CHECK(placement_cost(e, placement({0, 1, 4, 5, 2, 3})).total() == Approx(2.422));
  CHECK(placement_cost(e, par::identity_placement(6)).total() == Approx(0.542));
  // Pipeline 0 of the plan: 0 or 1, then 2 or 3, then 4 or 5 (or reversed).
  CHECK(partition_count(6, 2) == 15);
  CHECK(partition_count(12, 3) == 15400);
}

TEST_CASE("DT-FM: bottleneck matching and the open path against brute force", "[dtfm]") {
  const EdgeCosts e = random_edges(4, 5, 7);
  const Group g{0, 3, 5, 9}, h{1, 2, 11, 17};
  std::vector<int> perm{0, 1, 2, 3};
  double brute = INFINITY;
  do {
    double worst = 0;
    for (int i = 0; i < 4; ++i) worst = std::max(worst, e.pp_cost(g[size_t(i)], h[size_t(perm[size_t(i)])]));
    brute = std::min(brute, worst);
  } while (std::next_permutation(perm.begin(), perm.end()));
  const Matching m = bottleneck_matching(e, g, h);
  CHECK(m.bottleneck == brute);
  for (int i = 0; i < 4; ++i) CHECK(e.pp_cost(g[size_t(i)], h[size_t(m.match[size_t(i)])]) <= m.bottleneck);

  const int n = 6;
  std::vector<double> dist(size_t(n * n));
  for (int a = 0; a < n; ++a)
    for (int b = 0; b < n; ++b) dist[size_t(a * n + b)] = e.pp_cost(a, b + 6) + e.pp_cost(b, a + 6);
  std::vector<int> order(static_cast<size_t>(n));
  std::iota(order.begin(), order.end(), 0);
  double shortest = INFINITY;
  do {
    double len = 0;
    for (int i = 0; i + 1 < n; ++i) len += dist[size_t(order[size_t(i)] * n + order[size_t(i + 1)])];
    shortest = std::min(shortest, len);
  } while (std::next_permutation(order.begin(), order.end()));
  // dist is not symmetric here: the path runs one way; Held-Karp must still find the best.
  const Path p = open_tsp_path(dist, n);
  CHECK(p.length == Approx(shortest));
  double len = 0;
  for (int i = 0; i + 1 < n; ++i) len += dist[size_t(p.order[size_t(i)] * n + p.order[size_t(i + 1)])];
  CHECK(len == Approx(p.length));
}

TEST_CASE("DT-FM: the genetic search finds the exhaustive optimum, deterministically", "[dtfm]") {
  for (const auto& [dp, pp, net_seed] : {std::tuple{3, 4, 11}, {4, 3, 12}, {2, 4, 13}}) {
    const EdgeCosts e = random_edges(dp, pp, uint64_t(net_seed));
    const Candidate best = exhaustive_search(e);
    for (uint64_t seed : {1, 2, 3}) {
      const std::vector<Candidate> ga = genetic_search(e, {.population = 20, .trials = 300, .seed = seed});
      INFO("D_DP " << dp << " D_PP " << pp << " seed " << seed);
      CHECK(ga.front().cost.total() == Approx(best.cost.total()).epsilon(1e-12));
      CHECK(ga.front().cost.total() == Approx(partition_cost(e, ga.front().groups).total()));
      // A random partition is not the optimum (the test can fail).
      CHECK(placement_cost(e, random_placements(dp * pp, 1, seed).front()).total() > best.cost.total());
    }
    const std::vector<Candidate> a = genetic_search(e, {.population = 20, .trials = 100, .seed = 5});
    const std::vector<Candidate> b = genetic_search(e, {.population = 20, .trials = 100, .seed = 5});
    REQUIRE(a.size() == b.size());
    for (size_t i = 0; i < a.size(); ++i) CHECK(a[i].groups == b[i].groups);
  }
}

namespace {

using dtb::test::Outcome;

Outcome dtbench(const std::string& args) { return dtb::test::run_dtbench(args, scratch()); }

// The tiny model as DP 4 x PP 4 on 16 ranks of the eight-city profile (two per city).
const std::string kCities = kSource + "/configs/net/dtfm-5-cities.yaml";
const std::vector<std::string> kLayout = {"parallel.dp=4", "parallel.pp=4", "train.batch_size=16",
                                          "parallel.microbatches=2", "net.profile=" + kCities};

std::string sets(const std::vector<std::string>& keys) {
  std::string out;
  for (const std::string& k : keys) out += " --set " + k;
  return out;
}

Config tiny_config(const std::vector<std::string>& extra, const std::vector<KeySpec>& schema) {
  Config c(schema);
  c.merge_file(kSource + "/configs/model/tiny.yaml");
  for (const std::string& k : kLayout) c.set(k);
  for (const std::string& k : extra) c.set(k);
  return c;
}

}  // namespace

TEST_CASE("dtbench plan: its placement file goes through the trainer's and the simulator's readers", "[dtfm][cli]") {
  const std::string file = (scratch() / "plan.yaml").string(), slowest = (scratch() / "random.yaml").string();
  const Outcome run = dtbench("plan --config " + kSource + "/configs/model/tiny.yaml" + sets(kLayout) +
                              " --population 20 --trials 200 --random 20 --candidates 3 --seed 4 --out " + file +
                              " --out-random " + slowest);
  INFO(run.out << run.err);
  REQUIRE(run.exit_code == 0);
  for (const char* row : {"plan", "search best", "megatron", "random mean", "random best", "random worst", "plan stage 3:"})
    CHECK_THAT(run.out, Contains(row));

  // The same plan in process: the file holds its placement and the profile's sites.
  sim::dtfm::PlanOptions o;
  o.search = {.population = 20, .trials = 200, .seed = 4};
  o.random = 20;
  o.candidates = 3;
  const sim::SimSettings s = sim::sim_settings(tiny_config({}, sim::sim_schema()));
  const PlanResult r = make_plan(s, o);
  const par::Placement loaded = par::load_placement(file, 16);
  CHECK(loaded.ranks == r.plan.placement.ranks);
  const netem::Profile cities = netem::load_profile(kCities, 16);
  REQUIRE(loaded.sites.size() == 16);
  for (int rank = 0; rank < 16; ++rank)
    CHECK(loaded.sites[size_t(rank)] == cities.sites[size_t(cities.rank_site[size_t(rank)])].name);

  const auto worst = std::max_element(r.random.begin(), r.random.end(),
                                      [](const Scored& a, const Scored& b) { return a.step < b.step; });
  CHECK(par::load_placement(slowest, 16).ranks == worst->placement.ranks);

  // The trainer: the placement it runs (which grid position each MPI rank plays) and the
  // profile it times against, built as `dtbench train` builds them.
  const TrainSettings ts = train_settings(tiny_config({"parallel.placement=" + file}, train_schema()));
  CHECK(par::run_placement(ts, 16).ranks == r.plan.placement.ranks);
  CHECK(par::run_profile(ts, 16).rank_site == cities.rank_site);

  // The simulator: the file's step is the plan's, and its closed form the plan's.
  const sim::SimSettings with_file = sim::sim_settings(tiny_config({"parallel.placement=" + file}, sim::sim_schema()));
  CHECK(sim::simulate(with_file).time.step == r.plan.step);
  const EdgeCosts e = edge_costs(sim::closed_form_model(cities), s.grid, volumes(s));
  CHECK(placement_cost(e, loaded).total() == Approx(r.plan.cost.total()));
  // The search's best beats Megatron's order and every random placement by the closed form.
  CHECK(r.ranked.front().cost.total() <= r.megatron.cost.total());
  for (const Scored& x : r.random) CHECK(r.ranked.front().cost.total() < x.cost.total());
  // The plan is the fastest simulated candidate, Megatron's order among them.
  for (const Scored& x : r.ranked) CHECK(r.plan.step <= x.step);
  CHECK(r.plan.step <= r.megatron.step);
  if (r.plan_is_megatron) CHECK(r.plan.placement.ranks == r.megatron.placement.ranks);
}

TEST_CASE("dtbench plan: bad input exits 2 with one line", "[dtfm][cli]") {
  const std::string tiny = "plan --config " + kSource + "/configs/model/tiny.yaml --out none";
  dtb::test::expect_usage_error(dtbench(tiny + sets(kLayout) + " --world 12"), "world",
                                {"--world 12", "parallel.dp x parallel.pp = 4 x 4 = 16"});
  dtb::test::expect_usage_error(dtbench(tiny + sets(kLayout) + " --set parallel.tp=2"), "tp",
                                {"parallel.tp = 2", "allowed: tp = 1"});
  dtb::test::expect_usage_error(dtbench(tiny + " --set parallel.dp=2 --set train.batch_size=8 --set parallel.pp=2"),
                                "no net", {"no network profile", "--net"});
  dtb::test::expect_usage_error(dtbench(tiny + " --net " + kCities +
                                        " --set parallel.dp=24 --set parallel.pp=4 --set train.batch_size=24"),
                                "too few ranks", {"dtfm-5-cities.yaml", "rank 64 is on no site"});
  dtb::test::expect_usage_error(dtbench(tiny + sets(kLayout) + " --random -1"), "random", {"--random -1", ">= 20"});
  dtb::test::expect_usage_error(dtbench(tiny + sets(kLayout) + " --random 19"), "random 19", {"--random 19", ">= 20"});
  dtb::test::expect_usage_error(dtbench(tiny + sets(kLayout) + " --c-dp 1GiG"), "c-dp", {"--c-dp '1GiG'", "size > 0"});
  dtb::test::expect_usage_error(dtbench(tiny + sets(kLayout) + " --c-pp 0"), "c-pp", {"--c-pp '0'", "size > 0"});
  dtb::test::expect_usage_error(dtbench(tiny + " --net " + kCities + " --set parallel.dp=8 --set train.batch_size=8"),
                                "one stage", {"parallel.pp = 1", "2 to 16 stages"});
}

TEST_CASE("dtbench plan: --c-dp / --c-pp replace the model's volumes in the closed form", "[dtfm][cli]") {
  const sim::SimSettings s = sim::sim_settings(tiny_config({}, sim::sim_schema()));
  const Volumes model = volumes(s);
  // The tiny model's own: c_PP = (16 / 4 sequences) x T 64 x C 128 x 4 bytes (fp32) per pipeline.
  CHECK(model.pp_bytes == 4.0 * 64 * 128 * 4);
  const Volumes both = volumes(s, {.dp_bytes = 1e9, .pp_bytes = 2.8e8}), pp_only = volumes(s, {.pp_bytes = 2.8e8});
  CHECK(both.dp_bytes == 1e9);
  CHECK(both.pp_bytes == 2.8e8);
  CHECK(pp_only.dp_bytes == model.dp_bytes);
  CHECK(pp_only.pp_bytes == 2.8e8);
  // An edge's cost follows: 2 (alpha + c_DP / D_DP beta) with D_DP = 4.
  const netem::NetworkModel net = sim::closed_form_model(netem::load_profile(kCities, 16));
  const EdgeCosts e = edge_costs(net, s.grid, both);
  CHECK(e.dp_cost(0, 5) == Approx(2 * (net.alpha(0, 5) + 1e9 / 4 * net.beta(0, 5))));
  // The command line: parsed as network profiles write sizes, and named in the header.
  const Outcome run = dtbench("plan --config " + kSource + "/configs/model/tiny.yaml" + sets(kLayout) +
                              " --population 2 --trials 0 --candidates 1 --out none --c-dp 1GB --c-pp 280MB");
  INFO(run.out << run.err);
  REQUIRE(run.exit_code == 0);
  CHECK_THAT(run.out, Contains("c_DP 1 GB per stage, c_PP 280 MB per boundary and pipeline (given: --c-dp, --c-pp)"));
}
