// collectives/ under mpirun (ctest runs this at 1..8 ranks, oversubscribed): every
// algorithm and codec sums correctly; error feedback telescopes; on the virtual clock each
// algorithm takes what its cost formula says; hierarchical beats the flat ring across two
// sites; on the wall clock a message takes its modelled time. Every rank runs every check;
// a failure is reported by the rank that saw it. Only CHECK, never REQUIRE: a rank that
// left a test early would leave the others waiting in a collective.
#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>
#include <mpi.h>

#include <chrono>
#include <cmath>
#include <random>
#include <thread>

#include "algorithms.hpp"
#include "partition.hpp"
#include "registry.hpp"

using namespace dtb::coll;
using dtb::netem::ClockKind;
using dtb::netem::Profile;

namespace {

int world_size() {
  int n = 0;
  MPI_Comm_size(MPI_COMM_WORLD, &n);
  return n;
}

Communicator make_comm(const Profile& profile, ClockKind clock = ClockKind::kVirtual) {
  return Communicator(MPI_COMM_WORLD, profile, clock);
}

Communicator unshaped() { return make_comm(dtb::netem::uniform_profile(world_size(), 0, 0)); }

// The first half of the ranks on site "a", the rest on "b".
Profile two_sites(double intra_latency, double intra_Bps, double inter_latency, double inter_Bps) {
  Profile p;
  p.name = "two-sites";
  dtb::netem::LinkSpec intra{intra_latency, 0, "normal", intra_Bps, 0}, inter{inter_latency, 0, "normal", inter_Bps, 0};
  p.sites = {{"a", intra}, {"b", intra}};
  p.inter.assign(4, inter);
  const int n = world_size();
  for (int r = 0; r < n; ++r) p.rank_site.push_back(r < n / 2 ? 0 : 1);
  return p;
}

// Sites r % 3: interleaved and uneven, so that hierarchical's groups are not rank ranges.
Profile three_sites() {
  Profile p = two_sites(1e-4, 1e9, 10e-3, 1e8);
  p.sites.push_back({"c", p.sites[0].intra});
  p.inter.assign(9, p.inter[0]);
  for (size_t r = 0; r < p.rank_site.size(); ++r) p.rank_site[r] = int(r % 3);
  return p;
}

const size_t kCounts[] = {0, 1, 7, 13, 1031, 65537};

std::vector<std::string> codec_specs() {
  return {"none", "fp16", "bf16", "int8:64", "int8sr:64", "int4:64", "topk:0.25", "sign:64"};
}

// Runs ALGO on CODEC's exact inputs (gossip: the same on every rank); returns the elements
// that differ from the exactly known result.
int64_t wrong_elements(Communicator& comm, const Algorithm& algo, const Codec* codec, size_t count,
                       const CollParams& params) {
  const int p = comm.size(), me = comm.rank();
  auto value = [&](int r, size_t i) { return exact_input(codec, algo.estimate ? 0 : r, i); };
  std::vector<float> data(count);
  for (size_t i = 0; i < count; ++i) {
    const int owner = block_of(count, p, i);
    if (algo.op == Op::kAllgather) data[i] = owner == me ? value(me, i) : NAN;
    else if (algo.op == Op::kBroadcast) data[i] = me == params.root ? value(me, i) : NAN;
    else data[i] = value(me, i);
  }
  CodecState state;
  algo.run(comm, data, params, {codec, &state});
  int64_t wrong = 0;
  for (size_t i = 0; i < count; ++i) {
    float expected = 0;
    if (algo.op == Op::kAllgather) expected = value(block_of(count, p, i), i);
    else if (algo.op == Op::kBroadcast) expected = value(params.root, i);
    else
      for (int r = 0; r < p; ++r) expected += value(r, i);
    if (algo.op == Op::kReduceScatter && block_of(count, p, i) != me) continue;
    if (data[i] != expected) ++wrong;
  }
  return wrong;
}

std::vector<CollParams> params_for(const Algorithm& algo, int p) {
  if (std::string(algo.name) == "ps") return {{1, 0, 0}, {p, 0, 0}, {(p + 1) / 2, 0, 0}};
  if (std::string(algo.name) == "gossip") return {{1, 0, 0}, {1, 3, 0}};
  if (algo.op == Op::kBroadcast) return {{1, 0, 0}, {1, 0, p - 1}};
  return {{}};
}

// Every element the same on all ranks (a codec must not let replicas drift apart).
bool identical_on_all_ranks(const Communicator& comm, const std::vector<float>& data) {
  std::vector<float> lo(data), hi(data);
  MPI_Allreduce(MPI_IN_PLACE, lo.data(), int(lo.size()), MPI_FLOAT, MPI_MIN, comm.mpi_comm());
  MPI_Allreduce(MPI_IN_PLACE, hi.data(), int(hi.size()), MPI_FLOAT, MPI_MAX, comm.mpi_comm());
  return lo == hi;
}

std::vector<float> random_input(int rank, size_t count) {
  std::mt19937 rng(1234 + rank);
  std::uniform_real_distribution<float> u(-1, 1);
  std::vector<float> x(count);
  for (float& v : x) v = u(rng);
  return x;
}

}  // namespace

