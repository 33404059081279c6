// netem: the link model against closed forms, the shipped profiles, bad profiles, units
// and clocks. Times are compared with a relative margin of 1e-12: the model is plain
// double arithmetic, so the closed forms hold to rounding.
#include <catch2/catch.hpp>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "dtbench_runner.hpp"
#include "clock.hpp"
#include "network.hpp"
#include "tc/tc_commands.hpp"
#include "units.hpp"

using namespace dtb::netem;
namespace fs = std::filesystem;

namespace {

constexpr double kGbps = 1.25e8;  // bytes/s in 1 Gbps

Approx exactly(double v) { return Approx(v).epsilon(1e-12).margin(1e-15); }

std::string shipped(const std::string& name) {
  return std::string(DTB_SOURCE_DIR) + "/configs/net/" + name + ".yaml";
}

// Profile files written by the tests live in a folder private to this process (ctest runs
// test cases in parallel), removed when the process ends.
std::string write_profile(const std::string& name, const std::string& text) {
  static const dtb::test::ScratchDir dir("test_netem");
  const fs::path path = dir.path / (name + ".yaml");
  std::ofstream(path) << text;
  return path.string();
}

// Loads TEXT and demands one UsageError line naming the file and containing every NEEDLE.
void check_rejected(const std::string& name, const std::string& text, int world,
                    const std::vector<std::string>& needles) {
  const std::string path = write_profile(name, text);
  INFO("profile " << name);
  try {
    load_profile(path, world);
    FAIL("no error for " << name);
  } catch (const dtb::UsageError& e) {
    const std::string msg = e.what();
    INFO("message: " << msg);
    CHECK(msg.find(path) != std::string::npos);
    CHECK(msg.find('\n') == std::string::npos);
    for (const auto& needle : needles) CHECK(msg.find(needle) != std::string::npos);
  }
}

const std::string kTwoSites = R"(
sites:
  - {name: A, ranks: 2, intra: {latency: 1ms, bandwidth: 10Gbps}}
  - {name: B, ranks: 2, intra: {latency: 1ms, bandwidth: 10Gbps}}
links:
  - {between: [A, B], latency: 10ms, bandwidth: 1Gbps}
)";

}  // namespace

// ---------------------------------------------------------------- the link model

TEST_CASE("netem: one message on an idle path arrives at t + L + wire/R", "[netem]") {
  NetworkModel net(uniform_profile(2, 0.01, kGbps), 2);
  const SendTiming s = net.on_send(0, 1, 1000000, 1.0);
  CHECK(s.sender_free == exactly(1.0));  // no egress cap: the sender is free at once
  CHECK(s.depart == exactly(1.008));
  CHECK(s.wire_arrival == exactly(1.018));
  CHECK(net.on_receive(1, 0, 1000000, s.wire_arrival) == exactly(1.018));
}

TEST_CASE("netem: back-to-back messages queue on the path", "[netem]") {
  const double L = 0.02, n = 500000;
  NetworkModel net(uniform_profile(2, L, kGbps), 2);
  for (int k = 1; k <= 6; ++k) {
    const SendTiming s = net.on_send(0, 1, uint64_t(n), 0.0);
    CHECK(s.wire_arrival == exactly(L + k * n / kGbps));
  }
  // A message ready after the queue drained starts on an idle path again.
  CHECK(net.on_send(0, 1, uint64_t(n), 10.0).wire_arrival == exactly(10.0 + L + n / kGbps));
}

TEST_CASE("netem: the TCP window caps the path rate at window / RTT", "[netem]") {
  Profile p = uniform_profile(2, 0.05, kGbps);
  p.tcp_window_bytes = 1000000;  // 1 MB per 100 ms round trip: 10 MB/s < 125 MB/s
  NetworkModel net(p, 2);
  CHECK(net.path_rate(0, 1) == exactly(1e7));
  CHECK(net.beta(0, 1) == exactly(1e-7));
  CHECK(net.on_send(0, 1, 10000000, 0.0).wire_arrival == exactly(0.05 + 1.0));
  // A window larger than the bandwidth-delay product changes nothing.
  p.tcp_window_bytes = 100000000;
  CHECK(NetworkModel(p, 2).path_rate(0, 1) == exactly(kGbps));
}

TEST_CASE("netem: header overhead of 66 bytes per 1448-byte segment", "[netem]") {
  Profile p = uniform_profile(2, 0.0, kGbps);
  p.header_bytes = 66;
  p.segment_bytes = 1448;
  NetworkModel net(p, 2);
  CHECK(net.wire_bytes(0) == 0);
  CHECK(net.wire_bytes(1) == 67);
  CHECK(net.wire_bytes(1448) == 1514);
  CHECK(net.wire_bytes(1449) == 1449 + 2 * 66);
  CHECK(net.wire_bytes(1448000) == 1514000);
  CHECK(net.on_send(0, 1, 1448000, 0.0).wire_arrival == exactly(1514000 / kGbps));
  CHECK(net.beta(0, 1) == exactly((1514.0 / 1448.0) / kGbps));
}

TEST_CASE("netem: many senders into one ingress cap queue there", "[netem]") {
  const double L = 0.001, n = 1000000, C = kGbps;
  for (double path_bw : {0.0, 10 * kGbps}) {  // unlimited paths, and paths faster than C
    Profile p = uniform_profile(5, L, path_bw);
    p.nic_ingress_Bps = C;
    NetworkModel net(p, 5);
    std::vector<SendTiming> sent;
    for (int a = 1; a <= 4; ++a) sent.push_back(net.on_send(a, 0, uint64_t(n), 0.0));
    for (int k = 1; k <= 4; ++k)
      CHECK(net.on_receive(0, k, uint64_t(n), sent[size_t(k - 1)].wire_arrival) ==
            exactly(L + k * n / C));
  }
}

// Without an ingress cap there is no ingress queue: a receive completed after another that
// arrives later (the wall clock's comm thread completing a WAN chunk first) still ends at
// its own arrival.
TEST_CASE("netem: without an ingress cap, receives end at their own arrival in any order", "[netem]") {
  NetworkModel net(uniform_profile(3, 0.0, 0.0), 3);
  CHECK(net.on_receive(0, 1, 1 << 20, 0.050) == exactly(0.050));
  CHECK(net.on_receive(0, 2, 4096, 0.001) == exactly(0.001));
}

TEST_CASE("netem: one sender's egress cap serializes messages to all peers", "[netem]") {
  const double L = 0.001, n = 1000000, E = kGbps;
  Profile p = uniform_profile(4, L, 0.0);
  p.nic_egress_Bps = E;
  NetworkModel net(p, 4);
  for (int b = 1; b <= 3; ++b) {
    const SendTiming s = net.on_send(0, b, uint64_t(n), 0.0);
    CHECK(s.sender_free == exactly(b * n / E));
    CHECK(s.wire_arrival == exactly(L + b * n / E));
  }
}

// ---------------------------------------------------------------- channels

