#pragma once
// The report's figures, drawn by gnuplot (Debian's gnuplot-nox, as `dtbench sim --plot`):
// each figure is a self-contained script with its data inline (NAME.gp) beside the two
// figures it draws, NAME.svg (for the web and LaTeX) and NAME.png (for slides and
// documents), so a figure can be restyled and redrawn without dtbench. Same data, same
// bytes: the scripts print numbers with fixed precision and neither terminal writes a date.
#include <string>
#include <utility>
#include <vector>

namespace dtb::exp {

struct Series {
  std::string title;
  std::vector<std::pair<double, double>> points;
};

struct LineChart {
  std::string title, xlabel, ylabel;
  bool log_x = false, log_y = false;
  std::vector<std::pair<double, std::string>> xtics;  // labelled ticks; empty: gnuplot's own
  std::vector<Series> series;
};

// One bar per category, stacked from its parts; values[bar][part].
struct StackedBars {
  std::string title, ylabel;
  std::vector<std::string> bars, parts;
  std::vector<std::vector<double>> values;
};

// The script drawing NAME.svg and NAME.png. Line charts give each series its own colour,
// dash type and point type, so that curves lying on each other stay distinguishable.
std::string script(const LineChart& chart, const std::string& name);
std::string script(const StackedBars& chart, const std::string& name);

// Writes DIR/NAME.gp and, when gnuplot is installed, runs it to draw DIR/NAME.svg and
// DIR/NAME.png. Returns a line for the terminal: what was drawn, or how to draw it later.
std::string draw(const std::string& script_text, const std::string& dir, const std::string& name);

}  // namespace dtb::exp