TEST_CASE("every algorithm and codec: the exact sum on exact inputs, any size and count", "[mpi][sum]") {
  Communicator comm = make_comm(three_sites());
  for (const Algorithm& algo : all_algorithms())
    for (const std::string& spec : codec_specs()) {
      if (!algo.uses_transport && spec != "none") continue;
      const auto codec = make_codec(spec);
      for (const CollParams& params : params_for(algo, comm.size()))
        for (size_t count : kCounts) {
          INFO(op_name(algo.op) << " " << algo.name << " codec " << spec << " count " << count << " p "
                                << comm.size() << " servers " << params.servers << " rounds " << params.rounds
                                << " root " << params.root);
          CHECK(wrong_elements(comm, algo, codec.get(), count, params) == 0);
        }
    }
}

TEST_CASE("raw transport: the same sums, and no clock moves", "[mpi][sum]") {
  Communicator comm(MPI_COMM_WORLD, dtb::netem::uniform_profile(world_size(), 1e-3, 1e8), ClockKind::kVirtual,
                    Transport::kRaw);
  CHECK(!comm.timed());
  for (const Algorithm& algo : all_algorithms())
    for (size_t count : kCounts) {
      INFO(op_name(algo.op) << " " << algo.name << " count " << count);
      CHECK(wrong_elements(comm, algo, nullptr, count, params_for(algo, comm.size()).back()) == 0);
    }
  CHECK(comm.now() == 0);
}

TEST_CASE("codecs on random data: within the codec's bound, and the same bits on every rank", "[mpi][codec]") {
  Communicator comm = unshaped();
  const int p = comm.size();
  const size_t count = 1031;
  const std::vector<float> x = random_input(comm.rank(), count);
  std::vector<double> truth(count, 0.0);  // the exact sum, from every rank's seed
  for (int r = 0; r < p; ++r) {
    const auto xr = random_input(r, count);
    for (size_t i = 0; i < count; ++i) truth[i] += xr[i];
  }
  // Each element passes at most 2p + 2 encodings (a ring's p-1 hops and its final block,
  // a tree's depth twice, a fold); each partial sum is at most p in magnitude.
  const double encodings = 2 * p + 2;
  for (const Algorithm& algo : all_algorithms()) {
    if (algo.op != Op::kAllreduce || !algo.uses_transport || algo.estimate) continue;
    for (const std::string& spec : codec_specs()) {
      if (spec == "none") continue;
      const auto codec = make_codec(spec);
      INFO(algo.name << " codec " << spec << " p " << p);
      std::vector<float> data(x);
      CodecState state;
      algo.run(comm, data, {p, 0, 0}, {codec.get(), &state});
      double worst = 0;
      for (size_t i = 0; i < count; ++i) worst = std::max(worst, std::fabs(data[i] - truth[i]));
      CHECK(worst <= encodings * codec->error_bound(p) + 1e-5 * p);
      CHECK(identical_on_all_ranks(comm, data));
    }
  }
}

