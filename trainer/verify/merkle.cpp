#include "verify/merkle.hpp"

#include <stdexcept>

namespace dtb::verify {
namespace {

Digest node(const Digest& left, const Digest& right) { return Hasher("merkle-node").digest(left).digest(right).finish(); }

std::vector<Digest> parent_level(const std::vector<Digest>& level) {
  std::vector<Digest> up;
  for (size_t i = 0; i + 1 < level.size(); i += 2) up.push_back(node(level[i], level[i + 1]));
  if (level.size() % 2 == 1) up.push_back(level.back());
  return up;
}

}  // namespace

Digest merkle_root(const std::vector<Digest>& leaves) {
  if (leaves.empty()) throw std::invalid_argument("merkle_root: no leaves");
  std::vector<Digest> level = leaves;
  while (level.size() > 1) level = parent_level(level);
  return level[0];
}

MerkleProof merkle_proof(const std::vector<Digest>& leaves, size_t index) {
  if (index >= leaves.size()) throw std::invalid_argument("merkle_proof: index outside the leaves");
  MerkleProof proof;
  std::vector<Digest> level = leaves;
  while (level.size() > 1) {
    const size_t sibling = index ^ 1;
    if (sibling < level.size()) proof.push_back({level[sibling], sibling < index});
    level = parent_level(level);
    index /= 2;
  }
  return proof;
}

bool merkle_verify(const Digest& leaf, size_t index, size_t count, const MerkleProof& proof, const Digest& root) {
  if (index >= count) return false;
  Digest h = leaf;
  size_t step = 0;
  for (; count > 1; count = (count + 1) / 2, index /= 2) {
    const size_t sibling = index ^ 1;
    if (sibling >= count) continue;  // carried up unchanged
    if (step >= proof.size() || proof[step].sibling_on_left != (sibling < index)) return false;
    h = proof[step].sibling_on_left ? node(proof[step].sibling, h) : node(h, proof[step].sibling);
    ++step;
  }
  return step == proof.size() && h == root;
}

size_t proof_bytes(const MerkleProof& proof) { return proof.size() * (sizeof(Digest) + 1); }

}  // namespace dtb::verify
