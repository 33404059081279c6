#include "train/train.hpp"

#include <cctype>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <ostream>

#include "optim/adamw.hpp"
#include "provenance.hpp"
#include "train/checkpoint.hpp"

namespace dtb {

std::string periodic_checkpoint_path(const std::string& final_path, int64_t step) {
  std::filesystem::path p(final_path);
  char suffix[32];
  std::snprintf(suffix, sizeof suffix, "-step%06lld", static_cast<long long>(step));
  return (p.parent_path() / (p.stem().string() + suffix + p.extension().string())).string();
}

namespace {

std::string step_line(const StepRecord& r, int steps) {
  char buf[200];
  std::snprintf(buf, sizeof buf,
                "step %5lld/%d | loss %.4f | norm %.4f | lr %.2e | %.1f ms | %.0f tok/s | %.1f GFLOP/s",
                static_cast<long long>(r.step + 1), steps, r.loss, r.grad_norm, r.lr, r.time_ms,
                r.tokens_per_s, r.gflops);
  return buf;
}

}  // namespace

Trainer::Trainer(const Config& config, std::ostream& log)
    : config_yaml_(config.to_yaml()),
      s_(train_settings(config)),
      log_(log),
      train_split_(s_.data_path, "train", s_.model.vocab_size, s_.seq_len),
      val_split_(s_.data_path, "val", s_.model.vocab_size, s_.seq_len),
      inputs_(size_t(s_.batch_size) * s_.seq_len),
      targets_(size_t(s_.batch_size) * s_.seq_len) {
  set_num_threads(s_.threads);
  backend_ = make_backend(s_);
  summary_.config_yaml = config_yaml_;
  summary_.num_params = int64_t(num_parameters(s_.model));
  summary_.flops_per_token = backend_->flops_per_token();
}

void Trainer::resume(const std::string& path) {
  CheckpointState ck = load_checkpoint(path);
  const GPTConfig& a = ck.model;
  const GPTConfig& b = s_.model;
  if (a != b)
    throw UsageError(path + ": checkpoint model shape differs from the config's model.* keys");
  if (ck.seed != s_.seed)
    throw UsageError(path + ": checkpoint seed " + std::to_string(ck.seed) +
                     " differs from train.seed = " + std::to_string(s_.seed) +
                     "; the data order would not continue");
  backend_->set_state(ck.params.data(), ck.adam_m.data(), ck.adam_v.data());
  step_ = ck.step;
  log_ << "resumed from " << path << " at step " << step_ << "\n";
}

void Trainer::save(const std::string& path) const {
  CheckpointState ck;
  ck.model = s_.model;
  ck.step = step_;
  ck.seed = s_.seed;
  ck.data_cursor = uint64_t(step_);  // one global batch per step
  const size_t n = num_parameters(s_.model);
  ck.params.resize(n);
  ck.adam_m.resize(n);
  ck.adam_v.resize(n);
  backend_->get_state(ck.params.data(), ck.adam_m.data(), ck.adam_v.data());
  ck.config_yaml = config_yaml_;
  save_checkpoint(path, ck);
}

double Trainer::validate() {
  double total = 0;
  for (int i = 0; i < s_.val_batches; ++i) {
    val_split_.batch(s_.seed ^ kValSeedSalt, uint64_t(i), s_.batch_size, s_.seq_len, 0, 1,
                     inputs_.data(), targets_.data());
    total += backend_->forward(inputs_.data(), targets_.data());
  }
  return total / s_.val_batches;
}

StepRecord Trainer::train_step() {
  auto start = std::chrono::steady_clock::now();
  train_split_.batch(s_.seed, uint64_t(step_), s_.batch_size, s_.seq_len, 0, 1, inputs_.data(),
                     targets_.data());
  StepRecord r{};
  r.step = step_;
  r.loss = backend_->forward(inputs_.data(), targets_.data());
  r.grad_norm = backend_->backward();
  r.lr = learning_rate(s_.optim, int(step_), s_.steps);
  backend_->update(r.lr, step_ + 1, clip_scale(r.grad_norm, s_.optim.grad_clip));
  ++step_;
  r.time_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
  const double tokens = double(s_.batch_size) * s_.seq_len;
  r.tokens_per_s = tokens / (r.time_ms / 1e3);
  r.gflops = summary_.flops_per_token * tokens / (r.time_ms * 1e6);
  return r;
}

const TrainRunSummary& Trainer::run(const std::string& command_line) {
  summary_.command_line = command_line;
  log_ << "model " << s_.name << ": " << summary_.num_params << " parameters, "
       << backend_->describe() << ", dataset " << s_.data_path << " ("
       << train_split_.size() << " train / " << val_split_.size() << " val tokens)\n";
  while (step_ < s_.steps) {
    StepRecord r = train_step();
    summary_.steps.push_back(r);
    if (step_ % s_.log_every == 0 || step_ == s_.steps) log_ << step_line(r, s_.steps) << "\n";
    if (s_.val_every > 0 && (step_ % s_.val_every == 0 || step_ == s_.steps)) {
      summary_.val.push_back({step_, validate()});
      log_ << "val loss " << summary_.val.back().loss << " after step " << step_ << "\n";
    }
    const bool periodic = s_.checkpoint_every > 0 && step_ % s_.checkpoint_every == 0;
    if (!s_.checkpoint_path.empty() && periodic && step_ < s_.steps)
      save(periodic_checkpoint_path(s_.checkpoint_path, step_));
  }
  if (!s_.checkpoint_path.empty()) {
    save(s_.checkpoint_path);
    log_ << "checkpoint " << s_.checkpoint_path << "\n";
  }
  const std::string results = s_.results_path.empty() ? default_results_path() : s_.results_path;
  write_train_results(results, summary_);
  log_ << "results " << results << "\n";
  return summary_;
}

std::string Trainer::default_results_path() const {
  std::string stamp = utc_timestamp();  // 2026-11-22T10:15:03Z -> 20261122-101503
  std::string compact;
  for (char c : stamp)
    if (std::isdigit(static_cast<unsigned char>(c))) compact += c;
  return "results/runs/" + s_.name + "-" + compact.substr(0, 8) + "-" + compact.substr(8) + ".h5";
}

}  // namespace dtb