// The virtual clock books a DP bucket's messages (channel kDp) before the PP send that
// happens in the middle of them (channel kComm): the send takes the NIC where the bucket
// leaves it free and waits only where it is busy.
TEST_CASE("netem channels: a PP send does not wait behind a DP bucket's later messages", "[netem][channels]") {
  const double L = 0.01, n = 1000000, E = kGbps, w = n / E;  // 8 ms per message at the NIC
  Profile p = uniform_profile(3, L, 0.0);
  p.nic_egress_Bps = E;
  NetworkModel net(p, 3);
  // The bucket: rank 0 sends to rank 1 at 0 and again one round trip later (a ring step).
  CHECK(net.on_send(0, 1, uint64_t(n), 0.0, Stream::kDp).sender_free == exactly(w));
  const double second = w + 2 * L;
  CHECK(net.on_send(0, 1, uint64_t(n), second, Stream::kDp).sender_free == exactly(second + w));
  // A PP send to rank 2 ready at w/2 waits for the NIC until w (the first message is on
  // it), then fits in the gap before the second: t + L + serialization from there.
  const SendTiming pp = net.on_send(0, 2, uint64_t(n), w / 2, Stream::kComm);
  CHECK(pp.sender_free == exactly(2 * w));
  CHECK(pp.wire_arrival == exactly(2 * w + L));
  // On one channel it would have queued behind the second message: FIFO, after second + w.
  NetworkModel one(p, 3);
  one.on_send(0, 1, uint64_t(n), 0.0);
  one.on_send(0, 1, uint64_t(n), second);
  CHECK(one.on_send(0, 2, uint64_t(n), w / 2).wire_arrival == exactly(second + 2 * w + L));
}

TEST_CASE("netem channels: two channels sending at once share the NIC's rate", "[netem][channels]") {
  const double L = 0.001, n = 1000000, C = kGbps, w = n / C;
  Profile p = uniform_profile(3, L, 0.0);
  p.nic_egress_Bps = p.nic_ingress_Bps = C;
  NetworkModel net(p, 3);
  // Both ready at 0: together they take 2w of the egress, whichever is booked first goes first.
  CHECK(net.on_send(0, 1, uint64_t(n), 0.0, Stream::kDp).sender_free == exactly(w));
  CHECK(net.on_send(0, 2, uint64_t(n), 0.0, Stream::kComm).sender_free == exactly(2 * w));
  // A message longer than a gap is split around the busy time: the DP channel holds
  // [3w, 4w] and [5w, 6w]; 2w of PP ready at 3.5w takes [4w, 5w] and [6w, 7w].
  NetworkModel gaps(p, 3);
  gaps.on_send(0, 1, uint64_t(n), 3 * w, Stream::kDp);
  gaps.on_send(0, 1, uint64_t(n), 5 * w, Stream::kDp);
  CHECK(gaps.on_send(0, 2, uint64_t(2 * n), 3.5 * w, Stream::kComm).sender_free == exactly(7 * w));
  // The ingress too: a DP receive booked over [0, w] and a PP receive over the same time
  // (both arrived at w + L after streaming in at C) share it: the PP one ends at 2w + L.
  NetworkModel in(p, 3);
  CHECK(in.on_receive(0, 1, uint64_t(n), w + L, Stream::kDp) == exactly(w + L));
  CHECK(in.on_receive(0, 2, uint64_t(n), w + L, Stream::kComm) == exactly(2 * w + L));
  // Each channel stays FIFO in itself: a PP message ready before the last one's end waits.
  CHECK(net.on_send(0, 2, uint64_t(n), 0.0, Stream::kComm).sender_free == exactly(3 * w));
}

TEST_CASE("netem channels: the gaps stay usable however far one channel books ahead", "[netem][channels]") {
  // The DP channel books K messages of w each, one every 2w (busy [2k w, (2k+1) w]), as a
  // virtual clock books a whole bucket's allreduce ahead; a PP message of w ready at 10.5w
  // then takes the gap [11w, 12w], for any K up to NicQueue's cap of 4096 kept intervals
  // (it was once 64, the oldest merged, and the PP message went after the last of them).
  const double n = 1000000, C = kGbps, w = n / C;
  Profile p = uniform_profile(3, 0.0, 0.0);
  p.nic_egress_Bps = p.nic_ingress_Bps = C;
  for (int k_max : {10, 64, 100, 4000}) {
    NetworkModel net(p, 3);
    for (int k = 0; k < k_max; ++k) net.on_send(0, 1, uint64_t(n), 2 * k * w, Stream::kDp);
    INFO(k_max << " DP messages booked ahead");
    CHECK(net.on_send(0, 2, uint64_t(n), 10.5 * w, Stream::kComm).sender_free == Approx(12 * w).epsilon(1e-12));
  }
}

TEST_CASE("netem channels: a message that exactly fits a gap ends at the gap's end", "[netem][channels]") {
  // Rounding must not push the last ulp of a message past the next busy interval (it once
  // ended a whole interval late for some gaps).
  const double n = 1000000, C = kGbps, w = n / C;
  Profile p = uniform_profile(3, 0.0, 0.0);
  p.nic_egress_Bps = p.nic_ingress_Bps = C;
  for (int g = 0; g < 20; ++g) {
    NetworkModel net(p, 3);
    for (int k = 0; k < 22; ++k) net.on_send(0, 1, uint64_t(n), 2 * k * w, Stream::kDp);
    INFO("gap " << g);
    CHECK(net.on_send(0, 2, uint64_t(n), (2 * g + 1) * w, Stream::kComm).sender_free ==
          Approx((2 * g + 2) * w).epsilon(1e-12));
  }
}

// ---------------------------------------------------------------- hosts

const std::string kTwoHosts = R"(
sites:
  - {name: dc, ranks: rest, intra: {latency: 1ms, bandwidth: 100Gbps}}
hosts: {ranks: 4, egress: 8Gbps, ingress: 16Gbps}
)";

TEST_CASE("netem hosts: p ranks of one host sending at once finish at t + L + p*w/C_host", "[netem][hosts]") {
  const double L = 0.001, n = 1000000, C = 8 * kGbps, R = 100 * kGbps;
  for (int p : {1, 2, 4}) {  // a world of 4 + p ranks: host 0 full, host 1 holds p
    INFO("ranks on the sending host " << p);
    NetworkModel net(load_profile(write_profile("two-hosts", kTwoHosts), 4 + p), 4 + p);
    CHECK(net.host_of(3) == 0);
    CHECK(net.host_of(4) == 1);
    // Host 1's p ranks each send n bytes to rank 0 (host 0) at t = 2: each at C/p.
    for (int a = 4; a < 4 + p; ++a) {
      const SendTiming s = net.on_send(a, 0, uint64_t(n), 2.0);
      CHECK(s.sender_free == exactly(2.0 + p * n / C));
      CHECK(s.wire_arrival == exactly(2.0 + L + p * n / C));
    }
    CHECK(net.egress_rate(4, 0) == exactly(C / p));
  }
  // Inside a host: no NIC, the site's link alone (t + L + w/R, even with the host busy).
  NetworkModel net(load_profile(write_profile("two-hosts", kTwoHosts), 8), 8);
  net.on_send(0, 4, uint64_t(n), 0.0);
  CHECK(net.on_send(0, 1, uint64_t(n), 0.0).wire_arrival == exactly(L + n / R));
  CHECK(std::isinf(net.egress_rate(0, 1)));
  CHECK(net.beta(0, 1) == exactly(1 / R));
  // Ingress: the host's 16 Gbps over its 4 ranks. Beta takes the slowest of the link (100),
  // the sender's share (8 / 4) and the receiver's (16 / 4): 2 Gbps.
  CHECK(net.ingress_rate(4, 0) == exactly(4 * kGbps));
  CHECK(net.beta(4, 0) == exactly(1 / (2 * kGbps)));
}