TEST_CASE("error feedback: over T calls, results sum to T times the truth minus the residuals", "[mpi][codec]") {
  Communicator comm = unshaped();
  const int p = comm.size(), calls = 12;
  const size_t count = 517;
  const std::vector<float> x = random_input(comm.rank(), count);
  for (const Algorithm& algo : all_algorithms()) {
    if (algo.op != Op::kAllreduce || !algo.uses_transport || algo.estimate) continue;
    for (const std::string& spec : codec_specs()) {
      if (spec == "none") continue;
      const auto codec = make_codec(spec);
      INFO(algo.name << " codec " << spec << " p " << p);
      CodecState state;
      std::vector<double> results(count, 0.0);
      for (int t = 0; t < calls; ++t) {
        std::vector<float> data(x);
        algo.run(comm, data, {(p + 1) / 2, 0, 0}, {codec.get(), &state});
        for (size_t i = 0; i < count; ++i) results[i] += data[i];
      }
      // sum_t result_t = T sum_r x_r - sum_r residual_r: every encoder's loss is carried.
      std::vector<double> inputs(count), residuals(count, 0.0);
      for (size_t i = 0; i < count; ++i) inputs[i] = double(calls) * x[i];
      if (p > 1) residuals.assign(state.residual.begin(), state.residual.end());
      MPI_Allreduce(MPI_IN_PLACE, inputs.data(), int(count), MPI_DOUBLE, MPI_SUM, comm.mpi_comm());
      MPI_Allreduce(MPI_IN_PLACE, residuals.data(), int(count), MPI_DOUBLE, MPI_SUM, comm.mpi_comm());
      double worst = 0;
      for (size_t i = 0; i < count; ++i) worst = std::max(worst, std::fabs(results[i] - inputs[i] + residuals[i]));
      CHECK(worst <= 2e-4 * calls * p);
    }
  }
}

TEST_CASE("gossip: keeps the average, contracts by lambda per round, exact for p <= 3", "[mpi][gossip]") {
  Communicator comm = unshaped();
  const int p = comm.size();
  const size_t count = 64;
  const std::vector<float> x = random_input(comm.rank(), count);
  std::vector<double> sum(x.begin(), x.end());
  MPI_Allreduce(MPI_IN_PLACE, sum.data(), int(count), MPI_DOUBLE, MPI_SUM, comm.mpi_comm());
  // ||estimate - sum|| over all ranks and elements, as a function of the rounds.
  auto deviation = [&](const std::vector<float>& est) {
    double d = 0;
    for (size_t i = 0; i < count; ++i) d += (est[i] - sum[i]) * (est[i] - sum[i]);
    MPI_Allreduce(MPI_IN_PLACE, &d, 1, MPI_DOUBLE, MPI_SUM, comm.mpi_comm());
    return std::sqrt(d);
  };
  std::vector<float> start(x);
  for (float& v : start) v *= float(p);  // zero rounds: p x_r estimates the sum
  const double d0 = deviation(start);
  for (int rounds : {1, 2, 5}) {
    INFO("rounds " << rounds << " p " << p);
    std::vector<float> est(x);
    gossip_allreduce(comm, est, rounds);
    CHECK(deviation(est) <= std::pow(gossip_contraction(p), rounds) * d0 + 1e-4 * p);
    std::vector<double> mean(est.begin(), est.end());  // the average of the estimates is the sum
    MPI_Allreduce(MPI_IN_PLACE, mean.data(), int(count), MPI_DOUBLE, MPI_SUM, comm.mpi_comm());
    for (size_t i = 0; i < count; ++i) CHECK(mean[i] / p == Approx(sum[i]).margin(1e-4 * p));
  }
}

