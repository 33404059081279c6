// shaper_check: one-way transfer times between two MPI ranks, sent with
// dtb::coll::Communicator on the wall clock, so that the in-process shaper (netem/) can be
// compared with a real kernel shaper (tbf, netem qdisc) on the same transfers. Driven by
// run_shaper_check.sh (network namespaces joined by veth pairs through a bridge).
//
//   mpirun -np 2 shaper_check --net configs/net/unshaped.yaml        # kernel shaper does it
//   mpirun -np 2 shaper_check --rate 100Mbps --header 66 --segment 1448   # in-process shaper
//
// Options:
//   --net FILE        network profile (YAML, configs/net/README.md); or instead:
//   --rate RATE       uniform profile at RATE ("100Mbps", "unlimited")  [default unlimited]
//   --latency D       one-way latency of the uniform profile ("10ms")   [default 0]
//   --header N        header bytes charged per segment                  [default 0]
//   --segment N       payload bytes per segment                         [default 1448]
//   --sizes LIST      comma-separated message sizes ("1MiB,2MiB")       [1MiB,2MiB,4MiB,8MiB,16MiB]
//   --reps N          timed transfers per size (the median is reported) [default 5]
//   --warmup N        untimed transfers of the largest size first       [default 2]
//   --gap D           idle time before each timed transfer ("20ms")     [default 20ms]
//   --label TEXT      printed in every result line                      [default run]
//   --keep-epoch      keep each rank's own wall-clock epoch (see align_epochs)
//
// A timed transfer: both ranks leave a barrier, rank 0 waits GAP (so any kernel queue has
// drained and a token bucket is refilled the same way before every transfer), reads the
// clock and sends N bytes to rank 1 with Communicator::send; rank 1 reads the clock when
// Communicator::recv returns (the wall clock has then enforced the modelled arrival, and
// the bytes are really in its buffer). Both readings are CLOCK_MONOTONIC of one kernel (the
// ranks are in network namespaces of one host; checked by comparing boot ids), so
// t1 - t0 is the one-way time, and it is shipped back outside the Communicator. The
// payload is checked on every transfer.
//
// Output, one line per size (the driver parses these):
//   RESULT <label> <bytes> <reps> <median_s> <min_s> <max_s> <Mbit/s at median> <model_s>
// where model_s is what the profile's link model predicts for one message on an idle
// path: latency + wire_bytes / rate (0 for an unlimited profile).
// Exit codes: 0 ok, 1 a payload arrived wrong, 2 bad usage.
#include <mpi.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <exception>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "communicator.hpp"
#include "profile.hpp"
#include "units.hpp"
#include "usage_error.hpp"

