#include "exp/report.hpp"

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <limits>
#include <numeric>
#include <ostream>
#include <sstream>

#include "exp/experiment.hpp"
#include "exp/gnuplot.hpp"
#include "exp/result_file.hpp"
#include "sim/format.hpp"
#include "usage_error.hpp"

namespace dtb::exp {
namespace {

namespace fs = std::filesystem;
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

// ------------------------------------------------------------------ reading the folder

// The experiment that wrote the folder, when `dtbench run` left its copy there.
struct Folder {
  std::string dir, title, description, baseline_net = kDefaultBaselineNet;
  std::vector<std::string> run_order;
  std::string manifest_note;  // why the copy could not be used, if so
  std::vector<ResultFile> results;
  std::vector<std::string> skipped;  // one message per unreadable file
};

void read_manifest(Folder& f) {
  const std::string path = (fs::path(f.dir) / "experiment.yaml").string();
  f.title = fs::path(f.dir).filename().string();
  if (!fs::exists(path)) return;
  try {
    const Experiment e = parse_experiment(path);
    f.title = e.name;
    f.description = e.description;
    f.baseline_net = e.baseline_net;
    for (const RunFields& r : e.runs) f.run_order.push_back(r.name);
  } catch (const UsageError& e) {
    f.manifest_note = std::string("experiment.yaml not used: ") + e.what();
  }
}

std::vector<std::string> result_paths(const std::string& dir) {
  std::vector<std::string> paths;
  for (const auto& entry : fs::directory_iterator(dir)) {
    const std::string name = entry.path().filename().string();
    // Temporaries of a result being written (h5file.hpp) are not results yet.
    if (entry.path().extension() == ".h5" && name.find(".tmp-") == std::string::npos) paths.push_back(entry.path().string());
  }
  std::sort(paths.begin(), paths.end());
  return paths;
}

// "- NAME: why" for each run `dtbench run` recorded as failed (<run>.failed, runner.cpp).
std::string failed_runs(const std::string& dir) {
  std::vector<std::string> lines;
  for (const auto& entry : fs::directory_iterator(dir))
    if (entry.path().extension() == ".failed") {
      std::ifstream in(entry.path());
      std::string why;
      std::getline(in, why);
      lines.push_back("- " + entry.path().stem().string() + ": " + why + "\n");
    }
  std::sort(lines.begin(), lines.end());
  std::string out;
  for (const std::string& l : lines) out += l;
  return out;
}

// The experiment's runs in its order, then any other results by name.
void order_results(Folder& f) {
  auto rank = [&](const ResultFile& r) {
    const auto it = std::find(f.run_order.begin(), f.run_order.end(), r.name);
    return it - f.run_order.begin();
  };
  std::stable_sort(f.results.begin(), f.results.end(),
                   [&](const ResultFile& a, const ResultFile& b) { return rank(a) < rank(b); });
}

Folder read_folder(const std::string& dir, std::ostream& err) {
  if (!fs::is_directory(dir)) throw UsageError(dir + ": not a folder (dtbench report takes a results folder, e.g. results/quickstart)");
  Folder f;
  f.dir = dir;
  read_manifest(f);
  for (const std::string& path : result_paths(dir)) {
    try {
      f.results.push_back(read_result(path));
    } catch (const UsageError& e) {
      f.skipped.push_back(e.what());
      err << "warning: skipped " << e.what() << "\n";
    }
  }
  if (f.results.empty())
    throw UsageError(dir + ": no readable dtbench result (*.h5)" +
                     (f.skipped.empty() ? std::string("") : "; " + f.skipped.front()));
  order_results(f);
  return f;
}

// ------------------------------------------------------------------ numbers of a run

std::string config_value(const TrainData& t, const std::string& key) {
  const auto it = t.config.find(key);
  return it == t.config.end() ? "" : it->second;
}

double config_number(const TrainData& t, const std::string& key) {
  const std::string v = config_value(t, key);
  char* end = nullptr;
  const double x = v.empty() ? kNaN : std::strtod(v.c_str(), &end);
  return end && *end == '\0' ? x : kNaN;
}

double mean(const std::vector<double>& v) {
  return v.empty() ? kNaN : std::accumulate(v.begin(), v.end(), 0.0) / double(v.size());
}

int world_of(const TrainData& t) {
  double w = 1;
  for (const char* k : {"parallel.dp", "parallel.pp", "parallel.tp"})
    if (const double v = config_number(t, k); std::isfinite(v)) w *= v;
  return int(w);
}

// "DP4", "DP2 PP2 1f1b m=4", "1 rank".
std::string layout_text(const TrainData& t) {
  std::string out;
  for (const auto& [key, label] : {std::pair{"parallel.dp", "DP"}, {"parallel.pp", "PP"}, {"parallel.tp", "TP"}}) {
    const std::string v = config_value(t, key);
    if (!v.empty() && v != "1") out += (out.empty() ? "" : " ") + std::string(label) + v;
  }
  if (config_value(t, "parallel.pp").size() && config_value(t, "parallel.pp") != "1")
    out += " " + config_value(t, "parallel.schedule") + " m=" + config_value(t, "parallel.microbatches");
  return out.empty() ? "1 rank" : out;
}

// The profile's file stem; "unshaped" for none. Results without the per-rank record come
// from the plain single-rank trainer, which emulates no network and times the wall.
std::string network_text(const TrainData& t) {
  if (!t.has_ranks) return "none";
  const std::string p = config_value(t, "net.profile");
  return p.empty() ? "unshaped" : fs::path(p).stem().string();
}

// Runs compare when everything but the network (and where output goes) is the same.
std::string comparison_key(const TrainData& t) {
  static const char* const kIgnored[] = {"net.profile", "train.results", "train.checkpoint", "train.checkpoint_every",
                                         "train.log_every"};
  std::string key;
  for (const auto& [k, v] : t.config)
    if (std::find(std::begin(kIgnored), std::end(kIgnored), k) == std::end(kIgnored)) key += k + "=" + v + "\n";
  return key;
}

struct TrainNumbers {
  double step_s = kNaN, tokens_per_s = kNaN, mfu = kNaN, comm_share = kNaN, exposed_s = kNaN;
  double bytes = kNaN, bytes_inter = kNaN, slowdown = kNaN, final_loss = kNaN;
};

// MFU as the trainer's step line counts it: achieved FLOP/s over world x the peak per rank
// (the one the run recorded; files without it: from the config).
double mfu_of(const TrainData& t, double tokens_per_s) {
  double peak = t.mfu_peak_gflops;
  if (!(peak > 0)) peak = config_number(t, "device.mfu_peak_gflops");
  if (!(peak > 0)) peak = config_number(t, "device.peak_gflops");
  if (!(peak > 0) || !(t.flops_per_token > 0)) return kNaN;
  return t.flops_per_token * tokens_per_s / (peak * 1e9 * world_of(t));
}

TrainNumbers numbers_of(const TrainData& t) {
  TrainNumbers n;
  n.step_s = mean(t.time_ms) / 1e3;
  n.tokens_per_s = config_number(t, "train.batch_size") * config_number(t, "train.seq_len") / n.step_s;
  if (t.has_ranks) {  // the plain single-rank trainer emulates no device: no MFU against one
    n.mfu = mfu_of(t, n.tokens_per_s);
    n.comm_share = t.step_time_s > 0 ? t.comm_s / t.step_time_s : kNaN;
    n.exposed_s = t.exposed_s;
    n.bytes = t.bytes_per_step;
    n.bytes_inter = t.bytes_inter_per_step;
  }
  if (!t.loss.empty()) n.final_loss = t.loss.back();
  return n;
}

// Slowdown against the run with the same comparison key on the baseline profile.
void add_slowdowns(const Folder& f, const std::vector<const ResultFile*>& runs, std::vector<TrainNumbers>& numbers) {
  const std::string baseline = fs::path(f.baseline_net).stem().string();
  for (size_t i = 0; i < runs.size(); ++i)
    for (size_t j = 0; j < runs.size(); ++j)
      if (network_text(runs[j]->train) == baseline &&
          comparison_key(runs[j]->train) == comparison_key(runs[i]->train) && numbers[j].step_s > 0)
        numbers[i].slowdown = numbers[i].step_s / numbers[j].step_s;
}

// ------------------------------------------------------------------ tables

std::string or_na(double v, std::string (*format)(double)) { return std::isfinite(v) ? format(v) : "n/a"; }
std::string fixed4(double v) { return sim::format_fixed(v, 4); }
std::string times(double v) { return sim::format_fixed(v, 2) + "x"; }

struct Table {
  std::vector<std::string> headers;
  std::vector<bool> right;  // numbers are right-aligned
  std::vector<std::vector<std::string>> rows;
};

// A Markdown table whose columns line up, so the same text reads well on a terminal.
std::string markdown(const Table& t) {
  std::vector<size_t> width(t.headers.size(), 3);
  for (size_t c = 0; c < t.headers.size(); ++c) {
    width[c] = std::max(width[c], t.headers[c].size());
    for (const auto& row : t.rows) width[c] = std::max(width[c], row[c].size());
  }
  auto line = [&](const std::vector<std::string>& cells) {
    std::string out = "|";
    for (size_t c = 0; c < cells.size(); ++c) {
      const std::string pad(width[c] - cells[c].size(), ' ');
      out.append(" ").append(t.right[c] ? pad : "").append(cells[c]).append(t.right[c] ? "" : pad).append(" |");
    }
    return out + "\n";
  };
  std::string out = line(t.headers) + "|";
  for (size_t c = 0; c < t.headers.size(); ++c)
    out += std::string(t.right[c] ? " " : " :") + std::string(width[c] - 1, '-') + (t.right[c] ? ": |" : " |");
  out += "\n";
  for (const auto& row : t.rows) out += line(row);
  return out;
}

std::vector<const ResultFile*> of_kind(const Folder& f, const std::string& kind) {
  std::vector<const ResultFile*> out;
  for (const ResultFile& r : f.results)
    if (r.kind == kind) out.push_back(&r);
  return out;
}

Table train_table(const Folder& f, const std::vector<const ResultFile*>& runs) {
  std::vector<TrainNumbers> numbers;
  for (const ResultFile* r : runs) numbers.push_back(numbers_of(r->train));
  add_slowdowns(f, runs, numbers);
  Table t{{"run", "layout", "network", "clock", "step time", "tokens/s", "MFU", "comm share", "exposed comm",
           "sent/step", "across sites/step", "slowdown", "final loss"},
          {false, false, false, false, true, true, true, true, true, true, true, true, true},
          {}};
  for (size_t i = 0; i < runs.size(); ++i) {
    const TrainData& d = runs[i]->train;
    const TrainNumbers& n = numbers[i];
    const std::string clock = d.has_ranks ? config_value(d, "net.clock") : "wall";
    t.rows.push_back({runs[i]->name, layout_text(d), network_text(d), clock.empty() ? "n/a" : clock,
                      or_na(n.step_s, sim::format_seconds), or_na(n.tokens_per_s, sim::format_count),
                      or_na(n.mfu, sim::format_percent), or_na(n.comm_share, sim::format_percent),
                      or_na(n.exposed_s, sim::format_seconds), or_na(n.bytes, sim::format_bytes),
                      or_na(n.bytes_inter, sim::format_bytes),
                      or_na(n.slowdown, times), or_na(n.final_loss, fixed4)});
  }
  return t;
}

// 1024 -> "1K", 4194304 -> "4M": sizes as `dtbench coll -b/-e` takes them.
std::string size_text(double bytes) {
  const char* units[] = {"", "K", "M", "G"};
  int u = 0;
  while (u < 3 && bytes >= 1024 && std::fmod(bytes, 1024) == 0) bytes /= 1024, ++u;
  return sim::format_fixed(bytes, 0) + units[u];
}

Table coll_table(const std::vector<const ResultFile*>& runs) {
  Table t{{"run", "op", "algo", "codec", "network", "clock", "ranks", "sizes", "time (largest)", "busbw (largest)",
           "busbw (best)"},
          {false, false, false, false, false, false, true, true, true, true, true},
          {}};
  for (const ResultFile* r : runs) {
    const CollData& c = r->coll;
    const bool any = !c.bytes.empty();
    const double best = any ? *std::max_element(c.busbw_GBps.begin(), c.busbw_GBps.end()) : kNaN;
    t.rows.push_back({r->name, c.op, c.algo, c.codec, c.net_name, c.clock, std::to_string(c.world),
                      any ? size_text(c.bytes.front()) + "-" + size_text(c.bytes.back()) : "none",
                      any ? sim::format_seconds(c.time_us.back() * 1e-6) : "n/a",
                      any ? sim::format_fixed(c.busbw_GBps.back(), 3) + " GB/s" : "n/a",
                      any ? sim::format_fixed(best, 3) + " GB/s" : "n/a"});
  }
  return t;
}

Table files_table(const Folder& f) {
  Table t{{"file", "kind", "commit", "host", "created (UTC)"}, {false, false, false, false, false}, {}};
  for (const ResultFile& r : f.results)
    t.rows.push_back({fs::path(r.path).filename().string(), r.kind, r.git_commit, r.host, r.created_utc});
  return t;
}

// ------------------------------------------------------------------ figures

StackedBars breakdown_chart(const std::vector<const ResultFile*>& runs) {
  StackedBars b{"Where a step's time goes (mean per rank)", "ms per step", {}, {}, {}};
  for (const StepPart& p : step_parts()) b.parts.push_back(p.label);
  const bool any_plain = std::any_of(runs.begin(), runs.end(), [](const ResultFile* r) { return !r->train.has_ranks; });
  if (any_plain) b.parts.push_back("step (no per-rank record)");
  for (const ResultFile* r : runs) {
    b.bars.push_back(r->name);
    std::vector<double> ms(b.parts.size(), 0.0);
    for (size_t i = 0; i < r->train.parts.size(); ++i) ms[i] = r->train.parts[i] * 1e3;
    if (!r->train.has_ranks) ms.back() = mean(r->train.time_ms);
    b.values.push_back(ms);
  }
  return b;
}

// The same bars as shares of each run's step: runs whose steps differ by 1000x still show
// what their time is made of.
StackedBars share_chart(StackedBars ms) {
  ms.title = "Where a step's time goes (share of the step)";
  ms.ylabel = "% of the step";
  for (std::vector<double>& bar : ms.values) {
    const double total = std::accumulate(bar.begin(), bar.end(), 0.0);
    for (double& v : bar) v = total > 0 ? 100 * v / total : 0;
  }
  return ms;
}

LineChart loss_chart(const std::vector<const ResultFile*>& runs) {
  LineChart c{"Training loss", "step", "loss (nats)", false, false, {}, {}};
  for (const ResultFile* r : runs) {
    Series s{r->name, {}};
    for (size_t i = 0; i < r->train.step.size(); ++i) s.points.emplace_back(r->train.step[i] + 1, r->train.loss[i]);
    c.series.push_back(s);
  }
  return c;
}

LineChart busbw_chart(const std::vector<const ResultFile*>& runs) {
  LineChart c{"Bus bandwidth against buffer size", "buffer size (bytes)", "busbw (GB/s)", true, true, {}, {}};
  std::vector<double> sizes;
  for (const ResultFile* r : runs) {
    Series s{r->name + " (" + r->coll.algo + ", " + r->coll.net_name + ")", {}};
    for (size_t i = 0; i < r->coll.bytes.size(); ++i) s.points.emplace_back(r->coll.bytes[i], r->coll.busbw_GBps[i]);
    sizes.insert(sizes.end(), r->coll.bytes.begin(), r->coll.bytes.end());
    c.series.push_back(s);
  }
  std::sort(sizes.begin(), sizes.end());
  sizes.erase(std::unique(sizes.begin(), sizes.end()), sizes.end());
  for (double s : sizes) c.xtics.emplace_back(s, size_text(s));
  return c;
}

// ------------------------------------------------------------------ the document

const char* const kTrainColumns =
    "Step time: mean over the run's steps (virtual or wall clock, as the run's `clock`). "
    "Tokens/s: global batch x sequence / step time. MFU: (6N + 6LCT) FLOPs per token x tokens/s over "
    "ranks x the device peak per rank (n/a without a device peak). Comm share: TP + PP + DP (all of it, "
    "hidden or not) + other communication over the step, mean over ranks. Exposed comm: the communication "
    "compute waited for, per rank and step. Sent: bytes sent per step, all ranks together (payload); across "
    "sites: the part sent between sites (0 on a one-site profile such as centralized-25g; all of it on "
    "decentralized-1g, where every rank is a site of its own). "
    "Slowdown: step time over that of the run with the same settings (layout, clock, device, steps, ...) "
    "on the baseline profile; n/a where the folder holds no such run (a run on another clock or device "
    "is never the baseline: its step time measures something else). On the wall clock compute runs on "
    "this host's CPU, not on an emulated device: wall-clock step times and slowdowns depend on the host "
    "and its load. "
    "Final loss: training loss of the last step. Other n/a: the file does not record it (results of the "
    "plain single-rank trainer, `launcher: direct`, have no per-rank accounting; their network is none "
    "and their clock the wall).";

void write_atomically(const std::string& path, const std::string& text) {
  const std::string tmp = path + ".tmp-" + std::to_string(::getpid());
  std::ofstream(tmp, std::ios::binary) << text;
  fs::rename(tmp, path);
}

struct Figures {
  std::vector<std::string> lines;  // what was drawn, for the terminal
  std::string breakdown, share, loss, busbw;  // markdown image lines ("" when not drawn)
};

Figures draw_figures(const Folder& f, const std::vector<const ResultFile*>& train,
                     const std::vector<const ResultFile*>& coll) {
  Figures out;
  auto add = [&](const std::string& text, const char* name, const char* alt, std::string& md) {
    out.lines.push_back(draw(text, f.dir, name));
    md = "![" + std::string(alt) + "](" + name + ".svg)\n";
  };
  if (!train.empty()) {
    const StackedBars bars = breakdown_chart(train);
    add(script(bars, "breakdown.svg"), "breakdown", "Step-time breakdown per run", out.breakdown);
    add(script(share_chart(bars), "breakdown-share.svg"), "breakdown-share", "Step-time shares per run", out.share);
    add(script(loss_chart(train), "loss.svg"), "loss", "Training loss per run", out.loss);
  }
  if (!coll.empty()) add(script(busbw_chart(coll), "busbw.svg"), "busbw", "busbw against size", out.busbw);
  return out;
}

std::string document(const Folder& f, const std::string& train_md, const std::string& coll_md, const Figures& fig) {
  std::ostringstream d;
  d << "# " << f.title << "\n\n";
  if (!f.description.empty()) d << f.description << "\n\n";
  d << "Written by `dtbench report` from the " << f.results.size() << " result file(s) in this folder"
    << (f.run_order.empty() ? "" : " (runs in the order of `experiment.yaml`, the experiment that made them)")
    << ". Slowdowns are against the `" << fs::path(f.baseline_net).stem().string() << "` profile.\n\n";
  if (!f.manifest_note.empty()) d << "Note: " << f.manifest_note << "\n\n";
  if (const std::string failed = failed_runs(f.dir); !failed.empty())
    d << "## Failed runs\n\nTheir results, where any, hold the steps before the failure.\n\n" << failed << "\n";
  if (!train_md.empty())
    d << "## Training runs\n\n" << train_md << "\n" << kTrainColumns << "\n\n" << fig.breakdown << "\n" << fig.share << "\n"
      << fig.loss << "\n";
  if (!coll_md.empty())
    d << "## Collective benchmarks (`dtbench coll`)\n\n" << coll_md << "\nTime: mean per iteration of the slowest rank. "
      << "busbw: bytes / time x the operation's bus factor (nccl-tests' definition).\n\n" << fig.busbw << "\n";
  d << "## Files\n\n" << markdown(files_table(f));
  if (!f.skipped.empty()) {
    d << "\nSkipped (not readable dtbench train or coll results):\n\n";
    for (const std::string& s : f.skipped) d << "- " << s << "\n";
  }
  return d.str();
}

}  // namespace

ReportOutcome write_report(const std::string& dir, std::ostream& out, std::ostream& err) {
  const Folder f = read_folder(dir, err);
  const std::vector<const ResultFile*> train = of_kind(f, "train"), coll = of_kind(f, "coll");
  const std::string train_md = train.empty() ? "" : markdown(train_table(f, train));
  const std::string coll_md = coll.empty() ? "" : markdown(coll_table(coll));
  const Figures fig = draw_figures(f, train, coll);
  ReportOutcome o{(fs::path(dir) / "report.md").string(), f.results.size(), f.skipped.size()};
  write_atomically(o.path, document(f, train_md, coll_md, fig));
  if (!train_md.empty()) out << "\nTraining runs (" << f.title << "):\n" << train_md;
  if (!coll_md.empty()) out << "\nCollective benchmarks:\n" << coll_md;
  out << "\nfigures:\n";
  for (const std::string& line : fig.lines) out << line << "\n";
  out << "report: " << o.path << std::endl;
  return o;
}

}  // namespace dtb::exp
