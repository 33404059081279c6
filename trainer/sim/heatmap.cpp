#include "sim/heatmap.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "sim/gnuplot.hpp"

namespace dtb::sim {
namespace {

namespace fs = std::filesystem;

// A number with every digit a double has (it reads back exactly); NaN where a point has none.
std::string exact(double v) {
  char buf[40];
  std::snprintf(buf, sizeof buf, "%.17g", v);
  return buf;
}

std::string data_file(const HeatMap& m) {
  std::ostringstream d;
  d << "# dtbench sim: " << m.z_label << "; rows: " << m.y_key << ", columns: " << m.x_key << "\n";
  d << m.y_key << "\\" << m.x_key;
  for (const std::string& x : m.x_values) d << "\t" << x;
  d << "\n";
  for (size_t y = 0; y < m.y_values.size(); ++y) {
    d << m.y_values[y];
    for (const double z : m.z[y]) d << "\t" << exact(z);
    d << "\n";
  }
  return d.str();
}

// Tics at the cell centres 0, 1, ... named by the swept values.
std::string tics(const char* axis, const std::vector<std::string>& values) {
  std::string out = std::string("set ") + axis + "tics (";
  for (size_t i = 0; i < values.size(); ++i)
    out += (i ? ", " : "") + gnuplot_quoted(values[i]) + " " + std::to_string(i);
  return out + ") noenhanced\n";
}

// Colour on a log scale when the metric spans more than 10x (step times over bandwidths do).
std::string colour_scale(const HeatMap& m) {
  double lo = INFINITY, hi = -INFINITY;
  for (const auto& row : m.z)
    for (const double z : row)
      if (std::isfinite(z)) lo = std::min(lo, z), hi = std::max(hi, z);
  if (!(lo > 0 && hi / lo > 10)) return "";
  return "set logscale cb\nset cbtics (" + log_tics(lo, hi) + ")\n";
}

std::string script(const HeatMap& m, const std::string& name) {
  const std::string data = gnuplot_quoted(name + ".dat");
  std::ostringstream s;
  s << "# Written by dtbench sim; run `gnuplot " << name << ".gp` to redraw " << name << ".svg and " << name
    << ".png from " << name << ".dat.\n"
    << "set title " << gnuplot_quoted(m.title) << " noenhanced\n"
    << "set xlabel " << gnuplot_quoted(m.x_key) << " noenhanced\n"
    << "set ylabel " << gnuplot_quoted(m.y_key) << " noenhanced\n"
    << "set cblabel " << gnuplot_quoted(m.z_label) << " noenhanced\n"
    << tics("x", m.x_values) << tics("y", m.y_values)
    << "set xrange [-0.5:" << double(m.x_values.size()) - 0.5 << "]\n"
    << "set yrange [-0.5:" << double(m.y_values.size()) - 0.5 << "]\n"
    << colour_scale(m)
    << "set palette defined (0 '#440154', 1 '#3b528b', 2 '#21918c', 3 '#5ec962', 4 '#fde725')  # viridis\n"
    << "set style textbox opaque fillcolor rgb 'white' noborder\n"
    << "set terminal svg size 900,560 dynamic enhanced font 'Helvetica,13' background rgb 'white'\n"
    << "set output " << gnuplot_quoted(name + ".svg") << "\n";
  s << "plot " << data << " matrix rowheaders columnheaders using 1:2:3 with image notitle";
  // Each cell's value written in it, while the cells are large enough to hold one.
  if (m.x_values.size() <= 12 && m.y_values.size() <= 16)
    s << ", \\\n     " << data
      << " matrix rowheaders columnheaders using 1:2:(sprintf('%.3g', $3)) with labels boxed font ',10' notitle";
  s << "\nset terminal pngcairo size 1200,750 enhanced font 'Helvetica,12'\n"
    << "set output " << gnuplot_quoted(name + ".png") << "\nreplot\n";
  return s.str();
}

void write_file(const fs::path& path, const std::string& text) {
  const fs::path tmp = path.string() + ".tmp";
  std::ofstream(tmp) << text;
  fs::rename(tmp, path);
}

}  // namespace

std::string write_heatmap(const HeatMap& map, const std::string& stem) {
  const fs::path base(stem);
  if (base.has_parent_path()) fs::create_directories(base.parent_path());
  const std::string name = base.filename().string();
  const fs::path dat = stem + ".dat", gp = stem + ".gp";
  write_file(dat, data_file(map));
  write_file(gp, script(map, name));
  const GnuplotRun run = run_gnuplot(gp);
  if (!run.found)
    return "# heat map data: " + dat.string() + ", script " + gp.string() + " (gnuplot not found: apt-get install " +
           "gnuplot-nox, then gnuplot " + gp.string() + ")";
  if (run.status != 0) return "# gnuplot failed on " + gp.string() + (run.first_line.empty() ? "" : ": " + run.first_line);
  return "# heat map: " + stem + ".svg, " + stem + ".png (data " + dat.string() + ", script " + gp.string() + ")" +
         (run.first_line.empty() ? "" : "; gnuplot warned: " + run.first_line);
}

}  // namespace dtb::sim
