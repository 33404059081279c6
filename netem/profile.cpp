#include "profile.hpp"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <charconv>
#include <filesystem>
#include <map>
#include <optional>
#include <stdexcept>

#include "units.hpp"
#include "yaml_file.hpp"

namespace dtb::netem {
namespace {

using Keys = std::vector<std::string>;
const Keys kTopKeys = {"name",  "source",       "seed", "sites",    "rank_sites",
                       "links", "default_link", "nic",  "hosts", "transport", "placement"};
const Keys kPlacements = {"fill", "round_robin", "blocks"};
const Keys kSiteKeys = {"name", "ranks", "intra"};
const Keys kLinkKeys = {"latency", "bandwidth", "jitter", "jitter_dist", "loss"};
const Keys kNicKeys = {"egress", "ingress"};
const Keys kHostKeys = {"ranks", "egress", "ingress"};
const Keys kTransportKeys = {"header_bytes", "segment_bytes", "tcp_window", "rto"};

std::string join(const Keys& names) {
  std::string out;
  for (const auto& n : names) out += (out.empty() ? "" : ", ") + n;
  return out;
}

std::string describe(const YAML::Node& node) {
  if (!node.IsDefined() || node.IsNull()) return "nothing";
  if (node.IsScalar()) return "'" + node.Scalar() + "'";
  if (node.IsSequence()) return node.size() == 0 ? "an empty list" : "a list";
  return "a map";
}

std::string child(const std::string& key, const std::string& name) {
  return key.empty() ? name : key + "." + name;
}

std::string item(const std::string& key, size_t i) { return key + "[" + std::to_string(i) + "]"; }

// Reads the values of one profile file; every error names the file, line and key.
class Reader {
 public:
  explicit Reader(std::string path) : path_(std::move(path)) {}
  const std::string& path() const { return path_; }

  [[noreturn]] void fail(const YAML::Node& at, const std::string& key,
                         const std::string& what) const {
    throw UsageError(where(at) + ": key '" + key + "': " + what);
  }

  std::string where(const YAML::Node& at) const {
    const int line = at.IsDefined() ? at.Mark().line : -1;  // -1: not from the file
    return line >= 0 ? path_ + ":" + std::to_string(line + 1) : path_;
  }

  void expect_map(const YAML::Node& node, const std::string& key,
                  const std::string& example) const {
    if (!node.IsMap())
      fail(node, key, "expected a map like " + example + ", got " + describe(node));
  }

  void expect_list(const YAML::Node& node, const std::string& key,
                   const std::string& example) const {
    if (!node.IsSequence() || node.size() == 0)
      fail(node, key, "expected a non-empty list like " + example + ", got " + describe(node));
  }

  // Typos must not pass silently: every key of MAP must be one of ALLOWED (keys given twice
  // were refused as the file was read: load_yaml_file).
  void check_keys(const YAML::Node& map, const std::string& key, const Keys& allowed) const {
    for (const auto& entry : map) {
      const std::string name = entry.first.Scalar();
      if (std::find(allowed.begin(), allowed.end(), name) == allowed.end())
        throw UsageError(where(entry.first) + ": unknown key '" + child(key, name) +
                         "'; allowed here: " + join(allowed));
    }
  }

  // MAP[NAME], which must be present.
  YAML::Node required(const YAML::Node& map, const std::string& key, const std::string& name,
                      const std::string& example) const {
    YAML::Node value = map[name];
    if (!value.IsDefined())
      fail(map, child(key, name), "missing: give it, e.g. " + name + ": " + example);
    return value;
  }

  std::string scalar(const YAML::Node& node, const std::string& key,
                     const std::string& expected) const {
    if (!node.IsScalar()) fail(node, key, "expected " + expected + ", got " + describe(node));
    return node.Scalar();
  }

