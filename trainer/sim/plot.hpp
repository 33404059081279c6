#pragma once
// Line plots through gnuplot (Debian's gnuplot-nox): the simulator writes a self-contained
// gnuplot script (data inline) next to the figure and runs it when gnuplot is installed;
// otherwise it says how to draw the figure later. The figure's format follows its
// extension: .svg or .png.
#include <string>
#include <vector>

namespace dtb::sim {

struct PlotPoint {
  double x, y;
  std::string label;  // marks: drawn beside the point; curve points: x tick text (text axes)
};

struct Curve {
  std::string name;
  std::vector<PlotPoint> points;
};

struct Plot {
  std::string title, xlabel, ylabel;
  bool log_x = false, log_y = false, text_x = false;  // text_x: x = 0, 1, ... with labels
  // One curve per value of a second swept key (or one curve). A single curve on a text
  // axis (net.algo, net.codec) is drawn as bars: its values are categories, not a line.
  std::vector<Curve> curves;
  std::vector<PlotPoint> marks;
  std::string marks_name = "profiles";
};

// Writes PATH's script (PATH without extension + ".gp") and, with gnuplot, the figure.
// Returns a line for the terminal saying what was written.
std::string write_plot(const Plot& plot, const std::string& path);

}  // namespace dtb::sim