// Uniform links, NIC caps, and mixed links (two sites in blocks, three interleaved sites:
// rings, trees and halving-doubling steps that take fast and slow links at once).
TEST_CASE("virtual clock: each algorithm takes what its cost model says, on uniform and mixed links",
          "[mpi][time]") {
  const int p = world_size();
  const double latency = 1e-3, bandwidth = 1e8;  // 1 ms, 100 MB/s: 100 KB take another 1 ms
  Profile nic_capped = dtb::netem::uniform_profile(p, latency, bandwidth);
  nic_capped.nic_egress_Bps = nic_capped.nic_ingress_Bps = bandwidth;  // one NIC per rank, as a host has
  Profile three_capped = three_sites();
  three_capped.nic_egress_Bps = three_capped.nic_ingress_Bps = 5e8;
  for (const Profile& profile : {dtb::netem::uniform_profile(p, latency, bandwidth), nic_capped,
                                 two_sites(1e-4, 1e9, 10e-3, 1e8), three_sites(), three_capped}) {
    Communicator comm = make_comm(profile);
    const size_t count = 25000;
    for (const Algorithm& algo : all_algorithms()) {
      if (!algo.rounds) continue;
      for (const CollParams& params : params_for(algo, p)) {
        std::vector<float> data(count, 1.0f);
        comm.sync_clocks();
        const double t0 = comm.now();
        algo.run(comm, data, params, {});
        const double measured = comm.untimed_max(comm.now()) - t0;
        const double model = algo.model(comm.network(), comm.ranks(), double(count * sizeof(float)), params);
        INFO(op_name(algo.op) << " " << algo.name << " p " << p << " profile " << profile.name << " sites "
                              << profile.sites.size() << " NIC " << profile.nic_egress_Bps << " servers "
                              << params.servers << " rounds " << params.rounds << ": measured " << measured
                              << " s, formula " << model << " s");
        CHECK(std::fabs(measured - model) <= 0.01 * model);
      }
    }
    comm.sync_clocks();
    const double t0 = comm.now();
    barrier(comm);
    CHECK(comm.untimed_max(comm.now()) - t0 == Approx(barrier_model(comm.network(), comm.ranks())).epsilon(0.01));
  }
}

TEST_CASE("virtual clock: the parameter server queues at its ingress NIC as its formula says", "[mpi][time]") {
  const int p = world_size();
  Profile profile = dtb::netem::uniform_profile(p, 1e-3, 0);  // links unlimited: only the NIC limits
  profile.nic_ingress_Bps = 1e8;
  Communicator comm = make_comm(profile);
  const Algorithm& ps = find_algorithm(Op::kAllreduce, "ps");
  const size_t count = 25000;
  for (int servers : {1, p}) {
    std::vector<float> data(count, 1.0f);
    comm.sync_clocks();
    const double t0 = comm.now();
    param_server_allreduce(comm, data, servers);
    const double measured = comm.untimed_max(comm.now()) - t0;
    const double model = ps.model(comm.network(), comm.ranks(), double(count * sizeof(float)), {servers, 0, 0});
    INFO("p " << p << " servers " << servers << ": measured " << measured << ", formula " << model);
    CHECK(std::fabs(measured - model) <= 0.01 * model);
  }
}

TEST_CASE("two sites: hierarchical beats the flat ring, as the formulas predict", "[mpi][time]") {
  const int p = world_size();
  if (p < 2) return;
  Communicator comm = make_comm(two_sites(1e-4, 1e9, 10e-3, 1e8));
  const size_t count = 262144;  // 1 MiB
  auto time_of = [&](void (*run)(Communicator&, std::span<float>, Compression)) {
    std::vector<float> data(count, 1.0f);
    comm.sync_clocks();
    const double t0 = comm.now();
    run(comm, data, {});
    return comm.untimed_max(comm.now()) - t0;
  };
  const double ring = time_of(ring_allreduce), hier = time_of(hierarchical_allreduce);
  const double n = count * sizeof(float);
  const double ring_model = ring_allreduce_model(comm.network(), comm.ranks(), n);
  const double hier_model = hierarchical_allreduce_model(comm.network(), comm.ranks(), n);
  INFO("p " << p << ": ring " << ring << " s (model " << ring_model << "), hierarchical " << hier
            << " s (model " << hier_model << ")");
  CHECK(hier == Approx(hier_model).epsilon(0.01));
  CHECK(ring == Approx(ring_model).epsilon(0.01));  // each hop on its own link
  if (p >= 3) {
    CHECK(hier_model < ring_model);
    CHECK(hier < ring);
  } else {
    CHECK(hier == Approx(ring).epsilon(0.001));  // one rank per site: the same ring
  }
}

