#include "coll_bench.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <limits>
#include <memory>
#include <ostream>
#include <sstream>

#include "h5file.hpp"
#include "partition.hpp"
#include "provenance.hpp"
#include "usage_error.hpp"

namespace dtb::coll {
namespace {

constexpr float kPoison = -12345.0f;  // where a rank's input is not used (allgather, broadcast)

// nccl-tests' bus bandwidth factor: what each rank's links carry, relative to the buffer.
double busbw_factor(Op op, int p) {
  if (op == Op::kAllreduce) return 2.0 * (p - 1) / p;
  if (op == Op::kBroadcast) return 1.0;
  return double(p - 1) / p;
}

// What one benchmark run compares against: the inputs and exactly known results.
class ExactCase {
 public:
  ExactCase(const BenchOptions& o, const Algorithm& algo, const Codec* codec, int p)
      : op_(o.op), root_(o.params.root), consensus_(algo.estimate), codec_(codec), p_(p) {}

  float input(int rank, size_t i, size_t count) const {
    if (op_ == Op::kAllgather) return owner(i, count) == rank ? value(rank, i) : kPoison;
    if (op_ == Op::kBroadcast) return rank == root_ ? value(rank, i) : kPoison;
    return value(rank, i);
  }

  // Elements a rank checks: all of them, except its own block for reduce-scatter.
  bool checked(int rank, size_t i, size_t count) const {
    return op_ != Op::kReduceScatter || owner(i, count) == rank;
  }

  float expected(size_t i, size_t count) const {
    if (op_ == Op::kAllgather) return value(owner(i, count), i);
    if (op_ == Op::kBroadcast) return value(root_, i);
    float sum = 0;  // small integers: exact in any order
    for (int r = 0; r < p_; ++r) sum += value(r, i);
    return sum;
  }

 private:
  // Gossip averages: it is exact when every rank starts from the same buffer.
  float value(int rank, size_t i) const { return exact_input(codec_, consensus_ ? 0 : rank, i); }
  int owner(size_t i, size_t count) const { return block_of(count, p_, i); }

