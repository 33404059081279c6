#include "parallel/grid.hpp"

#include <yaml-cpp/yaml.h>

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <numeric>
#include <sstream>

#include "profile.hpp"
#include "usage_error.hpp"
#include "yaml_file.hpp"

namespace dtb::par {

int grid_rank(const Layout& l, const Coord& c) { return c.tp + c.dp * l.tp + c.pp * l.tp * l.dp; }

Coord grid_coord(const Layout& l, int rank) {
  return {.dp = (rank / l.tp) % l.dp, .pp = rank / (l.tp * l.dp), .tp = rank % l.tp};
}

std::vector<int> tp_group(const Layout& l, const Coord& c) {
  std::vector<int> g;
  for (int t = 0; t < l.tp; ++t) g.push_back(grid_rank(l, {c.dp, c.pp, t}));
  return g;
}
std::vector<int> dp_group(const Layout& l, const Coord& c) {
  std::vector<int> g;
  for (int d = 0; d < l.dp; ++d) g.push_back(grid_rank(l, {d, c.pp, c.tp}));
  return g;
}
std::vector<int> pp_group(const Layout& l, const Coord& c) {
  std::vector<int> g;
  for (int p = 0; p < l.pp; ++p) g.push_back(grid_rank(l, {c.dp, p, c.tp}));
  return g;
}
// A group's colour is the grid rank of its first member: unique per group.
int tp_color(const Layout& l, const Coord& c) { return tp_group(l, c).front(); }
int dp_color(const Layout& l, const Coord& c) { return dp_group(l, c).front(); }
int pp_color(const Layout& l, const Coord& c) { return pp_group(l, c).front(); }

std::vector<int> stage_bounds(int n_layer, int pp, const std::vector<int>& counts) {
  std::vector<int> bounds = {0};
  for (int s = 0; s < pp; ++s) {
    const int n = counts.empty() ? n_layer / pp + (s < n_layer % pp ? 1 : 0) : counts[size_t(s)];
    bounds.push_back(bounds.back() + n);
  }
  return bounds;
}

Placement identity_placement(int world) {
  Placement p;
  p.ranks.resize(size_t(world));
  std::iota(p.ranks.begin(), p.ranks.end(), 0);
  return p;
}

void check_placement(const Placement& p, int world, const std::string& where) {
  if (int(p.ranks.size()) != world)
    throw UsageError(where + ": ranks lists " + std::to_string(p.ranks.size()) +
                     " ranks, the world has " + std::to_string(world));
  std::vector<int> seen(size_t(world), 0);
  for (int r : p.ranks) {
    if (r < 0 || r >= world)
      throw UsageError(where + ": rank " + std::to_string(r) + " is outside [0, " +
                       std::to_string(world) + ")");
    if (seen[size_t(r)]++)
      throw UsageError(where + ": rank " + std::to_string(r) + " appears twice; each rank exactly once");
  }
  if (!p.sites.empty() && int(p.sites.size()) != world)
    throw UsageError(where + ": sites names " + std::to_string(p.sites.size()) +
                     " ranks, the world has " + std::to_string(world));
}

Placement load_placement(const std::string& path, int world) {
  Placement p;
  try {
    const YAML::Node root = load_yaml_file(path);
    for (const auto& kv : root) {
      const std::string key = kv.first.as<std::string>();
      if (key == "ranks") p.ranks = kv.second.as<std::vector<int>>();
      else if (key == "sites") p.sites = kv.second.as<std::vector<std::string>>();
      else throw UsageError(path + ": unknown key '" + key + "'; allowed: ranks, sites");
    }
  } catch (const YAML::Exception& e) {
    throw UsageError(path + ": " + e.what() + " (a placement: ranks: [grid order], sites: [per rank])");
  }
  if (p.ranks.empty()) p.ranks = identity_placement(world).ranks;
  check_placement(p, world, path);
  return p;
}

namespace {
template <typename T>
std::string flow_list(const std::vector<T>& v) {
  std::ostringstream os;
  os << '[';
  for (size_t i = 0; i < v.size(); ++i) os << (i ? ", " : "") << v[i];
  os << ']';
  return os.str();
}
}  // namespace

void save_placement(const std::string& path, const Placement& p, const std::string& header) {
  std::ostringstream text;
  std::istringstream lines(header);
  for (std::string line; std::getline(lines, line);) text << "# " << line << "\n";
  text << "ranks: " << flow_list(p.ranks) << "\n";
  if (!p.sites.empty()) text << "sites: " << flow_list(p.sites) << "\n";
  const std::string tmp = path + ".tmp-" + std::to_string(::getpid());
  std::ofstream(tmp, std::ios::binary) << text.str();
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    std::remove(tmp.c_str());
    throw UsageError(path + ": cannot write the placement file");
  }
}

int grid_rank_of(const Placement& p, int world_rank) {
  return int(std::find(p.ranks.begin(), p.ranks.end(), world_rank) - p.ranks.begin());
}

void place_sites(netem::Profile& profile, const Placement& p, const std::string& where) {
  for (size_t r = 0; r < p.sites.size(); ++r) {
    const auto it = std::find_if(profile.sites.begin(), profile.sites.end(),
                                 [&](const netem::Site& site) { return site.name == p.sites[r]; });
    if (it == profile.sites.end())
      throw UsageError(where + ": site '" + p.sites[r] + "' is not in the network profile");
    profile.rank_site[r] = int(it - profile.sites.begin());
  }
  if (!p.sites.empty()) netem::check_links(profile, where);
}

}  // namespace dtb::par
