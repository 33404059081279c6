#include "communicator.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <functional>
#include <mutex>
#include <stdexcept>
#include <string>
#include <utility>

#include "phase_watchdog.hpp"

namespace dtb::coll {

using netem::Stream;

struct Communicator::Shared {
  Shared(const netem::Profile& profile, int world, netem::ClockKind kind, Transport transport)
      : network(profile, world), clock(netem::make_clock(kind)), timed(transport == Transport::kTimed) {}
  // The network model's NIC queues and the stats are the rank's, shared by all its
  // communicators; a DP sync on a comm thread (wall clock) and the main thread's TP and PP
  // traffic update them concurrently, so under this lock.
  std::mutex mu;
  netem::NetworkModel network;
  std::unique_ptr<netem::Clock> clock;
  bool timed;
  LinkStats stats;
  std::atomic<double> watchdog_s{0};  // set_watchdog; read by every thread's waits
};

namespace {
// What this thread sent (Communicator::thread_stats), and its scratch memory: per thread,
// so that collectives on two threads never share a buffer.
thread_local LinkStats this_thread_stats;
thread_local std::vector<std::vector<float>> scratch_slots;  // floats: raw partials are read as floats
}  // namespace

namespace {

constexpr int kHeaderBytes = int(sizeof(netem::SendTiming));
constexpr int kWholeComm = -1;  // wait_mpi's peer of a collective request

int checked_count(size_t bytes) {
  if (bytes > size_t(INT_MAX))
    throw std::length_error("collectives: a message of " + std::to_string(bytes) +
                            " bytes exceeds MPI's int count; split it");
  return int(bytes);
}

// Hash of this kernel's boot id: ranks that agree on it read one CLOCK_MONOTONIC, even when
// MPI sees them as different hosts (network namespaces, containers).
uint64_t boot_id_hash() {
  std::ifstream in("/proc/sys/kernel/random/boot_id");
  std::string id;
  std::getline(in, id);
  return std::hash<std::string>{}(id);
}

// Every rank of COMM gets rank 0's steady_clock reading as the epoch when they share a
// kernel (steady_clock is CLOCK_MONOTONIC, one clock per kernel); otherwise each takes its
// own reading right after a barrier, which is off by the barrier's skew.
void set_common_epoch(netem::WallClock& clock, MPI_Comm comm) {
  uint64_t boot = boot_id_hash(), boot_min = 0, boot_max = 0;
  MPI_Allreduce(&boot, &boot_min, 1, MPI_UINT64_T, MPI_MIN, comm);
  MPI_Allreduce(&boot, &boot_max, 1, MPI_UINT64_T, MPI_MAX, comm);
  MPI_Barrier(comm);
  auto now = std::chrono::steady_clock::now();
  int64_t ticks = now.time_since_epoch().count();
  MPI_Bcast(&ticks, 1, MPI_INT64_T, 0, comm);
  if (boot_min == boot_max && boot != 0)
    now = std::chrono::steady_clock::time_point(std::chrono::steady_clock::duration(ticks));
  clock.set_epoch(now);
}

MPI_Comm checked_dup(MPI_Comm comm, const netem::Profile& profile) {
  const int world = MpiSession::world_size();
  if (int(profile.rank_site.size()) != world)
    throw std::invalid_argument("collectives: the network profile describes " +
                                std::to_string(profile.rank_site.size()) + " ranks, MPI_COMM_WORLD has " +
                                std::to_string(world));
  MPI_Comm dup;
  MPI_Comm_dup(comm, &dup);
  return dup;
}

}  // namespace

Communicator::Communicator(MPI_Comm comm, const netem::Profile& profile, netem::ClockKind clock,
                           Transport transport)
    : Communicator(checked_dup(comm, profile), std::make_shared<Shared>(profile, MpiSession::world_size(), clock, transport),
                   Stream::kComm) {
  if (auto* wall = dynamic_cast<netem::WallClock*>(shared_->clock.get())) set_common_epoch(*wall, comm_);
}

Communicator::Communicator(MPI_Comm dup, std::shared_ptr<Shared> shared, Stream channel)
    : comm_(dup), shared_(std::move(shared)), channel_(channel) {
  if (channel_ == Stream::kCompute) throw std::invalid_argument("Communicator: a channel is kComm or kDp, not kCompute");
  int size = 0, world_rank = 0;
  MPI_Comm_rank(comm_, &rank_);
  MPI_Comm_size(comm_, &size);
  MPI_Comm_rank(MPI_COMM_WORLD, &world_rank);
  global_.resize(size);
  MPI_Allgather(&world_rank, 1, MPI_INT, global_.data(), 1, MPI_INT, comm_);
}

Communicator::Communicator(Communicator&& o) noexcept
    : comm_(std::exchange(o.comm_, MPI_COMM_NULL)), rank_(o.rank_), global_(std::move(o.global_)),
      shared_(std::move(o.shared_)), channel_(o.channel_), site_groups_(std::move(o.site_groups_)) {}

Communicator& Communicator::operator=(Communicator&& o) noexcept {
  if (this != &o) {
    if (comm_ != MPI_COMM_NULL) MPI_Comm_free(&comm_);
    comm_ = std::exchange(o.comm_, MPI_COMM_NULL);
    rank_ = o.rank_;
    global_ = std::move(o.global_);
    shared_ = std::move(o.shared_);
    channel_ = o.channel_;
    site_groups_ = std::move(o.site_groups_);
  }
  return *this;
}

Communicator::~Communicator() {
  site_groups_.reset();  // its communicators first
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (comm_ != MPI_COMM_NULL && !finalized) MPI_Comm_free(&comm_);
}

int Communicator::site_of(int local) const { return shared_->network.site_of(global_[local]); }
netem::Clock& Communicator::clock() const { return *shared_->clock; }
netem::NetworkModel& Communicator::network() const { return shared_->network; }
const LinkStats& Communicator::stats() const { return shared_->stats; }
bool Communicator::timed() const { return shared_->timed; }

const LinkStats& Communicator::thread_stats() { return this_thread_stats; }

void Communicator::account(int dst, uint64_t bytes) {
  const bool intra = same_site(rank_, dst);
  auto add = [&](LinkStats& s) {
    (intra ? s.bytes_intra : s.bytes_inter) += bytes;
    ++(intra ? s.messages_intra : s.messages_inter);
  };
  add(this_thread_stats);
  std::lock_guard<std::mutex> lock(shared_->mu);
  add(shared_->stats);
}

Request Communicator::isend(int dst, std::span<const std::byte> data, int tag) {
  Request r;
  r.kind_ = Request::Kind::kSend;
  r.peer_ = dst;
  r.bytes_ = data.size();
  if (timed()) {
    std::unique_lock<std::mutex> lock(shared_->mu);
    r.timing_ = std::make_unique<netem::SendTiming>(
        shared_->network.on_send(global_[rank_], global_[dst], data.size(), now(), channel_));
    lock.unlock();
    MPI_Isend(r.timing_.get(), kHeaderBytes, MPI_BYTE, dst, tag, comm_, &r.mpi_[0]);
  }
  if (!data.empty() || !timed())  // an empty message still synchronizes (barrier)
    MPI_Isend(data.data(), checked_count(data.size()), MPI_BYTE, dst, tag, comm_, &r.mpi_[1]);
  account(dst, data.size());
  return r;
}

Request Communicator::irecv(int src, std::span<std::byte> data, int tag) {
  Request r;
  r.kind_ = Request::Kind::kRecv;
  r.peer_ = src;
  r.bytes_ = data.size();
  if (timed()) {
    r.timing_ = std::make_unique<netem::SendTiming>();
    MPI_Irecv(r.timing_.get(), kHeaderBytes, MPI_BYTE, src, tag, comm_, &r.mpi_[0]);
  }
  if (!data.empty() || !timed())
    MPI_Irecv(data.data(), checked_count(data.size()), MPI_BYTE, src, tag, comm_, &r.mpi_[1]);
  return r;
}

double Communicator::finish_recv(const Request& r) {
  std::lock_guard<std::mutex> lock(shared_->mu);
  return shared_->network.on_receive(global_[rank_], global_[r.peer_], r.bytes_, r.timing_->wire_arrival, channel_);
}

void Communicator::wait(Request& r) { wait_all(std::span<Request>(&r, 1)); }

void Communicator::set_watchdog(double seconds) { shared_->watchdog_s = seconds; }
double Communicator::watchdog() const { return shared_->watchdog_s; }

void Communicator::wait_mpi(std::span<MPI_Request> mpi, std::span<const int> peers, const char* what) const {
  const double limit = watchdog();
  if (limit <= 0) {
    MPI_Waitall(int(mpi.size()), mpi.data(), MPI_STATUSES_IGNORE);
    return;
  }
  // MPI_Waitall is itself a loop over MPI's progress engine (yielding the core when
  // mpi_yield_when_idle says so); MPI_Testall is one turn of it, so this loop costs what
  // MPI_Waitall costs, plus a clock read every 64 turns.
  using Clock = std::chrono::steady_clock;
  Clock::time_point last = Clock::now();
  Clock::time_point deadline = last + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(limit));
  for (unsigned turn = 0;; ++turn) {
    int done = 0;
    MPI_Testall(int(mpi.size()), mpi.data(), &done, MPI_STATUSES_IGNORE);
    if (done) return;
    if (turn % 64 != 0) continue;
    const Clock::time_point now = Clock::now();
    // A gap of seconds between two looks: this rank itself was stopped (SIGSTOP, then the
    // SIGCONT of mpirun's cleanup), not its peer: the gap is not the peer's silence.
    if (now - last > std::chrono::seconds(1)) deadline += now - last;
    last = now;
    if (now > deadline) break;
  }
  // The first request still open names the silent peer (callers list receives first: the
  // rank that sends nothing is the one that stopped).
  int silent = -1;
  for (size_t i = 0; i < mpi.size(); ++i) {
    int complete = 1;
    if (mpi[i] != MPI_REQUEST_NULL) MPI_Request_get_status(mpi[i], &complete, MPI_STATUS_IGNORE);
    if (!complete) {
      silent = peers[i];
      break;
    }
  }
  if (silent < 0 && size() == 2) silent = 1 - rank_;  // a collective of two waits for the other
  char seconds[32];
  std::snprintf(seconds, sizeof seconds, "%g", limit);
  const std::string who = silent >= 0 ? "rank " + std::to_string(global_[size_t(silent)])
                                      : "some rank of a " + std::to_string(size()) + "-rank collective";
  MpiSession::abort_job("watchdog: no answer from " + who + " within " + seconds + " s (" + what +
                            "; net.watchdog_s sets the limit)",
                        1);
}

