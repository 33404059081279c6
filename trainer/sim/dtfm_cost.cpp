#include "sim/dtfm_cost.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

#include "codec.hpp"
#include "sim/device.hpp"
#include "sim/model_costs.hpp"

namespace dtb::sim::dtfm {

Volumes volumes(const SimSettings& s, const Volumes& given) {
  const ModelCosts model = model_costs(s);
  const std::unique_ptr<coll::Codec> codec = coll::make_codec(s.dp_codec);
  double grads = 0;
  for (const Stage& st : model.stages) {
    const double n = st.buffer.total();
    grads += codec ? double(codec->encoded_bytes(size_t(std::ceil(n)))) : n * precision_bytes(s.grad_precision);
  }
  Volumes v;
  v.dp_bytes = grads / double(model.stages.size());
  v.pp_bytes = double(s.batch_size) / s.grid.dp * s.seq_len * s.model.n_embd * precision_bytes(s.compute);
  if (given.dp_bytes > 0) v.dp_bytes = given.dp_bytes;
  if (given.pp_bytes > 0) v.pp_bytes = given.pp_bytes;
  return v;
}

EdgeCosts edge_costs(const netem::NetworkModel& net, const par::Layout& grid, const Volumes& v) {
  EdgeCosts e;
  e.devices = grid.world();
  e.dp = grid.dp;
  e.pp = grid.pp;
  const size_t n = size_t(e.devices);
  e.dp_edge.assign(n * n, 0);
  e.pp_edge.assign(n * n, 0);
  for (int a = 0; a < e.devices; ++a)
    for (int b = 0; b < e.devices; ++b) {
      if (a == b) continue;
      const size_t i = size_t(a) * n + size_t(b);
      e.dp_edge[i] = 2 * (net.alpha(a, b) + v.dp_bytes / grid.dp * net.beta(a, b));
      e.pp_edge[i] = (net.alpha(a, b) + net.alpha(b, a) + v.pp_bytes * (net.beta(a, b) + net.beta(b, a))) / 2;
    }
  return e;
}

double group_dp_cost(const EdgeCosts& e, const Group& g) {
  double worst = 0;
  for (int i : g) {
    double sum = 0;
    for (int j : g)
      if (j != i) sum += e.dp_cost(i, j);
    worst = std::max(worst, sum);
  }
  return worst;
}

namespace {

// Kuhn's augmenting paths: a perfect matching of G to H using only edges of weight <= LIMIT,
// or an empty vector if none exists. n <= a few dozen, so O(n^3) is nothing.
std::vector<int> perfect_matching(const EdgeCosts& e, const Group& g, const Group& h, double limit) {
  const int n = int(g.size());
  std::vector<int> owner(size_t(n), -1);  // owner[j]: the index in G matched to H[j]
  std::vector<char> seen;
  auto augment = [&](auto&& self, int i) -> bool {
    for (int j = 0; j < n; ++j) {
      if (seen[size_t(j)] || e.pp_cost(g[size_t(i)], h[size_t(j)]) > limit) continue;
      seen[size_t(j)] = 1;
      if (owner[size_t(j)] < 0 || self(self, owner[size_t(j)])) {
        owner[size_t(j)] = i;
        return true;
      }
    }
    return false;
  };
  for (int i = 0; i < n; ++i) {
    seen.assign(size_t(n), 0);
    if (!augment(augment, i)) return {};
  }
  std::vector<int> match(static_cast<size_t>(n));
  for (int j = 0; j < n; ++j) match[size_t(owner[size_t(j)])] = j;
  return match;
}

}  // namespace

// The smallest edge weight W for which the edges <= W hold a perfect matching: a binary
// search over the sorted weights, from the largest row or column minimum (no matching can
// do better than every device's own cheapest partner).
Matching bottleneck_matching(const EdgeCosts& e, const Group& g, const Group& h) {
  const size_t n = g.size();
  std::vector<double> w;
  double floor = 0;
  for (size_t i = 0; i < n; ++i) {
    double row = std::numeric_limits<double>::infinity(), col = row;
    for (size_t j = 0; j < n; ++j) {
      w.push_back(e.pp_cost(g[i], h[j]));
      row = std::min(row, e.pp_cost(g[i], h[j]));
      col = std::min(col, e.pp_cost(g[j], h[i]));
    }
    floor = std::max({floor, row, col});
  }
  std::sort(w.begin(), w.end());
  w.erase(std::unique(w.begin(), w.end()), w.end());
  size_t lo = size_t(std::lower_bound(w.begin(), w.end(), floor) - w.begin()), hi = w.size() - 1;
  while (lo < hi) {  // the complete graph (hi) always matches
    const size_t mid = (lo + hi) / 2;
    if (perfect_matching(e, g, h, w[mid]).empty()) lo = mid + 1;
    else hi = mid;
  }
  return {w[lo], perfect_matching(e, g, h, w[lo])};
}

// Held-Karp for a path: best[mask][last] = the shortest path visiting MASK, ending at LAST.
Path open_tsp_path(const std::vector<double>& dist, int n) {
  if (n <= 1) return {0, std::vector<int>(size_t(n), 0)};
  const size_t full = size_t(1) << n;
  const double inf = std::numeric_limits<double>::infinity();
  std::vector<double> best(full * size_t(n), inf);
  std::vector<int> from(full * size_t(n), -1);
  for (int v = 0; v < n; ++v) best[(size_t(1) << v) * size_t(n) + size_t(v)] = 0;
  for (size_t mask = 1; mask < full; ++mask)
    for (int last = 0; last < n; ++last) {
      const double here = best[mask * size_t(n) + size_t(last)];
      if (here == inf) continue;
      for (int next = 0; next < n; ++next) {
        if (mask & (size_t(1) << next)) continue;
        const size_t to = (mask | (size_t(1) << next)) * size_t(n) + size_t(next);
        const double len = here + dist[size_t(last) * size_t(n) + size_t(next)];
        if (len < best[to]) {
          best[to] = len;
          from[to] = last;
        }
      }
    }
  Path p{inf, {}};
  int last = 0;
  for (int v = 0; v < n; ++v)
    if (best[(full - 1) * size_t(n) + size_t(v)] < p.length) {
      p.length = best[(full - 1) * size_t(n) + size_t(v)];
      last = v;
    }
  for (size_t mask = full - 1; last >= 0;) {
    p.order.push_back(last);
    const int prev = from[mask * size_t(n) + size_t(last)];
    mask &= ~(size_t(1) << last);
    last = prev;
  }
  std::reverse(p.order.begin(), p.order.end());
  return p;
}

namespace {

std::vector<double> bottlenecks(const EdgeCosts& e, const std::vector<Group>& groups) {
  const size_t n = groups.size();
  std::vector<double> b(n * n, 0);
  for (size_t i = 0; i < n; ++i)
    for (size_t j = i + 1; j < n; ++j) b[i * n + j] = b[j * n + i] = bottleneck_matching(e, groups[i], groups[j]).bottleneck;
  return b;
}

double dp_cost(const EdgeCosts& e, const std::vector<Group>& groups) {
  double worst = 0;
  for (const Group& g : groups) worst = std::max(worst, group_dp_cost(e, g));
  return worst;
}

}  // namespace

Cost partition_cost(const EdgeCosts& e, const std::vector<Group>& groups) {
  return {dp_cost(e, groups), open_tsp_path(bottlenecks(e, groups), int(groups.size())).length};
}

par::Placement realize(const EdgeCosts& e, const std::vector<Group>& groups) {
  const Path path = open_tsp_path(bottlenecks(e, groups), int(groups.size()));
  // pipeline[k] = the device of pipeline k at the current stage; stage 0 in group order.
  std::vector<int> pipeline = groups[size_t(path.order[0])];
  par::Placement p = par::identity_placement(e.devices);
  for (size_t s = 0; s < path.order.size(); ++s) {
    if (s > 0) {
      const Group& prev = groups[size_t(path.order[s - 1])];
      const Group& next = groups[size_t(path.order[s])];
      const Matching m = bottleneck_matching(e, prev, next);
      for (int& device : pipeline) {
        const size_t i = size_t(std::find(prev.begin(), prev.end(), device) - prev.begin());
        device = next[size_t(m.match[i])];
      }
    }
    for (int k = 0; k < e.dp; ++k) p.ranks[size_t(k + int(s) * e.dp)] = pipeline[size_t(k)];
  }
  return p;
}

Cost placement_cost(const EdgeCosts& e, const par::Placement& p) {
  std::vector<Group> stages(size_t(e.pp));
  for (int s = 0; s < e.pp; ++s)
    for (int k = 0; k < e.dp; ++k) stages[size_t(s)].push_back(p.ranks[size_t(k + s * e.dp)]);
  Cost c{dp_cost(e, stages), 0};
  for (int s = 0; s + 1 < e.pp; ++s) {
    double slowest = 0;
    for (int k = 0; k < e.dp; ++k) slowest = std::max(slowest, e.pp_cost(stages[size_t(s)][size_t(k)], stages[size_t(s + 1)][size_t(k)]));
    c.pp += slowest;
  }
  return c;
}

}  // namespace dtb::sim::dtfm
