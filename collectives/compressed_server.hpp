#pragma once
// The compressed allreduce through a sharded parameter server with error feedback on both
// sides: the one 1-bit Adam sends its momentum through (DeepSpeed, Tang et al. 2021:
// runtime/comm/nccl.py NcclBackend.compressed_allreduce) and AQ-SGD's data-parallel path
// sends its Adam momentum through (DS3Lab AC-SGD: comm/nccl_backend.py
// all_reduce_opt_compressed, called by data_parallel/dist_dp_sharded_ps_compressed.py).
// Written once; the quantizer Q (a Codec) is the difference: make_onebit_codec() (sign and
// one scale ||x||_2 / sqrt(n) per chunk) or make_kbit_codec(bits, 512).
//
// The buffer is a list of UNITS (contiguous ranges; the trainer's are its parameter
// tensors, so a tensor held by several ranks, a TP-replicated LayerNorm or the tied
// embedding on the first and last stage, is compressed identically everywhere); each unit
// is cut into p chunks, chunk j = block_range(unit, p, j) of every unit served by rank j.
// With worker error e_w (over the whole buffer) and server error e_s (over the chunks this
// rank serves), as both references order it:
//   1 worker:  y = x + e_w;  c_j = Q(y[chunk j]) for every j (its own chunk too);
//              e_w = y - decode(c).
//   2 push:    c_j to rank j (the references: an all-to-all; its own stays local).
//   3 server:  z = (sum over ranks s, in rank order, of decode(c_j from s)) x (1/p) + e_s;
//              d = Q(z);  e_s = z - decode(d).  (AQ-SGD's order; DeepSpeed scales each
//              term by 1/p before the sum: the same up to float rounding.)
//   4 pull:    d to every rank; x[chunk j] = decode(d from j) everywhere, the server too,
//              so every rank ends with bit-identical values.
// Each rank's messages to server j hold chunk j of every unit, one after another, so a
// call is two rounds of p - 1 messages per rank whatever the number of units.
//
// Differences from the references, on purpose: DeepSpeed's worker scale is one per
// flattened buffer (its server's one per chunk); here both sides take one per chunk of a
// unit (AQ-SGD's buckets, too, are per chunk). No padding to a multiple of p (block_range
// sizes differ by at most one). Both error buffers are fp32 (AQ-SGD keeps them in fp16), so
// they hold exactly the residual.
//
// Cost (the trainer's bytes, dtbench sim's model): with W = sum over chunks of
// Q.encoded_bytes(chunk) (about N / 8 + 4 x units x p bytes for 1 bit, N k / 8 + 2 N / 512
// for k bits), each rank sends (p - 1) / p W in the push and (p - 1) / p W in the pull
// (its own chunk to every other rank): 2 (p - 1) W over the p ranks, a ring allreduce's
// form, and a param-server allreduce with p servers of W bytes in time
// (param_server_allreduce_model).
#include <cstddef>
#include <span>
#include <vector>

#include "codec.hpp"
#include "communicator.hpp"
#include "partition.hpp"

namespace dtb::coll {

// Laid out like the buffer. EMPTY residuals are zeros (allocated on first use).
struct ServerErrors {
  std::vector<float> worker;   // e_w: what this rank's encodings lost, every chunk
  std::vector<float> server;   // e_s: nonzero only on the chunks this rank serves
  bool error_feedback = true;  // off: both stay zero (each encoding forgets its loss)
};

// Bytes of one message about chunk J (of P) of every unit: a worker's push or server J's pull.
size_t chunk_message_bytes(const Codec& q, std::span<const Range> units, int p, int j);
// W above: all p chunks' messages.
size_t compressed_server_wire_bytes(const Codec& q, std::span<const Range> units, int p);

// The steps above without the messages (the collective is these plus sends; the tests run
// them as a reference). EMPTY error spans: no error feedback.
// Step 1 for chunk J: OUT = Q(x + e_w) of chunk J of every unit; e_w updated.
void worker_encode(const Codec& q, std::span<const Range> units, int p, int j, std::span<const float> x,
                   std::span<float> worker_error, std::span<std::byte> out);
// Step 3 on server J: MESSAGES[s] from rank s; OUT = Q(z); e_s updated on chunk J.
void server_reduce(const Codec& q, std::span<const Range> units, int p, int j,
                   std::span<const std::span<const std::byte>> messages, std::span<float> server_error,
                   std::span<std::byte> out);
// Step 4: X[chunk J of every unit] = decode(MESSAGE).
void decode_chunk(const Codec& q, std::span<const Range> units, int p, int j, std::span<const std::byte> message,
                  std::span<float> x);

// The collective over COMM (every rank the same UNITS of DATA); one rank: nothing to do.
void compressed_server_allreduce(Communicator& comm, std::span<float> data, std::span<const Range> units,
                                 const Codec& q, ServerErrors& errors);

}  // namespace dtb::coll