void Communicator::wait_all(std::span<Request> requests) {
  std::vector<MPI_Request> mpi;
  std::vector<int> peers;
  mpi.reserve(2 * requests.size());
  // Receives first: when a peer stops, the receive from it is what stays open.
  for (Request::Kind kind : {Request::Kind::kRecv, Request::Kind::kSend})
    for (Request& r : requests)
      if (r.kind_ == kind) {
        mpi.insert(mpi.end(), {r.mpi_[0], r.mpi_[1]});
        peers.insert(peers.end(), {r.peer_, r.peer_});
      }
  wait_mpi(mpi, peers, "a message to or from it");
  if (!timed()) {
    for (Request& r : requests) r = Request();
    return;
  }

  // This channel's stream is busy until every send's bytes are serialized by the NIC and every
  // receive has arrived (virtual: the stream moves there; wall: sleep until then).
  std::vector<Request*> recvs;
  double done = now();
  for (Request& r : requests) {
    if (r.kind_ == Request::Kind::kSend) done = std::max(done, r.timing_->sender_free);
    if (r.kind_ == Request::Kind::kRecv) recvs.push_back(&r);
  }
  std::stable_sort(recvs.begin(), recvs.end(), [](const Request* a, const Request* b) {
    return a->timing_->wire_arrival < b->timing_->wire_arrival;
  });
  for (Request* r : recvs) done = std::max(done, finish_recv(*r));
  clock().wait_until(channel_, done);
  for (Request& r : requests) r = Request();
}

