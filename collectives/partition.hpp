#pragma once
// How a flat buffer is cut into per-rank blocks: COUNT elements into PARTS contiguous
// blocks whose sizes differ by at most one (the first count % parts blocks hold one more).
// Every algorithm and the reduce-scatter / allgather layouts use this one rule, so a
// block means the same elements everywhere.
#include <algorithm>
#include <cstddef>

namespace dtb::coll {

struct Range {
  size_t offset = 0, count = 0;  // in elements
  size_t end() const { return offset + count; }
};

inline Range block_range(size_t count, int parts, int block) {
  const size_t base = count / size_t(parts), extra = count % size_t(parts), b = size_t(block);
  return {b * base + std::min(b, extra), base + (b < extra ? 1 : 0)};
}

// The block that holds element I.
inline int block_of(size_t count, int parts, size_t i) {
  const size_t base = count / size_t(parts), extra = count % size_t(parts), big = extra * (base + 1);
  return i < big ? int(i / (base + 1)) : int(extra + (i - big) / base);
}

// The elements of blocks [first, last).
inline Range blocks_range(size_t count, int parts, int first, int last) {
  const Range a = block_range(count, parts, first);
  if (last <= first) return {a.offset, 0};
  return {a.offset, block_range(count, parts, last - 1).end() - a.offset};
}

}  // namespace dtb::coll
