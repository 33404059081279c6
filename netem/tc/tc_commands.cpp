#include "tc_commands.hpp"

#include <arpa/inet.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <sstream>

#include "units.hpp"

namespace dtb::netem {
namespace {

constexpr double kUnlimitedBps = 1e12 / 8;  // 1 Tbit/s stands for "no limit"
constexpr double kPacketBytes = 1514;       // one full Ethernet frame of TCP
constexpr const char* kIfb = "dtb-ifb0";    // where the ingress cap is applied
constexpr size_t kMaxRanks = 0xff00;        // class 1:<0x10 + rank> stays below ffff
constexpr const char* kStateDir = "/run/dtb-tc";  // one file per device dtb-tc has shaped
constexpr double kPayloadShare = 1448.0 / 1514;   // TCP payload per Ethernet frame (timestamps on)

std::string state_file(const std::string& dev) { return std::string(kStateDir) + "/" + dev; }

// DEV's root and ingress qdiscs are replaced only when they are the kernel's default (a root
// qdisc with handle 0:, no ingress qdisc) or dtb-tc's own (its record in /run/dtb-tc/DEV):
// what an operator set up stays, and the script stops (exit 3), unless --replace-root.
std::string root_guard(const std::string& dev) {
  const std::string keep = "left as it is; dtb-tc --replace-root (apply.sh ... --replace-root) replaces it";
  return "# " + dev + "'s own qdiscs are replaced only when they are the kernel's default or dtb-tc's\n"
         "if [ ! -e " + state_file(dev) + " ]; then\n"
         "  root=$(tc qdisc show dev " + dev + " root)\n"
         "  case \"$root\" in\n"
         "    \"\" | \"qdisc \"*\" 0: root\"*) ;;\n"
         "    *) echo \"dtb-tc: " + dev + " has a root qdisc dtb-tc did not set ($root): " + keep + "\" >&2; exit 3 ;;\n"
         "  esac\n"
         "  if [ -n \"$(tc qdisc show dev " + dev + " ingress)\" ]; then\n"
         "    echo \"dtb-tc: " + dev + " has an ingress qdisc dtb-tc did not set: " + keep + "\" >&2; exit 3\n"
         "  fi\n"
         "fi\n";
}

// Deletes what tc_commands set up on DEV, and its record.
std::string delete_commands(const std::string& dev) {
  return "tc qdisc del dev " + dev + " root 2>/dev/null || true\n" + "tc qdisc del dev " + dev +
         " ingress 2>/dev/null || true\n" + "ip link del " + kIfb + " 2>/dev/null || true\n" + "rm -f " +
         state_file(dev) + "\n";
}

std::string hex(unsigned v) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "%x", v);
  return buf;
}

bool is_ipv6(const std::string& ip) { return ip.find(':') != std::string::npos; }

void check_address(const std::string& ip, size_t rank) {
  unsigned char buf[16];
  const int ok = inet_pton(is_ipv6(ip) ? AF_INET6 : AF_INET, ip.c_str(), buf);
  if (ok != 1)
    throw UsageError("peer addresses: rank " + std::to_string(rank) + ": '" + ip +
                     "' is not an IPv4 or IPv6 address");
}

// tc(8) times: milliseconds or microseconds (its timers resolve no finer).
std::string tc_time(double seconds) {
  char buf[32];
  if (seconds >= 1e-3)
    std::snprintf(buf, sizeof buf, "%.6gms", seconds * 1e3);
  else
    std::snprintf(buf, sizeof buf, "%.6gus", std::max(1.0, seconds * 1e6));
  return buf;
}

// The rate, burst and quantum of an htb class. tc's default burst (rate / HZ) falls below
// one packet at these rates and the class then delivers less than its rate, so give 1 ms
// worth; the default quantum (rate / 10) makes tc warn above 200000 bytes, so clamp it.
std::string htb_rate(double rate_Bps) {
  const uint64_t kbit = tc_rate_kbit(rate_Bps);
  const uint64_t burst = std::max<uint64_t>(10 * uint64_t(kPacketBytes), uint64_t(rate_Bps * 1e-3));
  const uint64_t quantum = uint64_t(std::clamp(rate_Bps / 10.0, kPacketBytes, 200000.0));
  return "htb rate " + std::to_string(kbit) + "kbit ceil " + std::to_string(kbit) + "kbit burst " +
         std::to_string(burst) + " cburst " + std::to_string(burst) + " quantum " +
         std::to_string(quantum);
}

