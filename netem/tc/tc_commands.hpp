#pragma once
// The same network profile applied for real with Linux traffic control, for clusters whose
// operators allow it (see netem/tc/README.md). Nothing here runs tc: it only writes the
// commands, one per line, as a POSIX sh script that an operator reviews and runs as root.
#include <cstdint>
#include <string>
#include <vector>

#include "profile.hpp"

namespace dtb::netem {

// The tc commands that shape RANK's traffic leaving DEV as PROFILE says. PEER_IPS holds
// one IPv4 or IPv6 address per rank (its size is the world size; rank's own entry is its
// own address). Layout:
//   root htb qdisc 1: (unclassified traffic, e.g. ssh, passes unshaped)
//   [class 1:1 at the NIC egress cap, parent of every peer class, if the profile has one]
//   per destination address: an htb class 1:<0x10 + first rank at that address> at the
//   link's rate, a netem qdisc under it for delay, jitter and loss (only where the link
//   has any), and a u32 filter on the destination address
//   [ingress cap: all incoming traffic redirected to ifb device `dtb-ifb0`, shaped by tbf]
// Peers at RANK's own address are skipped (their traffic never crosses DEV). Ranks sharing
// one remote address share one class, so they must sit on one site. Throws UsageError when
// PEER_IPS does not match the profile or an address is malformed.
// The script first checks DEV's existing root and ingress qdiscs: it replaces them only when
// they are the kernel's default or dtb-tc's own shaping (recorded in /run/dtb-tc/DEV, which
// the script writes last), and otherwise stops with exit code 3, unless REPLACE_ROOT.
std::string tc_commands(const Profile& profile, int rank, const std::string& dev,
                        const std::vector<std::string>& peer_ips, bool replace_root = false);

// The commands that remove everything tc_commands set up on DEV: only where its record
// exists (else the script stops with exit code 3), or anything there with REPLACE_ROOT.
std::string tc_remove_commands(const std::string& dev, bool replace_root = false);

// What the shaped path from RANK to PEER should measure once both hosts applied their
// scripts: the round trip (the profile's one-way latencies there and back; jitter averages
// out) and the rate (the link's, capped by the NICs; 0 = unlimited), with the TCP payload
// share of that rate (1448 of every 1514 bytes on the wire). netem/tc/verify.sh compares.
struct TcExpectation {
  double rtt_s = 0, rate_Bps = 0, payload_Bps = 0;
};
TcExpectation tc_expectation(const Profile& profile, int rank, int peer);

// tc's rate for an htb class standing for BANDWIDTH_BPS, in whole kbit/s; 0 (unlimited)
// becomes 1 Tbit/s, above the line rate of any NIC this is meant for.
uint64_t tc_rate_kbit(double bandwidth_Bps);

}  // namespace dtb::netem
