#pragma once
// A network profile: sites, the ranks each holds, the link inside each site and between
// each pair of sites, optional per-rank NIC caps, and transport options. Loaded from YAML
// (configs/net/*.yaml, format in configs/net/README.md) and checked as it enters: every
// bad profile throws dtb::UsageError with one line naming the file, the key and what is
// allowed.
#include <cstdint>
#include <string>
#include <vector>

#include "link_faults.hpp"
#include "usage_error.hpp"

namespace dtb::netem {

struct LinkSpec {
  double latency_s = 0;      // one-way
  double jitter_s = 0;       // standard deviation (normal) or half-width (uniform)
  std::string jitter_dist = "normal";  // "normal" or "uniform"; draws are seeded
  double bandwidth_Bps = 0;  // bytes per second; 0 = unlimited
  double loss_rate = 0;      // per segment, in [0, 1)
};

struct Site {
  std::string name;
  LinkSpec intra;            // between two ranks of this site
  bool intra_given = true;   // false: the file gave none (the site held fewer than 2 ranks)
};

// Machines: every RANKS consecutive ranks of a site (in rank order) are one host, whose
// NIC caps are shared by the ranks placed on it: each of them gets cap / (ranks on its host)
// for the messages that leave the host (those between two ranks of one host take the
// site's intra link only: NVLink, PCIe). RANKS = 0: no hosts.
struct Hosts {
  int ranks = 0;
  double egress_Bps = 0, ingress_Bps = 0;  // per host; 0 = unlimited
};

struct Profile {
  std::string name, source_path;
  std::string source;                  // where the figures come from (free text)
  std::vector<Site> sites;
  std::vector<int> rank_site;          // rank -> index into sites; size = world size
  // Between two sites: (sites x sites), symmetric, diagonal unused; or one entry when every
  // pair of sites has the same link (`sites: per_rank`, so that a world of thousands of
  // ranks does not hold millions of copies). Read it through link().
  std::vector<LinkSpec> inter;
  // Like inter: whether the file gave that link (or default_link); the loader fills the
  // pairs of sites its placement leaves empty with unlimited links. Empty: all given.
  std::vector<char> inter_given;
  double nic_egress_Bps = 0;           // per rank; 0 = unlimited
  double nic_ingress_Bps = 0;
  Hosts hosts;
  uint64_t header_bytes = 0;           // per segment, e.g. 66
  uint64_t segment_bytes = 1448;       // TCP payload per segment
  uint64_t tcp_window_bytes = 0;       // 0 = no window cap
  double rto_s = 0.2;                  // retransmission timeout charged per lost segment
  uint64_t seed = 1;                   // jitter and loss draws
  // Faults on purpose (link_faults.hpp): not from the file; the trainer and the simulator
  // attach the run's faults.* keys. Empty: links do what the figures above say, always.
  LinkFaults faults;

  const LinkSpec& link(int a, int b) const;  // the link between two ranks
  // Rank -> host (numbered in order of first rank); every rank its own host without hosts.
  std::vector<int> rank_hosts() const;
};

// Loads PATH for WORLD_SIZE ranks. Sites either give `ranks: N`, or one site says
// `ranks: rest` and takes the ranks left over; or the profile gives `rank_sites:` (a site
// name per rank); or `sites: per_rank` puts every rank on a site of its own (rank0, rank1,
// ...), any two joined by `default_link`. With `ranks:`, `placement:` says how the world's
// ranks go to the sites: fill (the default: in list order, each site filled before the
// next), round_robin (one rank per site in turn) or blocks (world / sites consecutive
// ranks per site); a profile holding more ranks than the world leaves the rest unused. A rank on no
// site, a negative bandwidth, an unknown site in a link, a duplicate site, a link missing
// between two sites that hold ranks, an unknown key, ... throw UsageError (one line: file,
// line, key, what is allowed). The format is in configs/net/README.md.
Profile load_profile(const std::string& path, int world_size);

// One line when a profile of several sites puts every rank on one of them (so no message
// crosses between sites, which is rarely what a multi-site profile is for), saying how to
// spread them; empty otherwise. Start-up prints it once (rank 0).
std::string single_site_warning(const Profile& profile);

// After ranks were moved to other sites than the profile's own placement put them on (a
// placement file's sites): every site now holding 2+ ranks must have its intra link and
// every pair of sites holding ranks a link from the file. Throws UsageError naming WHERE.
void check_links(const Profile& profile, const std::string& where);

// A profile with one site holding every rank, all links alike (tests, the unshaped baseline).
Profile uniform_profile(int world_size, double latency_s, double bandwidth_Bps);

}  // namespace dtb::netem