TEST_CASE("netem hosts: consecutive ranks of a site, however the sites were placed", "[netem][hosts]") {
  Profile p = load_profile(write_profile("hosts-list", R"(
sites:
  - {name: A, intra: {latency: 1ms, bandwidth: 1Gbps}}
  - {name: B, intra: {latency: 1ms, bandwidth: 1Gbps}}
rank_sites: [A, B, A, B, A, A]
default_link: {latency: 10ms, bandwidth: 1Gbps}
hosts: {ranks: 2, egress: 1Gbps}
)"), 6);
  // A holds ranks 0, 2, 4, 5: hosts {0, 2}, {4, 5}; B holds 1, 3: one host.
  CHECK(p.rank_hosts() == std::vector<int>{0, 1, 0, 1, 2, 2});
  CHECK(p.hosts.ranks == 2);
  CHECK(p.hosts.egress_Bps == exactly(kGbps));
  CHECK(p.hosts.ingress_Bps == 0.0);
  CHECK(uniform_profile(3, 0, 0).rank_hosts() == std::vector<int>{0, 1, 2});  // no hosts: a rank each
}

TEST_CASE("netem: a slow egress feeding a fast path: the slowest server sets the pace",
          "[netem]") {
  Profile p = uniform_profile(2, 0.0, 10 * kGbps);
  p.nic_egress_Bps = kGbps;
  p.nic_ingress_Bps = kGbps;  // as fast as the egress: adds no time (cut-through)
  NetworkModel net(p, 2);
  const SendTiming s = net.on_send(0, 1, 1000000, 0.0);
  CHECK(s.depart == exactly(0.008));
  CHECK(net.on_receive(1, 0, 1000000, s.wire_arrival) == exactly(0.008));
}

TEST_CASE("netem: zero bytes cost the latency only", "[netem]") {
  Profile p = uniform_profile(2, 0.01, kGbps);
  p.header_bytes = 66;
  p.nic_egress_Bps = p.nic_ingress_Bps = kGbps;
  NetworkModel net(p, 2);
  const SendTiming s = net.on_send(0, 1, 0, 2.0);
  CHECK(s.sender_free == exactly(2.0));
  CHECK(s.wire_arrival == exactly(2.01));
  CHECK(net.on_receive(1, 0, 0, s.wire_arrival) == exactly(2.01));
}

TEST_CASE("netem: a rank's message to itself is free", "[netem]") {
  NetworkModel net(uniform_profile(2, 0.01, kGbps), 2);
  const SendTiming s = net.on_send(1, 1, 1000000, 3.0);
  CHECK((s.sender_free == 3.0 && s.depart == 3.0 && s.wire_arrival == 3.0));
  CHECK(net.alpha(1, 1) == 0.0);
  CHECK(net.beta(1, 1) == 0.0);
}

TEST_CASE("netem: alpha and beta", "[netem]") {
  Profile p = uniform_profile(3, 0.01, kGbps);
  NetworkModel plain(p, 3);
  CHECK(plain.alpha(0, 2) == exactly(0.01));
  CHECK(plain.beta(0, 2) == exactly(8e-9));
  p.nic_egress_Bps = 1e8;  // a NIC slower than the path sets beta
  CHECK(NetworkModel(p, 3).beta(0, 2) == exactly(1e-8));
  p.nic_egress_Bps = 0;
  p.nic_ingress_Bps = 5e7;
  CHECK(NetworkModel(p, 3).beta(0, 2) == exactly(2e-8));
  CHECK(NetworkModel(uniform_profile(2, 0.0, 0.0), 2).beta(0, 1) == 0.0);  // unlimited
}

TEST_CASE("netem: jitter is seeded, bounded, and never reorders", "[netem]") {
  Profile p = uniform_profile(2, 0.01, kGbps);
  p.sites[0].intra.jitter_s = 0.005;
  p.seed = 42;
  auto arrivals = [](const Profile& prof, double spacing) {
    NetworkModel net(prof, 2);
    std::vector<double> out;
    for (int i = 0; i < 2000; ++i) out.push_back(net.on_send(0, 1, 100, i * spacing).wire_arrival);
    return out;
  };
  const std::vector<double> a = arrivals(p, 1e-4), b = arrivals(p, 1e-4);
  CHECK(a == b);  // the same seed gives the same draws
  for (size_t i = 1; i < a.size(); ++i) REQUIRE(a[i] >= a[i - 1]);
  Profile other = p;
  other.seed = 43;
  CHECK(arrivals(other, 1e-4) != a);

  // Messages far apart never queue: each delay is L + jitter, uniform within +-5 ms.
  p.sites[0].intra.jitter_dist = "uniform";
  const std::vector<double> spaced = arrivals(p, 1.0);
  double sum = 0, lo = 1, hi = 0;
  for (size_t i = 0; i < spaced.size(); ++i) {
    const double delay = spaced[i] - double(i) - 100 / kGbps;
    sum += delay, lo = std::min(lo, delay), hi = std::max(hi, delay);
  }
  CHECK(lo >= 0.005 - 1e-12);
  CHECK(hi <= 0.015 + 1e-12);
  CHECK(sum / double(spaced.size()) == Approx(0.01).epsilon(0.02));
}

TEST_CASE("netem: loss adds whole retransmission timeouts, deterministically", "[netem]") {
  Profile p = uniform_profile(2, 0.01, kGbps);
  p.sites[0].intra.loss_rate = 0.01;
  p.rto_s = 0.2;
  for (uint64_t segments : {100, 10000}) {  // exact inversion, then the normal approximation
    const uint64_t n = segments * p.segment_bytes;
    NetworkModel net(p, 2), again(p, 2);
    double lost_total = 0;
    const int messages = 400;
    for (int i = 0; i < messages; ++i) {
      const double ready = 1000.0 * i;  // far apart: no message waits behind another
      const double arrival = net.on_send(0, 1, n, ready).wire_arrival;
      REQUIRE(arrival == again.on_send(0, 1, n, ready).wire_arrival);
      const double lost = (arrival - ready - 0.01 - double(n) / kGbps) / p.rto_s;
      REQUIRE(lost == Approx(std::round(lost)).margin(1e-6));
      REQUIRE(lost >= -1e-6);
      lost_total += std::round(lost);
    }
    const double expected = double(segments) * 0.01 * messages;
    CHECK(lost_total == Approx(expected).epsilon(0.15));
  }
}

TEST_CASE("netem: the model refuses a profile placing fewer ranks than the world", "[netem]") {
  CHECK_THROWS_AS(NetworkModel(uniform_profile(2, 0, 0), 3), std::invalid_argument);
}

// ---------------------------------------------------------------- units

TEST_CASE("netem units: bandwidths, durations, sizes, fractions", "[netem]") {
  using namespace units;
  CHECK(*parse_bandwidth("25Gbps") == exactly(25 * kGbps));
  CHECK(*parse_bandwidth("1.12Gbps") == exactly(1.12e9 / 8));
  CHECK(*parse_bandwidth("100Mbps") == exactly(1.25e7));
  CHECK(*parse_bandwidth("400 Gbps") == exactly(5e10));
  CHECK(*parse_bandwidth("100mbit") == exactly(1.25e7));
  CHECK(*parse_bandwidth("unlimited") == 0.0);
  for (const char* bad : {"-1Gbps", "0Gbps", "25Gbs", "25", "Gbps", "nanGbps", ""})
    CHECK_FALSE(parse_bandwidth(bad));
  CHECK(*parse_duration("10ms") == exactly(0.01));
  CHECK(*parse_duration("5us") == exactly(5e-6));
  CHECK(*parse_duration("0.5ms") == exactly(5e-4));
  CHECK(*parse_duration("0") == 0.0);
  for (const char* bad : {"-1ms", "10", "10 min", "ms"}) CHECK_FALSE(parse_duration(bad));
  CHECK(*parse_bytes("1448") == 1448);
  CHECK(*parse_bytes("4MiB") == 4194304);
  CHECK(*parse_bytes("64KB") == 64000);
  CHECK_FALSE(parse_bytes("1.5"));
  CHECK(*parse_fraction("0.001") == exactly(0.001));
  CHECK(*parse_fraction("0.1%") == exactly(0.001));
  CHECK_FALSE(parse_fraction("1"));
  CHECK_FALSE(parse_fraction("-0.1"));
  CHECK(format_bandwidth(1.15e9 / 8) == "1.15Gbps");
  CHECK(format_bandwidth(0) == "unlimited");
  CHECK(format_duration(0.0105) == "10.5ms");
  CHECK(kbit_per_s(kGbps) == 1000000);
}

// ---------------------------------------------------------------- shipped profiles

TEST_CASE("netem profiles: every shipped profile loads for the world sizes it claims",
          "[netem]") {
  const std::vector<std::string> any_world = {
      "centralized-25g", "decentralized-1g", "wan-1g-50ms", "unshaped",  "aqsgd-10g",
      "aqsgd-1g",        "aqsgd-500m",       "aqsgd-300m",  "aqsgd-100m"};
  const std::vector<std::string> up_to_64 = {"dtfm-1-dc-ondemand", "dtfm-2-dc-spot",
                                             "dtfm-3-two-dcs", "dtfm-4-regions", "dtfm-5-cities"};
  for (const auto& name : any_world)
    for (int world : {1, 2, 5, 8, 64, 257}) {
      INFO(name << " world " << world);
      const Profile p = load_profile(shipped(name), world);
      CHECK(p.rank_site.size() == size_t(world));
      CHECK(p.name == name);
      CHECK_FALSE(p.source.empty());
      NetworkModel net(p, world);
      if (world > 1) CHECK(net.on_send(0, world - 1, 1000, 0.0).wire_arrival >= 0.0);
    }
  for (const auto& name : up_to_64) {
    for (int world : {1, 5, 8, 63, 64}) {
      INFO(name << " world " << world);
      CHECK(load_profile(shipped(name), world).rank_site.size() == size_t(world));
    }
    CHECK_THROWS_WITH(load_profile(shipped(name), 65),
                      Catch::Contains("rank 64 is on no site: the sites hold 64 ranks"));
  }
  CHECK(load_profile(shipped("datacenter-modern"), 128).rank_site.size() == 128);
  CHECK_THROWS_AS(load_profile(shipped("datacenter-modern"), 129), dtb::UsageError);
}

TEST_CASE("netem profiles: the DT-FM figures are the paper's", "[netem]") {
  auto check_link = [](const Profile& p, int a, int b, double ms, double gbps) {
    INFO("ranks " << a << " -> " << b);
    CHECK(p.link(a, b).latency_s == exactly(ms * 1e-3));
    CHECK(p.link(a, b).bandwidth_Bps == exactly(gbps * kGbps));
    CHECK(p.link(b, a).latency_s == exactly(ms * 1e-3));  // symmetric
    CHECK(p.link(b, a).bandwidth_Bps == exactly(gbps * kGbps));
  };
  // Scenario 5: cities of 8 ranks in the order OR, VA, OH, Tok, Seo, Lon, Fra, Ire.
  const Profile cities = load_profile(shipped("dtfm-5-cities"), 64);
  enum { OR = 0, VA = 8, OH = 16, Tok = 24, Seo = 32, Lon = 40, Fra = 48, Ire = 56 };
  check_link(cities, OR, VA, 67, 0.79);
  check_link(cities, OR, Tok, 96, 0.523);
  check_link(cities, VA, Seo + 3, 172, 0.50);
  check_link(cities, OH, Fra, 99, 0.799);
  check_link(cities, Tok, Seo, 34, 1.10);
  check_link(cities, Tok + 7, Fra, 223, 0.36);
  check_link(cities, Seo, Ire, 228, 0.335);
  check_link(cities, Lon, Ire + 7, 12, 1.09);
  check_link(cities, Fra, Ire, 24, 1.08);
  check_link(cities, Lon + 1, Lon + 2, 5, 2);  // inside a city
  CHECK(cities.sites.size() == 8);
  CHECK(cities.sites[size_t(cities.rank_site[Tok])].name == "Tok");

  // Scenario 4 in the scheduler code's order: VA, OR, CA, OH x 16.
  const Profile regions = load_profile(shipped("dtfm-4-regions"), 64);
  check_link(regions, 0, 16, 67, 1.15);   // VA-OR
  check_link(regions, 0, 32, 59, 1.05);   // VA-CA
  check_link(regions, 16, 32, 12, 1.25);  // OR-CA
  check_link(regions, 32, 48, 52, 1.02);  // CA-OH
  check_link(regions, 1, 2, 5, 2);

  // Scenario 3 as the scheduler code has it: 5 Gbps / 1 ms inside, 11 ms / 1.12 Gbps across.
  const Profile dcs = load_profile(shipped("dtfm-3-two-dcs"), 64);
  check_link(dcs, 0, 63, 11, 1.12);
  check_link(dcs, 32, 33, 1, 5);
  check_link(load_profile(shipped("dtfm-1-dc-ondemand"), 64), 0, 8, 0.01, 25);
  check_link(load_profile(shipped("dtfm-1-dc-ondemand"), 64), 8, 15, 0.002, 100);
  // Scenario 2 as the scheduler code has it: 8 instances of 4 GPUs, then 32 single GPUs;
  // 1.25 Gbps per pair between machines, no shared NIC.
  const Profile spot_profile = load_profile(shipped("dtfm-2-dc-spot"), 64);
  check_link(spot_profile, 4, 7, 0.002, 100);   // one instance
  check_link(spot_profile, 7, 8, 0.01, 1.25);   // two instances
  check_link(spot_profile, 3, 40, 0.01, 1.25);  // an instance and a single GPU
  check_link(spot_profile, 40, 41, 0.01, 1.25); // two single GPUs
  // Scenario 1: a node's NIC (25 Gbps) shared by its 8 GPUs, none inside it.
  const NetworkModel on_demand(load_profile(shipped("dtfm-1-dc-ondemand"), 64), 64);
  const NetworkModel spot(spot_profile, 64);
  CHECK(on_demand.egress_rate(3, 8) == exactly(3.125 * kGbps));
  CHECK(on_demand.ingress_rate(3, 60) == exactly(3.125 * kGbps));
  CHECK(std::isinf(spot.egress_rate(7, 8)));
  CHECK(on_demand.host_of(7) == 0);
  CHECK(on_demand.host_of(8) == 1);
}

TEST_CASE("netem profiles: the seed figures and the AQ-SGD sweep", "[netem]") {
  const Profile central = load_profile(shipped("centralized-25g"), 8);
  CHECK(central.nic_egress_Bps == exactly(25 * kGbps));
  CHECK(central.link(0, 7).bandwidth_Bps == exactly(25 * kGbps));
  const Profile decentral = load_profile(shipped("decentralized-1g"), 8);
  CHECK(decentral.nic_ingress_Bps == exactly(kGbps));
  CHECK(decentral.link(0, 7).latency_s == exactly(0.05));
  const std::pair<const char*, double> sweep[] = {{"aqsgd-10g", 10e9},  {"aqsgd-1g", 1e9},
                                                  {"aqsgd-500m", 5e8},  {"aqsgd-300m", 3e8},
                                                  {"aqsgd-100m", 1e8}};
  for (const auto& [name, bits] : sweep)
    CHECK(load_profile(shipped(name), 4).link(0, 3).bandwidth_Bps == exactly(bits / 8));
  const Profile none = load_profile(shipped("unshaped"), 4);
  NetworkModel net(none, 4);
  CHECK(net.on_send(0, 3, 1 << 30, 1.5).wire_arrival == 1.5);
  const Profile wan = load_profile(shipped("wan-1g-50ms"), 4);
  CHECK(NetworkModel(wan, 4).on_send(0, 1, 1000000, 0).wire_arrival == exactly(0.058));
}

TEST_CASE("netem profiles: rank placement by counts, rest and rank_sites", "[netem]") {
  const std::string rest = R"(
sites:
  - {name: A, ranks: 2, intra: {latency: 1ms, bandwidth: 10Gbps}}
  - {name: B, ranks: rest, intra: {latency: 1ms, bandwidth: 10Gbps}}
  - {name: C, ranks: 1}
default_link: {latency: 10ms, bandwidth: 1Gbps}
)";
  const std::string path = write_profile("rest", rest);
  CHECK(load_profile(path, 6).rank_site == std::vector<int>{0, 0, 1, 1, 1, 2});
  CHECK(load_profile(path, 3).rank_site == std::vector<int>{0, 0, 2});  // rest may be empty
  CHECK(load_profile(path, 1).rank_site == std::vector<int>{0});  // the first ranks only

  const std::string listed = R"(
name: listed
seed: 7
sites:
  - {name: A, intra: {latency: 1ms, bandwidth: 10Gbps}}
  - {name: B, intra: {latency: 2ms, bandwidth: 10Gbps}}
rank_sites: [B, A, B, A, A]
links:
  - {between: [A, B], latency: 10ms, bandwidth: 1Gbps, jitter: 1ms, jitter_dist: uniform,
     loss: 0.1%}
nic: {egress: 10Gbps}
transport: {header_bytes: 66, segment_bytes: 1448, tcp_window: 4MiB, rto: 250ms}
)";
  const Profile p = load_profile(write_profile("listed", listed), 4);
  CHECK(p.rank_site == std::vector<int>{1, 0, 1, 0});
  CHECK(p.name == "listed");
  CHECK(p.seed == 7);
  CHECK(p.link(0, 1).jitter_dist == "uniform");
  CHECK(p.link(0, 1).jitter_s == exactly(0.001));
  CHECK(p.link(0, 1).loss_rate == exactly(0.001));
  CHECK(p.link(0, 2).latency_s == exactly(0.002));
  CHECK(p.nic_egress_Bps == exactly(10 * kGbps));
  CHECK(p.nic_ingress_Bps == 0.0);
  CHECK(p.header_bytes == 66);
  CHECK(p.tcp_window_bytes == 4194304);
  CHECK(p.rto_s == exactly(0.25));
}