// The remote destinations of RANK: the first rank at each address other than its own.
std::vector<size_t> destinations(const Profile& p, int rank, const std::vector<std::string>& ips) {
  std::vector<size_t> firsts;
  for (size_t peer = 0; peer < ips.size(); ++peer) {
    if (ips[peer] == ips[size_t(rank)]) continue;  // same host: never crosses the device
    auto same =
        std::find_if(firsts.begin(), firsts.end(), [&](size_t f) { return ips[f] == ips[peer]; });
    if (same == firsts.end()) {
      firsts.push_back(peer);
    } else if (p.rank_site[*same] != p.rank_site[peer]) {
      throw UsageError("peer addresses: ranks " + std::to_string(*same) + " and " +
                       std::to_string(peer) + " share " + ips[peer] + " but sit on sites '" +
                       p.sites[size_t(p.rank_site[*same])].name + "' and '" +
                       p.sites[size_t(p.rank_site[peer])].name +
                       "'; tc shapes by address, so the ranks of one host must share a site");
    }
  }
  return firsts;
}

std::string netem_qdisc(const std::string& dev, const std::string& minor, const LinkSpec& link,
                        double rate_Bps) {
  if (link.latency_s <= 0 && link.jitter_s <= 0 && link.loss_rate <= 0) return "";
  // The queue must hold 1.5x what is in flight during the delay, or TCP sees drops.
  const double in_flight = rate_Bps * (link.latency_s + link.jitter_s) / kPacketBytes;
  const uint64_t limit = std::max<uint64_t>(1000, uint64_t(std::ceil(1.5 * in_flight)));
  std::ostringstream out;
  out << "tc qdisc add dev " << dev << " parent 1:" << minor << " handle " << minor
      << ": netem limit " << limit << " delay " << tc_time(link.latency_s);
  if (link.jitter_s > 0) {
    out << " " << tc_time(link.jitter_s);
    if (link.jitter_dist == "normal") out << " distribution normal";  // netem's default: uniform
    out << " rate " << tc_rate_kbit(rate_Bps) << "kbit";  // a rate keeps jittered packets in order
  }
  if (link.loss_rate > 0) {
    char pct[32];
    std::snprintf(pct, sizeof pct, "%.6g%%", link.loss_rate * 100.0);
    out << " loss random " << pct;
  }
  return out.str() + "\n";
}

std::string u32_filter(const std::string& dev, const std::string& ip, const std::string& minor) {
  const bool v6 = is_ipv6(ip);
  return "tc filter add dev " + dev + " parent 1: protocol " + (v6 ? "ipv6" : "ip") + " prio " +
         (v6 ? "2" : "1") + " u32 match " + (v6 ? "ip6" : "ip") + " dst " + ip +
         (v6 ? "/128" : "/32") + " flowid 1:" + minor + "\n";
}

// One destination: an htb class at the link's rate, netem under it, a filter into it.
std::string peer_commands(const Profile& p, int rank, size_t peer, const std::string& dev,
                          const std::string& ip) {
  const LinkSpec& link = p.link(rank, int(peer));
  double rate = link.bandwidth_Bps > 0 ? link.bandwidth_Bps : kUnlimitedBps;
  if (p.nic_egress_Bps > 0) rate = std::min(rate, p.nic_egress_Bps);
  const std::string minor = hex(0x10 + unsigned(peer));
  const std::string parent = p.nic_egress_Bps > 0 ? "1:1" : "1:";
  std::ostringstream out;
  out << "# rank " << peer << " at " << ip << " ("
      << p.sites[size_t(p.rank_site[size_t(rank)])].name << " -> "
      << p.sites[size_t(p.rank_site[peer])].name << "): " << units::format_duration(link.latency_s)
      << ", " << units::format_bandwidth(link.bandwidth_Bps) << "\n";
  out << "tc class add dev " << dev << " parent " << parent << " classid 1:" << minor << " "
      << htb_rate(rate) << "\n";
  out << netem_qdisc(dev, minor, link, rate) << u32_filter(dev, ip, minor);
  return out.str();
}

// The ingress cap: Linux shapes only what leaves a device, so incoming traffic is
// redirected to an ifb device and shaped as it leaves that.
std::string ingress_commands(const std::string& dev, double ingress_Bps) {
  const uint64_t burst = std::max<uint64_t>(15140, uint64_t(ingress_Bps * 1e-3));  // 1 ms
  std::ostringstream out;
  out << "# ingress NIC cap " << units::format_bandwidth(ingress_Bps) << " (needs the ifb module)\n"
      << "ip link add " << kIfb << " type ifb 2>/dev/null || true\n"
      << "ip link set " << kIfb << " up\n"
      << "tc qdisc add dev " << dev << " handle ffff: ingress\n"
      << "tc filter add dev " << dev << " parent ffff: protocol all u32 match u32 0 0"
      << " action mirred egress redirect dev " << kIfb << "\n"
      << "tc qdisc replace dev " << kIfb << " root tbf rate " << tc_rate_kbit(ingress_Bps)
      << "kbit burst " << burst << " latency 100ms\n";
  return out.str();
}

