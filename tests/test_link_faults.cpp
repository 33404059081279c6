// Link faults on purpose (issue 14; netem/link_faults.hpp): outages and bandwidth changes
// against hand-computed message times on netem's path rule, Gilbert-Elliott's long-run
// loss rate and mean burst length against their closed forms, the same seed giving the
// same losses, the keys' errors, and the simulator's run through the faults against its
// own closed forms (the trainer's agreement is in test_sim_agreement.cpp).
#include <catch2/catch.hpp>

#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "network.hpp"
#include "sim/fault_run.hpp"
#include "sim/sim_config.hpp"
#include "train/faults.hpp"
#include "usage_error.hpp"

using namespace dtb;
using netem::NetworkModel;
using netem::Profile;

namespace {

Approx exactly(double v) { return Approx(v).epsilon(1e-12).margin(1e-15); }

// Two sites A and B with one rank each, joined by LATENCY and BANDWIDTH (bytes/s; 0 =
// unlimited), no headers, no NIC caps.
Profile two_sites(double latency, double bandwidth) {
  Profile p;
  p.name = "two-sites";
  p.sites = {{"A", {}, true}, {"B", {}, true}};
  p.rank_site = {0, 1};
  netem::LinkSpec link;
  link.latency_s = latency;
  link.bandwidth_Bps = bandwidth;
  p.inter = {link, link, link, link};  // 2 x 2, the diagonal unused
  return p;
}

Profile with_faults(Profile p, const std::string& outages, const std::string& bandwidth = "",
                    netem::GilbertElliott burst = {}) {
  FaultSettings f;
  f.links.outages = outages;
  f.links.bandwidth = bandwidth;
  f.links.burst = burst;
  attach_link_faults(p, f);
  return p;
}

double arrival(NetworkModel& net, double bytes, double ready) { return net.on_send(0, 1, uint64_t(bytes), ready).wire_arrival; }

}  // namespace

TEST_CASE("a message crossing an outage waits it out: closed-form times", "[faults][links]") {
  // 1 MB at 1 MB/s takes 1 s on the path; the link is down over [0.4, 1.4): 0.4 s served
  // before, 0.6 s after, so the last byte departs at 2.0 and arrives 10 ms later.
  NetworkModel net(with_faults(two_sites(0.01, 1e6), "A:B@0.4..1.4"), 2);
  CHECK(arrival(net, 1e6, 0) == exactly(2.0 + 0.01));
  // The next message queues behind it on the path, after the outage: 2.0 + 0.5.
  CHECK(arrival(net, 5e5, 1.0) == exactly(2.5 + 0.01));
  // Ready inside an outage on an unlimited link: it leaves when the link is back.
  NetworkModel free_link(with_faults(two_sites(0.002, 0), "A@3..4.25, *@10..11"), 2);
  CHECK(arrival(free_link, 1e6, 3.5) == exactly(4.25 + 0.002));
  CHECK(arrival(free_link, 100, 4.5) == exactly(4.5 + 0.002));  // up again: no wait
  CHECK(arrival(free_link, 100, 10) == exactly(11 + 0.002));    // '*' takes every link between sites
  // The link between other sites, or inside a site, is not touched by A:B.
  Profile three = two_sites(0.01, 1e6);
  NetworkModel untouched(with_faults(three, "B:B@0..100"), 2);
  CHECK(arrival(untouched, 1e6, 0) == exactly(1.0 + 0.01));
}

TEST_CASE("a bandwidth schedule changes the path's rate from each point on: closed-form times", "[faults][links]") {
  // From 0.5 s the link runs at a quarter: 1 MB at 1 MB/s is half done by then, the other
  // half takes 0.5 MB / 0.25 MB/s = 2 s: departs at 2.5.
  NetworkModel net(with_faults(two_sites(0.01, 1e6), "", "0.5:0.25, 3:2"), 2);
  CHECK(arrival(net, 1e6, 0) == exactly(2.5 + 0.01));
  // 1 MB from 2.75: 0.25 s at a quarter (62.5 kB), then 937.5 kB at 2 MB/s = 0.46875 s.
  CHECK(arrival(net, 1e6, 2.75) == exactly(3 + 0.46875 + 0.01));
  // A factor before the first point is 1; an outage and a schedule together.
  NetworkModel both(with_faults(two_sites(0, 1e6), "A:B@1..2", "1.5:0.5"), 2);
  // 0.5 MB from 0.8: 0.2 MB by 1, down until 2, then 0.3 MB at 0.5 MB/s = 0.6 s.
  CHECK(arrival(both, 5e5, 0.8) == exactly(2.6));
  // Without faults the same profile gives the plain path rule (ready + bytes / rate + latency).
  NetworkModel plain(two_sites(0.01, 1e6), 2);
  CHECK(arrival(plain, 1e6, 0) == exactly(1.01));
}

