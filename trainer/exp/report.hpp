#pragma once
// `dtbench report DIR`: one table row per run (step time, tokens/s, MFU, exposed comm and
// its share of the step, DP time hidden behind the backward, bytes across sites, slowdown
// against the run's named baseline or the centralized run of the same settings, final
// losses), the runs that did not finish (failed, incomplete, not run) with the reason the
// folder gives, the step-time breakdown, loss curves against step and time and, for
// `dtbench coll` results, busbw against size. Written to DIR/report.md with SVG and PNG
// figures beside it (and, with --csv, every table as DIR/<table>.csv; with --json, all of them
// in DIR/report.json); the tables also go
// to the terminal. Everything comes from the folder's files (results, logs, experiment.yaml
// for the run order and baselines), so the same files give the same bytes.
#include <iosfwd>
#include <string>
#include <vector>

namespace dtb::exp {

struct ReportOutcome {
  std::string path;    // DIR/report.md
  size_t results = 0;  // files reported
  size_t skipped = 0;  // files that are not readable dtbench train or coll results
  std::vector<std::string> csv;  // the table files written (--csv, --json)
};

struct ReportOptions {
  bool csv = false;   // also write every table to DIR/<table>.csv
  bool json = false;  // also write every table to DIR/report.json
};

// Reads every *.h5 of DIR. A file that cannot be read is skipped with one line on ERR (and
// listed in the report). Throws UsageError when DIR is not a folder or holds no readable result.
ReportOutcome write_report(const std::string& dir, std::ostream& out, std::ostream& err,
                           const ReportOptions& options = {});

}  // namespace dtb::exp
