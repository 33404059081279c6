// dtbench verify RESULTS: the verifier and referee of a run trained with verify.segment > 0
// (trainer/verify/verifier.hpp). Re-runs a random sample of its segments from their
// checkpoints on one rank, compares hashes bit for bit, and prints a dispute record for
// every segment that differs. Exit code 0: every sampled segment matches; 1: caught.
#include <cstdio>
#include <filesystem>
#include <numeric>
#include <iostream>
#include <sstream>

#include "cli/cli_common.hpp"
#include "cli/commands.hpp"
#include "exp/gnuplot.hpp"
#include "h5file.hpp"
#include "verify/verifier.hpp"

namespace dtb {
namespace {

std::vector<double> parse_fractions(const std::string& text) {
  std::vector<double> out;
  std::stringstream in(text);
  for (std::string item; std::getline(in, item, ',');) {
    char* end = nullptr;
    const double p = std::strtod(item.c_str(), &end);
    if (item.empty() || *end != '\0' || !(p > 0 && p <= 1))
      throw UsageError("dtbench verify: --detection '" + text + "': expected fractions in (0, 1] separated by ','");
    out.push_back(p);
  }
  return out;
}

// What the commitments cost the worker: hashing per step against the step itself, and bytes.
void print_cost(const std::string& results, const verify::Commitment& w) {
  const std::vector<double> ms = h5::File::open_read(results).read<double>("steps/time_ms");
  const double step_ms = ms.empty() ? 0 : std::accumulate(ms.begin(), ms.end(), 0.0) / double(ms.size());
  const double hash_ms = 1e3 * std::accumulate(w.hash_seconds.begin(), w.hash_seconds.end(), 0.0) /
                         double(w.hash_seconds.size());
  std::printf("commitment cost: %.2f ms of gathering and hashing per step = %.1f%% of the %.2f ms step; %zu bytes "
              "of digests per step; a segment checkpoint every %d steps\n",
              hash_ms, step_ms > 0 ? 100.0 * hash_ms / step_ms : 0.0, step_ms, w.bytes_per_step(), w.segment);
}

// One markdown row for results/verify/table.md: the first dispute, or the pass.
void print_row(const verify::VerifyReport& r) {
  const verify::Dispute* d = nullptr;
  for (const verify::SegmentCheck& s : r.checked)
    if (s.dispute && !d) d = &*s.dispute;
  const double cost = r.train_seconds > 0 ? 100.0 * r.reexec_seconds / r.train_seconds : 0.0;
  if (!d) {
    std::printf("row: | passed | - | - | - | - | %.1f%% | - |\n", cost);
    return;
  }
  char referee[160];
  const verify::Ruling& g = d->ruling;
  if (d->kind == "checkpoint") std::snprintf(referee, sizeof referee, "hash the checkpoint file: %.1f ms", d->referee_seconds * 1e3);
  else if (g.refused) std::snprintf(referee, sizeof referee, "refused the evidence");
  else
    std::snprintf(referee, sizeof referee, "%s: %.3f ms of a %.1f ms step; %s", g.alone ? "the operation alone" : "the whole step",
                  d->referee_seconds * 1e3, d->step_seconds * 1e3,
                  g.for_verifier && !g.for_worker ? "against the worker" : g.for_worker ? "for the worker" : "no ruling");
  std::printf("row: | caught (%s) | %lld | %s | %d + %d | %s | %.1f%% | %zu |\n", d->kind.c_str(),
              static_cast<long long>(d->step), d->op.empty() ? "-" : d->op.c_str(), d->step_rounds, d->op_rounds, referee,
              cost, d->proof_bytes());
}

void print_summary(const verify::VerifyReport& r, double p, uint64_t seed) {
  std::printf("summary: %zu of %zu segments sampled (p = %g, seed %llu), %lld of %lld steps re-executed (%.1f%%), "
              "%.2f s = %.1f%% of the worker's %.2f s of training with its commitments; %s\n",
              r.checked.size(), r.segments, p, static_cast<unsigned long long>(seed),
              static_cast<long long>(r.steps_reexecuted), static_cast<long long>(r.steps),
              r.steps ? 100.0 * double(r.steps_reexecuted) / double(r.steps) : 0.0, r.reexec_seconds,
              r.train_seconds > 0 ? 100.0 * r.reexec_seconds / r.train_seconds : 0.0, r.train_seconds,
              r.caught() ? "CAUGHT: the worker's commitments differ from re-execution" : "passed");
}

// Which segments re-execution found bad, then how often a p-sample holds one of them.
void print_detection(const verify::VerifyReport& r, const std::vector<double>& ps, int seeds, const std::string& plot) {
  std::vector<size_t> bad;
  for (size_t j = 0; j < r.checked.size(); ++j)
    if (!r.checked[j].passed) bad.push_back(j);
  const auto curve = verify::detection_curve(r.segments, bad, ps, seeds);
  std::printf("# detection: %zu bad of %zu segments (found by re-executing all), %d seeds\n# p | measured | 1-(1-p)^m\n",
              bad.size(), r.segments, seeds);
  exp::LineChart chart{"Detection probability against the sampled fraction p", "p (segments re-executed)",
                       "P(caught)", false, false, {}, {{"measured over seeds", {}}, {"1 - (1 - p)^m", {}}}};
  for (const verify::DetectionPoint& d : curve) {
    std::printf("%.3f | %.4f | %.4f\n", d.p, d.measured, d.formula);
    chart.series[0].points.push_back({d.p, d.measured});
    chart.series[1].points.push_back({d.p, d.formula});
  }
  if (plot.empty()) return;
  const std::filesystem::path prefix(plot);  // results/verify/detection-m1 -> .gp, .svg and .png there
  const std::string name = prefix.filename().string();
  std::cout << exp::draw(exp::script(chart, name), prefix.parent_path().string(), name) << "\n";
}

}  // namespace

int cmd_verify(int argc, char** argv) {
  cxxopts::Options options(argv[0],
                           "Verify a run trained with verify.segment > 0: re-run a random sample of its segments from "
                           "their checkpoints\n(one rank, the worker's thread count) and compare hashes bit for bit; "
                           "bisect any difference to the first\nstep and, with verify.trace, the first layer output "
                           "that differs. Exit code 0: passed; 1: caught.");
  options.positional_help("RESULTS");
  options.add_options()
      ("p,fraction", "fraction of segments to re-execute", cxxopts::value<double>()->default_value("0.1"), "P")
      ("seed", "seed of the sample", cxxopts::value<uint64_t>()->default_value("1"), "S")
      ("all", "re-execute every segment (p = 1)")
      ("checkpoints", "folder of the segment checkpoints (default: the committed verify.dir)", cxxopts::value<std::string>(), "DIR")
      ("set", "override a key of the worker's config for re-execution (e.g. data.path)", cxxopts::value<std::vector<std::string>>(), "KEY=VALUE")
      ("detection", "after re-executing all: detection probability at these p", cxxopts::value<std::string>(), "P,P,...")
      ("seeds", "seeds per p for --detection", cxxopts::value<int>()->default_value("2000"), "N")
      ("plot", "with --detection: write PREFIX.gp and draw PREFIX.svg", cxxopts::value<std::string>(), "PREFIX")
      ("h,help", "print this help");
  options.add_options("positional")("results", "results file", cxxopts::value<std::vector<std::string>>());
  options.parse_positional({"results"});
  auto args = parse_or_usage(options, argc, argv);
  if (args.count("help")) {
    std::cout << options.help({""});
    return 0;
  }
  const auto files = args.count("results") ? args["results"].as<std::vector<std::string>>() : std::vector<std::string>{};
  if (files.size() != 1) throw UsageError(std::string(argv[0]) + ": expected one results file, e.g. results/runs/tiny.h5");
  verify::VerifyOptions o;
  o.fraction = args["fraction"].as<double>();
  if (!(o.fraction > 0 && o.fraction <= 1)) throw UsageError(std::string(argv[0]) + ": --fraction must be in (0, 1]");
  o.seed = args["seed"].as<uint64_t>();
  o.all = args.count("all") > 0 || args.count("detection") > 0;
  if (args.count("checkpoints")) o.checkpoint_dir = args["checkpoints"].as<std::string>();
  if (args.count("set")) o.sets = args["set"].as<std::vector<std::string>>();
  const std::vector<double> ps = args.count("detection") ? parse_fractions(args["detection"].as<std::string>()) : std::vector<double>{};
  const int seeds = args["seeds"].as<int>();
  if (seeds < 1) throw UsageError(std::string(argv[0]) + ": --seeds must be at least 1");

  coll::MpiSession mpi(&argc, &argv, false);
  coll::Communicator world(MPI_COMM_WORLD, netem::uniform_profile(1, 0, 0), netem::ClockKind::kWall);
  const verify::Commitment w = verify::Commitment::read(files[0]);
  std::printf("verify %s: %lld steps, segments of %d, root %s, threads %d, mode %s, traces %s, %zu bytes committed per step\n",
              files[0].c_str(), static_cast<long long>(w.last_step() - w.first_step), w.segment, verify::hex(w.root()).c_str(),
              w.threads, w.mode.c_str(), w.trace ? "on" : "off", w.bytes_per_step());
  print_cost(files[0], w);
  std::cout << std::flush;
  const verify::VerifyReport r = verify::verify_run(files[0], o, world, std::cout);
  print_summary(r, o.all ? 1.0 : o.fraction, o.seed);
  print_row(r);
  if (!ps.empty()) print_detection(r, ps, seeds, args.count("plot") ? args["plot"].as<std::string>() : "");
  return r.caught() ? 1 : 0;
}

}  // namespace dtb
