#pragma once
// `dtbench sim --preset article`: the arithmetic of "A rational look at decentralized
// compute networks" (Foresight Ventures, 2023), figure by figure, beside what dtbench
// computes for the same thing, and beside what real collectives move and cost per step on
// the article's two networks (configs/net/centralized-25g.yaml and decentralized-1g.yaml,
// 100 nodes). Every time comes from netem's alpha-beta model of the profile and the
// collectives' cost formulas, never from the article's division.
#include <iosfwd>
#include <string>
#include <vector>

namespace dtb::sim {

struct ArticleRow {
  std::string id;       // stable name for tests and the results file, e.g. "copy_25g"
  std::string what;     // the claim, or the method
  std::string network;  // "" or "25 Gbps" / "1 Gbps"
  std::string unit;     // "B" or "s"
  double article;       // the article's figure (NaN where it gives none)
  double ours;          // dtbench's figure, same unit
  double sent;          // bytes the busiest node sends (NaN where it does not apply)
  std::string why;      // why the two differ
};

std::vector<ArticleRow> article_rows();
void print_article(std::ostream& out, const std::vector<ArticleRow>& rows);

}  // namespace dtb::sim
