#include "exp/gnuplot.hpp"

#include <algorithm>
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
std::string preamble(const std::string& name, const std::string& title, const std::string& ylabel) {
  return "# Written by dtbench report; `gnuplot " + name + ".gp` redraws " + name + ".svg and " + name + ".png.\n"
         "set terminal svg size 960,540 dynamic noenhanced font 'Helvetica,12' background rgb 'white'\n"
         "set output " + quoted(name + ".svg") + "\n"
         "set title " + quoted(title) + "\n"
         "set ylabel " + quoted(ylabel) + "\n"
         "set grid ytics lc rgb '#dddddd'\n"
         "set format y '%g'\n"
         "set key below horizontal\n";
}

// The same figure again as a PNG (the data blocks are still defined).
std::string png_copy(const std::string& name) {
  return "set terminal pngcairo size 960,540 noenhanced font 'Helvetica,12' background rgb 'white'\n"
         "set output " + quoted(name + ".png") + "\nreplot\n";
}

// Series I of N: its own colour (after 10 they repeat), dash type (after 5) and hollow point
// type (after 7), and lines thinner the later they are drawn, so that curves lying exactly
// on each other (the same losses on two networks) still show every one: the wider ones
// below frame the thinner dashed ones, and the hollow markers nest.
std::string line_style(size_t i, size_t n, size_t points) {
  static const int kPointTypes[] = {6, 4, 8, 10, 12, 14, 2};
  const size_t every = std::max<size_t>(1, points / 12);  // a dozen markers per curve
  const double width = n > 1 ? 1.2 + 2.8 * double(n - 1 - i) / double(n - 1) : 2;
  return "lw " + number(width) + " dt " + std::to_string(i % 5 + 1) + " pt " + std::to_string(kPointTypes[i % 7]) +
         " ps 1 pi " + std::to_string(every) + " lc rgb '" + color(i) + "'";
}

}  // namespace

std::string script(const LineChart& chart, const std::string& name) {
  std::ostringstream s;
  s << preamble(name, chart.title, chart.ylabel) << "set xlabel " << quoted(chart.xlabel) << "\n"
    << (chart.log_x ? "set logscale x " + std::string(chart.xtics.empty() ? "10" : "2") + "\n" : "")
    // '%g' on a log axis: 1e-05 ... 100, not gnuplot's default 0.0000100 ... 100.000000.
    << (chart.log_x ? "set format x '%g'\n" : "") << (chart.log_y ? "set logscale y\n" : "");
  for (size_t i = 0; i < chart.xtics.size(); ++i)
    s << (i ? ", " : "set xtics (") << quoted(chart.xtics[i].second) << " " << number(chart.xtics[i].first)
      << (i + 1 == chart.xtics.size() ? ")\n" : "");
  for (size_t i = 0; i < chart.series.size(); ++i) {
    s << "$s" << i << " << EOD\n";
    for (const auto& [x, y] : chart.series[i].points)
      if (std::isfinite(x) && std::isfinite(y) && (!chart.log_y || y > 0) && (!chart.log_x || x > 0))
        s << number(x) << " " << number(y) << "\n";
    s << "EOD\n";
  }
  s << "plot ";
  for (size_t i = 0; i < chart.series.size(); ++i)
    s << (i ? ", \\\n     " : "") << "$s" << i << " using 1:2 with linespoints "
      << line_style(i, chart.series.size(), chart.series[i].points.size()) << " title " << quoted(chart.series[i].title);
  s << "\n" << png_copy(name);
  return s.str();
}

std::string script(const StackedBars& chart, const std::string& name) {
  std::ostringstream s;
  s << preamble(name, chart.title, chart.ylabel)
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
  s << "\n" << png_copy(name);
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
  return "  " + (fs::path(dir) / (name + ".svg")).string() + ", " + name + ".png";
}

}  // namespace dtb::exp