void Communicator::send(int dst, std::span<const std::byte> data, int tag) {
  Request r = isend(dst, data, tag);
  wait(r);
}

void Communicator::recv(int src, std::span<std::byte> data, int tag) {
  Request r = irecv(src, data, tag);
  wait(r);
}

void Communicator::sendrecv(int dst, std::span<const std::byte> out, int src, std::span<std::byte> in, int tag) {
  Request r[2] = {irecv(src, in, tag), isend(dst, out, tag)};
  wait_all(r);
}

std::optional<Communicator> Communicator::split(int color, int key, std::optional<Stream> channel) const {
  MPI_Comm sub;
  MPI_Comm_split(comm_, color < 0 ? MPI_UNDEFINED : color, key, &sub);
  if (sub == MPI_COMM_NULL) return std::nullopt;
  return Communicator(sub, shared_, channel.value_or(channel_));
}

SiteGroups& Communicator::site_groups() {
  if (site_groups_) return *site_groups_;
  std::vector<int> ranks_on_site;  // indexed by site
  for (int r = 0; r < size(); ++r) {
    const int s = site_of(r);
    if (s >= int(ranks_on_site.size())) ranks_on_site.resize(size_t(s) + 1, 0);
    ++ranks_on_site[size_t(s)];
  }
  std::optional<Communicator> site = split(site_of(rank_), rank_);
  const bool leader = site->rank() == 0;
  std::optional<Communicator> leaders = split(leader ? 0 : -1, rank_);
  const int num_sites = int(std::count_if(ranks_on_site.begin(), ranks_on_site.end(), [](int n) { return n > 0; }));
  const int max_site_size = *std::max_element(ranks_on_site.begin(), ranks_on_site.end());
  site_groups_.reset(new SiteGroups{std::move(*site), std::move(leaders), num_sites, max_site_size});
  return *site_groups_;
}

