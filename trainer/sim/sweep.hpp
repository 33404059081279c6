#pragma once
// Sweeps: one config key (or two: one curve per value of the second) over a list (`--sweep net.algo=ring,hier,ps`) or a range
// (`--sweep net.bandwidth=100Mbps:400Gbps:log20`, `--sweep parallel.dp=1:64:log7`,
// `--sweep parallel.microbatches=8:128:lin16`; `lo:hi:N` is linear), each value set on
// top of the base config as `--set` would. Marks (`--mark net.profile=A.yaml,B.yaml`) are
// single configs drawn as labelled points on the sweep's plot.
#include <string>
#include <vector>

#include "config.hpp"
#include "sim/simulator.hpp"

namespace dtb::sim {

// How a key's values are read: network rates and delays with units, plain numbers, text.
enum class ValueKind { kBandwidth, kDuration, kNumber, kText };
ValueKind value_kind(const Config& config, const std::string& key);

struct SweepAxis {
  std::string key;
  ValueKind kind = ValueKind::kText;
  std::vector<std::string> values;  // as set on the config
  std::vector<double> x;            // numeric value: bits/s, seconds, the number; NaN for text
};

// "KEY=v1,v2,..." or "KEY=lo:hi:logN|linN|N". OPTION names the flag in errors.
SweepAxis parse_axis(const Config& base, const std::string& spec, const std::string& option);

struct SweepPoint {
  std::string label;  // the value (a file's stem for paths)
  double x = 0;       // where it goes on the plot
  SimResult result;
  std::string series = "";  // a two-key sweep: the second key's value (its curve); else ""
};

// Every value of AXIS on top of BASE.
std::vector<SweepPoint> run_sweep(const Config& base, const SweepAxis& axis);
// A two-key sweep: AXIS (the x axis) once per value of BY (one curve each), BY's values
// outermost; each point's `series` is BY's value.
std::vector<SweepPoint> run_sweep(const Config& base, const SweepAxis& axis, const SweepAxis& by);
// Every value of MARKS on top of BASE, placed on SWEPT's axis: a bandwidth sweep places a
// mark at the slowest link it uses, a latency sweep at the largest latency it sees, any
// other numeric sweep at the mark's own value of the swept key.
std::vector<SweepPoint> run_marks(const Config& base, const SweepAxis& marks, const SweepAxis& swept);

}  // namespace dtb::sim
