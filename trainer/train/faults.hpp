#pragma once
// Faults on purpose (faults.*), for experiments: deterministic, the same in the trainer's
// two clocks and in dtbench sim. Stragglers: the compute of chosen world ranks takes
// `slowdown` times as long (the virtual clock charges it so; the wall clock sleeps the
// difference; the simulator stretches the stage that rank computes). Link faults
// (outages, bandwidth over time, bursty loss) are netem's (netem/link_faults.hpp): the
// keys are read here and attached to the run's profile (attach_link_faults).
#include <vector>

#include "config.hpp"
#include "link_faults.hpp"
#include "profile.hpp"

namespace dtb {

struct FaultSettings {
  std::vector<int> slow_ranks;  // world ranks (as mpirun numbers them)
  double slowdown = 1;          // their compute takes this many times as long
  netem::LinkFaultSpec links;   // faults.outages, .links, .bandwidth, .burst_*
  int64_t grad_spike_step = 0;  // faults.grad_spike_step: at this step (1-based, as the step line counts) ...
  double grad_spike = 1;        // ... every gradient is multiplied by this (NaN: set to NaN) ...
  int grad_spike_rank = -1;     // ... on this world rank (-1: every rank): tests of optim.outlier_z, non-finite stops
  std::string hang_at = "none"; // faults.hang_at: init | startup | finalize: test knob, the rank hangs there ...
  int hang_rank = 0;            // ... this one (its launcher's rank)
  // The slowdown of world rank RANK (1 unless it is a slow rank).
  double factor(int rank) const;
};

// faults.slow_ranks ("1,3", '' = none) and faults.slowdown.
FaultSettings fault_settings(const Config& config);

// Throws UsageError when a slow rank is outside [0, WORLD).
void check_fault_ranks(const FaultSettings& f, int world);

// The faults.* keys beyond the stragglers' (links, gradient spikes), for the trainer's key table.
std::vector<KeySpec> more_fault_key_specs();

// faults.hang_at: when AT is that phase and this process is faults.hang_rank (RANK, the
// launcher's), it stops answering for good (tests of the watchdog); otherwise nothing.
void hang_if_asked(const FaultSettings& f, const std::string& at, int rank);

// Puts the run's link faults on PROFILE (its site names resolve them); throws UsageError
// for a bad entry. The trainer and the simulator both call it, on the profile they built.
void attach_link_faults(netem::Profile& profile, const FaultSettings& f);

}  // namespace dtb
