#pragma once
// What `dtbench sim --plot` and `dtbench report` share to drive gnuplot (Debian's
// gnuplot-nox): quoting a string for a script, and running a script where it lies.
#include <filesystem>
#include <string>

namespace dtb {

// TEXT inside gnuplot's double quotes.
std::string gnuplot_quoted(const std::string& text);

// Tics for a log axis from LO to HI at 1, 2 and 5 x 10^k, as "1, 2, 5, 10": decades alone
// leave a range such as 15-250 with one tic.
std::string log_tics(double lo, double hi);

struct GnuplotRun {
  bool found = false;      // gnuplot is installed (otherwise nothing ran)
  int status = 0;          // its exit status
  std::string first_line;  // the first line it printed (a warning or an error), or ""
};
// Runs `gnuplot SCRIPT` in SCRIPT's folder: the scripts name their figures without one.
GnuplotRun run_gnuplot(const std::filesystem::path& script);

}  // namespace dtb
