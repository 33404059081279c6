#pragma once
// MPI point-to-point with every message timed by netem (see docs/ARCHITECTURE.md,
// "Time: one network model, two clocks").
//
// A message is two MPI messages with the same tag, in MPI's non-overtaking order: a
// 24-byte header (the sender's netem::SendTiming) and the payload, sent from and received
// into the caller's buffer. The header travels separately rather than fused with the
// payload in an MPI struct datatype because Open MPI's shared-memory transport copies a
// contiguous payload once (CMA), but packs a non-contiguous one through bounce buffers;
// measured on 4 ranks, the extra 24-byte message costs less than the packing.
//
// Virtual clock: the sender asks netem when its bytes leave and arrive, moves its comm
// stream to sender_free and ships the timing; the receiver feeds the arrival through its
// own ingress NIC (netem::NetworkModel::on_receive) and moves its comm stream to it.
// A communicator runs on one of the rank's two channels (netem/clock.hpp): kComm unless
// split() puts it on another (the 3D trainer's DP group runs on kDp); "its comm stream"
// is that channel's stream, and its messages pass the NIC on that channel.
// Wall clock: the same arithmetic on real time since a common epoch; the sender sleeps
// until sender_free, the receiver does not complete before arrival.
#include <mpi.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "clock.hpp"
#include "network.hpp"
#include "profile.hpp"

namespace dtb::coll {

// kTimed: every message carries its netem timing (the normal case). kRaw: plain MPI
// point-to-point, no header, no model, no clock: the reference that measures what the
// timing layer itself costs (dtbench coll --transport raw; time it on a real clock).
enum class Transport { kTimed, kRaw };

// What this rank sent, by link class (netem sites). Payload bytes, headers not counted.
struct LinkStats {
  uint64_t bytes_intra = 0, bytes_inter = 0;        // to a rank on the same / another site
  uint64_t messages_intra = 0, messages_inter = 0;
};

struct SiteGroups;

// A pending isend or irecv. Complete it with Communicator::wait or wait_all.
class Request {
 public:
  Request() = default;
  bool pending() const { return kind_ != Kind::kNone; }

 private:
  friend class Communicator;
  enum class Kind { kNone, kSend, kRecv };
  Kind kind_ = Kind::kNone;
  int peer_ = -1;       // local rank
  uint64_t bytes_ = 0;  // payload
  MPI_Request mpi_[2] = {MPI_REQUEST_NULL, MPI_REQUEST_NULL};  // header, payload
  std::unique_ptr<netem::SendTiming> timing_;  // the header; a stable address while in flight
};

class Communicator {
 public:
  // Collective over COMM, which it duplicates. Ranks map to the profile by their rank in
  // MPI_COMM_WORLD; PROFILE must describe MPI_COMM_WORLD's size. Wall clock: the epoch is
  // set here, after a barrier, the same on every rank.
  Communicator(MPI_Comm comm, const netem::Profile& profile, netem::ClockKind clock,
               Transport transport = Transport::kTimed);
  Communicator(Communicator&&) noexcept;
  Communicator& operator=(Communicator&&) noexcept;
  Communicator(const Communicator&) = delete;
  Communicator& operator=(const Communicator&) = delete;
  ~Communicator();

  int rank() const { return rank_; }
  int size() const { return int(global_.size()); }
  int global_rank(int local) const { return global_[local]; }  // = profile rank
  std::span<const int> ranks() const { return global_; }       // every local rank's global rank
  int site_of(int local) const;
  bool same_site(int a, int b) const { return site_of(a) == site_of(b); }

  netem::Clock& clock() const;
  netem::NetworkModel& network() const;
  const LinkStats& stats() const;             // the rank's, all its communicators and threads
  static const LinkStats& thread_stats();      // what the calling thread sent
  netem::Stream channel() const { return channel_; }
  double now() const { return clock().now(channel_); }  // on this communicator's channel
  bool timed() const;  // Transport::kTimed

  // Raw bytes. A receive must name the exact size the matching send sends.
  void send(int dst, std::span<const std::byte> data, int tag = 0);
  void recv(int src, std::span<std::byte> data, int tag = 0);
  Request isend(int dst, std::span<const std::byte> data, int tag = 0);
  Request irecv(int src, std::span<std::byte> data, int tag = 0);
  void wait(Request& request);
  // Receives pass the ingress NIC in the order of their wire arrival, so that many
  // senders queue at one receiver as on a wire.
  void wait_all(std::span<Request> requests);
  void sendrecv(int dst, std::span<const std::byte> out, int src, std::span<std::byte> in, int tag = 0);

