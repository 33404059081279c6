#include "sim/dtfm_search.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <string>

#include "data/splitmix64.hpp"
#include "usage_error.hpp"

namespace dtb::sim::dtfm {
namespace {

int below(SplitMix64& rng, int n) { return int(uniform_below(rng.next(), uint64_t(n))); }

void shuffle(std::vector<int>& v, SplitMix64& rng) {
  for (int i = int(v.size()) - 1; i > 0; --i) std::swap(v[size_t(i)], v[size_t(below(rng, i + 1))]);
}

// A candidate under search: device -> group, with each group's DP cost and every pair's
// bottleneck kept, so that a swap recomputes only the two groups it touches.
class State {
 public:
  State(const EdgeCosts& e, const std::vector<int>& assignment) : e_(&e), assign_(assignment) {
    const int pp = e.pp;
    groups_.assign(size_t(pp), {});
    pos_.assign(assign_.size(), 0);
    for (int d = 0; d < e.devices; ++d) {
      pos_[size_t(d)] = int(groups_[size_t(assign_[size_t(d)])].size());
      groups_[size_t(assign_[size_t(d)])].push_back(d);
    }
    dp_.assign(size_t(pp), 0);
    b_.assign(size_t(pp * pp), 0);
    for (int g = 0; g < pp; ++g) refresh(g, -1);
    score();
  }

  // Devices A and B (in different groups) trade places.
  void swap(int a, int b) {
    const int ga = assign_[size_t(a)], gb = assign_[size_t(b)];
    std::swap(groups_[size_t(ga)][size_t(pos_[size_t(a)])], groups_[size_t(gb)][size_t(pos_[size_t(b)])]);
    std::swap(pos_[size_t(a)], pos_[size_t(b)]);
    std::swap(assign_[size_t(a)], assign_[size_t(b)]);
    refresh(ga, -1);
    refresh(gb, ga);
    score();
  }

  // Lower cost, or equal cost and a lower second score.
  bool better_than(const State& o) const {
    const double tol = 1e-12 * std::max(1.0, o.cost_.total());
    if (cost_.total() < o.cost_.total() - tol) return true;
    return cost_.total() <= o.cost_.total() + tol && second_ < o.second_ - tol;
  }
  bool better_than(double total, double second) const {
    const double tol = 1e-12 * std::max(1.0, total);
    return cost_.total() < total - tol || (cost_.total() <= total + tol && second_ < second - tol);
  }

  const std::vector<int>& assignment() const { return assign_; }
  int group_of(int d) const { return assign_[size_t(d)]; }
  Cost cost() const { return cost_; }
  double second() const { return second_; }
  Candidate candidate() const {
    Candidate c{groups_, cost_};
    for (Group& g : c.groups) std::sort(g.begin(), g.end());
    std::sort(c.groups.begin(), c.groups.end());
    return c;
  }

 private:
  // Group G's DP cost and its bottlenecks to every other group but SKIP (already done; -1: none).
  void refresh(int g, int skip) {
    const int pp = e_->pp;
    dp_[size_t(g)] = group_dp_cost(*e_, groups_[size_t(g)]);
    for (int h = 0; h < pp; ++h) {
      if (h == g || h == skip) continue;
      const double b = bottleneck_matching(*e_, groups_[size_t(g)], groups_[size_t(h)]).bottleneck;
      b_[size_t(g * pp + h)] = b_[size_t(h * pp + g)] = b;
    }
  }
  void score() {
    cost_.dp = *std::max_element(dp_.begin(), dp_.end());
    cost_.pp = open_tsp_path(b_, e_->pp).length;
    second_ = std::accumulate(dp_.begin(), dp_.end(), 0.0) + std::accumulate(b_.begin(), b_.end(), 0.0);
  }