TEST_CASE("netem profiles: placement fill, round_robin and blocks spread any world size", "[netem][placement]") {
  auto sites = [](const std::string& placement) {  // 4 sites of 16, or of 16, 2, rest, 0
    return "placement: " + placement + R"(
sites:
  - {name: A, ranks: 16, intra: {latency: 1ms, bandwidth: 10Gbps}}
  - {name: B, ranks: 16, intra: {latency: 1ms, bandwidth: 10Gbps}}
  - {name: C, ranks: 16, intra: {latency: 1ms, bandwidth: 10Gbps}}
  - {name: D, ranks: 16, intra: {latency: 1ms, bandwidth: 10Gbps}}
default_link: {latency: 10ms, bandwidth: 1Gbps}
)";
  };
  using V = std::vector<int>;
  const std::string fill = write_profile("fill", sites("fill")), rr = write_profile("rr", sites("round_robin")),
                    blocks = write_profile("blocks", sites("blocks"));
  CHECK(load_profile(fill, 10).rank_site == V(10, 0));
  CHECK(load_profile(rr, 10).rank_site == V{0, 1, 2, 3, 0, 1, 2, 3, 0, 1});
  CHECK(load_profile(blocks, 10).rank_site == V{0, 0, 0, 1, 1, 1, 2, 2, 3, 3});
  // The full world: blocks is fill; round robin deals, full sites drop out.
  CHECK(load_profile(blocks, 64).rank_site == load_profile(fill, 64).rank_site);
  CHECK(load_profile(rr, 64).rank_site[63] == 3);
  CHECK(load_profile(rr, 3).rank_site == V{0, 1, 2});
  // Room per site holds: with 16, 2, rest and 0, round robin skips the full and the empty.
  const std::string uneven = R"(
