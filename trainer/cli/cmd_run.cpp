// dtbench run: an experiment file's runs, each a child process (`mpirun -np N dtbench train
// ...`, `srun --mpi=pmix ...` inside a Slurm allocation, or dtbench itself for one rank),
// one result per run under results/<experiment>/, then the report.
#include <filesystem>
#include <iostream>

#include "cli/cli_common.hpp"
#include "cli/commands.hpp"
#include "exp/experiment.hpp"
#include "exp/plan.hpp"
#include "exp/report.hpp"
#include "exp/runner.hpp"
#include "sim/paths.hpp"
#include "train/stop_signal.hpp"

namespace dtb {
namespace {

cxxopts::Options run_options(const std::string& program) {
  cxxopts::Options options(program,
                           "Runs an experiment (configs/experiments/*.yaml): every run, or one with --only, each under "
                           "its launcher;\nthen writes the report (dtbench report). Exit code 1 when a run failed, 2 "
                           "for a bad experiment or option,\n3 when stopped by SIGINT, SIGTERM or SIGUSR1 (the running "
                           "run stops after its step with a checkpoint; a second signal of a kind hurries it).");
  options.positional_help("EXPERIMENT.yaml");
  options.add_options()
      ("o,out", "results folder (default results/<experiment name>)", cxxopts::value<std::string>(), "DIR")
      ("only", "run only this run: its name, or its 0-based index (e.g. $SLURM_ARRAY_TASK_ID)",
       cxxopts::value<std::string>(), "NAME|INDEX")
      ("launcher", std::string("how every run starts: ") + exp::kLauncherNames +
                       " (default: the run's, else the experiment's, else auto: srun inside a Slurm allocation, "
                       "else mpirun; direct: one rank, the plain single-rank trainer)",
       cxxopts::value<std::string>(), "L")
      ("s,set", "set a trainer key in every train run, after the experiment's values (repeatable)",
       cxxopts::value<std::vector<std::string>>(), "KEY=VALUE")
      ("skip-existing", "leave runs whose result exists as they are, instead of refusing to start")
      ("dry-run", "check the experiment and print the commands; run nothing")
      ("no-report", "do not write the report at the end")
      ("h,help", "print this help");
  options.add_options("positional")("experiment", "experiment file", cxxopts::value<std::vector<std::string>>());
  options.parse_positional({"experiment"});
  return options;
}

std::string experiment_path(const cxxopts::ParseResult& args, const std::string& program) {
  const auto files = args.count("experiment") ? args["experiment"].as<std::vector<std::string>>()
                                              : std::vector<std::string>{};
  if (files.size() != 1)
    throw UsageError(program + ": expected one experiment file, e.g. " + program +
                     " configs/experiments/quickstart.yaml; see " + program + " --help");
  return sim::find_file(files[0]);  // a shipped experiment also from an install tree or the source tree
}

exp::PlanOptions plan_options(const cxxopts::ParseResult& args) {
  exp::PlanOptions o;
  if (args.count("out")) o.out_dir = args["out"].as<std::string>();
  if (args.count("only")) o.only = args["only"].as<std::string>();
  if (args.count("launcher")) o.launcher = exp::parse_launcher(args["launcher"].as<std::string>(), "--launcher");
  if (args.count("set")) o.sets = args["set"].as<std::vector<std::string>>();
  o.skip_existing = args.count("skip-existing") > 0;
  o.self = std::filesystem::read_symlink("/proc/self/exe").string();
  return o;
}

// The report of what is in the folder now; a run that failed does not stop it.
void report(const std::string& dir) {
  try {
    exp::write_report(dir, std::cout, std::cerr);
  } catch (const UsageError& e) {
    std::cerr << "no report: " << e.what() << "\n";
  }
}

}  // namespace

int cmd_run(int argc, char** argv) {
  // SIGINT, SIGTERM and SIGUSR1 stop the running run gracefully and start no other
  // (exp/runner.hpp); from the start, so a signal while the plan is checked counts too.
  install_stop_handlers(OnRepeat::kCount);
  cxxopts::Options options = run_options(argv[0]);
  auto args = parse_or_usage(options, argc, argv);
  if (args.count("help")) {
    std::cout << options.help({""}) << "\n Run fields (in an experiment's runs: and defaults:; [the keys or options they set]):\n"
              << exp::describe_fields() << "\n Format and examples: configs/experiments/README.md\n";
    return 0;
  }
  const exp::Experiment e = exp::parse_experiment(experiment_path(args, argv[0]));
  const exp::Plan plan = exp::plan_experiment(e, plan_options(args));
  if (args.count("dry-run")) {
    exp::print_dry_run(plan, std::cout);
    return 0;
  }
  const std::vector<exp::RunOutcome> outcomes = exp::run_plan(e, plan, std::cout);
  std::cout << exp::summary_line(outcomes) << "; results in " << plan.out_dir << "/" << std::endl;
  for (const exp::RunOutcome& o : outcomes)
    if (!o.ok) std::cout << "  failed: " << o.name << ": " << o.why << "\n";
  if (!args.count("no-report")) report(plan.out_dir);
  if (stop_signal()) return kStoppedExitCode;  // a run stopped, the rest not started
  const bool all_ok = std::all_of(outcomes.begin(), outcomes.end(), [](const exp::RunOutcome& o) { return o.ok; });
  return all_ok ? 0 : 1;
}

}  // namespace dtb