TEST_CASE("three interleaved sites: hierarchical takes what its model says, equal sites or not", "[mpi][time]") {
  Communicator comm = make_comm(three_sites());
  const size_t count = 262144;
  std::vector<float> data(count, 1.0f);
  comm.sync_clocks();
  const double t0 = comm.now();
  hierarchical_allreduce(comm, data);
  const double measured = comm.untimed_max(comm.now()) - t0;
  const double n = double(count * sizeof(float));
  const double model = hierarchical_allreduce_model(comm.network(), comm.ranks(), n);
  INFO("p " << comm.size() << ": measured " << measured << " s, model " << model << " s");
  CHECK(std::fabs(measured - model) <= 0.01 * model);
  // The closed form on the largest site bounds it (a smaller site's leader starts early).
  const int sites = comm.site_groups().num_sites, largest = comm.site_groups().max_site_size;
  CHECK(model <= hierarchical_allreduce_cost(largest, sites, n, 1e-4, 1 / 1e9, 10e-3, 1 / 1e8) * 1.000001);
  CHECK(measured >= ring_allreduce_cost(sites, n, 10e-3, 1 / 1e8));  // the leaders' ring alone
}

TEST_CASE("stats and sub-communicators: bytes by link class, global ranks kept", "[mpi][comm]") {
  const int p = world_size();
  Communicator comm = make_comm(two_sites(1e-4, 1e9, 10e-3, 1e8));
  const size_t count = 1000;
  const LinkStats before = comm.stats();
  std::vector<float> data(count, 1.0f);
  ring_allreduce(comm, data);
  const LinkStats& after = comm.stats();
  // A ring rank sends all blocks but its own (reduce-scatter), then all but its right
  // neighbour's (allgather), all to its right neighbour.
  const uint64_t sent = 2 * count - block_range(count, p, comm.rank()).count -
                        block_range(count, p, (comm.rank() + 1) % p).count;
  const bool intra = comm.same_site(comm.rank(), (comm.rank() + 1) % p);
  CHECK(after.bytes_intra - before.bytes_intra == (intra && p > 1 ? sent * 4 : 0));
  CHECK(after.bytes_inter - before.bytes_inter == (intra || p == 1 ? 0 : sent * 4));
  CHECK(after.messages_intra + after.messages_inter - before.messages_intra - before.messages_inter ==
        uint64_t(2 * (p - 1)));

  std::optional<Communicator> odd = comm.split(comm.rank() % 2 == 1 ? 0 : -1, comm.rank());
  CHECK(odd.has_value() == (comm.rank() % 2 == 1));
  if (odd) {
    CHECK(odd->size() == p / 2);
    for (int r = 0; r < odd->size(); ++r) CHECK(odd->global_rank(r) == 2 * r + 1);
    std::vector<float> v(5, float(comm.rank()));
    ring_allreduce(*odd, v);
    float expected = 0;
    for (int r = 1; r < p; r += 2) expected += float(r);
    CHECK(v == std::vector<float>(5, expected));
  }
}

