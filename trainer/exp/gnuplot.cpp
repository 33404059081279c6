#include "exp/gnuplot.hpp"

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "sim/gnuplot.hpp"

namespace dtb::exp {
namespace {

namespace fs = std::filesystem;

// matplotlib's default colours, which readers of plots know.
const char* const kColors[] = {"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
                               "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"};

const char* color(size_t i) { return kColors[i % (sizeof kColors / sizeof *kColors)]; }

std::string quoted(const std::string& s) { return gnuplot_quoted(s); }

std::string number(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.9g", v);
  return buf;
}

// The lines every figure starts with: an SVG of fixed size, labels taken literally.
std::string preamble(const std::string& svg_name, const std::string& title, const std::string& ylabel) {
  return "# Written by dtbench report; `gnuplot " + fs::path(svg_name).stem().string() +
         ".gp` redraws the figure.\n"
         "set terminal svg size 960,540 dynamic noenhanced font 'Helvetica,12' background rgb 'white'\n"
         "set output " + quoted(svg_name) + "\n"
         "set title " + quoted(title) + "\n"
         "set ylabel " + quoted(ylabel) + "\n"
         "set grid ytics lc rgb '#dddddd'\n"
         "set format y '%g'\n"
         "set key below horizontal\n";
}

}  // namespace

std::string script(const LineChart& chart, const std::string& svg_name) {
  std::ostringstream s;
  s << preamble(svg_name, chart.title, chart.ylabel) << "set xlabel " << quoted(chart.xlabel) << "\n"
    << (chart.log_x ? "set logscale x 2\n" : "") << (chart.log_y ? "set logscale y\n" : "");
  for (size_t i = 0; i < chart.xtics.size(); ++i)
    s << (i ? ", " : "set xtics (") << quoted(chart.xtics[i].second) << " " << number(chart.xtics[i].first)
      << (i + 1 == chart.xtics.size() ? ")\n" : "");
  for (size_t i = 0; i < chart.series.size(); ++i) {
    s << "$s" << i << " << EOD\n";
    for (const auto& [x, y] : chart.series[i].points)
      if (std::isfinite(x) && std::isfinite(y) && (!chart.log_y || y > 0)) s << number(x) << " " << number(y) << "\n";
    s << "EOD\n";
  }
  s << "plot ";
  for (size_t i = 0; i < chart.series.size(); ++i)
    s << (i ? ", \\\n     " : "") << "$s" << i << " using 1:2 with linespoints lw 2 pt 7 ps 0.5 lc rgb '" << color(i)
      << "' title " << quoted(chart.series[i].title);
  s << "\n";
  return s.str();
}

std::string script(const StackedBars& chart, const std::string& svg_name) {
  std::ostringstream s;
  s << preamble(svg_name, chart.title, chart.ylabel)
    << "set style data histograms\nset style histogram rowstacked\n"
    << "set style fill solid 0.85 border rgb '#444444'\nset boxwidth 0.7\n"
    << "set xtics rotate by -30\nset yrange [0:*]\n"
    << "$bars << EOD\n";
  for (size_t b = 0; b < chart.bars.size(); ++b) {
    s << quoted(chart.bars[b]);
    for (double v : chart.values[b]) s << " " << number(std::isfinite(v) ? v : 0);
    s << "\n";
  }
  s << "EOD\nplot ";
  for (size_t p = 0; p < chart.parts.size(); ++p)
    s << (p ? ", \\\n     " : "") << "$bars using " << p + 2 << (p ? "" : ":xtic(1)") << " lc rgb '" << color(p)
      << "' title " << quoted(chart.parts[p]);
  s << "\n";
  return s.str();
}

std::string draw(const std::string& script_text, const std::string& dir, const std::string& name) {
  const std::string gp = (fs::path(dir) / (name + ".gp")).string();
  std::ofstream(gp) << script_text;
  const GnuplotRun run = run_gnuplot(gp);
  if (!run.found) return "  " + gp + " (gnuplot not found: apt-get install gnuplot-nox, then run it)";
  if (run.status != 0 || !run.first_line.empty()) {
    const std::string& said = run.first_line;
    return "  " + gp + ": gnuplot " + (run.status != 0 ? "failed" : "warned") + (said.empty() ? "" : ": " + said);
  }
  return "  " + (fs::path(dir) / (name + ".svg")).string();
}

}  // namespace dtb::exp
