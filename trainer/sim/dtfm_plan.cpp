#include "sim/dtfm_plan.hpp"

#include <algorithm>
#include <cstdio>
#include <map>
#include <tuple>
#include <string>

#include "sim/format.hpp"
#include "usage_error.hpp"

namespace dtb::sim::dtfm {

void check_plan_layout(const SimSettings& s, int world) {
  const par::Layout& g = s.grid;
  if (g.tp != 1)
    throw UsageError("parallel.tp = " + std::to_string(g.tp) +
                     ": dtbench plan partitions single devices (DT-FM's setting); allowed: tp = 1");
  if (g.pp < 2 || g.pp > kMaxStages)
    throw UsageError("parallel.pp = " + std::to_string(g.pp) + ": dtbench plan orders 2 to " +
                     std::to_string(kMaxStages) + " stages (an exact path over the stages)");
  if (world != g.world())
    throw UsageError("--world " + std::to_string(world) + ": parallel.dp x parallel.pp = " + std::to_string(g.dp) +
                     " x " + std::to_string(g.pp) + " = " + std::to_string(g.world()) + "; they must be equal");
}

par::Placement with_sites(par::Placement p, const netem::Profile& profile) {
  p.sites.clear();
  for (int site : profile.rank_site) p.sites.push_back(profile.sites[size_t(site)].name);
  return p;
}

namespace {

Scored score(const SimSettings& s, SimInputs in, const EdgeCosts& e, const par::Placement& p) {
  in.placement = p;
  return {p, placement_cost(e, p), simulate(s, in).time.step};
}

}  // namespace

PlanResult make_plan(const SimSettings& settings, const PlanOptions& o) {
  SimSettings s = settings;
  s.placement.clear();
  check_plan_layout(s, s.grid.world());
  const SimInputs in = load_inputs(s);
  PlanResult r;
  r.volumes = volumes(s, o.given);
  const EdgeCosts e = edge_costs(closed_form_model(in.profile), s.grid, r.volumes);

  const std::vector<Candidate> found = genetic_search(e, o.search);
  for (size_t i = 0; i < found.size() && int(i) < std::max(1, o.candidates); ++i)
    r.ranked.push_back(score(s, in, e, realize(e, found[i].groups)));
  r.megatron = score(s, in, e, par::identity_placement(s.grid.world()));
  r.plan = *std::min_element(r.ranked.begin(), r.ranked.end(),
                             [](const Scored& a, const Scored& b) { return a.step < b.step; });
  if (r.megatron.step < r.plan.step) {
    r.plan = r.megatron;
    r.plan_is_megatron = true;
  }
  r.plan.placement = with_sites(r.plan.placement, in.profile);
  for (const par::Placement& p : random_placements(s.grid.world(), o.random, o.search.seed))
    r.random.push_back(score(s, in, e, p));
  return r;
}

namespace {

struct Row {
  std::string name;
  double dp, pp2, total, step;
};

Row row(const std::string& name, const Scored& x) { return {name, x.cost.dp, 2 * x.cost.pp, x.cost.total(), x.step}; }

// Mean, best and worst of each column on its own (the best cost and the best step may be
// two different placements).
std::vector<Row> random_rows(const std::vector<Scored>& random) {
  std::vector<Row> rows;
  for (const Scored& x : random) rows.push_back(row("", x));
  Row mean{"random mean", 0, 0, 0, 0}, best{"random best", 1e300, 1e300, 1e300, 1e300}, worst{"random worst", 0, 0, 0, 0};
  for (const Row& x : rows) {
    for (auto [m, b, w, v] : {std::tuple{&mean.dp, &best.dp, &worst.dp, x.dp}, {&mean.pp2, &best.pp2, &worst.pp2, x.pp2},
                              {&mean.total, &best.total, &worst.total, x.total}, {&mean.step, &best.step, &worst.step, x.step}}) {
      *m += v / double(rows.size());
      *b = std::min(*b, v);
      *w = std::max(*w, v);
    }
  }
  return {mean, best, worst};
}

// "OR x8" or "node0 x4, node1 x4": the sites of one stage's devices.
std::string stage_sites(const par::Placement& p, int stage, int dp) {
  std::map<std::string, int> count;
  std::vector<std::string> order;
  for (int k = 0; k < dp; ++k) {
    const std::string& site = p.sites[size_t(p.ranks[size_t(k + stage * dp)])];
    if (count[site]++ == 0) order.push_back(site);
  }
  std::string out;
  for (const std::string& site : order) out += (out.empty() ? "" : ", ") + site + " x" + std::to_string(count[site]);
  return out;
}

// Which volumes the command line replaced (the others are the model's).
std::string given_note(const Volumes& g) {
  if (g.dp_bytes <= 0 && g.pp_bytes <= 0) return "";
  return std::string(" (given: ") + (g.dp_bytes > 0 ? "--c-dp" : "") + (g.dp_bytes > 0 && g.pp_bytes > 0 ? ", " : "") +
         (g.pp_bytes > 0 ? "--c-pp" : "") + ")";
}

}  // namespace

void print_plan(std::ostream& os, const SimSettings& s, const PlanOptions& o, const PlanResult& r) {
  os << "# dtbench plan: " << s.name << ", DP " << s.grid.dp << " x PP " << s.grid.pp << " (" << s.grid.world()
     << " ranks), c_DP " << format_bytes(r.volumes.dp_bytes) << " per stage, c_PP " << format_bytes(r.volumes.pp_bytes)
     << " per boundary and pipeline" << given_note(o.given) << "\n"
     << "# search: population " << o.search.population << ", " << o.search.trials << " trials, seed " << o.search.seed
     << "; the best " << r.ranked.size() << " simulated; " << r.random.size() << " random placements (seed "
     << o.search.seed << ")\n"
     << "# closed form (DT-FM): cost = DP + 2 x PP; step: the simulator's\n";
  char line[160];
  std::snprintf(line, sizeof line, "#%-16s %12s %12s %12s %12s %10s\n", " placement", "DP(s)", "2xPP(s)", "cost(s)",
                "step(s)", "step/plan");
  os << line;
  std::vector<Row> rows{row(r.plan_is_megatron ? "plan (megatron)" : "plan", r.plan),
                        row("search best", r.ranked.front()), row("megatron", r.megatron)};
  if (!r.random.empty())
    for (const Row& x : random_rows(r.random)) rows.push_back(x);
  for (const Row& x : rows) {
    std::snprintf(line, sizeof line, " %-16s %12.4g %12.4g %12.4g %12.4g %10.3f\n", x.name.c_str(), x.dp, x.pp2, x.total,
                  x.step, x.step / r.plan.step);
    os << line;
  }
  os << "# search best: the GA's best by the closed form; the plan: the fastest simulated of its best "
     << r.ranked.size() << " (closed form/step:";
  for (const Scored& x : r.ranked) os << " " << format_fixed(x.cost.total(), 4) << "/" << format_fixed(x.step, 4);
  os << " s) and Megatron's order\n";
  for (int st = 0; st < s.grid.pp; ++st)
    os << "# plan stage " << st << ": " << stage_sites(r.plan.placement, st, s.grid.dp) << "\n";
}

}  // namespace dtb::sim::dtfm