TEST_CASE("stats: on decentralized-1g (a site per rank) every byte crosses sites", "[mpi][comm]") {
  const int p = world_size();
  Communicator comm = make_comm(dtb::netem::load_profile(DTB_SOURCE_DIR "/configs/net/decentralized-1g.yaml", p));
  const size_t count = 1000;
  std::vector<float> data(count, 1.0f);
  ring_allreduce(comm, data);
  // What a ring rank sends (see the test above), all of it to another rank's site.
  const uint64_t sent = 2 * count - block_range(count, p, comm.rank()).count -
                        block_range(count, p, (comm.rank() + 1) % p).count;
  CHECK(comm.stats().bytes_intra == 0);
  CHECK(comm.stats().bytes_inter == (p == 1 ? 0 : sent * 4));
  CHECK(data == std::vector<float>(count, float(p)));
}

TEST_CASE("wall clock: a message of n bytes takes at least L + n/B, and not much more", "[mpi][wall]") {
  const int p = world_size();
  if (p < 2) return;
  const double latency = 5e-3, bandwidth = 1e8;
  Communicator comm = make_comm(dtb::netem::uniform_profile(p, latency, bandwidth), ClockKind::kWall);
  for (size_t n : {size_t(64) << 10, size_t(1) << 20, size_t(4) << 20}) {
    std::vector<std::byte> buf(n);
    comm.sync_clocks();
    double elapsed = 0;
    if (comm.rank() == 0) {
      const double t0 = comm.now();
      comm.send(1, buf);
      MPI_Send(&t0, 1, MPI_DOUBLE, 1, 99, comm.mpi_comm());
    } else if (comm.rank() == 1) {
      comm.recv(0, buf);
      const double t1 = comm.now();
      double t0 = 0;
      MPI_Recv(&t0, 1, MPI_DOUBLE, 0, 99, comm.mpi_comm(), MPI_STATUS_IGNORE);
      elapsed = t1 - t0;  // one epoch on every rank: rank 0's reading is comparable
    }
    elapsed = comm.untimed_max(elapsed);
    const double model = latency + double(n) / bandwidth;
    INFO("n " << n << ": " << elapsed << " s, model " << model << " s");
    CHECK(elapsed >= model);  // the shaper never delivers early: exact on any load
    // An upper bound is a timing claim: tight (twice the model) only with 2 ranks on the
    // 2 cores; oversubscribed ranks may wait tens of ms for a core (seen in CI at 3-8
    // ranks), so there it only catches a gross error such as a lost wake-up.
    CHECK(elapsed < (p == 2 ? 2 * model : model + 0.5));
  }
}

TEST_CASE("codec across sites only: raw inside a site, the codec on the leaders' ring", "[mpi][codec][scope]") {
  Communicator comm = make_comm(three_sites());
  const size_t count = 1031;
  const auto codec = make_codec("int8:64");
  const std::vector<float> x = random_input(comm.rank(), count);
  struct Sent {
    int64_t intra, inter;
  };
  auto run = [&](const Codec* c, CodecScope scope, std::vector<float>& data) {
    const LinkStats before = comm.stats();
    CodecState state;
    hierarchical_allreduce(comm, data, {c, &state, scope});
    const LinkStats& after = comm.stats();
    return Sent{comm.untimed_sum(int64_t(after.bytes_intra - before.bytes_intra)),
                comm.untimed_sum(int64_t(after.bytes_inter - before.bytes_inter))};
  };
  std::vector<float> raw_data(x), every_data(x), across_data(x);
  const Sent raw = run(nullptr, CodecScope::kEverywhere, raw_data);
  const Sent every = run(codec.get(), CodecScope::kEverywhere, every_data);
  const Sent across = run(codec.get(), CodecScope::kAcrossSites, across_data);
  INFO("p " << comm.size() << " intra raw/every/across " << raw.intra << "/" << every.intra << "/" << across.intra
            << " inter " << raw.inter << "/" << every.inter << "/" << across.inter);
  CHECK(across.intra == raw.intra);    // the trees inside a site: untouched by the codec
  CHECK(across.inter == every.inter);  // the leaders' ring: compressed as before
  if (comm.size() >= 4) CHECK(every.intra < raw.intra);  // a site with two ranks: everywhere compresses there
  if (comm.size() >= 2) CHECK(across.inter < raw.inter);
  // The model charges the same: raw trees (SITE_BYTES) around the codec's ring.
  const double wire = double(codec->encoded_bytes(count));
  const Traffic model = traffic(comm.network(), comm.ranks(), [&](const RoundSink& emit) {
    hierarchical_allreduce_rounds(comm.network(), comm.ranks(), wire, emit, 4.0 * count);
  });
  CHECK(model.intra == Approx(double(raw.intra)));
  // Correct and identical everywhere: one encoding per element (the ring's) instead of the trees' too.
  std::vector<double> truth(count, 0.0);
  for (int r = 0; r < comm.size(); ++r) {
    const auto xr = random_input(r, count);
    for (size_t i = 0; i < count; ++i) truth[i] += xr[i];
  }
  double worst = 0;
  for (size_t i = 0; i < count; ++i) worst = std::max(worst, std::fabs(across_data[i] - truth[i]));
  CHECK(worst <= 2 * comm.size() * codec->error_bound(comm.size()) + 1e-5 * comm.size());
  CHECK(identical_on_all_ranks(comm, across_data));
}

