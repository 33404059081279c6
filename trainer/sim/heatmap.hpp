#pragma once
// A two-key sweep of `dtbench sim` as a heat map (gnuplot, SVG and PNG), beside its
// one-curve-per-value plot: the first --sweep key across, the second up, the metric in
// colour and written in each cell. The numbers go to a plain data file that the script
// reads, so the figure and the file cannot disagree and either can be used in a paper.
#include <string>
#include <vector>

namespace dtb::sim {

struct HeatMap {
  std::string title, x_key, y_key, z_label;  // z_label: the metric and its unit
  std::vector<std::string> x_values, y_values;  // as the --sweep flags gave them
  std::vector<std::vector<double>> z;           // z[y][x]
};

// Writes STEM.dat (a comment line naming the axes and the metric, then a header line
// `y_key\x_key` and the x values, then one line per y value: the value and its row of the
// metric, tab-separated, every digit of a double), STEM.gp and, with gnuplot, STEM.svg and
// STEM.png. Returns a line for the terminal saying what was written.
std::string write_heatmap(const HeatMap& map, const std::string& stem);

}  // namespace dtb::sim
