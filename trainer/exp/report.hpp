#pragma once
// `dtbench report DIR`: one table row per run (step time, tokens/s, MFU, comm share,
// exposed comm, bytes across sites, slowdown against the centralized run of the same
// settings, final loss), the step-time breakdown, the loss curves and, for `dtbench coll`
// results, busbw against size. Written to DIR/report.md with SVG figures beside it; the
// tables also go to the terminal. Everything comes from the result files (and DIR's
// experiment.yaml, for the run order and the baseline profile), so the same files give
// the same bytes.
#include <iosfwd>
#include <string>

namespace dtb::exp {

struct ReportOutcome {
  std::string path;    // DIR/report.md
  size_t results = 0;  // files reported
  size_t skipped = 0;  // files that are not readable dtbench train or coll results
};

// Reads every *.h5 of DIR. A file that cannot be read is skipped with one line on ERR (and
// listed in the report). Throws UsageError when DIR is not a folder or holds no readable result.
ReportOutcome write_report(const std::string& dir, std::ostream& out, std::ostream& err);

}  // namespace dtb::exp