TEST_CASE("error feedback: off keeps nothing; on carries exactly what the encoding lost", "[mpi][codec][ef]") {
  Communicator comm = unshaped();
  const int p = comm.size(), r = comm.rank();
  const size_t count = 300;
  const auto codec = make_codec("int8:64");
  const std::vector<float> x = random_input(r, count);
  CodecState off, on;
  off.error_feedback = false;
  std::vector<float> off1(x), off2(x), on1(x), on2(x);
  ring_allreduce(comm, off1, {codec.get(), &off});
  ring_allreduce(comm, off2, {codec.get(), &off});
  ring_allreduce(comm, on1, {codec.get(), &on});
  ring_allreduce(comm, on2, {codec.get(), &on});
  CHECK(off.residual.empty());
  CHECK(off1 == off2);  // nothing carried: every call the same
  CHECK(on1 == off1);   // a zero residual changes nothing
  if (p > 1) CHECK(on2 != off2);
  if (p != 2) return;
  // Two ranks, a hand-written reference of the ring reduce-scatter: rank r sends block
  // 1 - r once, Q(x + e); keeps e' = (x + e) - Q(x + e) there and nothing on its own block.
  auto q = [&](std::vector<float> v) {  // decode(encode(v))
    std::vector<std::byte> wire(codec->encoded_bytes(v.size()));
    codec->encode(v, wire, 0);
    codec->decode(wire, v, DecodeMode::kAssign);
    return v;
  };
  CodecState ef;
  const Range mine = block_range(count, 2, r), theirs = block_range(count, 2, 1 - r);
  std::vector<float> e(theirs.count, 0.0f), y(x);
  for (int call = 0; call < 3; ++call) {
    std::vector<float> data(x);
    ring_reduce_scatter(comm, data, {codec.get(), &ef});
    std::vector<float> sent(theirs.count);
    for (size_t i = 0; i < theirs.count; ++i) sent[i] = x[theirs.offset + i] + e[i];
    const std::vector<float> got = q(sent);
    for (size_t i = 0; i < theirs.count; ++i) e[i] = sent[i] - got[i];
    INFO("call " << call);
    CHECK(std::vector<float>(ef.residual.begin() + ptrdiff_t(theirs.offset),
                             ef.residual.begin() + ptrdiff_t(theirs.offset + theirs.count)) == e);
    CHECK(std::all_of(ef.residual.begin() + ptrdiff_t(mine.offset),
                      ef.residual.begin() + ptrdiff_t(mine.offset + mine.count), [](float v) { return v == 0.0f; }));
  }
}

int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  const int failed = Catch::Session().run(argc, argv);
  int worst = 0;
  MPI_Allreduce(&failed, &worst, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
  MPI_Finalize();
  return worst ? 1 : 0;
}