sites:
  - {name: A, ranks: 3, intra: {latency: 1ms, bandwidth: 10Gbps}}
  - {name: B, ranks: 1}
  - {name: C, ranks: rest, intra: {latency: 1ms, bandwidth: 10Gbps}}
  - {name: D, ranks: 0}
default_link: {latency: 10ms, bandwidth: 1Gbps}
)";
  CHECK(load_profile(write_profile("uneven-rr", "placement: round_robin" + uneven), 7).rank_site ==
        V{0, 1, 2, 0, 2, 0, 2});
  CHECK(load_profile(write_profile("uneven-blocks", "placement: blocks" + uneven), 3).rank_site == V{0, 1, 2});
  check_rejected("blocks-overfill", "placement: blocks" + uneven, 7,
                 {"sites[1].ranks", "placement 'blocks' puts 2 of the 7 ranks on site 'B', which holds 1"});
  // The shipped geographic profiles spread a small world; at 64 ranks they are the paper's.
  CHECK(load_profile(shipped("dtfm-5-cities"), 8).rank_site == V{0, 1, 2, 3, 4, 5, 6, 7});
  CHECK(load_profile(shipped("dtfm-4-regions"), 16).rank_site == V{0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3});
  CHECK(load_profile(shipped("dtfm-3-two-dcs"), 5).rank_site == V{0, 0, 0, 1, 1});
}

TEST_CASE("netem profiles: one warning line when a multi-site profile puts every rank on one site", "[netem][placement]") {
  const std::string w = single_site_warning(load_profile(shipped("dtfm-1-dc-ondemand"), 8));
  CHECK(w == "warning: network profile 'dtfm-1-dc-ondemand' has 8 sites but puts all 8 ranks on 'node0', so nothing "
             "crosses between sites; spread them with 'placement: round_robin' or 'placement: blocks' in the profile, "
             "or a rank_sites list (configs/net/README.md)");
  CHECK(single_site_warning(load_profile(shipped("dtfm-1-dc-ondemand"), 9)).empty());   // node1 too
  CHECK(single_site_warning(load_profile(shipped("dtfm-5-cities"), 8)).empty());         // blocks
  CHECK(single_site_warning(load_profile(shipped("centralized-25g"), 8)).empty());       // one site
  CHECK(single_site_warning(load_profile(shipped("decentralized-1g"), 1)).empty());      // per_rank: one site
  CHECK(single_site_warning(load_profile(shipped("dtfm-5-cities"), 1)).empty());         // one rank: nothing could cross
}