// What the model charges that tc cannot apply, said where the operator reads it.
std::string transport_notes(const Profile& p) {
  std::string out;
  if (p.tcp_window_bytes > 0)
    out +=
        "# transport.tcp_window is not shaped here: cap the sockets' buffers instead\n"
        "# (sysctl net.ipv4.tcp_wmem / tcp_rmem) to reproduce window / RTT.\n";
  bool lossy = std::any_of(p.inter.begin(), p.inter.end(),
                           [](const LinkSpec& l) { return l.loss_rate > 0; });
  for (const Site& site : p.sites) lossy = lossy || site.intra.loss_rate > 0;
  if (lossy)
    out +=
        "# loss: netem drops packets and the kernel's TCP recovers them (fast retransmit or\n"
        "# its own timeout), not exactly one transport.rto per lost segment as the model does.\n";
  return out;
}

}  // namespace

uint64_t tc_rate_kbit(double bandwidth_Bps) {
  return units::kbit_per_s(bandwidth_Bps > 0 ? bandwidth_Bps : kUnlimitedBps);
}

std::string tc_remove_commands(const std::string& dev, bool replace_root) {
  if (replace_root) return delete_commands(dev);
  return "if [ ! -e " + state_file(dev) + " ]; then\n"
         "  echo \"dtb-tc: " + dev + ": no shaping of dtb-tc's recorded (" + state_file(dev) +
         "): nothing removed; dtb-tc --remove --replace-root deletes its root and ingress qdiscs anyway\" >&2; exit 3\n"
         "fi\n" + delete_commands(dev);
}

TcExpectation tc_expectation(const Profile& p, int rank, int peer) {
  const int n = int(p.rank_site.size());
  if (rank < 0 || rank >= n || peer < 0 || peer >= n || peer == rank)
    throw UsageError("--expect " + std::to_string(peer) + ": expected another rank of 0 to " + std::to_string(n - 1) +
                     " than " + std::to_string(rank));
  TcExpectation e;
  e.rtt_s = p.link(rank, peer).latency_s + p.link(peer, rank).latency_s;
  double rate = p.link(rank, peer).bandwidth_Bps;
  for (const double cap : {p.nic_egress_Bps, p.nic_ingress_Bps})
    if (cap > 0) rate = rate > 0 ? std::min(rate, cap) : cap;
  e.rate_Bps = rate;
  e.payload_Bps = rate * kPayloadShare;
  return e;
}

std::string tc_commands(const Profile& p, int rank, const std::string& dev,
                        const std::vector<std::string>& peer_ips, bool replace_root) {
  if (peer_ips.size() != p.rank_site.size())
    throw UsageError("peer addresses: " + std::to_string(peer_ips.size()) +
                     " given, the profile places " + std::to_string(p.rank_site.size()) +
                     " ranks: give one address per rank");
  if (rank < 0 || size_t(rank) >= peer_ips.size())
    throw UsageError("rank " + std::to_string(rank) + ": expected 0 to " +
                     std::to_string(peer_ips.size() - 1));
  if (peer_ips.size() > kMaxRanks)  // class ids are 16 bits: 1:10 .. 1:ffef
    throw UsageError("peer addresses: tc classes cover at most " + std::to_string(kMaxRanks) +
                     " ranks, got " + std::to_string(peer_ips.size()));
  for (size_t r = 0; r < peer_ips.size(); ++r) check_address(peer_ips[r], r);

  std::ostringstream out;
  out << "#!/bin/sh\n# dtbench: profile '" << p.name << "' (" << p.source_path << "), rank " << rank
      << " of " << peer_ips.size() << " at " << peer_ips[size_t(rank)] << ", leaving " << dev
      << "\n# Review, then run as root. Generated by dtb-tc; remove with dtb-tc --remove.\n"
      << "set -e\n"
      << (replace_root ? "" : root_guard(dev)) << delete_commands(dev)
      << "# root: traffic to no peer (ssh, the launcher) is unclassified and passes unshaped\n"
      << "tc qdisc add dev " << dev << " root handle 1: htb default 0\n";
  if (p.nic_egress_Bps > 0)
    out << "# egress NIC cap " << units::format_bandwidth(p.nic_egress_Bps)
        << ", shared by all peers\n"
        << "tc class add dev " << dev << " parent 1: classid 1:1 " << htb_rate(p.nic_egress_Bps)
        << "\n";
  for (size_t peer : destinations(p, rank, peer_ips))
    out << peer_commands(p, rank, peer, dev, peer_ips[peer]);
  if (p.nic_ingress_Bps > 0) out << ingress_commands(dev, p.nic_ingress_Bps);
  out << transport_notes(p);
  out << "# the record that this shaping is dtb-tc's (--remove deletes only what it records)\n"
      << "mkdir -p " << kStateDir << " && echo \"profile " << p.name << ", rank " << rank << "\" > " << state_file(dev)
      << "\n";
  return out.str();
}

}  // namespace dtb::netem
