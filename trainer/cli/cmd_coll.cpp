// dtbench coll: the collective benchmark, in the style of nccl-tests, under mpirun:
//   mpirun -np 5 dtbench coll -b 1K -e 4M -f 4 --algo ring --net configs/net/X.yaml --clock virtual
// The only command that starts MPI. Options are checked before MPI starts; the network
// profile after (it needs the world size). A bad input is reported once, by rank 0.
#include <cctype>
#include <iostream>

#include "cli/cli_common.hpp"
#include "cli/cmd_coll.hpp"
#include "cli/commands.hpp"
#include "coll_bench.hpp"
#include "profile.hpp"
#include "provenance.hpp"

namespace dtb {
namespace {

// "1024", "64K", "4M", "1G" (binary multiples, as nccl-tests reads them).
uint64_t parse_size(const std::string& text, const char* option) {
  size_t digits = 0;
  while (digits < text.size() && std::isdigit(static_cast<unsigned char>(text[digits]))) ++digits;
  const std::string unit = text.substr(digits);
  int shift = -1;
  if (unit.empty()) shift = 0;
  else if (unit == "K" || unit == "k") shift = 10;
  else if (unit == "M" || unit == "m") shift = 20;
  else if (unit == "G" || unit == "g") shift = 30;
  if (digits == 0 || digits > 12 || shift < 0)
    throw UsageError(std::string(option) + " '" + text + "': a size like 1024, 64K, 4M or 1G");
  return std::stoull(text.substr(0, digits)) << shift;
}

coll::Transport parse_transport(const std::string& name) {
  if (name == "timed") return coll::Transport::kTimed;
  if (name == "raw") return coll::Transport::kRaw;
  throw UsageError("--transport '" + name + "': allowed: timed, raw");
}

netem::ClockKind parse_clock(const std::string& name) {
  if (name == "virtual") return netem::ClockKind::kVirtual;
  if (name == "wall") return netem::ClockKind::kWall;
  throw UsageError("--clock '" + name + "': allowed: virtual, wall");
}

int positive(const cxxopts::ParseResult& args, const char* key, int min) {
  const int v = args[key].as<int>();
  if (v < min) throw UsageError(std::string("--") + key + " " + std::to_string(v) + ": must be >= " + std::to_string(min));
  return v;
}

std::string default_out(const coll::BenchOptions& o) {
  return "results/runs/coll-" + std::string(coll::op_name(o.op)) + "-" + o.algo + "-" + utc_file_stamp() + ".h5";
}

std::string algorithm_help() {
  std::string text = "\n Algorithms (--op: --algo ...):\n";
  for (coll::Op op : {coll::Op::kAllreduce, coll::Op::kReduceScatter, coll::Op::kAllgather, coll::Op::kBroadcast})
    text += "  " + std::string(coll::op_name(op)) + ": " + coll::algorithm_names(op) + "\n";
  for (const coll::Algorithm& a : coll::all_algorithms())
    if (a.op == coll::Op::kAllreduce) text += "   " + std::string(a.name) + ": " + a.summary + "\n";
  return text + "\n Codecs (--codec): " + coll::kCodecHelp + "\n";
}

cxxopts::Options coll_options(const std::string& program) {
  cxxopts::Options options(program, "Collective benchmark (nccl-tests style); run it under mpirun.");
  options.add_options()
      ("b,minbytes", "smallest buffer", cxxopts::value<std::string>()->default_value("1K"), "SIZE")
      ("e,maxbytes", "largest buffer", cxxopts::value<std::string>()->default_value("4M"), "SIZE")
      ("f,stepfactor", "size multiplier between rows", cxxopts::value<double>()->default_value("2"), "F")
      ("n,iters", "timed iterations per size", cxxopts::value<int>()->default_value("20"), "N")
      ("w,warmup_iters", "untimed warm-up iterations per size", cxxopts::value<int>()->default_value("5"), "N")
      ("c,check", "check results in an untimed pass (0 or 1)", cxxopts::value<int>()->default_value("1"), "0|1")
      ("op", "allreduce, reducescatter, allgather or broadcast", cxxopts::value<std::string>()->default_value("allreduce"), "OP")
      ("algo", "algorithm (see below)", cxxopts::value<std::string>()->default_value("ring"), "NAME")
      ("codec", "compression (see below)", cxxopts::value<std::string>()->default_value("none"), "SPEC")
      ("net", "network profile YAML (default: unshaped)", cxxopts::value<std::string>(), "FILE")
      ("clock", "virtual or wall", cxxopts::value<std::string>()->default_value("virtual"), "CLOCK")
      ("transport", "timed (netem on every message) or raw (plain MPI, the timing layer's reference)",
       cxxopts::value<std::string>()->default_value("timed"), "T")
      ("servers", "ps: server ranks (shards)", cxxopts::value<int>()->default_value("1"), "N")
      ("rounds", "gossip: averaging rounds", cxxopts::value<int>()->default_value("10"), "K")
      ("root", "broadcast: root rank", cxxopts::value<int>()->default_value("0"), "R")
      ("out", "HDF5 results (default results/runs/coll-<op>-<algo>-<time>.h5)", cxxopts::value<std::string>(), "FILE")
      ("h,help", "print this help");
  return options;
}

// Everything that can be checked before MPI starts.
coll::BenchOptions bench_options(const cxxopts::ParseResult& args, const std::string& program,
                                 const std::string& command_line) {
  if (!args.unmatched().empty())
    throw UsageError(program + ": unexpected argument '" + args.unmatched()[0] + "'; see " + program + " --help");
  coll::BenchOptions o;
  o.min_bytes = parse_size(args["minbytes"].as<std::string>(), "-b/--minbytes");
  o.max_bytes = parse_size(args["maxbytes"].as<std::string>(), "-e/--maxbytes");
  o.factor = args["stepfactor"].as<double>();
  coll::bench_sizes(o.min_bytes, o.max_bytes, o.factor);  // checks them
  o.iters = positive(args, "iters", 1);
  o.warmup = positive(args, "warmup_iters", 0);
  o.check = positive(args, "check", 0) != 0;
  o.op = coll::parse_op(args["op"].as<std::string>());
  o.algo = args["algo"].as<std::string>();
  coll::find_algorithm(o.op, o.algo);
  o.codec = args["codec"].as<std::string>();
  coll::make_codec(o.codec);
  o.clock = args["clock"].as<std::string>();
  parse_clock(o.clock);
  o.params.servers = positive(args, "servers", 1);
  o.params.rounds = positive(args, "rounds", 0);
  o.params.root = positive(args, "root", 0);
  if (args.count("net")) o.net_path = args["net"].as<std::string>();
  o.transport = args["transport"].as<std::string>();
  if (parse_transport(o.transport) == coll::Transport::kRaw && !o.net_path.empty())
    throw UsageError("--transport raw bypasses netem: it takes no --net profile");
  o.out_path = args.count("out") ? args["out"].as<std::string>() : default_out(o);
  o.command_line = command_line;
  return o;
}

int run(const coll::BenchOptions& o) {
  const int world = coll::MpiSession::world_size();
  const netem::Profile profile =
      o.net_path.empty() ? netem::uniform_profile(world, 0, 0) : netem::load_profile(o.net_path, world);
  coll::Communicator comm(MPI_COMM_WORLD, profile, parse_clock(o.clock), parse_transport(o.transport));
  if (const std::string w = netem::single_site_warning(profile); comm.rank() == 0 && !w.empty()) std::cout << "# " << w << "\n";
  const std::vector<coll::BenchRow> rows = coll::run_coll_bench(comm, o, std::cout);
  if (comm.rank() == 0) {
    coll::write_coll_results(o.out_path, o, comm, rows);
    std::cout << "# results: " << o.out_path << "\n";
  }
  int64_t wrong = 0;
  for (const coll::BenchRow& r : rows) wrong += r.wrong;
  return wrong ? 1 : 0;
}

// Parses, checks (what can be checked before MPI starts), starts MPI and runs.
int parse_and_run(int argc, char** argv) {
  std::string command_line;
  for (int i = 0; i < argc; ++i) command_line.append(i ? " " : "").append(argv[i]);
  cxxopts::Options options = coll_options(argv[0]);
  auto args = parse_or_usage(options, argc, argv);
  if (args.count("help")) {
    if (coll::MpiSession::launcher_rank() == 0) std::cout << options.help() << algorithm_help();
    return 0;
  }
  const coll::BenchOptions o = bench_options(args, argv[0], command_line);
  coll::MpiSession mpi(&argc, &argv);
  return run(o);
}

}  // namespace

coll::BenchOptions parse_coll_options(const std::string& program, const std::vector<std::string>& args) {
  std::vector<std::string> words{program};
  words.insert(words.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (std::string& w : words) argv.push_back(w.data());
  cxxopts::Options options = coll_options(program);
  const auto parsed = parse_or_usage(options, int(argv.size()), argv.data());
  if (parsed.count("help")) throw UsageError(program + ": --help prints the help and runs nothing; leave it out");
  return bench_options(parsed, program, "");
}

int cmd_coll(int argc, char** argv) {
  try {
    return parse_and_run(argc, argv);
  } catch (const UsageError&) {
    if (coll::MpiSession::launcher_rank() != 0) return 2;  // every rank fails alike; rank 0 says why
    throw;
  }
}

}  // namespace dtb
