#include "compressed_server.hpp"

#include <stdexcept>
#include <string>

namespace dtb::coll {
namespace {

// Chunk J of UNIT, in buffer coordinates.
Range chunk(const Range& unit, int p, int j) {
  const Range c = block_range(unit.count, p, j);
  return {unit.offset + c.offset, c.count};
}

// Calls FN(chunk, its bytes in the message, the byte offset there) for every unit's chunk J.
template <typename Fn>
void for_chunks(const Codec& q, std::span<const Range> units, int p, int j, Fn&& fn) {
  size_t at = 0;
  for (const Range& u : units) {
    const Range c = chunk(u, p, j);
    const size_t bytes = q.encoded_bytes(c.count);
    fn(c, bytes, at);
    at += bytes;
  }
}

// Deterministic quantizers only: the stream is unused.
constexpr uint64_t kStream = 0;

}  // namespace

size_t chunk_message_bytes(const Codec& q, std::span<const Range> units, int p, int j) {
  size_t total = 0;
  for_chunks(q, units, p, j, [&](const Range&, size_t bytes, size_t) { total += bytes; });
  return total;
}

size_t compressed_server_wire_bytes(const Codec& q, std::span<const Range> units, int p) {
  size_t total = 0;
  for (int j = 0; j < p; ++j) total += chunk_message_bytes(q, units, p, j);
  return total;
}

void worker_encode(const Codec& q, std::span<const Range> units, int p, int j, std::span<const float> x,
                   std::span<float> worker_error, std::span<std::byte> out) {
  for_chunks(q, units, p, j, [&](const Range& c, size_t bytes, size_t at) {
    const std::span<std::byte> wire = out.subspan(at, bytes);
    const std::span<const float> xs = x.subspan(c.offset, c.count);
    if (worker_error.empty()) return q.encode(xs, wire, kStream);
    const std::span<float> e = worker_error.subspan(c.offset, c.count);
    for (size_t i = 0; i < c.count; ++i) e[i] += xs[i];  // y = x + e_w
    q.encode(e, wire, kStream);
    q.decode(wire, e, DecodeMode::kSubtract);  // e_w = y - decode(Q(y))
  });
}

void server_reduce(const Codec& q, std::span<const Range> units, int p, int j,
                   std::span<const std::span<const std::byte>> messages, std::span<float> server_error,
                   std::span<std::byte> out) {
  if (int(messages.size()) != p) throw std::invalid_argument("server_reduce: one message per rank");
  const float inv_p = float(1.0 / p);
  std::vector<float> z;
  for_chunks(q, units, p, j, [&](const Range& c, size_t bytes, size_t at) {
    z.assign(c.count, 0.0f);
    for (const std::span<const std::byte>& m : messages) q.decode(m.subspan(at, bytes), z, DecodeMode::kAdd);
    for (float& v : z) v *= inv_p;
    const std::span<std::byte> wire = out.subspan(at, bytes);
    if (server_error.empty()) return q.encode(z, wire, kStream);
    const std::span<float> e = server_error.subspan(c.offset, c.count);
    for (size_t i = 0; i < c.count; ++i) e[i] += z[i];  // z + e_s
    q.encode(e, wire, kStream);
    q.decode(wire, e, DecodeMode::kSubtract);
  });
}

void decode_chunk(const Codec& q, std::span<const Range> units, int p, int j, std::span<const std::byte> message,
                  std::span<float> x) {
  for_chunks(q, units, p, j, [&](const Range& c, size_t bytes, size_t at) {
    q.decode(message.subspan(at, bytes), x.subspan(c.offset, c.count), DecodeMode::kAssign);
  });
}

// Scratch slots: the push to server j in slot j, a push from rank s in slot p + s, this
// rank's pull message in slot 2p, the pull from server j in slot 2p + 1 + j.
void compressed_server_allreduce(Communicator& comm, std::span<float> data, std::span<const Range> units,
                                 const Codec& q, ServerErrors& errors) {
  const int p = comm.size(), r = comm.rank();
  if (p == 1) return;
  std::span<float> ew, es;
  if (errors.error_feedback) {
    for (std::vector<float>* e : {&errors.worker, &errors.server}) {
      if (e->empty()) e->assign(data.size(), 0.0f);
      if (e->size() != data.size())
        throw std::invalid_argument("compressed_server_allreduce: error buffer of " + std::to_string(e->size()) +
                                    " elements for a buffer of " + std::to_string(data.size()));
    }
    ew = errors.worker, es = errors.server;
  }
  const size_t mine = chunk_message_bytes(q, units, p, r);
  std::vector<Request> requests;
  std::vector<std::span<const std::byte>> pushed(static_cast<size_t>(p));
  for (int s = 0; s < p; ++s) {
    const std::span<std::byte> in = comm.scratch(p + s, mine);
    pushed[size_t(s)] = in;
    if (s != r) requests.push_back(comm.irecv(s, in));
  }
  for (int i = 0; i < p; ++i) {  // staggered, as the param server: rank r starts with server r + 1
    const int j = (r + 1 + i) % p;
    const std::span<std::byte> out = j == r ? comm.scratch(p + r, mine) : comm.scratch(j, chunk_message_bytes(q, units, p, j));
    worker_encode(q, units, p, j, data, ew, out);
    if (j != r) requests.push_back(comm.isend(j, out));
  }
  comm.wait_all(requests);
  requests.clear();

  const std::span<std::byte> served = comm.scratch(2 * p, mine);
  server_reduce(q, units, p, r, pushed, es, served);
  std::vector<std::span<std::byte>> pulled(static_cast<size_t>(p));
  for (int j = 0; j < p; ++j) {
    pulled[size_t(j)] = j == r ? served : comm.scratch(2 * p + 1 + j, chunk_message_bytes(q, units, p, j));
    if (j != r) requests.push_back(comm.irecv(j, pulled[size_t(j)]));
  }
  for (int i = 1; i < p; ++i) requests.push_back(comm.isend((r + i) % p, served));
  comm.wait_all(requests);
  for (int j = 0; j < p; ++j) decode_chunk(q, units, p, j, pulled[size_t(j)], data);
}

}  // namespace dtb::coll
