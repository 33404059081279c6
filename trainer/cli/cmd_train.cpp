// dtbench train: train a GPT model from YAML configs and --set overrides, on the ranks its
// launcher started (mpirun, srun), or on one rank without one: MPI then starts as a
// singleton, and the world of one runs the same trainer (trainer/parallel/) as N ranks.
//
// Errors after MPI is up (see "Faults" in README.md): one before training starts that
// every rank meets alike (bad input) ends every rank normally, rank 0 saying why (exit 2);
// any other ends the job with MPI_Abort after its rank's one line, so that no rank waits
// forever for one that left.
#include <cstdio>
#include <iostream>
#include <memory>
#include <optional>
#include <sstream>

#include "cli/cli_common.hpp"
#include "cli/commands.hpp"
#include "cli/train_prediction.hpp"
#include "communicator.hpp"
#include "phase_watchdog.hpp"
#include "parallel/parallel_trainer.hpp"
#include "verify/recorder.hpp"
#include "train/run_stopped.hpp"
#include "train/stop_signal.hpp"

namespace dtb {
namespace {

// How long ranks that failed before training wait for the others to fail alike.
constexpr double kSetupGraceSeconds = 10;

// Whether an error may leave run() as it would without MPI (main prints its line, MPI ends
// normally): alone, no rank waits for this one; in SETUP, when every rank failed alike.
bool may_return(bool setup) {
  return coll::MpiSession::world_size() == 1 || (setup && coll::MpiSession::all_failed_within(kSetupGraceSeconds));
}

// Runs F, a phase of the run after MPI is up; an error that may not return ends the job
// from this rank (exit code 2 for bad input, else 1).
template <typename F>
void guarded(bool setup, F&& f) {
  try {
    f();
  } catch (const RunStopped&) {
    throw;  // every rank stops at the same step (what it checks was summed over the world)
  } catch (const UsageError& e) {
    if (may_return(setup)) throw;
    coll::MpiSession::abort_job(e.what(), 2);
  } catch (const std::exception& e) {
    if (may_return(setup)) throw;
    coll::MpiSession::abort_job(e.what(), 1);
  }
}

int run(const Config& config, const cxxopts::ParseResult& args, const std::string& command_line, int* argc,
        char*** argv) {
  const TrainSettings s = train_settings(config);  // every config mistake named before MPI starts
  std::ostringstream warning;
  check_predicted_step(args, s, warning);  // a wall-clock run that would sleep for days
  if (coll::MpiSession::launcher_rank() == 0) std::cout << warning.str();
  hang_if_asked(s.faults, "init", coll::MpiSession::launcher_rank());  // faults.hang_at: a test knob
  // The DP comm thread; MPI_Init and MPI_Finalize under the watchdog (coll/phase_watchdog.hpp).
  coll::MpiSession mpi(argc, argv, /*thread_multiple=*/s.parallel.clock == "wall", s.watchdog_s);
  install_stop_handlers();  // after MPI_Init, which may install handlers of its own
  std::ostringstream quiet;  // only rank 0 talks (declared first: outlives the trainer logging to it)
  std::unique_ptr<coll::Communicator> comm;
  std::unique_ptr<par::ParallelTrainer> trainer;
  std::unique_ptr<verify::Recorder> commitments;  // after the trainer: detached first
  guarded(/*setup=*/true, [&] {
    const int world = coll::MpiSession::world_size();
    // Until the communicators exist, their waits are MPI's own (MPI_Comm_dup, _split): watched here.
    std::optional<coll::PhaseWatchdog> startup;
    startup.emplace("start-up's first collectives (a rank hung before them)", s.watchdog_s,
                    coll::MpiSession::world_rank());
    hang_if_asked(s.faults, "startup", coll::MpiSession::launcher_rank());
    comm = std::make_unique<coll::Communicator>(
        MPI_COMM_WORLD, par::run_profile(s, world),
        s.parallel.clock == "wall" ? netem::ClockKind::kWall : netem::ClockKind::kVirtual);
    comm->set_watchdog(s.watchdog_s);
    std::ostream& log = comm->rank() == 0 ? std::cout : quiet;
    log << "# resolved config\n" << config.to_yaml() << std::flush;
    trainer = std::make_unique<par::ParallelTrainer>(config, *comm, log);
    startup.reset();
    if (args.count("resume")) trainer->resume(args["resume"].as<std::string>());
    trainer->prepare_outputs(args.count("overwrite") > 0);
    commitments = verify::attach_recorder(config, *trainer);  // verify.segment > 0 only
  });
  guarded(/*setup=*/false, [&] { trainer->run(command_line); });
  hang_if_asked(s.faults, "finalize", coll::MpiSession::launcher_rank());
  return trainer->stopped_by() ? kStoppedExitCode : 0;
}

}  // namespace

int cmd_train(int argc, char** argv) {
  std::setvbuf(stdout, nullptr, _IOLBF, 0);  // a killed run's log keeps every line it printed
  std::string command_line;
  for (int i = 0; i < argc; ++i) command_line += (i ? " " : "") + std::string(argv[i]);
  cxxopts::Options options(argv[0], "Train a GPT model on one rank, or on DP x PP x TP ranks under mpirun.\n"
                                    "Exit codes: 0 done, 1 failed, 2 bad input, 3 stopped by SIGTERM, SIGINT or "
                                    "SIGUSR1 after a step (checkpoint and results written).");
  add_config_options(options);
  options.add_options()
      ("resume", "continue from this checkpoint (of any layout)", cxxopts::value<std::string>(), "CKPT")
      ("overwrite", "replace an existing results file or checkpoint (refused otherwise)")
      ("h,help", "print this help");
  try {
    auto args = parse_or_usage(options, argc, argv);
    if (args.count("help")) {
      if (coll::MpiSession::launcher_rank() == 0) std::cout << help_with_keys(options, train_schema());
      return 0;
    }
    if (!args.unmatched().empty())
      throw UsageError(std::string(argv[0]) + ": unexpected argument '" + args.unmatched()[0] +
                       "'; see " + argv[0] + " --help");
    return run(config_from_args(args, train_schema()), args, command_line, &argc, &argv);
  } catch (const UsageError&) {
    if (coll::MpiSession::launcher_rank() != 0) return 2;  // every rank fails alike; rank 0 says why
    throw;
  } catch (const RunStopped&) {
    if (coll::MpiSession::launcher_rank() != 0) return kRunStoppedExit;  // likewise
    throw;
  } catch (const std::exception&) {
    if (coll::MpiSession::launcher_rank() != 0) return 1;
    throw;
  }
}

}  // namespace dtb
