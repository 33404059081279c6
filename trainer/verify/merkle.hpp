#pragma once
// A binary Merkle tree over the library's hash (hash.hpp). Leaves are digests the caller
// made with its own domain tag; an inner node is H("merkle-node", left, right). A level
// with an odd count carries its last node up unchanged (no duplicate, so no two leaf lists
// share a root by padding). A proof is the sibling at every level where one exists.
#include <cstddef>
#include <vector>

#include "verify/hash.hpp"

namespace dtb::verify {

struct ProofStep {
  Digest sibling;
  bool sibling_on_left;
};
using MerkleProof = std::vector<ProofStep>;

Digest merkle_root(const std::vector<Digest>& leaves);  // throws std::invalid_argument on none
MerkleProof merkle_proof(const std::vector<Digest>& leaves, size_t index);
// LEAF at INDEX of a tree of COUNT leaves: does PROOF lead to ROOT? Checks the shape too
// (the sides and the number of steps the index and count dictate).
bool merkle_verify(const Digest& leaf, size_t index, size_t count, const MerkleProof& proof, const Digest& root);

size_t proof_bytes(const MerkleProof& proof);  // what a proof costs to send: 33 bytes a step

}  // namespace dtb::verify