  // Parses NODE with PARSE; on failure says what was EXPECTED.
  template <typename Parse>
  auto value(const YAML::Node& node, const std::string& key, const std::string& expected,
             Parse parse) const {
    const auto parsed = parse(scalar(node, key, expected));
    if (!parsed) fail(node, key, "expected " + expected + ", got " + describe(node));
    return *parsed;
  }

  double bandwidth(const YAML::Node& node, const std::string& key) const {
    return value(node, key, "a positive bandwidth like '25Gbps' or 'unlimited'",
                 units::parse_bandwidth);
  }
  double duration(const YAML::Node& node, const std::string& key, const std::string& what) const {
    return value(node, key, what, units::parse_duration);
  }
  uint64_t bytes(const YAML::Node& node, const std::string& key) const {
    return value(node, key, "a size like '1448', '64KB' or '4MiB'", units::parse_bytes);
  }
  uint64_t integer(const YAML::Node& node, const std::string& key,
                   const std::string& expected = "an integer >= 0") const {
    return value(node, key, expected, [](const std::string& text) {
      uint64_t v = 0;
      const auto res = std::from_chars(text.data(), text.data() + text.size(), v);
      bool whole = res.ec == std::errc() && res.ptr == text.data() + text.size();
      return whole ? std::optional<uint64_t>(v) : std::nullopt;
    });
  }

  // The link keys of MAP (latency and bandwidth required); the caller checks for others.
  LinkSpec link(const YAML::Node& map, const std::string& key) const {
    LinkSpec link;
    link.latency_s = duration(required(map, key, "latency", "10ms"), child(key, "latency"),
                              "a one-way latency >= 0 like '10ms' or '5us'");
    link.bandwidth_Bps =
        bandwidth(required(map, key, "bandwidth", "1Gbps"), child(key, "bandwidth"));
    if (YAML::Node v = map["jitter"])
      link.jitter_s = duration(v, child(key, "jitter"), "a jitter >= 0 like '1ms'");
    if (YAML::Node v = map["jitter_dist"]) {
      link.jitter_dist = scalar(v, child(key, "jitter_dist"), "normal or uniform");
      if (link.jitter_dist != "normal" && link.jitter_dist != "uniform")
        fail(v, child(key, "jitter_dist"), "expected normal or uniform, got " + describe(v));
    }
    if (YAML::Node v = map["loss"])
      link.loss_rate = value(v, child(key, "loss"), "a loss rate in [0, 1) like '0.001' or '0.1%'",
                             units::parse_fraction);
    return link;
  }

  LinkSpec link_map(const YAML::Node& map, const std::string& key) const {
    expect_map(map, key, "{latency: 10ms, bandwidth: 1Gbps}");
    check_keys(map, key, kLinkKeys);
    return link(map, key);
  }

