#pragma once
// `dtbench sim` results in HDF5 (kind = sim); the layout is in results/README.md
// ("Simulations"). One row per simulated point: a single run is one point, a sweep one
// per value, marks in their own group; the article preset writes its table.
#include <string>
#include <vector>

#include "sim/article.hpp"
#include "sim/sweep.hpp"

namespace dtb::sim {

struct SimRun {
  std::string command_line, preset;
  std::string config_yaml;      // the resolved base config
  std::string net_profile;      // its profile file ("" = none)
  std::string sweep_key, mark_key;  // "" when none
  std::string series_key;           // a two-key sweep's second key (each point's `series`); "" when none
  std::vector<SweepPoint> points, marks;
};

void write_sim_results(const std::string& path, const SimRun& run);
void write_article_results(const std::string& path, const std::string& command_line,
                           const std::vector<ArticleRow>& rows);

}  // namespace dtb::sim