TEST_CASE("Gilbert-Elliott: long-run loss rate and mean burst length match the closed forms", "[faults][links]") {
  // A chain over 4e6 segments, a lost segment being one in Bad (loss_bad = 1, loss_good =
  // 0): the share of lost segments -> enter / (enter + leave), a run of losses -> 1 / leave.
  netem::GilbertElliott ge{0.01, 0.2, 0, 1};
  netem::BurstChain chain;
  std::mt19937_64 gen(42);
  std::uniform_real_distribution<double> u(0, 1);
  uint64_t lost = 0, bursts = 0, total = 0;
  for (int call = 0; call < 400; ++call)  // in pieces, as messages take them
    chain.advance(ge, 10000, [&] { return u(gen); }, [&](bool bad, uint64_t n) {
      if (bad) lost += n, bursts += 1;
      total += n;
    });
  REQUIRE(total == 4000000);
  // Runs cut by a message boundary count twice: at most 400 of ~38,000 bursts.
  const double rate = double(lost) / double(total), burst = double(lost) / double(bursts);
  INFO("loss rate " << rate << ", mean burst " << burst << " over " << bursts << " bursts");
  // Standard errors here: ~1.5% of the rate, ~0.5% of the burst; 4-5 of them allowed, and
  // the cut bursts shorten the mean by at most 400 / 38,000.
  CHECK(rate == Approx(ge.loss_rate()).epsilon(0.06));
  CHECK(ge.loss_rate() == exactly(0.01 / 0.21));
  CHECK(burst == Approx(1 / ge.leave).epsilon(0.03));

  // Through netem's path with partial loss in both states: each lost segment costs an rto,
  // so the mean extra delay per message is segments x loss rate x rto.
  const netem::GilbertElliott partial{0.02, 0.1, 0.01, 0.5};
  Profile p = with_faults(two_sites(0, 0), "", "", partial);
  p.segment_bytes = 1000;
  p.rto_s = 0.2;
  NetworkModel net(p, 2);
  double delay = 0;
  constexpr int kMessages = 20000;
  for (int i = 0; i < kMessages; ++i) delay += arrival(net, 10 * 1000, 1000.0 * i) - 1000.0 * i;
  const double per_message = delay / kMessages / p.rto_s;
  INFO("lost per message " << per_message << ", closed form " << 10 * partial.loss_rate());
  CHECK(partial.loss_rate() == exactly((0.1 * 0.01 + 0.02 * 0.5) / 0.12));
  CHECK(per_message == Approx(10 * partial.loss_rate()).epsilon(0.06));  // ~1.5% standard error
}

TEST_CASE("bursty loss is deterministic from the seed and only on the links it names", "[faults][links]") {
  const netem::GilbertElliott ge{0.05, 0.3, 0, 1};
  auto delays = [&](uint64_t seed, const std::string& links) {
    Profile p = two_sites(0.001, 0);
    p.seed = seed;
    FaultSettings f;
    f.links.links = links;
    f.links.burst = ge;
    attach_link_faults(p, f);
    NetworkModel net(p, 2);
    std::vector<double> out;
    for (int i = 0; i < 300; ++i) out.push_back(arrival(net, 20000, 10.0 * i) - 10.0 * i);
    return out;
  };
  const std::vector<double> a = delays(7, "*"), b = delays(7, "A:B"), c = delays(8, "*");
  CHECK(a == b);  // the same seed, the same link: the same losses
  CHECK(a != c);  // another seed, other losses
  double lost = 0;
  for (double d : a) lost += (d - 0.001) / 0.2;
  CHECK(lost > 0);
  for (double d : delays(7, "B:B")) CHECK(d == Approx(0.001).margin(1e-9));  // a link that carries none of these messages
}