  Op op_;
  int root_;
  bool consensus_;
  const Codec* codec_;
  int p_;
};

std::vector<float> make_input(const ExactCase& c, int rank, size_t count) {
  std::vector<float> data(count);
  for (size_t i = 0; i < count; ++i) data[i] = c.input(rank, i, count);
  return data;
}

// The untimed correctness pass, with a fresh codec state: elements off, all ranks.
int64_t check_once(Communicator& comm, const Algorithm& algo, const BenchOptions& o, const Codec* codec,
                   size_t count) {
  const ExactCase c(o, algo, codec, comm.size());
  std::vector<float> data = make_input(c, comm.rank(), count);
  CodecState fresh;
  algo.run(comm, data, o.params, {codec, &fresh});
  int64_t wrong = 0;
  for (size_t i = 0; i < count; ++i)
    if (c.checked(comm.rank(), i, count) && data[i] != c.expected(i, count)) ++wrong;
  return comm.untimed_sum(wrong);
}

// What netem does not time (MPI's own, the raw transport) runs on a real clock.
bool netem_timed(const Communicator& comm, const Algorithm& algo) { return algo.uses_transport && comm.timed(); }

double clock_now(const Communicator& comm, const Algorithm& algo) {
  if (netem_timed(comm, algo)) return comm.now();
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// Mean seconds per iteration of the slowest rank, and the bytes sent per iteration.
// Every iteration starts from the same input (restored outside the timed interval) and
// from synchronized clocks; the codec state carries over, as in training.
void time_size(Communicator& comm, const Algorithm& algo, const BenchOptions& o, const Codec* codec,
               size_t count, BenchRow& row) {
  const ExactCase c(o, algo, codec, comm.size());
  const std::vector<float> input = make_input(c, comm.rank(), count);
  std::vector<float> data(count);
  CodecState state;
  double total = 0;
  LinkStats before{};
  for (int it = 0; it < o.warmup + o.iters; ++it) {
    if (it == o.warmup) before = comm.stats();
    std::copy(input.begin(), input.end(), data.begin());
    comm.sync_clocks();
    const double t0 = clock_now(comm, algo);
    algo.run(comm, data, o.params, {codec, &state});
    if (it >= o.warmup) total += clock_now(comm, algo) - t0;
  }
  const LinkStats& after = comm.stats();
  const int iters = std::max(o.iters, 1);
  row.time_us = 1e6 * comm.untimed_max(total) / iters;
  row.bytes_intra = uint64_t(comm.untimed_sum(int64_t(after.bytes_intra - before.bytes_intra))) / iters;
  row.bytes_inter = uint64_t(comm.untimed_sum(int64_t(after.bytes_inter - before.bytes_inter))) / iters;
}

BenchRow run_size(Communicator& comm, const Algorithm& algo, const BenchOptions& o, const Codec* codec,
                  uint64_t bytes) {
  BenchRow row;
  row.count = bytes / sizeof(float);
  row.bytes = row.count * sizeof(float);
  row.wrong = o.check ? check_once(comm, algo, o, codec, row.count) : 0;
  time_size(comm, algo, o, codec, row.count, row);
  const double seconds = row.time_us * 1e-6;
  row.algbw = seconds > 0 ? double(row.bytes) / seconds / 1e9 : std::numeric_limits<double>::infinity();
  row.busbw = row.algbw * busbw_factor(o.op, comm.size());
  const double wire = codec ? double(codec->encoded_bytes(row.count)) : double(row.bytes);
  row.model_us = algo.rounds && comm.timed() ? 1e6 * algo.model(comm.network(), comm.ranks(), wire, o.params) : std::nan("");
  return row;
}

std::string clock_description(const BenchOptions& o, const Algorithm& algo, const Communicator& comm) {
  if (netem_timed(comm, algo)) return o.clock;
  return algo.uses_transport ? "wall (raw transport: netem off)" : "wall (MPI's own collectives bypass netem)";
}

void print_header(std::ostream& out, const BenchOptions& o, const Algorithm& algo, const Communicator& comm) {
  out << "# dtbench coll: " << op_name(o.op) << ", algo " << algo.name << " (" << algo.summary << "), codec "
      << o.codec << ", " << comm.size() << " ranks\n"
      << "# network " << (o.net_path.empty() ? "unshaped" : o.net_path) << " ("
      << comm.network().profile().name << "), clock " << clock_description(o, algo, comm) << ", iterations "
      << o.iters << ", warm-up " << o.warmup << ", check " << (o.check ? "on" : "off") << "\n#\n";
  char line[256];
  std::snprintf(line, sizeof line, "#%11s %13s %7s %7s %5s %11s %8s %8s %11s %7s\n", "size", "count", "type",
                "redop", "root", "time", "algbw", "busbw", "model", "#wrong");
  out << line;
  std::snprintf(line, sizeof line, "#%11s %13s %7s %7s %5s %11s %8s %8s %11s %7s\n", "(B)", "(elements)", "", "",
                "", "(us)", "(GB/s)", "(GB/s)", "(us)", "");
  out << line;
}

void print_row(std::ostream& out, const BenchOptions& o, const BenchRow& r) {
  char model[32] = "n/a";
  if (!std::isnan(r.model_us)) std::snprintf(model, sizeof model, "%.2f", r.model_us);
  char line[256];
  std::snprintf(line, sizeof line, "%12llu %13llu %7s %7s %5d %11.2f %8.3f %8.3f %11s %7lld\n",
                (unsigned long long)r.bytes, (unsigned long long)r.count, "float",
                o.op == Op::kAllgather || o.op == Op::kBroadcast ? "none" : "sum",
                o.op == Op::kBroadcast ? o.params.root : -1, r.time_us, r.algbw, r.busbw, model, (long long)r.wrong);
  out << line << std::flush;
}

void print_summary(std::ostream& out, const std::vector<BenchRow>& rows) {
  int64_t wrong = 0;
  double busbw = 0;
  for (const BenchRow& r : rows) {
    wrong += r.wrong;
    busbw += r.busbw;
  }
  out << "# Out of bounds values : " << wrong << (wrong ? " FAILED" : " OK") << "\n";
  char line[64];
  std::snprintf(line, sizeof line, "%.3f", rows.empty() ? 0.0 : busbw / double(rows.size()));
  out << "# Avg bus bandwidth    : " << line << "\n#\n" << std::flush;
}

template <typename T, typename F>
std::vector<T> column(const std::vector<BenchRow>& rows, F field) {
  std::vector<T> out;
  for (const BenchRow& r : rows) out.push_back(T(field(r)));
  return out;
}

std::string slurp(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace

std::vector<uint64_t> bench_sizes(uint64_t min_bytes, uint64_t max_bytes, double factor) {
  if (!(factor > 1)) throw UsageError("-f/--stepfactor must be > 1, got " + std::to_string(factor));
  if (min_bytes > max_bytes) throw UsageError("-b/--minbytes must not exceed -e/--maxbytes");
  std::vector<uint64_t> sizes;
  for (double s = double(min_bytes); s <= double(max_bytes) * (1 + 1e-12); s *= factor) {
    sizes.push_back(uint64_t(std::llround(s)));
    if (s == 0) break;  // -b 0: one row of zero bytes
  }
  return sizes;
}

void check_bench_options(const BenchOptions& o, int world) {
  const Algorithm& algo = find_algorithm(o.op, o.algo);
  if (make_codec(o.codec) && !algo.uses_transport)
    throw UsageError("--codec " + o.codec + ": --algo " + o.algo + " is MPI's own and takes no codec");
  if (o.op == Op::kBroadcast && (o.params.root < 0 || o.params.root >= world))
    throw UsageError("--root " + std::to_string(o.params.root) + ": must be a rank in [0, " +
                     std::to_string(world - 1) + "]");
  if (o.algo == "ps" && (o.params.servers < 1 || o.params.servers > world))
    throw UsageError("--servers " + std::to_string(o.params.servers) + ": must be in [1, " + std::to_string(world) +
                     "]");
}

std::vector<BenchRow> run_coll_bench(Communicator& comm, const BenchOptions& o, std::ostream& out) {
  check_bench_options(o, comm.size());
  const Algorithm& algo = find_algorithm(o.op, o.algo);
  const std::unique_ptr<Codec> codec = make_codec(o.codec);
  const bool root = comm.rank() == 0;
  if (root) print_header(out, o, algo, comm);
  std::vector<BenchRow> rows;
  for (uint64_t bytes : bench_sizes(o.min_bytes, o.max_bytes, o.factor)) {
    rows.push_back(run_size(comm, algo, o, codec.get(), bytes));
    if (root) print_row(out, o, rows.back());
  }
  if (root) print_summary(out, rows);
  return rows;
}

void write_coll_results(const std::string& path, const BenchOptions& o, const Communicator& comm,
                        const std::vector<BenchRow>& rows) {
  h5::File f = h5::File::create(path);
  write_provenance(f, "dtbench-result", 1, "coll", o.command_line);
  f.set_attr("/", "op", std::string(op_name(o.op)));
  f.set_attr("/", "algo", o.algo);
  f.set_attr("/", "codec", o.codec);
  f.set_attr("/", "clock", o.clock);
  f.set_attr("/", "transport", o.transport);
  f.set_attr("/", "net_profile", o.net_path.empty() ? std::string("unshaped") : o.net_path);
  f.set_attr("/", "net_name", comm.network().profile().name);
  f.set_attr("/", "world_size", int64_t(comm.size()));
  f.set_attr("/", "iters", int64_t(o.iters));
  f.set_attr("/", "warmup", int64_t(o.warmup));
  f.set_attr("/", "servers", int64_t(o.params.servers));
  f.set_attr("/", "rounds", int64_t(o.params.rounds));
  f.set_attr("/", "root", int64_t(o.params.root));
  f.set_attr("/", "dtype", std::string("float32"));
  f.set_attr("/", "busbw_factor", busbw_factor(o.op, comm.size()));
  if (!o.net_path.empty()) f.write_string("net_profile", slurp(o.net_path));
  auto i64 = [&](auto field) { return column<int64_t>(rows, field); };
  auto f64 = [&](auto field) { return column<double>(rows, field); };
  f.write<int64_t>("rows/bytes", i64([](const BenchRow& r) { return r.bytes; }));
  f.write<int64_t>("rows/count", i64([](const BenchRow& r) { return r.count; }));
  f.write<double>("rows/time_us", f64([](const BenchRow& r) { return r.time_us; }));
  f.write<double>("rows/algbw_GBps", f64([](const BenchRow& r) { return r.algbw; }));
  f.write<double>("rows/busbw_GBps", f64([](const BenchRow& r) { return r.busbw; }));
  f.write<double>("rows/model_time_us", f64([](const BenchRow& r) { return r.model_us; }));
  f.write<int64_t>("rows/wrong", i64([](const BenchRow& r) { return r.wrong; }));
  f.write<int64_t>("rows/bytes_intra", i64([](const BenchRow& r) { return r.bytes_intra; }));
  f.write<int64_t>("rows/bytes_inter", i64([](const BenchRow& r) { return r.bytes_inter; }));
  f.commit();
}

}  // namespace dtb::coll