namespace {

using dtb::UsageError;
namespace units = dtb::netem::units;

struct Options {
  std::string net;  // profile path; empty = uniform profile from rate/latency
  double rate_Bps = 0, latency_s = 0;
  uint64_t header = 0, segment = 1448;
  std::vector<uint64_t> sizes{1u << 20, 2u << 20, 4u << 20, 8u << 20, 16u << 20};
  int reps = 5, warmup = 2;
  double gap_s = 0.02;
  std::string label = "run";
  bool keep_epoch = false;
};

[[noreturn]] void bad(const std::string& what) { throw UsageError("shaper_check: " + what); }

Options parse(int argc, char** argv) {
  Options o;
  bool uniform_given = false;
  for (int i = 1; i < argc; ++i) {
    const std::string key = argv[i];
    if (key == "--keep-epoch") {
      o.keep_epoch = true;
      continue;
    }
    if (i + 1 >= argc) bad("option '" + key + "' needs a value");
    const std::string val = argv[++i];
    auto bytes = [&](const std::string& text) {
      auto b = units::parse_bytes(text);
      if (!b) bad("option '" + key + "': expected a size like '1448' or '4MiB', got '" + text + "'");
      return *b;
    };
    auto count = [&] {
      char* end = nullptr;
      const long n = std::strtol(val.c_str(), &end, 10);
      if (*end != '\0' || n < 0 || n > 100000)
        bad("option '" + key + "': expected a count in [0, 100000], got '" + val + "'");
      return int(n);
    };
    if (key == "--net") {
      o.net = val;
    } else if (key == "--rate") {
      auto r = units::parse_bandwidth(val);
      if (!r) bad("option '--rate': expected a rate like '100Mbps' or 'unlimited', got '" + val + "'");
      o.rate_Bps = *r;
      uniform_given = true;
    } else if (key == "--latency") {
      auto d = units::parse_duration(val);
      if (!d) bad("option '--latency': expected a duration like '10ms', got '" + val + "'");
      o.latency_s = *d;
      uniform_given = true;
    } else if (key == "--gap") {
      auto d = units::parse_duration(val);
      if (!d) bad("option '--gap': expected a duration like '20ms', got '" + val + "'");
      o.gap_s = *d;
    } else if (key == "--header") {
      o.header = bytes(val);
      uniform_given = true;
    } else if (key == "--segment") {
      o.segment = bytes(val);
      if (o.segment == 0) bad("option '--segment': must be at least 1 byte");
      uniform_given = true;
    } else if (key == "--sizes") {
      o.sizes.clear();
      std::stringstream ss(val);
      for (std::string item; std::getline(ss, item, ',');) {
        const uint64_t b = bytes(item);
        if (b == 0 || b > uint64_t(INT32_MAX)) bad("option '--sizes': sizes must be in [1 B, 2 GiB), got '" + item + "'");
        o.sizes.push_back(b);
      }
      if (o.sizes.empty()) bad("option '--sizes': give at least one size");
    } else if (key == "--reps") {
      o.reps = count();
      if (o.reps < 1) bad("option '--reps': at least 1");
    } else if (key == "--warmup") {
      o.warmup = count();
    } else if (key == "--label") {
      o.label = val;
    } else {
      bad("unknown option '" + key +
          "'; allowed: --net, --rate, --latency, --header, --segment, --sizes, --reps, --warmup, --gap, --label, --keep-epoch");
    }
  }
  if (!o.net.empty() && uniform_given)
    bad("give either --net FILE or --rate/--latency/--header/--segment, not both");
  return o;
}

std::string boot_id() {
  std::ifstream f("/proc/sys/kernel/random/boot_id");
  std::string id;
  std::getline(f, id);
  return id;
}

double mono_now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

std::byte pattern(uint64_t i, uint64_t round) { return std::byte(uint8_t((i * 131u + round * 7u) >> 3)); }

// One message of BYTES from rank 0 to rank 1; returns the one-way seconds on rank 0
// (rank 1 returns 0), and sets ok=false on rank 1 if the payload is wrong.
double transfer(dtb::coll::Communicator& comm, std::vector<std::byte>& buf, uint64_t bytes, uint64_t round,
                double gap_s, bool& ok) {
  const std::span<std::byte> data(buf.data(), bytes);
  const MPI_Comm ctl = comm.mpi_comm();  // control plane: not timed by netem
  if (comm.rank() == 0) {
    // Stamp a few bytes so a stale buffer cannot pass the check.
    for (uint64_t i = 0; i < bytes; i += 4096) data[i] = pattern(i, round);
    data[bytes - 1] = pattern(bytes - 1, round);
  } else {
    std::fill(data.begin(), data.end(), std::byte{0});
  }
  comm.sync_clocks();  // a barrier (wall clock)
  if (comm.rank() == 0) {
    if (gap_s > 0) std::this_thread::sleep_for(std::chrono::duration<double>(gap_s));
    const double t0 = mono_now();
    comm.send(1, data, 1);
    double t1 = 0;
    MPI_Recv(&t1, 1, MPI_DOUBLE, 1, 2, ctl, MPI_STATUS_IGNORE);
    return t1 - t0;
  }
  comm.recv(0, data, 1);
  const double t1 = mono_now();
  MPI_Send(&t1, 1, MPI_DOUBLE, 0, 2, ctl);
  for (uint64_t i = 0; i < bytes; i += 4096) ok = ok && data[i] == pattern(i, round);
  ok = ok && data[bytes - 1] == pattern(bytes - 1, round);
  return 0;
}

// The Communicator gives every rank rank 0's steady_clock reading as the wall-clock epoch
// when MPI says they share a host; here each namespace is a "host" to Open MPI, so each
// rank took its own reading after a barrier, and they differ by how far apart the two left
// it (microseconds to milliseconds on a busy 2-core host). A receiver whose epoch is late
// by d enforces every arrival d late in real time. The ranks do share one kernel (checked:
// same boot id), so give both rank 0's epoch, as the Communicator would on one host.
// Returns the skew found (rank 1's epoch minus rank 0's, seconds; on rank 0).
double align_epochs(dtb::coll::Communicator& comm, bool keep) {
  auto* wall = dynamic_cast<dtb::netem::WallClock*>(&comm.clock());
  if (wall == nullptr) throw std::logic_error("the Communicator runs no wall clock");
  using namespace std::chrono;
  const auto epoch = steady_clock::now() - duration_cast<steady_clock::duration>(duration<double>(comm.now()));
  int64_t ticks[2] = {0, 0};
  ticks[comm.rank()] = epoch.time_since_epoch().count();
  MPI_Allgather(MPI_IN_PLACE, 1, MPI_INT64_T, ticks, 1, MPI_INT64_T, comm.mpi_comm());
  if (!keep) wall->set_epoch(steady_clock::time_point(steady_clock::duration(ticks[0])));
  MPI_Barrier(comm.mpi_comm());
  return duration<double>(steady_clock::duration(ticks[1] - ticks[0])).count();
}

int run(int argc, char** argv) {
  const Options o = parse(argc, argv);
  const int world = dtb::coll::MpiSession::world_size();
  const int me = dtb::coll::MpiSession::world_rank();
  if (world != 2) bad("run with exactly 2 ranks (mpirun -np 2), got " + std::to_string(world));

  // One kernel, one CLOCK_MONOTONIC: the one-way time is a difference of two readings.
  char id[64] = {};
  std::snprintf(id, sizeof id, "%s", boot_id().c_str());
  char peer[64] = {};
  MPI_Sendrecv(id, 64, MPI_CHAR, 1 - me, 9, peer, 64, MPI_CHAR, 1 - me, 9, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
  if (std::strncmp(id, peer, 64) != 0 || id[0] == '\0')
    bad("the two ranks must run on one host (network namespaces of one kernel): boot ids differ");

  dtb::netem::Profile profile;
  if (!o.net.empty()) {
    profile = dtb::netem::load_profile(o.net, world);
  } else {
    profile = dtb::netem::uniform_profile(world, o.latency_s, o.rate_Bps);
    profile.name = "uniform";
    profile.header_bytes = o.header;
    profile.segment_bytes = o.segment;
  }
  dtb::coll::Communicator comm(MPI_COMM_WORLD, profile, dtb::netem::ClockKind::kWall);
  const double skew = align_epochs(comm, o.keep_epoch);

  const uint64_t largest = *std::max_element(o.sizes.begin(), o.sizes.end());
  std::vector<std::byte> buf(largest);
  std::fill(buf.begin(), buf.end(), std::byte{1});  // touch every page before timing
  bool ok = true;
  uint64_t round = 0;

  const double rate = comm.network().path_rate(0, 1);
  if (me == 0) {
    std::printf("# epochs: rank 1's wall-clock epoch was %+.3f ms from rank 0's%s\n", 1e3 * skew,
                o.keep_epoch ? " (kept: --keep-epoch)" : "; aligned to rank 0's (one host, one clock)");
    std::printf("# shaper_check %s: profile '%s', rate %s, latency %s, header %llu/%llu B, %d reps, %d warm-up\n",
                o.label.c_str(), profile.name.c_str(), units::format_bandwidth(std::isinf(rate) ? 0 : rate).c_str(),
                units::format_duration(comm.network().alpha(0, 1)).c_str(),
                (unsigned long long)profile.header_bytes, (unsigned long long)profile.segment_bytes, o.reps,
                o.warmup);
    std::printf("# %-7s %10s %4s %10s %10s %10s %9s %10s\n", "label", "bytes", "reps", "median_s", "min_s", "max_s",
                "Mbit/s", "model_s");
    std::fflush(stdout);
  }
  // Warm-up: TCP connections, slow start, page faults, on the largest size.
  for (int w = 0; w < o.warmup; ++w) transfer(comm, buf, largest, round++, o.gap_s, ok);

  for (const uint64_t bytes : o.sizes) {
    std::vector<double> t;
    for (int r = 0; r < o.reps; ++r) t.push_back(transfer(comm, buf, bytes, round++, o.gap_s, ok));
    if (me == 0) {
      std::sort(t.begin(), t.end());
      const double median = t.size() % 2 ? t[t.size() / 2] : 0.5 * (t[t.size() / 2 - 1] + t[t.size() / 2]);
      const double model =
          comm.network().alpha(0, 1) + (std::isinf(rate) ? 0.0 : double(comm.network().wire_bytes(bytes)) / rate);
      std::printf("RESULT %-7s %10llu %4d %10.6f %10.6f %10.6f %9.3f %10.6f\n", o.label.c_str(),
                  (unsigned long long)bytes, o.reps, median, t.front(), t.back(), 8e-6 * double(bytes) / median, model);
      std::fflush(stdout);
    }
  }
  int good = ok ? 1 : 0, all_good = 0;
  MPI_Allreduce(&good, &all_good, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
  if (!all_good) {
    if (me == 1) std::fprintf(stderr, "shaper_check: a payload arrived wrong\n");
    return 1;
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  dtb::coll::MpiSession mpi(&argc, &argv);
  try {
    return run(argc, argv);
  } catch (const UsageError& e) {
    if (dtb::coll::MpiSession::world_rank() == 0) std::fprintf(stderr, "%s\n", e.what());
    MPI_Abort(MPI_COMM_WORLD, 2);
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "shaper_check: %s\n", e.what());
    MPI_Abort(MPI_COMM_WORLD, 1);
    return 1;
  }
}
