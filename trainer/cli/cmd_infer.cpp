// dtbench infer: autoregressive generation from a checkpoint the trainer wrote, the model
// split into the trainer's PP stages and TP slices (parallel.pp, parallel.tp, placement,
// stage split) over a network profile (net.profile, net.clock, device.*), on the ranks its
// launcher started or on one rank without one (infer/generate.hpp).
//
// One generation prints each sequence and one line of figures. --profiles and --batches make
// a sweep in one launch, every profile x concurrency, printed as a table (nccl-tests style)
// and, with --results, written to an HDF5 file. --predict prints the simulator's prediction
// of a decode step at any scale instead (`dtbench sim`'s keys; infer/predict.hpp).
#include <cstdio>
#include <fstream>
#include <iostream>
#include <sstream>

#include "cli/cli_common.hpp"
#include "cli/commands.hpp"
#include "communicator.hpp"
#include "h5file.hpp"
#include "infer/generate.hpp"
#include "infer/predict.hpp"
#include "sim/sim_config.hpp"
#include "parallel/parallel_trainer.hpp"  // run_profile
#include "provenance.hpp"
#include "train/checkpoint.hpp"

namespace dtb {
namespace {

struct Request {
  std::vector<std::string> texts;  // the prompts as given
  infer::SamplingSettings sampling;
  std::vector<std::string> profiles;  // --profiles ('' = net.profile only)
  std::vector<int> batches;           // --batches (empty = the prompts as given)
};

std::vector<std::string> split_list(const std::string& text) {
  std::vector<std::string> out;
  std::stringstream in(text);
  for (std::string item; std::getline(in, item, ',');)
    if (!item.empty()) out.push_back(item);
  return out;
}

std::vector<std::string> read_prompts(const cxxopts::ParseResult& args) {
  std::vector<std::string> texts;
  if (args.count("prompt")) texts = args["prompt"].as<std::vector<std::string>>();
  if (args.count("prompts")) {
    const std::string path = args["prompts"].as<std::string>();
    std::ifstream in(path);
    if (!in) throw UsageError("infer: --prompts " + path + ": cannot read the file");
    for (std::string line; std::getline(in, line);)
      if (!line.empty()) texts.push_back(line);  // one prompt per line
  }
  return texts;
}

// The trainer's keys, with the model's shape taken from the checkpoint unless the
// --config files or --set name it (then they must agree with it).
Config infer_config(const cxxopts::ParseResult& args, const CheckpointState& ck) {
  Config c(train_schema());
  const std::string origin = "checkpoint " + args["checkpoint"].as<std::string>();
  c.set_value("model.vocab_size", std::to_string(ck.model.vocab_size), origin);
  c.set_value("model.n_ctx", std::to_string(ck.model.n_ctx), origin);
  c.set_value("model.n_layer", std::to_string(ck.model.n_layer), origin);
  c.set_value("model.n_head", std::to_string(ck.model.n_head), origin);
  c.set_value("model.n_embd", std::to_string(ck.model.n_embd), origin);
  c.set_value("model.tie_embeddings", ck.model.tie_embeddings ? "true" : "false", origin);
  c.set_value("train.seq_len", std::to_string(ck.model.n_ctx), origin);  // training's window: unused here
  if (args.count("config"))
    for (const std::string& f : args["config"].as<std::vector<std::string>>()) c.merge_file(f);
  if (args.count("set"))
    for (const std::string& a : args["set"].as<std::vector<std::string>>()) c.set(a);
  return c;
}

// One sweep point's prompts: the given ones cycled to BATCH sequences (0: as given).
std::vector<std::vector<int32_t>> prompt_tokens(const Request& r, int batch, int vocab) {
  std::vector<std::vector<int32_t>> out;
  const size_t n = batch > 0 ? size_t(batch) : r.texts.size();
  for (size_t i = 0; i < n && !r.texts.empty(); ++i)
    out.push_back(infer::byte_tokens(r.texts[i % r.texts.size()], vocab, "infer: prompt " + std::to_string(i % r.texts.size() + 1)));
  return out;
}

struct Row {
  std::string profile;
  infer::GenerationStats stats;
};

std::string table_header() {
  return "#\n# profile               seqs  prompt  new   ttft(ms)  tpot(ms)     tok/s   inter B/tok   pp bytes   tp bytes\n";
}

std::string table_row(const Row& r) {
  const infer::GenerationStats& s = r.stats;
  char buf[256];
  std::snprintf(buf, sizeof buf, "  %-20s %5d %7lld %4d %10.3f %9.3f %9.2f %13.0f %10llu %10llu\n", r.profile.c_str(),
                s.sequences, static_cast<long long>(s.prompt_tokens), s.new_tokens, s.ttft * 1e3, s.tpot * 1e3,
                s.tokens_per_s, s.inter_bytes_per_token(), static_cast<unsigned long long>(s.bytes_pp),
                static_cast<unsigned long long>(s.bytes_tp));
  return buf;
}

void write_results(const std::string& path, const std::vector<Row>& rows, const TrainSettings& s,
                   const std::string& command_line) {
  h5::File f = h5::File::create(path);
  write_provenance(f, "dtbench-infer", 1, "infer", command_line);
  std::string names;
  std::vector<int64_t> seqs, prompt, fresh;
  std::vector<double> ttft, tpot, tps, inter, pp, tp;
  for (const Row& r : rows) {
    names += r.profile + "\n";
    seqs.push_back(r.stats.sequences), prompt.push_back(r.stats.prompt_tokens), fresh.push_back(r.stats.new_tokens);
    ttft.push_back(r.stats.ttft), tpot.push_back(r.stats.tpot), tps.push_back(r.stats.tokens_per_s);
    inter.push_back(r.stats.inter_bytes_per_token());
    pp.push_back(double(r.stats.bytes_pp)), tp.push_back(double(r.stats.bytes_tp));
  }
  f.write_string("infer/profiles", names);  // one per row, newline-terminated
  f.write<int64_t>("infer/sequences", seqs);
  f.write<int64_t>("infer/prompt_tokens", prompt);
  f.write<int64_t>("infer/new_tokens", fresh);
  f.write<double>("infer/ttft_s", ttft);
  f.write<double>("infer/tpot_s", tpot);
  f.write<double>("infer/tokens_per_s", tps);
  f.write<double>("infer/inter_site_bytes_per_token", inter);
  f.write<double>("infer/pp_bytes", pp);
  f.write<double>("infer/tp_bytes", tp);
  f.set_attr("/", "layout", "pp=" + std::to_string(s.parallel.pp) + " tp=" + std::to_string(s.parallel.tp));
  f.set_attr("/", "clock", s.parallel.clock);
  f.commit();
}

// Every sweep point (or the one generation) on the launched ranks; rank 0 prints.
int run_generation(const cxxopts::ParseResult& args, const TrainSettings& base, const std::vector<float>& params,
                   const Request& req, const std::string& command_line, int* argc, char*** argv) {
  std::vector<std::string> profiles = req.profiles.empty() ? std::vector<std::string>{base.parallel.net_profile} : req.profiles;
  std::vector<int> batches = req.batches.empty() ? std::vector<int>{0} : req.batches;
  for (int b : batches) infer::check_request(base, prompt_tokens(req, b, base.model.vocab_size), req.sampling);
  coll::MpiSession mpi(argc, argv);
  const int world = coll::MpiSession::world_size();
  const bool talk = coll::MpiSession::world_rank() == 0;
  const bool sweep = !req.profiles.empty() || !req.batches.empty();
  std::vector<Row> rows;
  if (talk && sweep) std::cout << table_header();
  for (const std::string& profile : profiles) {
    TrainSettings s = base;
    s.parallel.net_profile = profile;
    const netem::Profile net = par::run_profile(s, world);
    // As train, coll and sim do: a multi-site profile with every rank on one site says so.
    if (const std::string w = netem::single_site_warning(net); talk && !w.empty()) std::cout << "# " << w << "\n";
    coll::Communicator comm(MPI_COMM_WORLD, net,
                            s.parallel.clock == "wall" ? netem::ClockKind::kWall : netem::ClockKind::kVirtual);
    for (int b : batches) {
      infer::Generation g;
      try {
        g = infer::generate(comm, s, params, prompt_tokens(req, b, s.model.vocab_size), req.sampling);
      } catch (const UsageError&) {
        if (!talk) return 2;  // every rank fails alike (the layout, the world size); rank 0 says why
        throw;
      }
      rows.push_back({profile.empty() ? "unshaped" : net.name, g.stats});
      if (!talk) continue;
      if (sweep) {
        std::cout << table_row(rows.back()) << std::flush;
        continue;
      }
      for (size_t i = 0; i < g.tokens.size(); ++i)
        std::cout << "--- sequence " << i + 1 << "\n" << infer::byte_text(g.tokens[i]) << "\n";
      std::cout << "#" << table_row(rows.back()).substr(1) << std::flush;
    }
  }
  if (talk && args.count("results")) {
    write_results(args["results"].as<std::string>(), rows, base, command_line);
    std::cout << "results: " << args["results"].as<std::string>() << "\n";
  }
  return 0;
}

// --predict: `dtbench sim`'s config (model, layout, net.profile, device.profile, precision.*),
// one table per --batches entry. No MPI, no checkpoint.
int run_prediction(const cxxopts::ParseResult& args, const std::vector<int>& batches) {
  const Config config = config_from_args(args, sim::sim_schema());
  const sim::SimSettings s = sim::sim_settings(config);
  const sim::SimInputs in = sim::load_inputs(s);
  for (int b : batches.empty() ? std::vector<int>{1} : batches)
    std::cout << infer::prediction_table(s, in, infer::predict_token(s, in, b));
  return 0;
}

}  // namespace

int cmd_infer(int argc, char** argv) {
  std::setvbuf(stdout, nullptr, _IOLBF, 0);
  std::string command_line;
  for (int i = 0; i < argc; ++i) command_line += (i ? " " : "") + std::string(argv[i]);
  cxxopts::Options options(argv[0],
                           "Generate text from a checkpoint with the model split into the trainer's PP stages and TP "
                           "slices over a network profile (one rank, or pp x tp ranks under mpirun); or predict "
                           "per-token latency at paper scale (--predict).");
  add_config_options(options);
  options.add_options()
      ("checkpoint", "a checkpoint dtbench train wrote (its model shape is the default)", cxxopts::value<std::string>(), "CK")
      ("prompt", "a prompt (repeatable: several sequences at once)", cxxopts::value<std::vector<std::string>>(), "TEXT")
      ("prompts", "a file of prompts, one per line", cxxopts::value<std::string>(), "FILE")
      ("max-new-tokens", "tokens generated per sequence", cxxopts::value<int>()->default_value("32"), "N")
      ("temperature", "0 = greedy; > 0 samples softmax(logits / T)", cxxopts::value<double>()->default_value("0"), "T")
      ("seed", "the sampler's seed", cxxopts::value<uint64_t>()->default_value("1337"), "S")
      ("profiles", "sweep: comma-separated net profiles (each replaces net.profile)", cxxopts::value<std::string>(), "P,..")
      ("batches", "sweep: comma-separated numbers of concurrent sequences (prompts cycled)", cxxopts::value<std::string>(), "N,..")
      ("results", "write the figures to this HDF5 file", cxxopts::value<std::string>(), "FILE")
      ("predict", "predict a decode step at any scale with the simulator's models (dtbench sim's keys via --config)")
      ("h,help", "print this help");
  auto args = parse_or_usage(options, argc, argv);
  if (args.count("help")) {
    std::cout << help_with_keys(options, train_schema());
    return 0;
  }
  if (!args.unmatched().empty())
    throw UsageError(std::string(argv[0]) + ": unexpected argument '" + args.unmatched()[0] + "'; see " + argv[0] + " --help");
  std::vector<int> batches;
  if (args.count("batches"))
    for (const std::string& b : split_list(args["batches"].as<std::string>())) {
      if (b.find_first_not_of("0123456789") != std::string::npos || b.size() > 6 || std::stoi(b) < 1)
        throw UsageError("infer: --batches " + b + ": must be counts >= 1 separated by commas, e.g. 1,8");
      batches.push_back(std::stoi(b));
    }
  if (args.count("predict")) return run_prediction(args, batches);
  if (!args.count("checkpoint")) throw UsageError("infer: --checkpoint CK is required (a file dtbench train wrote)");
  const CheckpointState ck = load_checkpoint(args["checkpoint"].as<std::string>());
  const Config config = infer_config(args, ck);
  const TrainSettings s = train_settings(config);
  if (!(s.model == ck.model))
    throw UsageError("infer: the config's model.* shape differs from the checkpoint's (" + args["checkpoint"].as<std::string>() +
                     "); leave model.* out to use the checkpoint's");
  Request req;
  req.texts = read_prompts(args);
  req.sampling.max_new_tokens = args["max-new-tokens"].as<int>();
  req.sampling.temperature = args["temperature"].as<double>();
  req.sampling.seed = args["seed"].as<uint64_t>();
  if (args.count("profiles")) req.profiles = split_list(args["profiles"].as<std::string>());
  req.batches = batches;
  if (!req.batches.empty() && req.texts.empty()) throw UsageError("infer: --batches needs a --prompt or --prompts to cycle");
  return run_generation(args, s, ck.params, req, command_line, &argc, &argv);
}

}  // namespace dtb
