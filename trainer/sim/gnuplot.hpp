#pragma once
// What `dtbench sim --plot` and `dtbench report` share to drive gnuplot (Debian's
// gnuplot-nox): quoting a string for a script, and running a script where it lies.
#include <filesystem>
#include <string>

namespace dtb {

// TEXT inside gnuplot's double quotes.
std::string gnuplot_quoted(const std::string& text);

struct GnuplotRun {
  bool found = false;      // gnuplot is installed (otherwise nothing ran)
  int status = 0;          // its exit status
  std::string first_line;  // the first line it printed (a warning or an error), or ""
};
// Runs `gnuplot SCRIPT` in SCRIPT's folder: the scripts name their figures without one.
GnuplotRun run_gnuplot(const std::filesystem::path& script);

}  // namespace dtb
