#include "sim/gnuplot.hpp"

#include <cmath>
#include <cstdio>
#include <cstdlib>

namespace dtb {
namespace {

// TEXT inside the shell's single quotes.
std::string shell_quoted(const std::string& text) {
  std::string out = "'";
  for (char c : text) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

}  // namespace

std::string gnuplot_quoted(const std::string& text) {
  std::string out = "\"";
  for (char c : text) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out + "\"";
}

std::string log_tics(double lo, double hi) {
  std::string tics;
  for (int k = int(std::floor(std::log10(lo))); k <= int(std::ceil(std::log10(hi))); ++k)
    for (const double f : {1.0, 2.0, 5.0})
      if (const double v = f * std::pow(10.0, k); v >= lo && v <= hi) {
        char buf[32];
        std::snprintf(buf, sizeof buf, "%.10g", v);
        tics += (tics.empty() ? "" : ", ") + std::string(buf);
      }
  return tics;
}

GnuplotRun run_gnuplot(const std::filesystem::path& script) {
  GnuplotRun run;
  run.found = std::system("command -v gnuplot >/dev/null 2>&1") == 0;
  if (!run.found) return run;
  const std::filesystem::path folder = script.has_parent_path() ? script.parent_path() : ".";
  const std::string command =
      "cd " + shell_quoted(folder.string()) + " && gnuplot " + shell_quoted(script.filename().string()) + " 2>&1";
  FILE* pipe = popen(command.c_str(), "r");
  char buf[512];
  while (pipe && std::fgets(buf, sizeof buf, pipe))
    if (run.first_line.empty()) run.first_line = buf;
  run.status = pipe ? pclose(pipe) : -1;
  if (!run.first_line.empty() && run.first_line.back() == '\n') run.first_line.pop_back();
  return run;
}

}  // namespace dtb