TEST_CASE("netem profiles: sites: per_rank puts every rank on a site of its own, any world size",
          "[netem]") {
  const std::string path = write_profile("per-rank", R"(
sites: per_rank
default_link: {latency: 50ms, bandwidth: 1Gbps, jitter: 1ms}
nic: {egress: 1Gbps}
)");
  for (int world = 1; world <= 257; ++world) {
    INFO("world " << world);
    const Profile p = load_profile(path, world);
    REQUIRE(p.rank_site.size() == size_t(world));
    REQUIRE(p.sites.size() == size_t(world));
    const NetworkModel net(p, world);
    // Counted, not CHECKed pair by pair: 257 ranks have 65,792 ordered pairs.
    int misplaced = 0, same_site = 0, wrong_link = 0;
    for (int a = 0; a < world; ++a) {
      misplaced += p.rank_site[size_t(a)] != a || p.sites[size_t(a)].name != "rank" + std::to_string(a);
      for (int b = 0; b < world; ++b) {
        if (a == b) continue;
        same_site += net.same_site(a, b);
        const LinkSpec& l = p.link(a, b);
        wrong_link += l.latency_s != 0.05 || l.bandwidth_Bps != kGbps || l.jitter_s != 0.001;
      }
    }
    CHECK(misplaced == 0);
    CHECK(same_site == 0);  // every pair of distinct ranks is across sites
    CHECK(wrong_link == 0);
  }
  // The closed-form terms come from the default link: alpha = its latency, beta = 1 / 1 Gbps
  // (link and NIC cap alike).
  const Profile wide = load_profile(path, 257);
  CHECK(NetworkModel(wide, 257).alpha(0, 256) == exactly(0.05));
  CHECK(NetworkModel(wide, 257).beta(0, 256) == exactly(1.0 / kGbps));
}

TEST_CASE("netem profiles: the shipped decentralized-1g is one site per rank", "[netem]") {
  for (int world : {1, 2, 4, 8, 100, 257}) {
    INFO("world " << world);
    const Profile p = load_profile(shipped("decentralized-1g"), world);
    CHECK(p.sites.size() == size_t(world));
    if (world > 1) {
      CHECK_FALSE(NetworkModel(p, world).same_site(0, world - 1));
      CHECK(p.link(world - 1, 0).latency_s == exactly(0.05));
      CHECK(p.link(0, world - 1).bandwidth_Bps == exactly(kGbps));
    }
  }
  // The data centre stays one site: its traffic is inside a site.
  const Profile central = load_profile(shipped("centralized-25g"), 8);
  CHECK(central.sites.size() == 1);
  CHECK(NetworkModel(central, 8).same_site(0, 7));
}

TEST_CASE("netem profiles: bad profiles name the file, the key and what is allowed",
          "[netem]") {
  check_rejected("no-site", R"(
sites:
  - {name: A, ranks: 4, intra: {latency: 1ms, bandwidth: 10Gbps}}
)", 6, {"key 'sites'", "rank 4 is on no site: the sites hold 4 ranks (give a site 'ranks: rest')"});
  check_rejected("negative-bw", R"(
sites:
  - {name: A, ranks: rest, intra: {latency: 1ms, bandwidth: 10Gbps}}
  - {name: B, ranks: 1, intra: {latency: 1ms, bandwidth: -1Gbps}}
)", 2, {":4:", "key 'sites[1].intra.bandwidth'", "positive bandwidth like '25Gbps'", "'-1Gbps'"});
  check_rejected("zero-bw", R"(
sites: [{name: A, ranks: rest, intra: {latency: 1ms, bandwidth: 0Gbps}}]
)", 2, {"sites[0].intra.bandwidth", "'unlimited'"});
  check_rejected("negative-latency", R"(
sites: [{name: A, ranks: rest, intra: {latency: -1ms, bandwidth: 1Gbps}}]
)", 2, {"sites[0].intra.latency", "latency >= 0"});
  check_rejected("bad-unit", R"(
sites: [{name: A, ranks: rest, intra: {latency: 1 fortnight, bandwidth: 1Gbps}}]
)", 2, {"sites[0].intra.latency", "'1 fortnight'"});
  check_rejected("loss-one", R"(
sites: [{name: A, ranks: rest, intra: {latency: 1ms, bandwidth: 1Gbps, loss: 1}}]
)", 2, {"sites[0].intra.loss", "[0, 1)"});
  check_rejected("bad-jitter-dist", R"(
sites: [{name: A, ranks: rest, intra: {latency: 1ms, bandwidth: 1Gbps, jitter_dist: pareto}}]
)", 2, {"sites[0].intra.jitter_dist", "normal or uniform"});
  check_rejected("typo-link-key", R"(
sites: [{name: A, ranks: rest, intra: {latency: 1ms, bandwith: 1Gbps}}]
)", 2, {"unknown key 'sites[0].intra.bandwith'", "allowed here: latency, bandwidth"});
  check_rejected("typo-top-key", "site:\n  - {name: A}\n", 2,
                 {":1:", "unknown key 'site'", "allowed here: name, source, seed, sites"});
  check_rejected("unknown-link-site", kTwoSites + "  - {between: [A, C], latency: 1ms, "
                                                 "bandwidth: 1Gbps}\n",
                 4, {"links[1].between[1]", "unknown site 'C'", "the sites are A, B"});
  check_rejected("unknown-rank-site", R"(
sites:
  - {name: A, intra: {latency: 1ms, bandwidth: 10Gbps}}
rank_sites: [A, Z]
)", 2, {"rank_sites[1]", "unknown site 'Z'"});
  check_rejected("short-rank-sites", R"(
sites:
  - {name: A, intra: {latency: 1ms, bandwidth: 10Gbps}}
rank_sites: [A, A]
)", 3, {"key 'rank_sites'", "rank 2 is on no site"});
  check_rejected("both-placements", R"(
sites:
  - {name: A, ranks: 2, intra: {latency: 1ms, bandwidth: 10Gbps}}
rank_sites: [A, A]
)", 2, {"sites[0].ranks", "not both"});
  check_rejected("duplicate-site", R"(
sites:
  - {name: A, ranks: 1}
  - {name: A, ranks: rest}
)", 2, {"sites[1].name", "site 'A' is listed twice"});
  check_rejected("two-rests", R"(
sites:
  - {name: A, ranks: rest}
  - {name: B, ranks: rest}
)", 2, {"sites[1].ranks", "only one site"});
  check_rejected("per-rank-hosts", R"(
sites: per_rank
default_link: {latency: 50ms, bandwidth: 1Gbps}
hosts: {ranks: 8, egress: 1Gbps}
)", 8, {":4:", "key 'hosts'", "not allowed with 'sites: per_rank'", "its own host"});
  check_rejected("per-rank-no-link", "sites: per_rank\n", 2,
                 {":1:", "key 'default_link'", "missing", "sites: per_rank"});
  check_rejected("per-rank-links", R"(
sites: per_rank
default_link: {latency: 50ms, bandwidth: 1Gbps}
links: [{between: [rank0, rank1], latency: 1ms, bandwidth: 1Gbps}]
)", 2, {":4:", "key 'links'", "not allowed with 'sites: per_rank'"});
  check_rejected("per-rank-rank-sites", R"(
sites: per_rank
default_link: {latency: 50ms, bandwidth: 1Gbps}
rank_sites: [rank0, rank1]
)", 2, {"key 'rank_sites'", "not allowed with 'sites: per_rank'"});
  check_rejected("per-rank-bad-link", R"(
sites: per_rank
default_link: {latency: 50ms, bandwidth: fast}
)", 2, {":3:", "default_link.bandwidth", "'fast'"});
  check_rejected("sites-bad-word", "sites: per_node\ndefault_link: {latency: 1ms, bandwidth: 1Gbps}\n", 2,
                 {":1:", "key 'sites'", "or 'per_rank'", "got 'per_node'"});
  check_rejected("missing-link", R"(
sites:
  - {name: A, ranks: 1}
  - {name: B, ranks: 1}
  - {name: C, ranks: 1}
links:
  - {between: [A, B], latency: 10ms, bandwidth: 1Gbps}
)", 3, {"key 'links'", "no link between sites 'A' and 'C'", "default_link"});
  check_rejected("duplicate-link", kTwoSites + "  - {between: [B, A], latency: 1ms, "
                                              "bandwidth: 1Gbps}\n",
                 4, {"links[1].between", "given twice"});
  check_rejected("self-link", kTwoSites + "  - {between: [B, B], latency: 1ms, "
                                         "bandwidth: 1Gbps}\n",
                 4, {"links[1].between", "'intra'"});
  check_rejected("missing-intra", "sites: [{name: A, ranks: rest}]\n", 2,
                 {"sites[0].intra", "holds 2 ranks"});
  check_rejected("missing-latency", "sites: [{name: A, ranks: rest, intra: {bandwidth: 1Gbps}}]\n",
                 2, {"sites[0].intra.latency", "missing"});
  check_rejected("duplicate-key",
                 "sites: [{name: A, ranks: rest, intra: {latency: 1ms, latency: 2ms, "
                 "bandwidth: 1Gbps}}]\n",
                 2, {"sites[0].intra.latency", "given twice"});
  check_rejected("empty-sites", "sites: []\n", 1, {"key 'sites'", "an empty list"});
  check_rejected("bad-ranks", "sites: [{name: A, ranks: many}]\n", 2,
                 {"sites[0].ranks", "number of ranks >= 0 or 'rest'"});
  check_rejected("bad-rto", kTwoSites + "transport: {rto: 0}\n", 4,
                 {"transport.rto", "> 0"});
  check_rejected("bad-nic", kTwoSites + "nic: {egress: fast}\n", 4, {"nic.egress"});
  check_rejected("hosts-zero", kTwoSites + "hosts: {ranks: 0, egress: 25Gbps}\n", 4,
                 {"hosts.ranks", "ranks per host in [1, 1000000]", "'0'"});
  check_rejected("hosts-no-cap", kTwoSites + "hosts: {ranks: 8}\n", 4, {"'hosts'", "egress and/or ingress"});
  check_rejected("hosts-typo", kTwoSites + "hosts: {ranks: 8, egres: 25Gbps}\n", 4,
                 {"unknown key 'hosts.egres'", "ranks, egress, ingress"});
  check_rejected("placement-bad", kTwoSites + "placement: spread\n", 4,
                 {"key 'placement'", "expected one of fill, round_robin, blocks, got 'spread'"});
  check_rejected("placement-list", "placement: blocks\nsites: [{name: A, intra: {latency: 1ms, bandwidth: 1Gbps}}]\n"
                 "rank_sites: [A, A]\n", 2, {"key 'placement'", "not allowed with 'rank_sites'"});
  check_rejected("placement-per-rank", "placement: fill\nsites: per_rank\ndefault_link: {latency: 1ms, bandwidth: 1Gbps}\n",
                 2, {"key 'placement'", "per_rank"});
  check_rejected("hosts-missing", kTwoSites + "hosts: {egress: 25Gbps}\n", 4, {"hosts.ranks", "missing"});
  check_rejected("yaml-syntax", "sites: [{name: A\n", 1, {"invalid YAML"});
  check_rejected("not-a-map", "- just\n- a list\n", 1, {"expected a network profile"});
  CHECK_THROWS_WITH(load_profile("/nonexistent/net.yaml", 2),
                    Catch::Contains("/nonexistent/net.yaml: no such network profile"));
}

