// softkit_internal_tests: the split of a long row into chunks (chunking, in
// src/driver_common.h), which every long-row op walks.
#include <catch2/catch.hpp>

#include <cstddef>
#include <random>
#include <vector>

#include "driver_common.h"

TEST_CASE("long rows split into chunks of one length", "[chunking]") {
  using softkit::kRowChunk;
  std::vector<std::size_t> rows = {kRowChunk + 1,     2 * kRowChunk,     2 * kRowChunk + 1, 3 * kRowChunk - 1,
                                   50257,             262144,            (std::size_t{1} << 20) + 1,
                                   std::size_t{68157440}, std::size_t{100000007}};
  std::mt19937_64 rng(5);
  for (int i = 0; i < 300; ++i) rows.push_back(kRowChunk + 1 + rng() % (std::size_t{1} << 26));
  for (const std::size_t n : rows) {
    const softkit::chunking ch(n);
    INFO("n = " << n << ": " << ch.chunks << " chunks of " << ch.size);
    // The count kRowChunk asks for, rounded up to a multiple of 4 (threads
    // split equal chunks evenly only in a count they divide) ...
    const std::size_t count = ((n + kRowChunk - 1) / kRowChunk + 3) / 4 * 4;
    // ... and one length for all but the last: the least multiple of 64 floats
    // that covers the row in that count, so the last is never much shorter.
    REQUIRE(ch.size % 64 == 0);
    REQUIRE(ch.size <= kRowChunk);
    REQUIRE(ch.size * count >= n);
    REQUIRE((ch.size - 64) * count < n);
    REQUIRE(ch.chunks == (n + ch.size - 1) / ch.size);
    if (n < (std::size_t{1} << 22)) REQUIRE(ch.chunks == count);  // rounding to 64 costs no chunk there
    std::size_t covered = 0;
    for (std::size_t c = 0; c < ch.chunks; ++c) {
      REQUIRE(ch.begin(c) == covered);
      REQUIRE(ch.length(c) > 0);
      if (c + 1 < ch.chunks) REQUIRE(ch.length(c) == ch.size);
      covered += ch.length(c);
    }
    REQUIRE(covered == n);
    // Items of the [rows, chunks] grid.
    REQUIRE(ch.offset(ch.chunks + 1) == n + ch.size);
    REQUIRE(ch.span(2 * ch.chunks - 1) == ch.length(ch.chunks - 1));
  }
}
