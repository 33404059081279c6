// dtbench sim: the step-time simulator (trainer/sim/). One config -> one step's breakdown;
// --sweep -> a table and a plot; --preset article -> the article's arithmetic. No MPI.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <iostream>
#include <optional>

#include "cli/cli_common.hpp"
#include "cli/commands.hpp"
#include "cli/sim_args.hpp"
#include "profile.hpp"
#include "provenance.hpp"
#include "sim/privacy_costs.hpp"
#include "sim/article.hpp"
#include "sim/device.hpp"
#include "sim/fault_run.hpp"
#include "sim/format.hpp"
#include "sim/heatmap.hpp"
#include "sim/paths.hpp"
#include "sim/plot.hpp"
#include "sim/report.hpp"
#include "sim/results.hpp"
#include "sim/sim_config.hpp"
#include "sim/simulator.hpp"
#include "sim/sweep.hpp"

namespace dtb {
namespace {

using sim::SweepPoint;

void add_options(cxxopts::Options& options) {
  options.add_options()
      ("preset", "configs/sim/NAME.yaml as the first config, or 'article' for the article's table",
       cxxopts::value<std::string>(), "NAME")
      ("net", "network profile (same as --set net.profile=FILE)", cxxopts::value<std::string>(), "FILE")
      ("device", "device profile (same as --set device.profile=NAME)", cxxopts::value<std::string>(), "NAME")
      ("sweep", "one key over values: KEY=v1,v2,... or KEY=lo:hi:logN|linN, e.g. net.bandwidth=100Mbps:400Gbps:log20; "
                "a second --sweep draws one curve per value of its key",
       cxxopts::value<std::string>(), "KEY=SPEC")
      ("mark", "labelled points on the sweep's plot: KEY=v1,v2,... (e.g. net.profile=A.yaml,B.yaml)",
       cxxopts::value<std::string>(), "KEY=LIST")
      ("metric", "what the sweep's plot shows: step, slowdown, tokens or mfu",
       cxxopts::value<std::string>()->default_value("step"), "M")
      ("plot", "the sweep's figure, .svg or .png (default: beside the results file)", cxxopts::value<std::string>(),
       "FILE")
      ("out", "HDF5 results (default results/runs/sim-<name>-<time>.h5; 'none' = no file)",
       cxxopts::value<std::string>(), "FILE")
      ("privacy", "also the step with DP-SGD, secure aggregation, and HE / MPC / ZK from the literature (issue 16)")
      ("h,help", "print this help");
  add_config_options(options);
}

std::string option_or(const cxxopts::ParseResult& args, const char* key, const std::string& fallback) {
  return args.count(key) ? args[key].as<std::string>() : fallback;
}

}  // namespace

Config sim_config_from_args(const cxxopts::ParseResult& args) {
  Config c(sim::sim_schema());
  if (args.count("preset")) c.merge_file(sim::find_named(args["preset"].as<std::string>(), "configs/sim", "--preset", "preset"));
  if (args.count("config"))
    for (const auto& f : args["config"].as<std::vector<std::string>>()) c.merge_file(f);
  if (args.count("net")) c.set_value("net.profile", args["net"].as<std::string>(), "--net");
  if (args.count("device")) c.set_value("device.profile", args["device"].as<std::string>(), "--device");
  if (args.count("set"))
    for (const auto& s : args["set"].as<std::vector<std::string>>()) c.set(s);
  return c;
}

namespace {

struct Metric {
  const char* name;
  const char* label;
  double (*get)(const sim::SimResult&);
};
const Metric kMetrics[] = {
    {"step", "step time (s)", [](const sim::SimResult& r) { return r.time.step; }},
    {"slowdown", "slowdown vs free communication (x)", [](const sim::SimResult& r) { return r.slowdown(); }},
    {"tokens", "tokens/s", [](const sim::SimResult& r) { return r.tokens_per_s(); }},
    {"mfu", "MFU", [](const sim::SimResult& r) { return r.mfu(); }},
};

const Metric& find_metric(const std::string& name) {
  for (const Metric& m : kMetrics)
    if (name == m.name) return m;
  throw UsageError("--metric '" + name + "': allowed: step, slowdown, tokens, mfu");
}

// x in the plot's unit: Gbps for rates, ms for delays.
double plot_x(sim::ValueKind kind, double x) {
  return kind == sim::ValueKind::kBandwidth ? x / 1e9 : kind == sim::ValueKind::kDuration ? x * 1e3 : x;
}

// The base config in one line, the swept keys named for what they are on the plot:
// "gpt3-xl (1.42B), DP [x] x PP 8 x TP 1, V100 SXM2 32GB, GPipe, net.algo [curves]".
std::string setting_text(const sim::SimSettings& s, const sim::SimResult& r, const std::string& x_key,
                         const std::string& curves_key) {
  auto value = [&](const char* key, const std::string& text) {
    return key == x_key ? std::string("[x]") : key == curves_key ? std::string("[curves]") : text;
  };
  return s.name + " (" + sim::format_count(r.params) + "), DP " + value("parallel.dp", std::to_string(s.grid.dp)) +
         " x PP " + value("parallel.pp", std::to_string(s.grid.pp)) + " x TP " +
         value("parallel.tp", std::to_string(s.grid.tp)) + ", " + value("device.profile", r.device_name) + ", " +
         value("parallel.schedule", s.schedule == par::ScheduleKind::kGPipe ? "GPipe" : "1F1B") + ", net.algo " +
         value("net.algo", sim::algo_name(s.dp_algo));
}

sim::Plot make_plot(const sim::SimSettings& s, const sim::SweepAxis& axis, const std::string& curves_key,
                    const Metric& metric, const sim::SimRun& run) {
  const std::vector<SweepPoint>& points = run.points;
  sim::Plot p;
  const sim::SimResult& r = points.front().result;
  p.title = setting_text(s, r, axis.key, curves_key);
  p.xlabel = axis.key + (axis.kind == sim::ValueKind::kBandwidth   ? " (Gbps)"
                         : axis.kind == sim::ValueKind::kDuration ? " (ms)"
                                                                  : "");
  p.ylabel = metric.label;
  const auto [x_lo, x_hi] = std::minmax_element(axis.x.begin(), axis.x.end());
  p.log_x = axis.kind == sim::ValueKind::kBandwidth || axis.kind == sim::ValueKind::kDuration ||
            (axis.kind == sim::ValueKind::kNumber && *x_lo > 0 && *x_hi / *x_lo >= 20);
  p.text_x = axis.kind == sim::ValueKind::kText;
  const std::string net = s.net_path.empty() ? "no limits" : r.net_name;
  p.marks_name = run.mark_key + (axis.kind == sim::ValueKind::kBandwidth ? " (at its slowest link used)" : "");
  double lo = INFINITY, hi = 0;
  for (const SweepPoint& pt : points) {
    if (p.curves.empty() || p.curves.back().name != pt.series)
      p.curves.push_back({pt.series, {}});
    const double y = metric.get(pt.result);
    p.curves.back().points.push_back({plot_x(axis.kind, pt.x), y, pt.label});
    lo = std::min(lo, y), hi = std::max(hi, y);
  }
  for (sim::Curve& c : p.curves)
    c.name = curves_key.empty() ? net + ", " + axis.key + " = x" : curves_key + " = " + c.name;
  for (const SweepPoint& m : run.marks) p.marks.push_back({plot_x(axis.kind, m.x), metric.get(m.result), m.label});
  p.log_y = lo > 0 && hi / lo > 5 && !(p.text_x && p.curves.size() == 1);  // bars stand on zero
  return p;
}

// A two-key sweep as a heat map: the first key across, the second up (run_sweep's points
// come one row of the first key per value of the second).
sim::HeatMap make_heatmap(const sim::SimSettings& s, const sim::SweepAxis& axis, const sim::SweepAxis& by,
                          const Metric& metric, const sim::SimRun& run) {
  sim::HeatMap m{setting_text(s, run.points.front().result, axis.key, by.key), axis.key, by.key, metric.label, {}, {}, {}};
  const size_t nx = axis.values.size();
  for (size_t i = 0; i < run.points.size(); ++i) {
    const SweepPoint& pt = run.points[i];
    if (i < nx) m.x_values.push_back(pt.label);
    if (i % nx == 0) m.y_values.push_back(pt.series), m.z.emplace_back();
    m.z.back().push_back(metric.get(pt.result));
  }
  return m;
}

// FIGURE's name without its extension, then -heatmap: two.svg -> two-heatmap(.svg, .png, .dat).
std::string heatmap_stem(const std::string& figure) {
  const std::filesystem::path p(figure);
  return (p.parent_path() / (p.stem().string() + "-heatmap")).string();
}

int run_article(const cxxopts::ParseResult& args, const std::string& command_line) {
  if (args.count("sweep") || args.count("mark") || args.count("config") || args.count("set"))
    throw UsageError("--preset article: a fixed table; it takes no --sweep, --mark, --config or --set");
  const std::vector<sim::ArticleRow> rows = sim::article_rows();
  sim::print_article(std::cout, rows);
  const std::string out = option_or(args, "out", "results/runs/sim-article-" + utc_file_stamp() + ".h5");
  if (out != "none") {
    sim::write_article_results(out, command_line, rows);
    std::cout << "# results: " << out << "\n";
  }
  return 0;
}

// The --sweep options in the order given: one key (a curve) or two (one curve per value of
// the second).
std::vector<std::string> sweep_specs(const cxxopts::ParseResult& args) {
  std::vector<std::string> specs;
  for (const auto& kv : args.arguments())
    if (kv.key() == "sweep") specs.push_back(kv.value());
  if (specs.size() > 2)
    throw UsageError("--sweep given " + std::to_string(specs.size()) +
                     " times: one key (a curve) or two (one curve per value of the second)");
  return specs;
}

void print_points(const std::string& key, const std::string& curves_key, const std::vector<SweepPoint>& points) {
  for (size_t i = 0; i < points.size();) {
    size_t end = i;
    while (end < points.size() && points[end].series == points[i].series) ++end;
    if (!curves_key.empty()) std::cout << "\n# " << curves_key << " = " << points[i].series << "\n";
    sim::print_sweep(std::cout, key, std::vector<SweepPoint>(points.begin() + long(i), points.begin() + long(end)));
    i = end;
  }
}

void run_sweep(const cxxopts::ParseResult& args, const Config& base, const sim::SimSettings& s,
               const std::string& plot_path, sim::SimRun& run) {
  const Metric& metric = find_metric(args["metric"].as<std::string>());
  const std::vector<std::string> specs = sweep_specs(args);
  const sim::SweepAxis axis = sim::parse_axis(base, specs[0], "--sweep");
  std::optional<sim::SweepAxis> by;
  if (specs.size() == 2) {
    by = sim::parse_axis(base, specs[1], "--sweep");
    if (by->key == axis.key) throw UsageError("--sweep " + axis.key + " given twice; a second --sweep takes another key");
    if (args.count("mark")) throw UsageError("--mark places points on a one-key sweep; leave out the second --sweep");
  }
  run.sweep_key = axis.key;
  run.series_key = by ? by->key : "";
  run.points = by ? sim::run_sweep(base, axis, *by) : sim::run_sweep(base, axis);
  if (args.count("mark")) {
    const sim::SweepAxis marks = sim::parse_axis(base, args["mark"].as<std::string>(), "--mark");
    run.mark_key = marks.key;
    run.marks = sim::run_marks(base, marks, axis);
  }
  std::cout << "# sweep of " << axis.key << " over " << axis.values.size() << " values"
            << (by ? ", one table and curve per value of " + by->key + " (" + std::to_string(by->values.size()) + ")"
                   : std::string(""))
            << ": " << setting_text(s, run.points.front().result, axis.key, run.series_key) << "\n";
  print_points(axis.key, run.series_key, run.points);
  if (!run.marks.empty()) {
    std::cout << "\n# marks (" << run.mark_key << "), placed at x = "
              << (axis.kind == sim::ValueKind::kBandwidth ? "the slowest link they use" : axis.key) << "\n";
    sim::print_sweep(std::cout, run.mark_key, run.marks);
  }
  std::cout << sim::write_plot(make_plot(s, axis, run.series_key, metric, run), plot_path) << "\n";
  if (by) std::cout << sim::write_heatmap(make_heatmap(s, axis, *by, metric, run), heatmap_stem(plot_path)) << "\n";
}

}  // namespace

int cmd_sim(int argc, char** argv) {
  std::string command_line;
  for (int i = 0; i < argc; ++i) command_line += (i ? " " : "") + std::string(argv[i]);
  cxxopts::Options options(argv[0], "Step-time simulator: one training step of the 3D-parallel trainer on paper.");
  options.custom_help("[--preset NAME] [--config FILE]... [--set KEY=VALUE]... [--sweep KEY=SPEC] [OPTIONS]");
  add_options(options);
  auto args = parse_or_usage(options, argc, argv);
  if (args.count("help")) {
    std::cout << help_with_keys(options, sim::sim_help_schema())
              << "  (the trainer's other keys, data.*, optim.*, train.steps, ..., are accepted and ignored)\n\n"
              << " Presets (configs/sim/): " << sim::yaml_stems("configs/sim") << ", article\n"
              << " Devices (configs/devices/): " << sim::shipped_devices() << "\n";
    return 0;
  }
  if (!args.unmatched().empty())
    throw UsageError(std::string(argv[0]) + ": unexpected argument '" + args.unmatched()[0] + "'; see " + argv[0] +
                     " --help");
  if (option_or(args, "preset", "") == "article") return run_article(args, command_line);
  if (args.count("mark") && !args.count("sweep")) throw UsageError("--mark needs a --sweep to place its points on");

  const auto start = std::chrono::steady_clock::now();
  const Config base = sim_config_from_args(args);
  const sim::SimSettings s = sim::sim_settings(base);
  const std::string stem = "results/runs/sim-" + s.name + "-" + utc_file_stamp();
  const std::string out = option_or(args, "out", stem + ".h5");
  sim::SimRun run{command_line, option_or(args, "preset", ""), base.to_yaml(), sim::find_file(s.net_path), "", "", "", {}, {}};
  if (args.count("sweep")) {
    const std::string plot = option_or(args, "plot", (out == "none" ? stem : out.substr(0, out.rfind('.'))) + ".svg");
    run_sweep(args, base, s, plot, run);
  } else {
    const sim::SimInputs in = sim::load_inputs(s);
    if (const std::string w = netem::single_site_warning(in.profile); !w.empty()) std::cout << "# " << w << "\n";
    run.points.push_back({s.name, 0, sim::simulate(s, in)});
    sim::print_result(std::cout, s, run.points.front().result);
    if (args.count("privacy"))
      sim::print_privacy_costs(std::cout, run.points.front().result, sim::privacy_costs(s, run.points.front().result));
    if (!in.profile.faults.empty()) {  // faults.outages, .bandwidth, .burst_*: a whole run (sim/fault_run.hpp)
      const int steps = int(base.get_int("train.steps"));
      const sim::FaultRun f = sim::simulate_fault_run(s, in, steps);
      std::cout << "# link faults: " << steps << " steps (train.steps) take " << sim::format_seconds(f.seconds) << ", "
                << sim::format_seconds(f.without) << " without them\n";
    }
  }
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::cout << "# simulated " << run.points.size() + run.marks.size() << " configuration"
            << (run.points.size() + run.marks.size() == 1 ? "" : "s") << " in " << sim::format_seconds(seconds) << "\n";
  if (out != "none") {
    sim::write_sim_results(out, run);
    std::cout << "# results: " << out << "\n";
  }
  return 0;
}

}  // namespace dtb