TEST_CASE("link faults: a bad entry is one line naming the key and what is allowed", "[faults][links]") {
  auto refused = [](const std::string& outages, const std::string& bandwidth, const std::vector<std::string>& needles) {
    Profile p = two_sites(0, 0);
    FaultSettings f;
    f.links.outages = outages;
    f.links.bandwidth = bandwidth;
    try {
      attach_link_faults(p, f);
      FAIL("accepted '" << outages << "' '" << bandwidth << "'");
    } catch (const UsageError& e) {
      const std::string msg = e.what();
      INFO(msg);
      CHECK(msg.find('\n') == std::string::npos);
      for (const std::string& n : needles) CHECK(msg.find(n) != std::string::npos);
    }
  };
  refused("A:C@1..2", "", {"faults.outages", "no site 'C'", "its sites: A, B"});
  refused("A:B@2..1", "", {"faults.outages", "must end after it starts"});
  refused("A:B 1-2", "", {"faults.outages", "expected LINK@START..END"});
  refused("", "1:0", {"faults.bandwidth", "(0, 1e6]"});
  refused("", "2:1, 1:0.5", {"faults.bandwidth", "increasing"});
  refused("", "1:x", {"faults.bandwidth", "'x' is not a number"});
}

TEST_CASE("dtbench sim walks a run through the faults: closed forms", "[faults][links][sim]") {
  // DP = 2 over the two sites of a 1 Gbps, 10 ms link; a compute-bound device.
  const std::string profile = std::string(DTB_SOURCE_DIR) + "/configs/net/dtfm-3-two-dcs.yaml";
  auto settings = [&](const std::vector<std::string>& more) {
    std::vector<std::string> sets = {"model.n_layer=2", "model.n_embd=64", "model.n_head=4", "model.n_ctx=64",
                                     "model.vocab_size=256", "train.seq_len=64", "train.batch_size=8",
                                     "parallel.dp=2", "net.profile=" + profile, "device.peak_gflops=10",
                                     "device.efficiency=1", "train.steps=40"};
    sets.insert(sets.end(), more.begin(), more.end());
    return sim::sim_settings(load_config(sim::sim_schema(), {}, sets));
  };
  const sim::SimSettings plain = settings({});
  const sim::SimInputs in = sim::load_inputs(plain);
  REQUIRE(in.profile.rank_site[0] != in.profile.rank_site[1]);  // the DP pair crosses the link
  const double step = sim::simulate(plain, in).time.step;
  // An outage inside the run: the run stands still for it, so it ends that much later.
  const sim::SimSettings out = settings({"faults.outages=*@" + std::to_string(10 * step) + ".." + std::to_string(10 * step + 3)});
  const sim::FaultRun r = sim::simulate_fault_run(out, sim::load_inputs(out), 40);
  CHECK(r.without == exactly(40 * step));
  CHECK(r.seconds == Approx(40 * step + 3).epsilon(1e-9));
  // An outage after the run ends changes nothing.
  const sim::SimSettings late = settings({"faults.outages=*@" + std::to_string(41 * step) + "..1e4"});
  CHECK(sim::simulate_fault_run(late, sim::load_inputs(late), 40).seconds == Approx(40 * step).epsilon(1e-12));
  // Half the bandwidth from the 20th step on: 20 steps at the plain pace, 20 at the pace
  // the simulator gives the link at half its bandwidth (net.inter_bandwidth, the same link).
  const double half_bw = in.profile.link(0, 1).bandwidth_Bps / 2;
  const sim::SimSettings halved = settings({"net.inter_bandwidth=" + std::to_string(half_bw * 8 / 1e6) + "Mbps"});
  const double slow = sim::simulate(halved).time.step;
  REQUIRE(slow > step * 1.01);  // the link shows in the step
  const sim::SimSettings sched = settings({"faults.bandwidth=" + std::to_string(20 * step) + ":0.5"});
  CHECK(sim::simulate_fault_run(sched, sim::load_inputs(sched), 40).seconds == Approx(20 * step + 20 * slow).epsilon(1e-6));
}