 private:
  std::string path_;
};

YAML::Node load_yaml(const std::string& path) {
  if (!std::filesystem::is_regular_file(path))
    throw UsageError(path + ": no such network profile (see configs/net/ for the shipped ones)");
  return load_yaml_file(path);
}

// What the `sites:` list says before placement.
struct SiteEntry {
  YAML::Node node;
  std::optional<LinkSpec> intra;
};

int site_index(const Reader& r, const std::map<std::string, int>& index, const YAML::Node& node,
               const std::string& key) {
  const std::string name = r.scalar(node, key, "a site name");
  auto it = index.find(name);
  if (it == index.end()) {
    Keys names;
    for (const auto& [n, i] : index) names.push_back(n);
    r.fail(node, key, "unknown site '" + name + "'; the sites are " + join(names));
  }
  return it->second;
}

// How many ranks each site takes under `placement: blocks`: the world in equal blocks of
// consecutive ranks over the sites that hold any (the first world % sites one more), each
// within what its site holds.
std::vector<uint64_t> block_sizes(const Reader& r, const YAML::Node& sites, const std::vector<uint64_t>& holds,
                                  int world) {
  const uint64_t used = uint64_t(std::count_if(holds.begin(), holds.end(), [](uint64_t n) { return n > 0; }));
  std::vector<uint64_t> take(holds.size(), 0);
  uint64_t k = 0;
  for (size_t s = 0; s < holds.size(); ++s) {
    if (holds[s] == 0) continue;
    take[s] = uint64_t(world) / used + (k++ < uint64_t(world) % used ? 1 : 0);
    if (take[s] > holds[s])
      r.fail(sites[s]["ranks"], item("sites", s) + ".ranks",
             "placement 'blocks' puts " + std::to_string(take[s]) + " of the " + std::to_string(world) +
                 " ranks on site '" + sites[s]["name"].Scalar() + "', which holds " + std::to_string(holds[s]) +
                 " (give it more, or use placement 'fill' or 'round_robin')");
  }
  return take;
}

// Round robin: rank i on the next site in list order that still has room.
std::vector<int> deal_round_robin(std::vector<uint64_t> holds, int world) {
  std::vector<int> rank_site;
  for (size_t s = 0; rank_site.size() < size_t(world); s = (s + 1) % holds.size())
    if (holds[s] > 0) {
      --holds[s];
      rank_site.push_back(int(s));
    }
  return rank_site;
}

// Placement by counts: each site holds `ranks: N` ranks, one may hold the `rest` (no
// limit). PLACEMENT says how the world's ranks go to them: fill (sites in list order, each
// filled before the next), round_robin (one rank per site in turn) or blocks (equal blocks
// of consecutive ranks). Ranks a profile holds beyond the world stay unused.
std::vector<int> place_by_counts(const Reader& r, const YAML::Node& sites, int world, const std::string& placement) {
  std::vector<uint64_t> counts;
  std::optional<size_t> rest;
  uint64_t fixed = 0;
  for (size_t s = 0; s < sites.size(); ++s) {
    const std::string key = item("sites", s) + ".ranks";
    const YAML::Node ranks = r.required(sites[s], item("sites", s), "ranks", "8 (or rest)");
    if (ranks.IsScalar() && ranks.Scalar() == "rest") {
      if (rest) r.fail(ranks, key, "only one site may take 'ranks: rest'");
      rest = s;
      counts.push_back(0);
      continue;
    }
    counts.push_back(r.integer(ranks, key, "a number of ranks >= 0 or 'rest'"));
    fixed += counts.back();
  }
  if (rest)
    counts[*rest] = placement == "fill" ? (fixed < uint64_t(world) ? uint64_t(world) - fixed : 0) : uint64_t(world);
  else if (fixed < uint64_t(world))
    r.fail(sites, "sites",
           "rank " + std::to_string(fixed) + " is on no site: the sites hold " +
               std::to_string(fixed) + " ranks (give a site 'ranks: rest')");
  if (placement == "round_robin") return deal_round_robin(counts, world);
  if (placement == "blocks") counts = block_sizes(r, sites, counts, world);
  std::vector<int> rank_site;
  for (size_t s = 0; s < counts.size(); ++s)
    for (uint64_t i = 0; i < counts[s] && rank_site.size() < size_t(world); ++i)
      rank_site.push_back(int(s));
  return rank_site;
}

// Placement by list: `rank_sites: [VA, VA, OR, ...]`, a site name per rank.
std::vector<int> place_by_list(const Reader& r, const YAML::Node& list,
                               const std::map<std::string, int>& index, int world) {
  r.expect_list(list, "rank_sites", "[VA, VA, OR, OR]");
  if (list.size() < size_t(world))
    r.fail(list, "rank_sites",
           "rank " + std::to_string(list.size()) + " is on no site: rank_sites lists " +
               std::to_string(list.size()) + " ranks, the world has " + std::to_string(world));
  std::vector<int> rank_site;
  for (size_t i = 0; i < size_t(world); ++i)
    rank_site.push_back(site_index(r, index, list[i], item("rank_sites", i)));
  for (size_t i = size_t(world); i < list.size(); ++i)  // unused, but must still name sites
    site_index(r, index, list[i], item("rank_sites", i));
  return rank_site;
}

// Reads `links:` into the (sites x sites) matrix, symmetric.
void read_links(const Reader& r, const YAML::Node& links, const std::map<std::string, int>& index,
                std::vector<std::optional<LinkSpec>>& inter, size_t n_sites) {
  r.expect_list(links, "links", "[{between: [VA, OR], latency: 67ms, bandwidth: 1.15Gbps}]");
  Keys allowed = kLinkKeys;
  allowed.insert(allowed.begin(), "between");
  for (size_t i = 0; i < links.size(); ++i) {
    const std::string key = item("links", i);
    const YAML::Node entry = links[i];
    r.expect_map(entry, key, "{between: [VA, OR], latency: 67ms, bandwidth: 1.15Gbps}");
    r.check_keys(entry, key, allowed);
    const YAML::Node between = r.required(entry, key, "between", "[VA, OR]");
    if (!between.IsSequence() || between.size() != 2)
      r.fail(between, key + ".between",
             "expected two site names like [VA, OR], got " + describe(between));
    const int a = site_index(r, index, between[0], key + ".between[0]");
    const int b = site_index(r, index, between[1], key + ".between[1]");
    if (a == b)
      r.fail(between, key + ".between",
             "a link joins two different sites; the link inside site '" + between[0].Scalar() +
                 "' is its 'intra'");
    auto& ab = inter[size_t(a) * n_sites + size_t(b)];
    if (ab)
      r.fail(between, key + ".between",
             "the link between '" + between[0].Scalar() + "' and '" + between[1].Scalar() +
                 "' is given twice");
    ab = r.link(entry, key);
    inter[size_t(b) * n_sites + size_t(a)] = ab;
  }
}

// `sites: per_rank`: every rank is a site of its own, named rank0, rank1, ...; any two of
// them are joined by `default_link` (required), so one file serves every world size and all
// traffic between ranks counts as traffic across sites. `links`, `rank_sites` and a site list
// would name sites that depend on the world size: they are refused.
bool is_per_rank(const YAML::Node& sites) { return sites.IsScalar() && sites.Scalar() == "per_rank"; }

void load_per_rank(const Reader& r, const YAML::Node& root, int world, Profile& p) {
  for (const char* key : {"links", "rank_sites", "placement", "hosts"})
    if (YAML::Node v = root[key])
      r.fail(v, key,
             std::string("not allowed with 'sites: per_rank' (every rank is its own site and its own host; "
                         "the link between any two is 'default_link')"));
  const YAML::Node link = root["default_link"];
  if (!link.IsDefined())
    r.fail(root["sites"], "default_link",
           "missing: 'sites: per_rank' needs the link between any two ranks, e.g. "
           "default_link: {latency: 50ms, bandwidth: 1Gbps}");
  for (int rank = 0; rank < world; ++rank) {
    p.sites.push_back(Site{"rank" + std::to_string(rank), LinkSpec{}, false});
    p.rank_site.push_back(rank);
  }
  p.inter.assign(1, r.link_map(link, "default_link"));  // one link for every pair of sites
}

std::vector<int> ranks_per_site(const std::vector<int>& rank_site, size_t n_sites) {
  std::vector<int> held(n_sites, 0);
  for (int s : rank_site) ++held[size_t(s)];
  return held;
}

// Every pair of sites that hold ranks needs a link (or default_link); pairs of unused sites
// get an unlimited link that nothing will use.
std::vector<LinkSpec> complete_links(const Reader& r, const YAML::Node& root,
                                     const std::vector<std::optional<LinkSpec>>& given,
                                     const std::vector<SiteEntry>& sites,
                                     const std::vector<int>& held, std::vector<char>& from_file) {
  std::optional<LinkSpec> fallback;
  if (YAML::Node d = root["default_link"]) fallback = r.link_map(d, "default_link");
  const size_t n = sites.size();
  std::vector<LinkSpec> inter(n * n);
  from_file.assign(n * n, 0);
  for (size_t a = 0; a < n; ++a)
    for (size_t b = 0; b < n; ++b) {
      if (a == b) continue;
      const auto& link = given[a * n + b];
      from_file[a * n + b] = link || fallback;
      if (link)
        inter[a * n + b] = *link;
      else if (fallback)
        inter[a * n + b] = *fallback;
      else if (held[a] > 0 && held[b] > 0)
        r.fail(root["links"].IsDefined() ? root["links"] : root, "links",
               "no link between sites '" + sites[a].node["name"].Scalar() + "' and '" +
                   sites[b].node["name"].Scalar() +
                   "', which both hold ranks (add it to 'links', or give 'default_link')");
    }
  return inter;
}

void read_nic(const Reader& r, const YAML::Node& nic, Profile& p) {
  r.expect_map(nic, "nic", "{egress: 25Gbps, ingress: 25Gbps}");
  r.check_keys(nic, "nic", kNicKeys);
  if (YAML::Node v = nic["egress"]) p.nic_egress_Bps = r.bandwidth(v, "nic.egress");
  if (YAML::Node v = nic["ingress"]) p.nic_ingress_Bps = r.bandwidth(v, "nic.ingress");
}

void read_hosts(const Reader& r, const YAML::Node& hosts, Profile& p) {
  const std::string example = "{ranks: 8, egress: 25Gbps, ingress: 25Gbps}";
  r.expect_map(hosts, "hosts", example);
  r.check_keys(hosts, "hosts", kHostKeys);
  const YAML::Node ranks = r.required(hosts, "hosts", "ranks", "8");
  const uint64_t n = r.integer(ranks, "hosts.ranks", "a number of ranks per host >= 1");
  if (n < 1 || n > 1000000) r.fail(ranks, "hosts.ranks", "expected a number of ranks per host in [1, 1000000], got " + describe(ranks));
  p.hosts.ranks = int(n);
  if (YAML::Node v = hosts["egress"]) p.hosts.egress_Bps = r.bandwidth(v, "hosts.egress");
  if (YAML::Node v = hosts["ingress"]) p.hosts.ingress_Bps = r.bandwidth(v, "hosts.ingress");
  if (!hosts["egress"] && !hosts["ingress"])
    r.fail(hosts, "hosts", "give the host's NIC cap, egress and/or ingress, e.g. " + example);
}

void read_transport(const Reader& r, const YAML::Node& t, Profile& p) {
  r.expect_map(t, "transport", "{header_bytes: 66, segment_bytes: 1448}");
  r.check_keys(t, "transport", kTransportKeys);
  if (YAML::Node v = t["header_bytes"]) p.header_bytes = r.bytes(v, "transport.header_bytes");
  if (YAML::Node v = t["segment_bytes"]) {
    p.segment_bytes = r.bytes(v, "transport.segment_bytes");
    if (p.segment_bytes == 0)
      r.fail(v, "transport.segment_bytes", "expected a segment size > 0 like '1448', got '0'");
  }
  if (YAML::Node v = t["tcp_window"]) p.tcp_window_bytes = r.bytes(v, "transport.tcp_window");
  if (YAML::Node v = t["rto"]) {
    p.rto_s = r.duration(v, "transport.rto", "a retransmission timeout > 0 like '200ms'");
    if (p.rto_s <= 0) r.fail(v, "transport.rto", "expected a retransmission timeout > 0, got 0");
  }
}

std::vector<SiteEntry> read_sites(const Reader& r, const YAML::Node& sites,
                                  std::map<std::string, int>& index) {
  if (!sites.IsSequence() || sites.size() == 0)
    r.fail(sites, "sites",
           "expected a non-empty list like [{name: VA, ranks: 8, intra: {latency: 5ms, bandwidth: 2Gbps}}] or "
           "'per_rank', got " + describe(sites));
  std::vector<SiteEntry> out;
  for (size_t s = 0; s < sites.size(); ++s) {
    const std::string key = item("sites", s);
    const YAML::Node node = sites[s];
    r.expect_map(node, key, "{name: VA, ranks: 8, intra: {latency: 5ms, bandwidth: 2Gbps}}");
    r.check_keys(node, key, kSiteKeys);
    const YAML::Node name = r.required(node, key, "name", "VA");
    const std::string text = r.scalar(name, key + ".name", "a site name");
    if (text.empty()) r.fail(name, key + ".name", "expected a site name, got ''");
    if (!index.emplace(text, int(s)).second)
      r.fail(name, key + ".name", "site '" + text + "' is listed twice");
    SiteEntry entry{node, std::nullopt};
    if (YAML::Node intra = node["intra"]) entry.intra = r.link_map(intra, key + ".intra");
    out.push_back(entry);
  }
  return out;
}

// `placement:` (default fill), for sites that give `ranks:`.
std::string read_placement(const Reader& r, const YAML::Node& root) {
  const YAML::Node node = root["placement"];
  if (!node) return "fill";
  const std::string value = r.scalar(node, "placement", "one of " + join(kPlacements));
  if (std::find(kPlacements.begin(), kPlacements.end(), value) == kPlacements.end())
    r.fail(node, "placement", "expected one of " + join(kPlacements) + ", got " + describe(node));
  return value;
}

std::vector<int> place_ranks(const Reader& r, const YAML::Node& root,
                             const std::map<std::string, int>& index, int world) {
  const YAML::Node list = root["rank_sites"];
  if (!list) return place_by_counts(r, root["sites"], world, read_placement(r, root));
  if (root["placement"])
    r.fail(root["placement"], "placement", "not allowed with 'rank_sites' (which places every rank itself)");
  const YAML::Node sites = root["sites"];
  for (size_t s = 0; s < sites.size(); ++s)
    if (sites[s]["ranks"])
      r.fail(sites[s]["ranks"], item("sites", s) + ".ranks",
             "give either 'ranks' on the sites or 'rank_sites', not both");
  return place_by_list(r, list, index, world);
}

// A site with two ranks or more needs to say how they talk to each other.
std::vector<Site> finish_sites(const Reader& r, const std::vector<SiteEntry>& entries,
                               const std::vector<int>& held) {
  std::vector<Site> sites;
  for (size_t s = 0; s < entries.size(); ++s) {
    const std::string name = entries[s].node["name"].Scalar();
    if (!entries[s].intra && held[s] >= 2)
      r.fail(entries[s].node, item("sites", s) + ".intra",
             "missing: site '" + name + "' holds " + std::to_string(held[s]) +
                 " ranks; give e.g. intra: {latency: 5us, bandwidth: 100Gbps}");
    sites.push_back(Site{name, entries[s].intra.value_or(LinkSpec{}), entries[s].intra.has_value()});
  }
  return sites;
}

// Sites, the placement of the ranks on them, and the links between them.
void read_network(const Reader& r, const YAML::Node& root, int world, Profile& p) {
  const YAML::Node sites_node = r.required(root, "", "sites", "[...] or per_rank");
  if (is_per_rank(sites_node)) return load_per_rank(r, root, world, p);
  std::map<std::string, int> index;
  const std::vector<SiteEntry> entries = read_sites(r, sites_node, index);
  p.rank_site = place_ranks(r, root, index, world);
  const std::vector<int> held = ranks_per_site(p.rank_site, entries.size());
  p.sites = finish_sites(r, entries, held);

  std::vector<std::optional<LinkSpec>> given(entries.size() * entries.size());
  if (YAML::Node links = root["links"]) read_links(r, links, index, given, entries.size());
  p.inter = complete_links(r, root, given, entries, held, p.inter_given);
}

}  // namespace

const LinkSpec& Profile::link(int a, int b) const {
  const int sa = rank_site.at(size_t(a)), sb = rank_site.at(size_t(b));
  if (sa == sb) return sites.at(size_t(sa)).intra;
  if (inter.size() == 1) return inter[0];  // every pair of sites alike (sites: per_rank)
  return inter.at(size_t(sa) * sites.size() + size_t(sb));
}

std::vector<int> Profile::rank_hosts() const {
  std::map<std::pair<int, int>, int> index;  // (site, host within the site) -> host
  std::vector<int> held(sites.size(), 0), host;
  for (size_t rank = 0; rank < rank_site.size(); ++rank) {
    const int s = rank_site[rank];
    const int within = hosts.ranks > 0 ? held[size_t(s)]++ / hosts.ranks : held[size_t(s)]++;
    host.push_back(index.emplace(std::pair(s, within), int(index.size())).first->second);
  }
  return host;
}

Profile load_profile(const std::string& path, int world_size) {
  if (world_size < 1) throw std::invalid_argument("load_profile: world size must be >= 1");
  const Reader r(path);
  const YAML::Node root = load_yaml(path);
  if (!root.IsMap())
    throw UsageError(path + ": expected a network profile (a map with 'sites:'; see " +
                     "configs/net/README.md), got " + describe(root));
  r.check_keys(root, "", kTopKeys);

  Profile p;
  p.source_path = path;
  p.name = std::filesystem::path(path).stem().string();
  if (YAML::Node v = root["name"]) p.name = r.scalar(v, "name", "a name");
  if (YAML::Node v = root["source"]) p.source = r.scalar(v, "source", "free text");
  if (YAML::Node v = root["seed"]) p.seed = r.integer(v, "seed");

  read_network(r, root, world_size, p);
  if (YAML::Node nic = root["nic"]) read_nic(r, nic, p);
  if (YAML::Node hosts = root["hosts"]) read_hosts(r, hosts, p);
  if (YAML::Node t = root["transport"]) read_transport(r, t, p);
  return p;
}

void check_links(const Profile& p, const std::string& where) {
  const std::vector<int> held = ranks_per_site(p.rank_site, p.sites.size());
  const size_t n = p.sites.size();
  for (size_t s = 0; s < n; ++s)
    if (held[s] >= 2 && !p.sites[s].intra_given)
      throw UsageError(where + ": site '" + p.sites[s].name + "' now holds " + std::to_string(held[s]) +
                       " ranks, but the network profile '" + p.name +
                       "' gives it no intra link (give the site intra: {latency: ..., bandwidth: ...})");
  if (p.inter_given.empty()) return;
  for (size_t a = 0; a < n; ++a)
    for (size_t b = a + 1; b < n; ++b)
      if (held[a] > 0 && held[b] > 0 && !p.inter_given[a * n + b])
        throw UsageError(where + ": sites '" + p.sites[a].name + "' and '" + p.sites[b].name +
                         "' now both hold ranks, but the network profile '" + p.name +
                         "' has no link between them (add it to 'links', or give 'default_link')");
}

std::string single_site_warning(const Profile& p) {
  if (p.sites.size() < 2 || p.rank_site.size() < 2) return "";  // one rank: nothing could cross
  const int first = p.rank_site.front();
  if (std::any_of(p.rank_site.begin(), p.rank_site.end(), [&](int s) { return s != first; })) return "";
  return "warning: network profile '" + p.name + "' has " + std::to_string(p.sites.size()) + " sites but puts all " +
         std::to_string(p.rank_site.size()) + " ranks on '" + p.sites[size_t(first)].name +
         "', so nothing crosses between sites; spread them with 'placement: round_robin' or 'placement: blocks' "
         "in the profile, or a rank_sites list (configs/net/README.md)";
}

Profile uniform_profile(int world_size, double latency_s, double bandwidth_Bps) {
  Profile p;
  p.name = "uniform";
  LinkSpec link;
  link.latency_s = latency_s;
  link.bandwidth_Bps = bandwidth_Bps;
  p.sites.push_back(Site{"all", link});
  p.rank_site.assign(size_t(world_size), 0);
  p.inter.assign(1, link);
  return p;
}

}  // namespace dtb::netem
