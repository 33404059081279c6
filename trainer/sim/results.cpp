#include "sim/results.hpp"

#include <fstream>
#include <sstream>

#include "h5file.hpp"
#include "provenance.hpp"

namespace dtb::sim {
namespace {

// Every number a point has, as /points/<name> (and /marks/<name>).
struct Column {
  const char* name;
  double (*get)(const SimResult&);
};
const Column kColumns[] = {
    {"step_s", [](const SimResult& r) { return r.time.step; }},
    {"compute_fwd_s", [](const SimResult& r) { return r.time.compute_fwd; }},
    {"compute_bwd_s", [](const SimResult& r) { return r.time.compute_bwd; }},
    {"tp_s", [](const SimResult& r) { return r.time.tp; }},
    {"bubble_s", [](const SimResult& r) { return r.time.bubble; }},
    {"pp_exposed_s", [](const SimResult& r) { return r.time.pp_exposed; }},
    {"dp_exposed_s", [](const SimResult& r) { return r.time.dp_exposed; }},
    {"other_s", [](const SimResult& r) { return r.time.other; }},
    {"optimizer_s", [](const SimResult& r) { return r.time.optimizer; }},
    {"pp_total_s", [](const SimResult& r) { return r.time.pp_total; }},
    {"dp_total_s", [](const SimResult& r) { return r.time.dp_total; }},
    {"ideal_step_s", [](const SimResult& r) { return r.time.ideal; }},
    {"slowdown", [](const SimResult& r) { return r.slowdown(); }},
    {"tokens_per_s", [](const SimResult& r) { return r.tokens_per_s(); }},
    {"mfu", [](const SimResult& r) { return r.mfu(); }},
    {"tp_bytes_intra", [](const SimResult& r) { return r.tp_bytes.intra; }},
    {"tp_bytes_inter", [](const SimResult& r) { return r.tp_bytes.inter; }},
    {"pp_bytes_intra", [](const SimResult& r) { return r.pp_bytes.intra; }},
    {"pp_bytes_inter", [](const SimResult& r) { return r.pp_bytes.inter; }},
    {"dp_bytes_intra", [](const SimResult& r) { return r.dp_bytes.intra; }},
    {"dp_bytes_inter", [](const SimResult& r) { return r.dp_bytes.inter; }},
    {"mem_params", [](const SimResult& r) { return r.memory.params; }},
    {"mem_grads", [](const SimResult& r) { return r.memory.grads; }},
    {"mem_optimizer", [](const SimResult& r) { return r.memory.optimizer; }},
    {"mem_activations", [](const SimResult& r) { return r.memory.activations; }},
    {"mem_pp_buffers", [](const SimResult& r) { return r.memory.pp_buffers; }},
    {"mem_total", [](const SimResult& r) { return r.memory.total(); }},
    {"mem_capacity", [](const SimResult& r) { return r.memory_capacity; }},
    {"world", [](const SimResult& r) { return double(r.world); }},
    {"dp_buckets", [](const SimResult& r) { return double(r.dp_buckets); }},
    {"params", [](const SimResult& r) { return r.params; }},
    {"flops_per_token", [](const SimResult& r) { return r.flops_per_token; }},
    {"peak_flops", [](const SimResult& r) { return r.peak_flops; }},
    {"slowest_link_bps", [](const SimResult& r) { return r.slowest_link_Bps * 8; }},
    {"largest_latency_s", [](const SimResult& r) { return r.largest_latency_s; }},
};

std::string slurp(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

template <typename T, typename Get>
std::string joined(const std::vector<T>& items, Get get) {
  std::string out;
  for (size_t i = 0; i < items.size(); ++i) {
    if (i) out += '\n';
    out += get(items[i]);
  }
  return out;
}

void write_points(h5::File& f, const std::string& group, const std::vector<SweepPoint>& points) {
  if (points.empty()) return;
  std::vector<double> column(points.size());
  for (size_t i = 0; i < points.size(); ++i) column[i] = points[i].x;
  f.write<double>(group + "/x", column);
  f.write_string(group + "/label", joined(points, [](const SweepPoint& p) { return p.label; }));
  if (!points.front().series.empty())
    f.write_string(group + "/series", joined(points, [](const SweepPoint& p) { return p.series; }));
  for (const Column& c : kColumns) {
    for (size_t i = 0; i < points.size(); ++i) column[i] = c.get(points[i].result);
    f.write<double>(group + "/" + c.name, column);
  }
}

}  // namespace

void write_sim_results(const std::string& path, const SimRun& run) {
  h5::File f = h5::File::create(path);
  write_provenance(f, "dtbench-result", 1, "sim", run.command_line);
  f.set_attr("/", "preset", run.preset);
  f.set_attr("/", "sweep_key", run.sweep_key);
  f.set_attr("/", "mark_key", run.mark_key);
  f.set_attr("/", "series_key", run.series_key);
  f.set_attr("/", "net_profile", run.net_profile.empty() ? std::string("none") : run.net_profile);
  f.write_string("config", run.config_yaml);
  if (!run.net_profile.empty()) f.write_string("net_profile", slurp(run.net_profile));
  write_points(f, "points", run.points);
  write_points(f, "marks", run.marks);
  f.commit();
}

void write_article_results(const std::string& path, const std::string& command_line,
                           const std::vector<ArticleRow>& rows) {
  h5::File f = h5::File::create(path);
  write_provenance(f, "dtbench-result", 1, "sim", command_line);
  f.set_attr("/", "preset", std::string("article"));
  auto text = [&](const char* name, std::string ArticleRow::*field) {
    f.write_string(std::string("article/") + name, joined(rows, [&](const ArticleRow& r) { return r.*field; }));
  };
  auto number = [&](const char* name, double ArticleRow::*field) {
    std::vector<double> v;
    for (const ArticleRow& r : rows) v.push_back(r.*field);
    f.write<double>(std::string("article/") + name, v);
  };
  text("id", &ArticleRow::id);
  text("what", &ArticleRow::what);
  text("network", &ArticleRow::network);
  text("unit", &ArticleRow::unit);
  text("why", &ArticleRow::why);
  number("article", &ArticleRow::article);
  number("ours", &ArticleRow::ours);
  number("sent_bytes", &ArticleRow::sent);
  f.commit();
}

}  // namespace dtb::sim
