#include "train/results.hpp"

#include "h5file.hpp"
#include "provenance.hpp"

namespace dtb {
namespace {

// One 1-D dataset per column: easy to open with h5py and to assemble into a DataFrame.
template <typename Record, typename Field>
std::vector<Field> column(const std::vector<Record>& rows, Field Record::*field) {
  std::vector<Field> out;
  out.reserve(rows.size());
  for (const Record& r : rows) out.push_back(r.*field);
  return out;
}

}  // namespace

void write_train_results(const std::string& path, const TrainRunSummary& run) {
  h5::File f = h5::File::create(path);
  write_provenance(f, "dtbench-result", 1, "train", run.command_line);
  f.set_attr("/", "num_params", run.num_params);
  f.set_attr("/", "flops_per_token", run.flops_per_token);
  f.write_string("config", run.config_yaml);
  f.write<int64_t>("steps/step", column(run.steps, &StepRecord::step));
  f.write<double>("steps/loss", column(run.steps, &StepRecord::loss));
  f.write<double>("steps/grad_norm", column(run.steps, &StepRecord::grad_norm));
  f.write<double>("steps/lr", column(run.steps, &StepRecord::lr));
  f.write<double>("steps/time_ms", column(run.steps, &StepRecord::time_ms));
  f.write<double>("steps/tokens_per_s", column(run.steps, &StepRecord::tokens_per_s));
  f.write<double>("steps/gflops", column(run.steps, &StepRecord::gflops));
  f.write<int64_t>("val/step", column(run.val, &ValRecord::step));
  f.write<double>("val/loss", column(run.val, &ValRecord::loss));
  f.commit();
}

}  // namespace dtb