// ---------------------------------------------------------------- tc commands

namespace {

std::vector<std::string> lines_with(const std::string& script, const std::string& needle) {
  std::vector<std::string> out;
  std::istringstream in(script);
  for (std::string line; std::getline(in, line);)
    if (line.find(needle) != std::string::npos) out.push_back(line);
  return out;
}

bool has_line(const std::string& script, const std::string& line) {
  return !lines_with(script, line).empty();
}

}  // namespace

TEST_CASE("netem tc: one htb class, netem and u32 filter per destination", "[netem]") {
  const Profile p = load_profile(shipped("dtfm-4-regions"), 64);  // VA 0-15, OR 16-31, CA, OH
  std::vector<std::string> ips;
  for (int r = 0; r < 64; ++r) ips.push_back("10.1.0." + std::to_string(r / 8 + 1));  // 8 a host
  const std::string tc = tc_commands(p, 0, "eth0", ips);  // rank 0 in VA, host 10.1.0.1
  CHECK(tc.rfind("#!/bin/sh\n", 0) == 0);
  CHECK(has_line(tc, "tc qdisc add dev eth0 root handle 1: htb default 0"));
  // One class per other host (its first rank); ranks 1-7 share rank 0's host.
  CHECK(lines_with(tc, "tc class add").size() == 7);
  CHECK(lines_with(tc, "u32 match ip dst").size() == 7);
  CHECK(lines_with(tc, "match ip dst 10.1.0.1/").empty());
  // VA -> OR (rank 16 at 10.1.0.3): 67 ms, 1.15 Gbps = 1150000 kbit, class 1:(0x10 + 16) = 1:20.
  CHECK(has_line(tc, "tc class add dev eth0 parent 1: classid 1:20 htb rate 1150000kbit ceil "
                     "1150000kbit burst 143750 cburst 143750 quantum 200000"));
  CHECK(has_line(tc, "tc qdisc add dev eth0 parent 1:20 handle 20: netem limit 9543 delay 67ms"));
  CHECK(has_line(tc, "tc filter add dev eth0 parent 1: protocol ip prio 1 u32 match ip dst "
                     "10.1.0.3/32 flowid 1:20"));
  // VA -> VA at another host (rank 8): 5 ms, 2 Gbps.
  CHECK(has_line(tc, "classid 1:18 htb rate 2000000kbit"));
  CHECK(has_line(tc, "parent 1:18 handle 18: netem limit 1239 delay 5ms"));
  CHECK(lines_with(tc, "ifb").size() == 1);  // only the clean-up line: no ingress cap
}