void Communicator::sync_clocks() {
  netem::Clock& c = clock();
  if (c.kind() == netem::ClockKind::kWall) {
    MPI_Request barrier;
    MPI_Ibarrier(comm_, &barrier);
    wait_mpi(std::span(&barrier, 1), std::span(&kWholeComm, 1), "a barrier");
    return;
  }
  const Stream streams[] = {Stream::kCompute, Stream::kComm, Stream::kDp};
  double t = 0;
  for (Stream s : streams) t = std::max(t, c.now(s));
  t = untimed_max(t);
  for (Stream s : streams) c.wait_until(s, t);
}

double Communicator::untimed_max(double x) const {
  MPI_Request r;
  MPI_Iallreduce(MPI_IN_PLACE, &x, 1, MPI_DOUBLE, MPI_MAX, comm_, &r);
  wait_mpi(std::span(&r, 1), std::span(&kWholeComm, 1), "a control allreduce");
  return x;
}

int64_t Communicator::untimed_sum(int64_t x) const {
  MPI_Request r;
  MPI_Iallreduce(MPI_IN_PLACE, &x, 1, MPI_INT64_T, MPI_SUM, comm_, &r);
  wait_mpi(std::span(&r, 1), std::span(&kWholeComm, 1), "a control allreduce");
  return x;
}

std::vector<double> Communicator::untimed_allgather(double x) const {
  std::vector<double> all(static_cast<size_t>(size()));
  MPI_Request r;
  MPI_Iallgather(&x, 1, MPI_DOUBLE, all.data(), 1, MPI_DOUBLE, comm_, &r);
  wait_mpi(std::span(&r, 1), std::span(&kWholeComm, 1), "a control allgather");
  return all;
}

std::span<std::byte> Communicator::scratch(int slot, size_t bytes) {
  auto& slots = scratch_slots;
  if (int(slots.size()) <= slot) slots.resize(slot + 1);
  const size_t floats = (bytes + sizeof(float) - 1) / sizeof(float);
  if (slots[slot].size() < floats) slots[slot].resize(floats);
  return std::as_writable_bytes(std::span(slots[slot])).first(bytes);
}

MpiSession::MpiSession(int* argc, char*** argv, bool thread_multiple, double watchdog_s) : watchdog_s_(watchdog_s) {
  int provided = MPI_THREAD_SINGLE;
  const PhaseWatchdog watchdog("MPI_Init (a rank did not start, or hung before it)", watchdog_s, launcher_rank());
  MPI_Init_thread(argc, argv, thread_multiple ? MPI_THREAD_MULTIPLE : MPI_THREAD_SINGLE, &provided);
  thread_multiple_ = provided >= MPI_THREAD_MULTIPLE;
}

bool MpiSession::thread_multiple() { return thread_multiple_; }

void MpiSession::abort_job(const std::string& what, int code) {
  std::cout.flush();
  std::fflush(stdout);
  std::fprintf(stderr, "error: rank %d: %s\n", world_rank(), what.c_str());
  std::fflush(stderr);
  MPI_Abort(MPI_COMM_WORLD, code);
  std::_Exit(code);  // MPI_Abort does not return; should an MPI's do, the rank still ends
}

bool MpiSession::all_failed_within(double grace_s) {
  if (world_size() == 1) return true;
  MPI_Request barrier;
  MPI_Ibarrier(MPI_COMM_WORLD, &barrier);
  using Clock = std::chrono::steady_clock;
  const Clock::time_point deadline =
      Clock::now() + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(grace_s));
  while (Clock::now() < deadline) {
    int done = 0;
    MPI_Test(&barrier, &done, MPI_STATUS_IGNORE);
    if (done) return true;
  }
  return false;  // the barrier stays open: the caller aborts the job
}
MpiSession::~MpiSession() {
  const PhaseWatchdog watchdog("MPI_Finalize (a rank did not arrive: hung, or still busy)", watchdog_s_, world_rank());
  MPI_Finalize();
}

int MpiSession::world_rank() {
  int r = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &r);
  return r;
}

int MpiSession::world_size() {
  int n = 0;
  MPI_Comm_size(MPI_COMM_WORLD, &n);
  return n;
}

int MpiSession::launcher_rank() {
  for (const char* name : {"OMPI_COMM_WORLD_RANK", "PMIX_RANK", "PMI_RANK", "SLURM_PROCID"})
    if (const char* value = std::getenv(name)) return std::atoi(value);
  return 0;
}

}  // namespace dtb::coll