  // Collective. Ranks with the same COLOR form a communicator, ordered by KEY; a negative
  // color joins none (nullopt). The result shares this rank's network model, clock and
  // stats, and keeps the global rank mapping, so netem sees the real ranks. It runs on
  // CHANNEL (kComm or kDp), by default this communicator's.
  std::optional<Communicator> split(int color, int key, std::optional<netem::Stream> channel = std::nullopt) const;
  // Collective on first use, then cached: this rank's site and the site leaders (from the
  // network profile), what hierarchical algorithms work on.
  SiteGroups& site_groups();

  // The watchdog (0 = off, the default): a wait on MPI that lasts longer than SECONDS of
  // real time ends the job (MPI_Abort, exit code 1) with one line naming the peer that did
  // not answer, as NCCL's watchdog does. Set on any communicator, it holds for every
  // communicator of the rank (those split from it share it). Real time, whatever the
  // clock: a rank that stops (SIGSTOP, a hung node) stops answering on both.
  void set_watchdog(double seconds);
  double watchdog() const;

  // Control plane, not timed by netem (benchmark bookkeeping, checks); the watchdog
  // watches them too:
  void sync_clocks();  // a barrier; virtual: every rank's streams move to the latest time
  double untimed_max(double x) const;
  int64_t untimed_sum(int64_t x) const;
  std::vector<double> untimed_allgather(double x) const;  // every rank's X, in rank order
  MPI_Comm mpi_comm() const { return comm_; }  // for the unshaped MPI baseline only

  // Reusable scratch memory for the algorithms, SLOT by SLOT; grows, never shrinks, so
  // repeated collectives touch no fresh pages. One set per thread, shared by every
  // communicator on it (collectives on two threads never share a buffer).
  std::span<std::byte> scratch(int slot, size_t bytes);

 private:
  struct Shared;  // the rank's network model, clock, stats
  Communicator(MPI_Comm dup, std::shared_ptr<Shared> shared, netem::Stream channel);
  double finish_recv(const Request& r);  // returns the arrival time
  // MPI_Waitall, or under the watchdog MPI_Testall until done or the deadline; PEERS[i]
  // is the local rank MPI[i] talks to (-1: the whole communicator).
  void wait_mpi(std::span<MPI_Request> mpi, std::span<const int> peers, const char* what) const;
  void account(int dst, uint64_t bytes);

  MPI_Comm comm_ = MPI_COMM_NULL;
  int rank_ = 0;
  std::vector<int> global_;  // local rank -> rank in MPI_COMM_WORLD (= profile rank)
  std::shared_ptr<Shared> shared_;
  netem::Stream channel_ = netem::Stream::kComm;
  std::unique_ptr<SiteGroups> site_groups_;
};

struct SiteGroups {
  Communicator site;                    // the ranks on this rank's site, in rank order
  std::optional<Communicator> leaders;  // each site's lowest rank; set on those ranks only
  int num_sites = 0;                    // sites that hold ranks of the communicator
  int max_site_size = 0;
};

// MPI_Init / MPI_Finalize for the commands that need MPI (dtbench coll); other commands
// never start MPI, so `dtbench train` runs without mpirun.
class MpiSession {
 public:
  // THREAD_MULTIPLE: ask MPI for MPI_THREAD_MULTIPLE (the 3D trainer's wall-clock comm
  // thread); otherwise MPI runs single-threaded, without the library's thread locks.
  // WATCHDOG_S > 0: MPI_Init and MPI_Finalize each end the process after that many seconds
  // with a line naming the phase (phase_watchdog.hpp): a rank that never started or that
  // hangs before finalizing leaves the others inside those calls, where no wait of ours runs.
  MpiSession(int* argc, char*** argv, bool thread_multiple = false, double watchdog_s = 0);
  ~MpiSession();
  MpiSession(const MpiSession&) = delete;
  MpiSession& operator=(const MpiSession&) = delete;
  static int world_rank();
  static int world_size();
  // This process's rank as its launcher (mpirun, srun) announces it in the environment,
  // readable before MPI starts and after it ends; 0 when not launched by one.
  static int launcher_rank();
  // Whether MPI runs with MPI_THREAD_MULTIPLE (when asked for, an MPI may grant less).
  static bool thread_multiple();

  // Ending the job from one rank after MPI is up, when the others may be waiting for it in
  // a collective (MPI_Finalize would then wait forever): prints "error: rank R: WHAT" as
  // one line on stderr (stdout flushed first) and calls MPI_Abort with CODE, which ends
  // every rank (mpirun and srun exit with CODE).
  [[noreturn]] static void abort_job(const std::string& what, int code);
  // After an error before training starts: true when every rank of the world reports one
  // within GRACE_S seconds (they failed alike, e.g. the same bad input: each may then
  // return and MPI end normally); false when some rank did not (it is busy, or waits for
  // this one in a collective: the job must be aborted).
  static bool all_failed_within(double grace_s);

 private:
  static inline bool thread_multiple_ = false;
  double watchdog_s_ = 0;
};

}  // namespace dtb::coll
