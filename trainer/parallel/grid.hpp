#pragma once
// The rank grid of 3D parallelism: world = DP x PP x TP in Megatron's order, TP fastest,
// then DP, then PP:  rank = tp + dp*TP + pp*TP*DP. One function builds it (grid_rank) and
// one inverts it (grid_coord); every group is derived from them.
#include <string>
#include <vector>

namespace dtb::netem {
struct Profile;
}

namespace dtb::par {

struct Layout {
  int dp = 1, pp = 1, tp = 1;
  int world() const { return dp * pp * tp; }
};

struct Coord {
  int dp = 0, pp = 0, tp = 0;
  bool operator==(const Coord&) const = default;
};

int grid_rank(const Layout& l, const Coord& c);
Coord grid_coord(const Layout& l, int rank);

// The grid ranks of this rank's groups, in group order (tp, dp, pp index respectively).
std::vector<int> tp_group(const Layout& l, const Coord& c);  // same dp, pp
std::vector<int> dp_group(const Layout& l, const Coord& c);  // same pp, tp
std::vector<int> pp_group(const Layout& l, const Coord& c);  // same dp, tp
// Colours for Communicator::split: ranks with equal colour form the group.
int tp_color(const Layout& l, const Coord& c);
int dp_color(const Layout& l, const Coord& c);
int pp_color(const Layout& l, const Coord& c);

// Contiguous pipeline stages: the first layer of each stage, plus n_layer at the end.
// COUNTS empty: balanced (the first n_layer % pp stages get one layer more); otherwise
// one layer count per stage, summing to n_layer (checked by the caller's config).
std::vector<int> stage_bounds(int n_layer, int pp, const std::vector<int>& counts = {});

// A placement: which world rank plays each grid position. ranks[g] = world rank of grid
// rank g. The identity by default. Throws UsageError (naming WHERE) unless it is a
// permutation of 0..world-1.
struct Placement {
  std::vector<int> ranks;
  std::vector<std::string> sites;  // optional: a site name per world rank (overrides the profile)
};
Placement identity_placement(int world);
void check_placement(const Placement& p, int world, const std::string& where);
// "placement.yaml": `ranks: [3, 2, 1, 0]` (grid order) and optional `sites: [a, a, b, b]`
// (one per world rank). Throws UsageError naming the file.
Placement load_placement(const std::string& path, int world);
// Writes P in that format (sites only when P names them), under a temporary name renamed
// to PATH; HEADER (optional) goes first as '# ' comment lines. Throws UsageError if PATH
// cannot be written.
void save_placement(const std::string& path, const Placement& p, const std::string& header = "");
// The grid rank that world rank WORLD_RANK plays.
int grid_rank_of(const Placement& p, int world_rank);
// Puts each world rank on the site P names for it (when P names sites): the trainer's and
// the simulator's profile. A site the profile lacks throws UsageError naming WHERE.
void place_sites(netem::Profile& profile, const Placement& p, const std::string& where);

}  // namespace dtb::par