TEST_CASE("netem tc: NIC caps, jitter, loss, unlimited links, IPv6", "[netem]") {
  Profile p = uniform_profile(3, 0.01, 0.0);  // unlimited bandwidth
  p.sites[0].intra.jitter_s = 0.002;
  p.sites[0].intra.loss_rate = 0.001;
  std::string tc = tc_commands(p, 0, "ib0", {"10.0.0.1", "fd00::2", "10.0.0.3"});
  CHECK(has_line(tc, "classid 1:11 htb rate 1000000000kbit"));  // unlimited: 1 Tbit/s
  CHECK(has_line(tc, "netem limit 1486130 delay 10ms 2ms distribution normal rate "
                     "1000000000kbit loss random 0.1%"));
  CHECK(has_line(tc, "protocol ipv6 prio 2 u32 match ip6 dst fd00::2/128 flowid 1:11"));
  CHECK(has_line(tc, "# loss: netem drops packets"));

  p = uniform_profile(2, 0.0, kGbps);  // no delay, jitter or loss: no netem qdisc at all
  p.nic_egress_Bps = 1.25e7;
  p.nic_ingress_Bps = 2.5e7;
  tc = tc_commands(p, 1, "eth1", {"192.168.0.1", "192.168.0.2"});
  CHECK(lines_with(tc, "netem").empty());
  CHECK(has_line(tc, "tc class add dev eth1 parent 1: classid 1:1 htb rate 100000kbit"));
  CHECK(has_line(tc, "tc class add dev eth1 parent 1:1 classid 1:10 htb rate 100000kbit"));
  CHECK(has_line(tc, "tc qdisc add dev eth1 handle ffff: ingress"));
  CHECK(has_line(tc, "action mirred egress redirect dev dtb-ifb0"));
  CHECK(has_line(tc, "tc qdisc replace dev dtb-ifb0 root tbf rate 200000kbit burst 25000"));
  CHECK(tc_remove_commands("eth1", true) == "tc qdisc del dev eth1 root 2>/dev/null || true\n"
                                            "tc qdisc del dev eth1 ingress 2>/dev/null || true\n"
                                            "ip link del dtb-ifb0 2>/dev/null || true\n"
                                            "rm -f /run/dtb-tc/eth1\n");
}

// What the operator ran before is not deleted unless asked: the script checks the device's
// qdiscs before its first deletion, and records its own shaping last (the kernel's side of
// this, on a real device, is tests/netns/run_tc_verify_check.sh).
TEST_CASE("netem tc: an operator's root qdisc is replaced only with --replace-root", "[netem]") {
  const Profile p = uniform_profile(2, 0.0, kGbps);
  const std::string guarded = tc_commands(p, 0, "eth0", {"10.0.0.1", "10.0.0.2"});
  const size_t check = guarded.find("if [ ! -e /run/dtb-tc/eth0 ]; then");
  const size_t del = guarded.find("tc qdisc del dev eth0 root");
  REQUIRE(check != std::string::npos);
  CHECK(check < del);
  CHECK(has_line(guarded, "    \"\" | \"qdisc \"*\" 0: root\"*) ;;"));  // the kernel's default passes
  CHECK(lines_with(guarded, "exit 3").size() == 2);                        // any other root, an ingress qdisc
  CHECK(guarded.ends_with("mkdir -p /run/dtb-tc && echo \"profile " + p.name + ", rank 0\" > /run/dtb-tc/eth0\n"));
  const std::string replacing = tc_commands(p, 0, "eth0", {"10.0.0.1", "10.0.0.2"}, true);
  CHECK(lines_with(replacing, "exit 3").empty());
  CHECK(has_line(replacing, "tc qdisc del dev eth0 root"));
  // --remove deletes only what dtb-tc recorded.
  const std::string remove = tc_remove_commands("eth0");
  CHECK(remove.rfind("if [ ! -e /run/dtb-tc/eth0 ]; then\n", 0) == 0);
  CHECK(remove.ends_with(tc_remove_commands("eth0", true)));
}

TEST_CASE("netem tc: what the shaped path should measure (verify.sh)", "[netem]") {
  Profile p = load_profile(shipped("dtfm-5-cities"), 64);  // ranks 0-7 OR, 8-15 VA, ...
  TcExpectation e = tc_expectation(p, 0, 8);                 // OR <-> VA: 67 ms, 0.79 Gbps
  CHECK(e.rtt_s == Approx(0.134));
  CHECK(e.rate_Bps == Approx(0.79e9 / 8));
  CHECK(e.payload_Bps == Approx(0.79e9 / 8 * 1448 / 1514));
  e = tc_expectation(p, 0, 1);                               // inside OR: 5 ms, 2 Gbps
  CHECK(e.rtt_s == Approx(0.010));
  CHECK(e.rate_Bps == Approx(2e9 / 8));
  p = uniform_profile(2, 0.001, 0.0);                        // unlimited link, NIC caps bind
  CHECK(tc_expectation(p, 0, 1).rate_Bps == 0);
  p.nic_egress_Bps = 5e6;
  p.nic_ingress_Bps = 2e6;
  CHECK(tc_expectation(p, 0, 1).rate_Bps == 2e6);
  CHECK(tc_expectation(p, 0, 1).rtt_s == Approx(0.002));
  CHECK_THROWS_AS(tc_expectation(p, 0, 0), dtb::UsageError);
  CHECK_THROWS_AS(tc_expectation(p, 0, 2), dtb::UsageError);
}

TEST_CASE("netem tc: bad peer addresses are refused", "[netem]") {
  const Profile p = load_profile(shipped("dtfm-3-two-dcs"), 4);  // two in each data centre
  CHECK_THROWS_WITH(tc_commands(p, 0, "eth0", {"10.0.0.1", "10.0.0.2"}),
                    Catch::Contains("2 given, the profile places 4 ranks"));
  CHECK_THROWS_WITH(tc_commands(p, 0, "eth0", {"10.0.0.1", "10.0.0.2", "10.0.0.300", "x"}),
                    Catch::Contains("rank 2: '10.0.0.300' is not an IPv4 or IPv6 address"));
  CHECK_THROWS_AS(tc_commands(p, 4, "eth0", {"10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.4"}),
                  dtb::UsageError);
  Profile two = load_profile(shipped("dtfm-3-two-dcs"), 64);
  std::vector<std::string> ips(64, "10.0.0.9");
  ips[0] = "10.0.0.1";
  CHECK_THROWS_WITH(tc_commands(two, 0, "eth0", ips),
                    Catch::Contains("sit on sites 'OH' and 'VA'"));
}

// ---------------------------------------------------------------- clocks

TEST_CASE("netem clocks: virtual wait_until only moves forward, per stream", "[netem]") {
  VirtualClock clock;
  clock.advance(Stream::kCompute, 1.5);
  clock.wait_until(Stream::kCompute, 1.0);  // already past: unchanged
  CHECK(clock.now(Stream::kCompute) == 1.5);
  clock.wait_until(Stream::kCompute, 2.0);
  CHECK(clock.now(Stream::kCompute) == 2.0);
  CHECK(clock.now(Stream::kComm) == 0.0);  // the other stream has its own time
  clock.wait_until(Stream::kComm, 0.25);
  CHECK(clock.now(Stream::kComm) == 0.25);
  CHECK(clock.now(Stream::kDp) == 0.0);  // the DP channel too
  clock.wait_until(Stream::kDp, 0.5);
  CHECK((clock.now(Stream::kDp) == 0.5 && clock.now(Stream::kComm) == 0.25));
  CHECK(make_clock(ClockKind::kVirtual)->kind() == ClockKind::kVirtual);
}

TEST_CASE("netem clocks: wall wait_until returns once the target has passed", "[netem]") {
  WallClock clock;
  const double target = clock.now(Stream::kComm) + 0.02;
  clock.wait_until(Stream::kComm, target);
  const double after = clock.now(Stream::kComm);
  CHECK(after >= target);
  CHECK(after < target + 0.5);  // generous: the machine is shared
  clock.advance(Stream::kComm, 10.0);  // wall time is not advanced by hand
  CHECK(clock.now(Stream::kComm) < target + 1.0);
  const double before = clock.now(Stream::kCompute);
  clock.wait_until(Stream::kCompute, 0.0);  // in the past: returns at once
  CHECK(clock.now(Stream::kCompute) - before < 0.1);
  CHECK(thread_cpu_seconds() >= 0.0);
}