  const EdgeCosts* e_;
  std::vector<int> assign_, pos_;
  std::vector<Group> groups_;
  std::vector<double> dp_, b_;  // per group; per pair of groups (pp x pp)
  Cost cost_;
  double second_ = 0;
};

// Random swaps, each kept when it improves, until DEVICES tries in a row find nothing.
void local_search(State& s, const EdgeCosts& e, SplitMix64& rng) {
  if (e.pp < 2) return;
  for (int failures = 0; failures < e.devices;) {
    const int a = below(rng, e.devices), b = below(rng, e.devices);
    if (s.group_of(a) == s.group_of(b)) continue;
    const double total = s.cost().total(), second = s.second();
    s.swap(a, b);
    if (s.better_than(total, second)) {
      failures = 0;
    } else {
      s.swap(a, b);  // undo
      ++failures;
    }
  }
}

// Every swap, repeatedly, until none improves: a local optimum of the swap neighbourhood.
void descend(State& s, const EdgeCosts& e) {
  for (bool improved = true; improved;) {
    improved = false;
    for (int a = 0; a < e.devices; ++a)
      for (int b = a + 1; b < e.devices; ++b) {
        if (s.group_of(a) == s.group_of(b)) continue;
        const double total = s.cost().total(), second = s.second();
        s.swap(a, b);
        if (s.better_than(total, second)) improved = true;
        else s.swap(a, b);
      }
  }
}

std::vector<int> random_assignment(const EdgeCosts& e, SplitMix64& rng) {
  std::vector<int> order(size_t(e.devices));
  std::iota(order.begin(), order.end(), 0);
  shuffle(order, rng);
  std::vector<int> assign(size_t(e.devices));
  for (int i = 0; i < e.devices; ++i) assign[size_t(order[size_t(i)])] = i / e.dp;
  return assign;
}

// P1's group labels renamed to match P2's: greedily, the pairs of groups sharing most
// devices first.
std::vector<int> aligned(const std::vector<int>& p1, const std::vector<int>& p2, int pp) {
  std::vector<int> overlap(size_t(pp * pp), 0);
  for (size_t d = 0; d < p1.size(); ++d) ++overlap[size_t(p1[d] * pp + p2[d])];
  std::vector<int> pairs(size_t(pp * pp));
  std::iota(pairs.begin(), pairs.end(), 0);
  std::stable_sort(pairs.begin(), pairs.end(), [&](int x, int y) { return overlap[size_t(x)] > overlap[size_t(y)]; });
  std::vector<int> rename(size_t(pp), -1), taken(size_t(pp), 0);
  for (int xy : pairs) {
    const int from = xy / pp, to = xy % pp;
    if (rename[size_t(from)] >= 0 || taken[size_t(to)]) continue;
    rename[size_t(from)] = to;
    taken[size_t(to)] = 1;
  }
  std::vector<int> out(p1.size());
  for (size_t d = 0; d < p1.size(); ++d) out[d] = rename[size_t(p1[d])];
  return out;
}

// Parent 2 with five random devices in parent 1's (renamed) group, then rebalanced: the
// devices of an overfull group, visited in random order, move to the first group short of
// members.
std::vector<int> five_point_crossover(const std::vector<int>& p1, const std::vector<int>& p2, const EdgeCosts& e,
                                      SplitMix64& rng) {
  const std::vector<int> donor = aligned(p1, p2, e.pp);
  std::vector<int> child = p2, order(size_t(e.devices));
  std::iota(order.begin(), order.end(), 0);
  shuffle(order, rng);
  for (int i = 0; i < std::min(5, e.devices); ++i) child[size_t(order[size_t(i)])] = donor[size_t(order[size_t(i)])];
  std::vector<int> size(size_t(e.pp), 0);
  for (int g : child) ++size[size_t(g)];
  shuffle(order, rng);
  for (int d : order) {
    int& g = child[size_t(d)];
    if (size[size_t(g)] <= e.dp) continue;
    const int to = int(std::find_if(size.begin(), size.end(), [&](int n) { return n < e.dp; }) - size.begin());
    --size[size_t(g)];
    ++size[size_t(to)];
    g = to;
  }
  return child;
}

bool same_partition(const State& a, const State& b) { return a.candidate().groups == b.candidate().groups; }

}  // namespace

std::vector<Candidate> genetic_search(const EdgeCosts& e, const SearchOptions& o) {
  SplitMix64 rng(o.seed);
  std::vector<State> population;
  for (int i = 0; i < o.population; ++i) {
    population.emplace_back(e, random_assignment(e, rng));
    local_search(population.back(), e, rng);
  }
  for (int t = 0; t < o.trials && population.size() >= 2; ++t) {
    const int i = below(rng, int(population.size()));
    int j = below(rng, int(population.size()) - 1);
    if (j >= i) ++j;
    State child(e, five_point_crossover(population[size_t(i)].assignment(), population[size_t(j)].assignment(), e, rng));
    local_search(child, e, rng);
    const int worse = population[size_t(i)].better_than(population[size_t(j)]) ? j : i;
    if (!child.better_than(population[size_t(worse)])) continue;
    if (std::any_of(population.begin(), population.end(), [&](const State& s) { return same_partition(s, child); }))
      continue;
    population[size_t(worse)] = std::move(child);
  }
  std::stable_sort(population.begin(), population.end(), [](const State& a, const State& b) { return a.better_than(b); });
  descend(population.front(), e);
  std::vector<Candidate> out;
  for (const State& s : population) {
    Candidate c = s.candidate();
    if (std::none_of(out.begin(), out.end(), [&](const Candidate& x) { return x.groups == c.groups; })) out.push_back(c);
  }
  std::stable_sort(out.begin(), out.end(), [](const Candidate& a, const Candidate& b) { return a.cost.total() < b.cost.total(); });
  return out;
}

double partition_count(int devices, int group_size) {
  // D! / (k!^g g!) = prod over groups of C(remaining - 1, k - 1): the first free device's group.
  double n = 1;
  for (int left = devices; left > 0; left -= group_size)
    n *= std::round(std::exp(std::lgamma(left) - std::lgamma(group_size) - std::lgamma(left - group_size + 1)));
  return n;
}

Candidate exhaustive_search(const EdgeCosts& e) {
  const double count = partition_count(e.devices, e.dp);
  if (count > kMaxExhaustive)
    throw UsageError("exhaustive search: " + std::to_string(e.devices) + " devices in groups of " +
                     std::to_string(e.dp) + " make " + std::to_string(count) + " partitions; at most " +
                     std::to_string(kMaxExhaustive) + " allowed");
  Candidate best{{}, {std::numeric_limits<double>::infinity(), 0}};
  std::vector<Group> groups;
  std::vector<char> used(size_t(e.devices), 0);
  // Each group takes the lowest free device and every choice of k - 1 more after it.
  auto fill = [&](auto&& self, Group& g, int from) -> void {
    if (int(g.size()) == e.dp) {
      groups.push_back(g);
      int first = 0;
      while (first < e.devices && used[size_t(first)]) ++first;
      if (first == e.devices) {
        const Cost c = partition_cost(e, groups);
        if (c.total() < best.cost.total()) best = {groups, c};
      } else {
        Group next{first};
        used[size_t(first)] = 1;
        self(self, next, first + 1);
        used[size_t(first)] = 0;
      }
      groups.pop_back();
      return;
    }
    for (int d = from; d < e.devices; ++d) {
      if (used[size_t(d)]) continue;
      used[size_t(d)] = 1;
      g.push_back(d);
      self(self, g, d + 1);
      g.pop_back();
      used[size_t(d)] = 0;
    }
  };
  Group first{0};
  used[0] = 1;
  fill(fill, first, 1);
  return best;
}

std::vector<par::Placement> random_placements(int world, int n, uint64_t seed) {
  SplitMix64 rng(seed);
  std::vector<par::Placement> out;
  for (int i = 0; i < n; ++i) {
    par::Placement p = par::identity_placement(world);
    shuffle(p.ranks, rng);
    out.push_back(p);
  }
  return out;
}

}  // namespace dtb::sim::dtfm
