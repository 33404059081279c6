#include "train/results.hpp"

#include <utility>

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

void write_rank_steps(h5::File& f, const TrainRunSummary& run) {
  const auto& r = run.rank_steps;
  f.set_attr("/", "layout", run.layout);
  f.set_attr("/", "mfu_peak_gflops", run.mfu_peak_gflops);
  f.set_attr("/", "mfu_peak_source", run.mfu_peak_source);
  f.set_attr("/", "dp_buckets", run.dp_buckets);
  f.set_attr("/", "dp_bucket_mb", run.dp_bucket_mb);
  f.write<int64_t>("ranks/rank", column(r, &RankStepRecord::rank));
  f.write<int64_t>("ranks/step", column(r, &RankStepRecord::step));
  const std::pair<const char*, double RankStepRecord::*> times[] = {
      {"forward", &RankStepRecord::forward},       {"backward", &RankStepRecord::backward},
      {"optimizer", &RankStepRecord::optimizer},   {"harness", &RankStepRecord::harness},
      {"tp_comm", &RankStepRecord::tp_comm},       {"pp_comm", &RankStepRecord::pp_comm},
      {"bubble", &RankStepRecord::bubble},         {"dp_total", &RankStepRecord::dp_total},
      {"dp_exposed", &RankStepRecord::dp_exposed}, {"other_comm", &RankStepRecord::other_comm},
      {"idle", &RankStepRecord::idle},             {"step_time", &RankStepRecord::step_time},
      {"kernel_cpu", &RankStepRecord::kernel_cpu}, {"comm_cpu", &RankStepRecord::comm_cpu}};
  for (const auto& [name, field] : times) f.write<double>(std::string("ranks/") + name, column(r, field));
  const std::pair<const char*, uint64_t RankStepRecord::*> bytes[] = {
      {"bytes_tp", &RankStepRecord::bytes_tp},       {"bytes_pp", &RankStepRecord::bytes_pp},
      {"bytes_dp", &RankStepRecord::bytes_dp},       {"bytes_other", &RankStepRecord::bytes_other},
      {"bytes_intra", &RankStepRecord::bytes_intra}, {"bytes_inter", &RankStepRecord::bytes_inter}};
  for (const auto& [name, field] : bytes) {
    std::vector<int64_t> v;
    for (const RankStepRecord& x : r) v.push_back(int64_t(x.*field));
    f.write<int64_t>(std::string("ranks/") + name, v);
  }
}

}  // namespace

void write_train_results(const std::string& path, const TrainRunSummary& run) {
  h5::File f = h5::File::create(path);
  write_provenance(f, "dtbench-result", 1, "train", run.command_line);
  f.set_attr("/", "num_params", run.num_params);
  f.set_attr("/", "flops_per_token", run.flops_per_token);
  f.set_attr("/", "status", run.status);
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
  if (!run.rank_steps.empty()) write_rank_steps(f, run);
  if (run.outlier_skips >= 0) {  // optim.outlier_z: how many updates were skipped, and which
    f.set_attr("/", "outlier_skips", run.outlier_skips);
    f.write<int64_t>("outlier/skipped_steps", run.skipped_steps);
  }
  if (run.pp_buffer_bytes >= 0) {  // parallel.pp_compress: AQ-SGD's per-sample buffers at the run's end
    f.set_attr("/", "pp_buffer_bytes", run.pp_buffer_bytes);
    f.set_attr("/", "pp_buffer_bytes_world", run.pp_buffer_bytes_world);
  }
  if (run.write_more) run.write_more(f);
  f.commit();
}

}  // namespace dtb
