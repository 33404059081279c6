#include "exp/report.hpp"

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
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
#include "exp/runner.hpp"
#include "sim/format.hpp"
#include "train/train_config.hpp"
#include "usage_error.hpp"

namespace dtb::exp {
namespace {

namespace fs = std::filesystem;
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

// ------------------------------------------------------------------ reading the folder

// The experiment that wrote the folder, when `dtbench run` left its copy there.
// A run of the experiment that did not finish well: no readable result, or a result that
// stops before its last step (a run killed while it wrote its results as it went).
struct Unfinished {
  std::string name, status, why;  // status: "failed", "incomplete", "unfinished" or "not run"
};

struct Folder {
  std::string dir, title, description, baseline_net = kDefaultBaselineNet;
  double target_loss = kNaN;  // the experiment's `target_loss:`; NaN: not given
  std::vector<std::string> run_order;
  std::map<std::string, std::string> baseline_of;  // run -> its `baseline:` run
  std::string manifest_note;  // why the copy could not be used, if so
  std::vector<ResultFile> results;
  std::vector<std::string> skipped;  // one message per unreadable file
  std::map<std::string, std::string> skipped_by_run;  // the run a skipped <run>.h5 belongs to -> why
  std::vector<Unfinished> unfinished;
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
    f.target_loss = e.target_loss;
    for (const RunFields& r : e.runs) {
      f.run_order.push_back(r.name);
      if (const Value* b = r.scalar("baseline")) f.baseline_of[r.name] = b->text;
    }
  } catch (const UsageError& e) {
    f.manifest_note = std::string("experiment.yaml not used: ") + e.what();
  }
}

std::vector<std::string> result_paths(const std::string& dir) {
  std::vector<std::string> paths;
  for (const auto& entry : fs::directory_iterator(dir)) {
    const std::string name = entry.path().filename().string();
    // Temporaries of a result being written (h5file.hpp) are not results yet; the checkpoint
    // a stopped run leaves beside its result (train/outputs.hpp) is not one either.
    if (entry.path().extension() == ".h5" && name.find(".tmp-") == std::string::npos &&
        name.find("-checkpoint-step") == std::string::npos)
      paths.push_back(entry.path().string());
  }
  std::sort(paths.begin(), paths.end());
  return paths;
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

std::string log_text(const Folder& f, const std::string& run) {
  std::ifstream in(fs::path(f.dir) / (run + ".log"), std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

// A train result whose last step is short of train.steps: the run stopped early.
std::string short_of_steps(const ResultFile& r) {
  if (r.kind != "train" || r.train.step.empty()) return "";
  const auto it = r.train.config.find("train.steps");
  const double want = it == r.train.config.end() ? 0 : std::atof(it->second.c_str());
  const double done = r.train.step.back() + 1;
  if (!(done < want)) return "";
  return "its result stops after step " + sim::format_fixed(done, 0) + " of " + sim::format_fixed(want, 0);
}

// Why a run without a readable result did not finish, from its log.
Unfinished without_result(const Folder& f, const std::string& name) {
  if (!fs::exists(fs::path(f.dir) / (name + ".log"))) return {name, "not run", "no result and no log in this folder"};
  const LogVerdict v = verdict_in_log(log_text(f, name));
  if (v.ok) return {name, "failed", "its log says ok, but there is no result file"};
  if (v.written) return {name, "failed", v.why.empty() ? "no reason in " + name + ".log" : v.why};
  if (!v.why.empty()) return {name, "failed", v.why + " (no verdict in its log: the runner was stopped)"};
  return {name, "unfinished", "no result and no verdict in " + name + ".log: still running, or the runner was stopped"};
}

// The experiment's runs that did not finish well, with the reason the folder gives: the
// runner's verdict in <run>.log (or the child's last error line there), the reason the
// result could not be read, or a result short of its steps. A run with neither a result
// nor a log was not started here (dtbench run --only).
void find_unfinished(Folder& f) {
  for (const ResultFile& r : f.results)
    if (const std::string why = short_of_steps(r); !why.empty()) {
      const std::string said = verdict_in_log(log_text(f, r.name)).why;
      f.unfinished.push_back({r.name, "incomplete", said.empty() ? why : said + " (" + why + ")"});
    }
  for (const std::string& name : f.run_order) {
    const bool have = std::any_of(f.results.begin(), f.results.end(), [&](const ResultFile& r) { return r.name == name; });
    if (have) continue;
    Unfinished u = without_result(f, name);
    if (const auto it = f.skipped_by_run.find(name); it != f.skipped_by_run.end()) u.why += "; " + it->second;
    f.unfinished.push_back(u);
  }
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
      f.skipped_by_run[fs::path(path).stem().string()] = e.what();
      err << "warning: skipped " << e.what() << "\n";
    }
  }
  find_unfinished(f);
  const bool any_failed = std::any_of(f.unfinished.begin(), f.unfinished.end(),
                                      [](const Unfinished& u) { return u.status != "not run"; });
  if (f.results.empty() && !any_failed)
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

// The clock the run used (net.clock auto: by its world size); "" where the file has no net.clock.
std::string clock_of(const TrainData& t) {
  const std::string v = config_value(t, "net.clock");
  return v.empty() ? v : resolved_clock(v, world_of(t));
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

// The profile's file stem; "unshaped" for none. Results without the per-rank record
// (/ranks) come from trainers older than the one loop: they emulated no network.
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
    if (std::find(std::begin(kIgnored), std::end(kIgnored), k) == std::end(kIgnored))
      key += k + "=" + (k == "net.clock" ? clock_of(t) : v) + "\n";  // auto compares as the clock it was
  return key;
}

struct TrainNumbers {
  double step_s = kNaN, tokens_per_s = kNaN, mfu = kNaN, exposed_s = kNaN, exposed_share = kNaN, dp_hidden_s = kNaN;
  double bytes = kNaN, bytes_inter = kNaN, slowdown = kNaN, final_loss = kNaN, final_val_loss = kNaN;
  std::string baseline;  // the run the slowdown is against
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
  if (t.has_ranks) {  // older files without the per-rank record: no device model, no MFU
    n.mfu = mfu_of(t, n.tokens_per_s);
    n.exposed_s = t.exposed_s;
    n.exposed_share = t.step_time_s > 0 ? t.exposed_s / t.step_time_s : kNaN;
    n.dp_hidden_s = t.dp_hidden_s;
    n.bytes = t.bytes_per_step;
    n.bytes_inter = t.bytes_inter_per_step;
  }
  if (!t.loss.empty()) n.final_loss = t.loss.back();
  if (!t.val_loss.empty()) n.final_val_loss = t.val_loss.back();
  return n;
}

// Slowdown against the run's `baseline:` when the experiment names one, else against the
// run with the same comparison key on the baseline profile.
void add_slowdowns(const Folder& f, const std::vector<const ResultFile*>& runs, std::vector<TrainNumbers>& numbers) {
  const std::string baseline_net = fs::path(f.baseline_net).stem().string();
  for (size_t i = 0; i < runs.size(); ++i) {
    const auto named = f.baseline_of.find(runs[i]->name);
    for (size_t j = 0; j < runs.size(); ++j) {
      const bool is_baseline = named != f.baseline_of.end()
                                   ? runs[j]->name == named->second
                                   : network_text(runs[j]->train) == baseline_net &&
                                         comparison_key(runs[j]->train) == comparison_key(runs[i]->train);
      if (is_baseline && numbers[j].step_s > 0) {
        numbers[i].slowdown = numbers[i].step_s / numbers[j].step_s;
        numbers[i].baseline = runs[j]->name;
      }
    }
    if (named != f.baseline_of.end() && numbers[i].baseline.empty()) numbers[i].baseline = named->second + " (no result)";
  }
}

// ------------------------------------------------------------------ tables

std::string or_na(double v, std::string (*format)(double)) { return std::isfinite(v) ? format(v) : "n/a"; }
std::string fixed4(double v) { return sim::format_fixed(v, 4); }
std::string times(double v) { return sim::format_fixed(v, 2) + "x"; }

// A number as the CSV holds it: every digit a double has (it reads back exactly); empty
// where the table says n/a.
std::string exact(double v) {
  if (!std::isfinite(v)) return "";
  char buf[40];
  std::snprintf(buf, sizeof buf, "%.17g", v);
  return buf;
}

// Each table twice: as the report shows it (units, rounding, n/a) and as its CSV and JSON
// hold it (SI units named in the header, every digit, empty or null for n/a), cell for cell.
struct Table {
  std::string name;  // the CSV's stem: DIR/<name>.csv; the table's key in report.json
  std::vector<std::string> headers, csv_headers;
  std::vector<bool> right;  // numbers are right-aligned
  std::vector<std::vector<std::string>> rows, csv_rows;
  std::vector<std::vector<bool>> numeric;  // a number (JSON number or null), else text

  void column(const std::string& header, const std::string& csv_header, bool number) {
    headers.push_back(header), csv_headers.push_back(csv_header), right.push_back(number);
  }
  void new_row() { rows.emplace_back(), csv_rows.emplace_back(), numeric.emplace_back(); }
  void text(const std::string& t, const std::string& raw) {
    rows.back().push_back(t), csv_rows.back().push_back(raw), numeric.back().push_back(false);
  }
  void text(const std::string& t) { text(t, t); }
  void number(double v, std::string (*format)(double)) {
    rows.back().push_back(or_na(v, format)), csv_rows.back().push_back(exact(v)), numeric.back().push_back(true);
  }
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

// RFC 4180: a field with a comma, quote or line break is quoted, its quotes doubled.
std::string csv_field(const std::string& v) {
  if (v.find_first_of(",\"\n\r") == std::string::npos) return v;
  std::string out = "\"";
  for (char c : v) out += c == '"' ? std::string("\"\"") : std::string(1, c);
  return out + "\"";
}

std::string csv(const Table& t) {
  auto line = [](const std::vector<std::string>& cells) {
    std::string out;
    for (size_t c = 0; c < cells.size(); ++c) out += (c ? "," : "") + csv_field(cells[c]);
    return out + "\n";
  };
  std::string out = line(t.csv_headers);
  for (const auto& row : t.csv_rows) out += line(row);
  return out;
}

// A JSON string (RFC 8259): quotes, backslashes and control characters escaped.
std::string json_string(const std::string& v) {
  std::string out = "\"";
  for (const char c : v) {
    if (c == '"' || c == '\\') out += '\\', out += c;
    else if (static_cast<unsigned char>(c) < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", c);
      out += buf;
    } else out += c;
  }
  return out + "\"";
}

// A table as JSON: its columns in order and one object per row, keyed by the CSV's column
// names; numbers with every digit (the CSV's text), null where the report says n/a.
std::string json(const Table& t) {
  std::string out = "{\"columns\": [";
  for (size_t c = 0; c < t.csv_headers.size(); ++c) out += (c ? ", " : "") + json_string(t.csv_headers[c]);
  out += "], \"rows\": [";
  for (size_t r = 0; r < t.csv_rows.size(); ++r) {
    out += r ? ",\n    {" : "\n    {";
    for (size_t c = 0; c < t.csv_rows[r].size(); ++c) {
      const std::string& v = t.csv_rows[r][c];
      out += (c ? ", " : "") + json_string(t.csv_headers[c]) + ": ";
      out += !t.numeric[r][c] ? json_string(v) : v.empty() ? "null" : v;
    }
    out += "}";
  }
  return out + (t.csv_rows.empty() ? "]}" : "\n  ]}");
}

std::vector<const ResultFile*> of_kind(const Folder& f, const std::string& kind) {
  std::vector<const ResultFile*> out;
  for (const ResultFile& r : f.results)
    if (r.kind == kind) out.push_back(&r);
  return out;
}

std::string run_label(const Folder& f, const std::string& name) {
  const bool short_run = std::any_of(f.unfinished.begin(), f.unfinished.end(),
                                     [&](const Unfinished& u) { return u.name == name && u.status == "incomplete"; });
  return short_run ? name + " (incomplete)" : name;
}

// Every train run's numbers, its slowdown against its baseline included: the one baseline
// rule of every table.
std::vector<TrainNumbers> train_numbers(const Folder& f, const std::vector<const ResultFile*>& runs) {
  std::vector<TrainNumbers> numbers;
  for (const ResultFile* r : runs) numbers.push_back(numbers_of(r->train));
  add_slowdowns(f, runs, numbers);
  return numbers;
}

Table train_table(const Folder& f, const std::vector<const ResultFile*>& runs) {
  const std::vector<TrainNumbers> numbers = train_numbers(f, runs);
  Table t{"runs", {}, {}, {}, {}, {}, {}};
  t.column("run", "run", false), t.column("layout", "layout", false), t.column("network", "network", false);
  t.column("clock", "clock", false), t.column("step time", "step_time_s", true);
  t.column("tokens/s", "tokens_per_s", true), t.column("MFU", "mfu", true);
  t.column("exposed comm", "exposed_comm_s", true), t.column("exposed share", "exposed_comm_share", true);
  t.column("hidden DP", "hidden_dp_s", true), t.column("sent/step", "sent_bytes_per_step", true);
  t.column("across sites/step", "across_sites_bytes_per_step", true), t.column("slowdown", "slowdown", true);
  t.column("baseline", "baseline", false), t.column("final loss", "final_loss", true);
  t.column("final val loss", "final_val_loss", true);
  for (size_t i = 0; i < runs.size(); ++i) {
    const TrainData& d = runs[i]->train;
    const TrainNumbers& n = numbers[i];
    const std::string clock = d.has_ranks ? clock_of(d) : "wall";
    t.new_row();
    t.text(run_label(f, runs[i]->name), runs[i]->name), t.text(layout_text(d)), t.text(network_text(d));
    t.text(clock.empty() ? "n/a" : clock);
    t.number(n.step_s, sim::format_seconds), t.number(n.tokens_per_s, sim::format_count);
    t.number(n.mfu, sim::format_percent_sig), t.number(n.exposed_s, sim::format_seconds);
    t.number(n.exposed_share, sim::format_percent_sig), t.number(n.dp_hidden_s, sim::format_seconds);
    t.number(n.bytes, sim::format_bytes), t.number(n.bytes_inter, sim::format_bytes);
    t.number(n.slowdown, times), t.text(n.baseline.empty() ? "n/a" : n.baseline);
    t.number(n.final_loss, fixed4), t.number(n.final_val_loss, fixed4);
  }
  return t;
}

// Each part of the step, as the breakdown figure stacks them, to three significant digits:
// readable however far apart the runs' step times are.
Table breakdown_table(const std::vector<const ResultFile*>& runs) {
  Table t{"breakdown", {}, {}, {}, {}, {}, {}};
  t.column("run", "run", false);
  for (const StepPart& p : step_parts()) t.column(p.label, std::string(p.dataset) + "_s", true);
  t.column("step", "step_s", true);
  for (const ResultFile* r : runs) {
    if (!r->train.has_ranks) continue;
    t.new_row();
    t.text(r->name);
    for (double part : r->train.parts) t.number(part, sim::format_seconds);
    t.number(r->train.step_time_s, sim::format_seconds);
  }
  return t;
}

std::string general(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", v);
  return buf;
}

// Privacy (issue 16): what each run protects and what it costs, beside the runs without
// it: compute per step (forward + backward + optimizer), bytes sent, step time, val loss,
// epsilon. Shown when any run has a /privacy group.
Table privacy_table(const std::vector<const ResultFile*>& runs) {
  Table t{"privacy", {}, {}, {}, {}, {}, {}};
  t.column("run", "run", false), t.column("network", "network", false), t.column("DP-SGD", "dp_sgd", false);
  t.column("secure agg", "secure_agg", false), t.column("compute/step", "compute_s", true);
  t.column("sent/step", "sent_bytes_per_step", true), t.column("step time", "step_time_s", true);
  t.column("final val loss", "final_val_loss", true), t.column("epsilon", "epsilon", true);
  t.column("delta", "delta", true);
  for (const ResultFile* r : runs) {
    const TrainData& d = r->train;
    if (!d.has_ranks) continue;
    double compute = 0;
    for (size_t i = 0; i < step_parts().size() && i < d.parts.size(); ++i) {
      const std::string part = step_parts()[i].dataset;
      if (part == "forward" || part == "backward" || part == "optimizer") compute += d.parts[i];
    }
    t.new_row();
    t.text(r->name), t.text(network_text(d));
    t.text(d.dp_sgd ? "sigma " + sim::format_fixed(d.noise_multiplier, 2) + ", C " + sim::format_fixed(d.clip_norm, 2)
                    : "off");
    t.text(d.secure_agg ? "on" : "off");
    t.number(compute, sim::format_seconds), t.number(d.bytes_per_step, sim::format_bytes);
    t.number(d.step_time_s, sim::format_seconds);
    t.number(d.val_loss.empty() ? kNaN : d.val_loss.back(), fixed4);
    t.number(d.dp_sgd ? d.epsilon : kNaN, fixed4), t.number(d.dp_sgd ? d.delta : kNaN, general);
  }
  return t;
}

Table unfinished_table(const Folder& f) {
  Table t{"failed", {}, {}, {}, {}, {}, {}};
  t.column("run", "run", false), t.column("status", "status", false), t.column("why", "why", false);
  for (const Unfinished& u : f.unfinished) t.new_row(), t.text(u.name), t.text(u.status), t.text(u.why);
  return t;
}

// 1024 -> "1K", 4194304 -> "4M": sizes as `dtbench coll -b/-e` takes them.
std::string size_text(double bytes) {
  const char* units[] = {"", "K", "M", "G"};
  int u = 0;
  while (u < 3 && bytes >= 1024 && std::fmod(bytes, 1024) == 0) bytes /= 1024, ++u;
  return sim::format_fixed(bytes, 0) + units[u];
}

std::string gbps(double v) { return sim::format_fixed(v, 3) + " GB/s"; }
std::string micro_seconds(double us) { return sim::format_seconds(us * 1e-6); }

Table coll_table(const std::vector<const ResultFile*>& runs) {
  Table t{"coll", {}, {}, {}, {}, {}, {}};
  for (const char* h : {"run", "op", "algo", "codec", "network", "clock"}) t.column(h, h, false);
  t.column("ranks", "ranks", true), t.column("sizes", "sizes", true);
  t.column("time (largest)", "time_largest_us", true), t.column("busbw (largest)", "busbw_largest_GBps", true);
  t.column("busbw (best)", "busbw_best_GBps", true);
  for (const ResultFile* r : runs) {
    const CollData& c = r->coll;
    const bool any = !c.bytes.empty();
    const double best = any ? *std::max_element(c.busbw_GBps.begin(), c.busbw_GBps.end()) : kNaN;
    t.new_row();
    for (const std::string& v : {r->name, c.op, c.algo, c.codec, c.net_name, c.clock}) t.text(v);
    t.number(double(c.world), [](double v) { return sim::format_fixed(v, 0); });
    t.text(any ? size_text(c.bytes.front()) + "-" + size_text(c.bytes.back()) : "none");
    t.number(any ? c.time_us.back() : kNaN, micro_seconds);
    t.number(any ? c.busbw_GBps.back() : kNaN, gbps), t.number(best, gbps);
  }
  return t;
}

Table files_table(const Folder& f) {
  Table t{"files", {}, {}, {}, {}, {}, {}};
  for (const char* h : {"file", "kind", "commit", "host"}) t.column(h, h, false);
  t.column("created (UTC)", "created_utc", false);
  for (const ResultFile& r : f.results) {
    t.new_row();
    for (const std::string& v : {fs::path(r.path).filename().string(), r.kind, r.git_commit, r.host, r.created_utc})
      t.text(v);
  }
  return t;
}

// ------------------------------------------------------------------ quality against time

// Runs that validated: what the DP strategies (issue 12) are judged by. Time is the run's
// own clock summed over its steps (the virtual clock: the emulated network's time).
// Runs cut short (incomplete) are left out: their last validation is no final loss, and
// would set every run's target.
std::vector<const ResultFile*> validated(const Folder& f, const std::vector<const ResultFile*>& runs) {
  std::vector<const ResultFile*> out;
  for (const ResultFile* r : runs) {
    const bool cut_short = std::any_of(f.unfinished.begin(), f.unfinished.end(), [&](const Unfinished& u) {
      return u.name == r->name && u.status == "incomplete";
    });
    if (!r->train.val_loss.empty() && !cut_short) out.push_back(r);
  }
  return out;
}

// Seconds since the start of the run on its own clock after each step, and at a validation
// (defined with the figures below).
std::vector<double> elapsed_s(const TrainData& t);
double elapsed_at(const TrainData& t, const std::vector<double>& elapsed, double val_step);

// The target every run is timed to, and the rule that set it: the experiment's
// `target_loss:` where given (the same for any set of runs), else the highest final
// validation loss among the runs, so every run reaches it; the question is how soon.
struct Target {
  double loss;
  std::string rule;
};

Target target_loss(const Folder& f, const std::vector<const ResultFile*>& runs) {
  if (std::isfinite(f.target_loss)) return {f.target_loss, "the experiment's `target_loss`"};
  double target = -std::numeric_limits<double>::infinity();
  for (const ResultFile* r : runs) target = std::max(target, r->train.val_loss.back());
  return {target, "the highest final validation loss among these runs (the experiment sets no `target_loss`)"};
}

// Steps per outer step: DiLoCo's and Streaming DiLoCo's H (Streaming's F fragment syncs
// together move one model's pseudo-gradient); one for the strategies that sync every step.
double steps_per_outer_step(const TrainData& t) {
  const std::string name = config_value(t, "strategy.name");
  const double h = config_number(t, "strategy.inner_steps");
  return (name == "diloco" || name == "streaming_diloco") && h >= 1 ? h : 1;
}

// The first validation at or below TARGET: its time on the run's clock; NaN if never.
double time_to(const TrainData& t, double target) {
  const std::vector<double> elapsed = elapsed_s(t);
  for (size_t v = 0; v < t.val_step.size(); ++v)
    if (t.val_loss[v] <= target) return elapsed_at(t, elapsed, t.val_step[v]);
  return kNaN;
}

std::string strategy_text(const TrainData& t) {
  std::string s = config_value(t, "strategy.name");
  if (s.empty()) s = "ddp";
  const std::string name = s;
  if (name == "diloco" || name == "streaming_diloco") s += " H=" + config_value(t, "strategy.inner_steps");
  if (name == "onebit_adam" || name == "quantized_adam") s += " F=" + config_value(t, "strategy.freeze_step");
  if (name == "quantized_adam") s += " " + config_value(t, "strategy.bits") + "-bit";
  if (name == "cocktail")
    s += " r=" + config_value(t, "strategy.random_ratio") + " k=" + config_value(t, "strategy.topk_ratio") + " " +
         config_value(t, "strategy.bits") + "b";
  if (name == "demo") s += " " + config_value(t, "strategy.topk") + "/" + config_value(t, "strategy.chunk");
  const std::string codec = config_value(t, "net.codec");
  if (!codec.empty() && codec != "none") s += " " + codec;
  if (config_value(t, "net.codec_scope") == "across_sites") s += " across sites";
  if (config_value(t, "net.error_feedback") == "off") s += " no EF";
  return s;
}

// The validated runs (VAL, a subset of TRAIN); slowdowns as the runs table has them (their
// baselines are looked for among all train runs).
Table quality_table(const Folder& f, const std::vector<const ResultFile*>& train,
                    const std::vector<const ResultFile*>& val, double target) {
  const std::vector<TrainNumbers> numbers = train_numbers(f, train);
  Table t{"quality", {}, {}, {}, {}, {}, {}};
  t.column("run", "run", false), t.column("strategy", "strategy", false), t.column("network", "network", false);
  t.column("step time", "step_time_s", true), t.column("across sites/step", "across_sites_bytes_per_step", true);
  t.column("across sites/outer step", "across_sites_bytes_per_outer_step", true);
  t.column("peak across sites/step", "peak_across_sites_bytes_per_step", true);
  t.column("slowdown", "slowdown", true), t.column("baseline", "baseline", false);
  t.column("final val loss", "final_val_loss", true), t.column("time to target", "time_to_target_s", true);
  for (const ResultFile* r : val) {
    const TrainData& d = r->train;
    const TrainNumbers& n = numbers[size_t(std::find(train.begin(), train.end(), r) - train.begin())];
    t.new_row();
    t.text(r->name), t.text(strategy_text(d)), t.text(network_text(d));
    t.number(n.step_s, sim::format_seconds), t.number(n.bytes_inter, sim::format_bytes);
    t.number(n.bytes_inter * steps_per_outer_step(d), sim::format_bytes);
    t.number(d.peak_bytes_inter_step, sim::format_bytes);
    t.number(n.slowdown, times), t.text(n.baseline.empty() ? "n/a" : n.baseline);
    t.number(d.val_loss.back(), fixed4), t.number(time_to(d, target), sim::format_seconds);
  }
  return t;
}

// ------------------------------------------------------------------ figures

StackedBars breakdown_chart(const std::vector<const ResultFile*>& runs) {
  StackedBars b{"Where a step's time goes (mean per rank)", "ms per step", {}, {}, {}};
  for (const StepPart& p : step_parts()) b.parts.push_back(p.label);
  const bool any_old = std::any_of(runs.begin(), runs.end(), [](const ResultFile* r) { return !r->train.has_ranks; });
  if (any_old) b.parts.push_back("step (no per-rank record)");
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

// Seconds on the run's clock after each of its recorded steps (from its first recorded one).
std::vector<double> elapsed_s(const TrainData& t) {
  std::vector<double> out;
  double sum = 0;
  for (double step_ms : t.time_ms) out.push_back(sum += step_ms / 1e3);
  return out;
}

// Seconds after the steps before validation at VAL_STEP (validation runs after step k).
double elapsed_at(const TrainData& t, const std::vector<double>& elapsed, double val_step) {
  double at = 0;
  for (size_t i = 0; i < t.step.size(); ++i)
    if (t.step[i] + 1 <= val_step) at = elapsed[i];
  return at;
}

// Time on a log axis when the runs' total times differ by more than 20x (a centralized run
// next to a decentralized one), else a linear one.
bool spread_wide(const std::vector<const ResultFile*>& runs) {
  double lo = INFINITY, hi = 0;
  for (const ResultFile* r : runs)
    if (!r->train.time_ms.empty()) {
      const double total = std::accumulate(r->train.time_ms.begin(), r->train.time_ms.end(), 0.0);
      lo = std::min(lo, total), hi = std::max(hi, total);
    }
  return lo > 0 && hi / lo > 20;
}

const char* const kTimeAxis = "time (s) on each run's clock (virtual or wall)";

LineChart loss_chart(const std::vector<const ResultFile*>& runs) {
  LineChart c{"Training loss against step", "step", "loss (nats)", false, false, {}, {}};
  for (const ResultFile* r : runs) {
    Series s{r->name, {}};
    for (size_t i = 0; i < r->train.step.size(); ++i) s.points.emplace_back(r->train.step[i] + 1, r->train.loss[i]);
    c.series.push_back(s);
  }
  return c;
}

LineChart loss_time_chart(const std::vector<const ResultFile*>& runs) {
  LineChart c{"Training loss against time", kTimeAxis, "loss (nats)", spread_wide(runs), false, {}, {}};
  for (const ResultFile* r : runs) {
    Series s{r->name + " (" + clock_of(r->train) + ")", {}};
    const std::vector<double> at = elapsed_s(r->train);
    for (size_t i = 0; i < at.size(); ++i) s.points.emplace_back(at[i], r->train.loss[i]);
    c.series.push_back(s);
  }
  return c;
}

LineChart val_time_chart(const std::vector<const ResultFile*>& runs) {
  LineChart c{"Validation loss against time", kTimeAxis, "validation loss (nats)", spread_wide(runs), false, {}, {}};
  for (const ResultFile* r : runs) {
    if (r->train.val_loss.empty()) continue;
    Series s{r->name + " (" + clock_of(r->train) + ")", {}};
    const std::vector<double> elapsed = elapsed_s(r->train);
    for (size_t i = 0; i < r->train.val_step.size(); ++i)
      s.points.emplace_back(elapsed_at(r->train, elapsed, r->train.val_step[i]), r->train.val_loss[i]);
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
    "Step time: mean over the run's recorded steps of rank 0's step (virtual or wall clock, as the run's `clock`). "
    "Tokens/s: global batch x sequence / step time. MFU: (6N + 6LCT) FLOPs per token x tokens/s over "
    "ranks x the device peak per rank (n/a without a device peak), to three significant digits. "
    "Exposed comm: the communication compute waited for (TP, PP, the part of the DP sync not hidden "
    "behind the backward, the norm and loss sums), mean per rank and step: the quantity the step line's "
    "`exposed comm` shows for rank 0 and one step. Exposed share: exposed comm over the step (mean per "
    "rank); it never exceeds 100%, since a rank's two comm channels (DP, and TP/PP) may run at the same "
    "time and only the waiting is part of the step. Hidden DP: DP sync time that ran on the DP channel "
    "beside the backward, mean per rank and step (not part of the step). "
    "Sent: bytes sent per step, all ranks together (payload); across "
    "sites: the part sent between sites (0 on a one-site profile such as centralized-25g; all of it on "
    "decentralized-1g, where every rank is a site of its own). "
    "Slowdown: step time over that of the run named in `baseline` (the experiment's `baseline:` for the "
    "run; else the run with the same settings (layout, clock, device, codec, steps, ...) on the baseline "
    "profile); n/a where the folder holds no such run (a run on another clock or device is never an "
    "implicit baseline: its step time measures something else). On the wall clock compute runs on "
    "this host's CPU, not on an emulated device: wall-clock step times and slowdowns depend on the host "
    "and its load. "
    "Final loss: training loss of the last step; final val loss: the last validation. "
    "Other n/a: the file does not record it (result files older than the one training loop have no "
    "per-rank record; their network is none and their clock the wall). A run marked (incomplete) "
    "stopped before its last step: its figures are those of the steps it recorded.";

void write_atomically(const std::string& path, const std::string& text) {
  const std::string tmp = path + ".tmp-" + std::to_string(::getpid());
  std::ofstream(tmp, std::ios::binary) << text;
  fs::rename(tmp, path);
}

struct Figures {
  std::vector<std::string> lines;  // what was drawn, for the terminal
  std::string train, coll;         // markdown image lines
};

std::string image(const std::string& name, const std::string& alt) {
  return "![" + alt + "](" + name + ".svg) ([PNG](" + name + ".png))\n\n";
}

Figures draw_figures(const Folder& f, const std::vector<const ResultFile*>& train,
                     const std::vector<const ResultFile*>& coll) {
  Figures out;
  auto add = [&](const std::string& text, const std::string& name, const std::string& alt, std::string& md) {
    out.lines.push_back(draw(text, f.dir, name));
    md += image(name, alt);
  };
  if (!train.empty()) {
    const StackedBars bars = breakdown_chart(train);
    add(script(bars, "breakdown"), "breakdown", "Step-time breakdown per run", out.train);
    add(script(share_chart(bars), "breakdown-share"), "breakdown-share", "Step-time shares per run", out.train);
    add(script(loss_chart(train), "loss"), "loss", "Training loss per run", out.train);
    add(script(loss_time_chart(train), "loss-time"), "loss-time", "Training loss against time", out.train);
    const LineChart val = val_time_chart(train);
    if (!val.series.empty()) add(script(val, "val-loss-time"), "val-loss-time", "Validation loss against time", out.train);
  }
  if (!coll.empty()) add(script(busbw_chart(coll), "busbw"), "busbw", "busbw against size", out.coll);
  return out;
}

const char* const kQualityColumns =
    "Strategy: strategy.name (DiLoCo: H inner steps per outer step), net.codec, where it applies and whether "
    "error feedback is off. Across sites/step: bytes sent between sites per step, all ranks together, over every "
    "step of the run (DiLoCo's outer steps amortised). Across sites/outer step: the same per outer step, H steps "
    "for DiLoCo and Streaming DiLoCo (one sync of the model; Streaming's F fragment syncs), one step for the "
    "strategies that sync every step. Peak across sites/step: the most bytes sent between sites in one step, all "
    "ranks together (DiLoCo: an outer step's sync; Streaming DiLoCo: one fragment's, 1/F of it; on the wall "
    "clock a sync overlapping later steps counts in the steps its bytes left in). Slowdown and baseline: as in the runs table (the run's "
    "`baseline:`, else its twin on the baseline profile; an experiment comparing strategies names plain DP as "
    "every run's baseline, as configs/experiments/strategies.yaml does). Time to target: the run's "
    "clock summed up to its first validation at or below the target loss (above the table: the experiment's "
    "`target_loss`, else the highest final validation loss among these runs, so every run reaches it), at the "
    "granularity of train.val_every; n/a: never reached.";

struct Tables {
  std::vector<Table> all;  // in the order of the report
  std::string target;      // the quality table's target loss and the rule that set it
  const Table* find(const std::string& name) const {
    for (const Table& t : all)
      if (t.name == name) return &t;
    return nullptr;
  }
};

Tables make_tables(const Folder& f, const std::vector<const ResultFile*>& train,
                   const std::vector<const ResultFile*>& coll) {
  Tables t;
  if (!train.empty()) t.all.push_back(train_table(f, train));
  if (!train.empty() && !breakdown_table(train).rows.empty()) t.all.push_back(breakdown_table(train));
  if (const auto val = validated(f, train); !val.empty()) {
    const Target target = target_loss(f, val);
    t.all.push_back(quality_table(f, train, val, target.loss));
    t.target = "Target loss: " + sim::format_fixed(target.loss, 4) + ", " + target.rule + ".";
  }
  if (std::any_of(train.begin(), train.end(), [](const ResultFile* r) { return r->train.has_privacy; }))
    t.all.push_back(privacy_table(train));
  if (!f.unfinished.empty()) t.all.push_back(unfinished_table(f));
  if (!coll.empty()) t.all.push_back(coll_table(coll));
  t.all.push_back(files_table(f));
  return t;
}

// report.json: {"title": ..., "tables": {"<name>": <json(table)>, ...}}, the tables in the
// report's order, each as its CSV holds it.
std::string json_document(const Folder& f, const Tables& t) {
  std::string out = "{\"title\": " + json_string(f.title) + ",\n \"tables\": {";
  for (size_t i = 0; i < t.all.size(); ++i)
    out += std::string(i ? ",\n  " : "\n  ") + json_string(t.all[i].name) + ": " + json(t.all[i]);
  return out + "\n }\n}\n";
}

std::string document(const Folder& f, const Tables& t, const Figures& fig, bool with_csv, bool with_json) {
  std::ostringstream d;
  d << "# " << f.title << "\n\n";
  if (!f.description.empty()) d << f.description << "\n\n";
  d << "Written by `dtbench report` from the " << f.results.size() << " result file(s) in this folder"
    << (f.run_order.empty() ? "" : " (runs in the order of `experiment.yaml`, the experiment that made them)")
    << ". Slowdowns are against the `" << fs::path(f.baseline_net).stem().string()
    << "` profile unless a run names its `baseline`." << (with_csv ? " Every table is also a CSV file beside this one "
                                                                   "(SI units, every digit): `<table>.csv`." : "")
    << (with_json ? " Every table is also in `report.json` (the CSV's columns; null for n/a)." : "") << "\n\n";
  if (!f.manifest_note.empty()) d << "Note: " << f.manifest_note << "\n\n";
  if (const Table* failed = t.find("failed"))
    d << "## Runs that did not finish\n\n" << markdown(*failed)
      << "\nFailed: no readable result (why: the runner's verdict in the run's log, or the child's last error "
         "line); incomplete: a result that stops before its last step (shown below with what it recorded); "
         "unfinished: a log without a verdict and no error (the run is still going, or the runner was stopped); "
         "not run: neither a result nor a log here (e.g. `dtbench run --only`).\n\n";
  if (const Table* runs = t.find("runs")) {
    d << "## Training runs\n\n" << markdown(*runs) << "\n" << kTrainColumns << "\n\n";
    if (const Table* parts = t.find("breakdown"))
      d << "Where a step's time goes (mean per rank and step):\n\n" << markdown(*parts) << "\n";
    d << fig.train;
  }
  if (const Table* quality = t.find("quality"))
    d << "## Quality against time\n\n" << t.target << "\n\n" << markdown(*quality) << "\n" << kQualityColumns << "\n\n";
  if (const Table* privacy = t.find("privacy"))
    d << "## Privacy\n\n" << markdown(*privacy)
      << "\nCompute/step: forward + backward + optimizer, mean per rank and step. Epsilon: the RDP accountant of the "
         "sampled Gaussian mechanism at the run's delta, q = batch / epoch samples (the Poisson analysis applied to "
         "shuffled fixed-size batches); n/a without DP-SGD.\n\n";
  if (const Table* coll = t.find("coll"))
    d << "## Collective benchmarks (`dtbench coll`)\n\n" << markdown(*coll) << "\nTime: mean per iteration of the slowest rank. "
      << "busbw: bytes / time x the operation's bus factor (nccl-tests' definition).\n\n" << fig.coll;
  d << "## Files\n\n" << markdown(*t.find("files"));
  if (!f.skipped.empty()) {
    d << "\nSkipped (not readable dtbench train or coll results):\n\n";
    for (const std::string& s : f.skipped) d << "- " << s << "\n";
  }
  return d.str();
}

}  // namespace

ReportOutcome write_report(const std::string& dir, std::ostream& out, std::ostream& err, const ReportOptions& options) {
  const Folder f = read_folder(dir, err);
  const std::vector<const ResultFile*> train = of_kind(f, "train"), coll = of_kind(f, "coll");
  const Tables tables = make_tables(f, train, coll);
  const Figures fig = draw_figures(f, train, coll);
  ReportOutcome o{(fs::path(dir) / "report.md").string(), f.results.size(), f.skipped.size(), {}};
  if (options.csv)
    for (const Table& t : tables.all) {
      o.csv.push_back((fs::path(dir) / (t.name + ".csv")).string());
      write_atomically(o.csv.back(), csv(t));
    }
  if (options.json) {
    o.csv.push_back((fs::path(dir) / "report.json").string());
    write_atomically(o.csv.back(), json_document(f, tables));
  }
  write_atomically(o.path, document(f, tables, fig, options.csv, options.json));
  if (const Table* t = tables.find("failed")) out << "\nRuns that did not finish:\n" << markdown(*t);
  if (const Table* t = tables.find("runs")) out << "\nTraining runs (" << f.title << "):\n" << markdown(*t);
  if (const Table* t = tables.find("quality")) out << "\nQuality against time. " << tables.target << "\n" << markdown(*t);
  if (const Table* t = tables.find("privacy")) out << "\nPrivacy:\n" << markdown(*t);
  if (const Table* t = tables.find("coll")) out << "\nCollective benchmarks:\n" << markdown(*t);
  out << "\nfigures:\n";
  for (const std::string& line : fig.lines) out << line << "\n";
  for (const std::string& path : o.csv) out << "table: " << path << "\n";
  out << "report: " << o.path << std::endl;
  return o;
}

}  // namespace dtb::exp
