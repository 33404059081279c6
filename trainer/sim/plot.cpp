#include "sim/plot.hpp"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "sim/gnuplot.hpp"
#include "usage_error.hpp"

namespace dtb::sim {
namespace {

namespace fs = std::filesystem;

std::string quoted(const std::string& s) { return gnuplot_quoted(s); }

std::string terminal_for(const fs::path& path) {
  if (path.extension() == ".svg") return "svg size 900,560 dynamic enhanced font 'Helvetica,13' background rgb 'white'";
  if (path.extension() == ".png") return "pngcairo size 1200,750 enhanced font 'Helvetica,12'";
  throw UsageError("--plot '" + path.string() + "': the figure must end in .svg or .png");
}

void write_block(std::ostream& out, const std::string& name, const std::vector<PlotPoint>& points) {
  out << "$" << name << " << EOD\n";
  for (const PlotPoint& p : points)
    if (std::isfinite(p.x) && std::isfinite(p.y)) out << p.x << " " << p.y << " " << quoted(p.label) << "\n";
  out << "EOD\n";
}

bool bars(const Plot& plot) { return plot.text_x && plot.curves.size() == 1; }

// matplotlib's default colours, and a dash type and point type per curve.
std::string curve_style(size_t i) {
  static const char* const kColors[] = {"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
                                        "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"};
  static const int kPointTypes[] = {7, 5, 9, 11, 13, 3, 1};
  return "lw 2 dt " + std::to_string(i % 5 + 1) + " pt " + std::to_string(kPointTypes[i % 7]) + " ps 0.6 lc rgb '" +
         kColors[i % 10] + "'";
}

// The y range with some room above and below every point (a factor on a log axis).
std::string y_range(const Plot& plot) {
  double lo = INFINITY, hi = -INFINITY;
  std::vector<const std::vector<PlotPoint>*> all{&plot.marks};
  for (const Curve& c : plot.curves) all.push_back(&c.points);
  for (const auto* points : all)
    for (const PlotPoint& p : *points)
      if (std::isfinite(p.y)) lo = std::min(lo, p.y), hi = std::max(hi, p.y);
  if (bars(plot)) lo = std::min(lo, 0.0);  // bars stand on zero
  if (!(lo <= hi) || (plot.log_y && lo <= 0)) return "";
  std::ostringstream s;
  if (plot.log_y) {
    const double bottom = lo / 1.15, top = hi * 1.3;
    s << "set yrange [" << bottom << ":" << top << "]\n";
    if (hi / lo < 1000) s << "set ytics (" << log_tics(bottom, top) << ")\n";  // not at decades only
  } else {
    const double pad = hi > lo ? 0.08 * (hi - lo) : 0.1 * std::fabs(hi) + 1e-12;
    s << "set yrange [" << (lo >= 0 ? std::max(0.0, lo - pad) : lo - pad) << ":" << hi + pad << "]\n";
  }
  return s.str();
}

std::string script(const Plot& plot, const fs::path& figure) {
  std::ostringstream s;
  s.precision(10);
  s << "# Written by dtbench sim; run `gnuplot " << figure.stem().string() << ".gp` to redraw.\n"
    << "set terminal " << terminal_for(figure) << "\n"
    << "set output " << quoted(figure.filename().string()) << "\n"
    << "set title " << quoted(plot.title) << " noenhanced\n"
    << "set xlabel " << quoted(plot.xlabel) << " noenhanced\n"
    << "set ylabel " << quoted(plot.ylabel) << " noenhanced\n"
    << "set grid xtics ytics mxtics mytics lc rgb '#dddddd'\n"
    << "set key top right box opaque\n"
    << (plot.log_x ? "set logscale x\n" : "") << (plot.log_y ? "set logscale y\n" : "");
  s << y_range(plot);
  // Mark labels one by one, alternately right and left of their points, so that
  // neighbours do not overwrite each other.
  for (size_t i = 0; i < plot.marks.size(); ++i) {
    const PlotPoint& m = plot.marks[i];
    if (std::isfinite(m.x) && std::isfinite(m.y))
      s << "set label " << quoted(m.label) << " at " << m.x << ", " << m.y
        << (i % 2 ? " right offset -1,0" : " left offset 1,0") << " font ',11' noenhanced\n";
  }
  for (size_t i = 0; i < plot.curves.size(); ++i) write_block(s, "curve" + std::to_string(i), plot.curves[i].points);
  write_block(s, "marks", plot.marks);
  const std::string xcol = plot.text_x ? "1:2:xtic(3)" : "1:2";
  if (bars(plot)) {
    s << "set style fill solid 0.8 border rgb '#444444'\nset boxwidth 0.6\nset xrange [-0.6:"
      << double(plot.curves[0].points.size()) - 0.4 << "]\n"
      << "plot $curve0 using " << xcol << " with boxes lc rgb '#1f77b4' title " << quoted(plot.curves[0].name);
  } else {
    s << "plot ";
    for (size_t i = 0; i < plot.curves.size(); ++i)
      s << (i ? ", \\\n     " : "") << "$curve" << i << " using " << xcol << " with linespoints " << curve_style(i)
        << " title " << quoted(plot.curves[i].name) << " noenhanced";
  }
  if (!plot.marks.empty())
    s << ", \\\n     $marks using 1:2 with points pt 9 ps 1.6 lc rgb '#d62728' title " << quoted(plot.marks_name);
  s << "\n";
  return s.str();
}

}  // namespace

std::string write_plot(const Plot& plot, const std::string& path) {
  const fs::path figure(path);
  const fs::path gp = fs::path(figure).replace_extension(".gp");
  const std::string text = script(plot, figure);  // checks the extension first
  if (figure.has_parent_path()) fs::create_directories(figure.parent_path());
  std::ofstream(gp) << text;
  const GnuplotRun run = run_gnuplot(gp);
  if (!run.found)
    return "# plot script: " + gp.string() + " (gnuplot not found: apt-get install gnuplot-nox, then gnuplot " +
           gp.string() + ")";
  if (run.status != 0) return "# gnuplot failed on " + gp.string() + (run.first_line.empty() ? "" : ": " + run.first_line);
  return "# plot: " + figure.string() + " (script " + gp.string() + ")" +
         (run.first_line.empty() ? "" : "; gnuplot warned: " + run.first_line);
}

}  // namespace dtb::sim
