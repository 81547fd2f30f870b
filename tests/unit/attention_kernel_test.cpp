// latent_attention against a double-precision reference written here (scores, stable softmax,
// weighted sum), on paged caches whose padding and unwritten rows hold NaN.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <limits>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "kernels/attention.h"

namespace dsrt::kernels {
namespace {

constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();
constexpr float kSentinel = 777.0f;  // o's padding starts as this and must stay so

// One call's inputs: queries, a paged cache and the layout. ld*_pad > 0 pads rows with NaN.
struct Case {
  int64_t Dk = 37, Dv = 29, block_rows = 3, n_blocks = 0;
  int64_t ldq_pad = 3, ldo_pad = 5, ldkv_pad = 7;
  float scale = 0.3f;
  std::vector<int64_t> last;  // [Nq]
  // Integer-valued q and cache in [-int_range, int_range] (0: normal(0, 1) floats).
  int int_range = 0;
  // Sets the last key column (a k_pe entry) to the position and q's to +-8: scores that grow or
  // shrink along the sequence, so the running max changes by a lot between chunks.
  bool position_trend = false;
  uint32_t seed = 1;
};

struct Run {
  int64_t Nq, ldq, ldo, ld_kv;
  std::vector<float> q;              // [Nq, ldq]
  std::vector<float> storage;        // [n_blocks, block_rows, ld_kv], blocks in reverse order
  std::vector<const float*> blocks;  // [n_blocks]
  std::vector<float> o;              // [Nq, ldo]
  const float* row(int64_t p, int64_t block_rows) const {
    return blocks[p / block_rows] + (p % block_rows) * ld_kv;
  }
};

Run make(const Case& c) {
  Run r;
  r.Nq = static_cast<int64_t>(c.last.size());
  r.ldq = c.Dk + c.ldq_pad, r.ldo = c.Dv + c.ldo_pad, r.ld_kv = c.Dk + c.ldkv_pad;
  const int64_t hi = c.last.empty() ? -1 : *std::max_element(c.last.begin(), c.last.end());
  const int64_t n_blocks = std::max(c.n_blocks, hi / c.block_rows + 1);
  std::mt19937 rng(c.seed);
  std::normal_distribution<float> normal;
  std::uniform_int_distribution<int> ints(-c.int_range, c.int_range);
  auto value = [&] { return c.int_range ? static_cast<float>(ints(rng)) : normal(rng); };

  r.q.assign(r.Nq * r.ldq, kNaN);
  for (int64_t i = 0; i < r.Nq; ++i) {
    for (int64_t k = 0; k < c.Dk; ++k) r.q[i * r.ldq + k] = value();
    if (c.position_trend) r.q[i * r.ldq + c.Dk - 1] = i % 2 ? 8.0f : -8.0f;
  }
  // Rows past the largest last (the rest of the final block and any spare blocks) stay NaN.
  const int64_t block_floats = c.block_rows * r.ld_kv;
  r.storage.assign(n_blocks * block_floats, kNaN);
  for (int64_t b = 0; b < n_blocks; ++b)
    r.blocks.push_back(r.storage.data() + (n_blocks - 1 - b) * block_floats);
  for (int64_t p = 0; p <= hi; ++p) {
    float* row = const_cast<float*>(r.row(p, c.block_rows));
    for (int64_t k = 0; k < c.Dk; ++k) row[k] = value();
    if (c.position_trend) row[c.Dk - 1] = static_cast<float>(p);
  }
  r.o.assign(r.Nq * r.ldo, kSentinel);
  for (int64_t i = 0; i < r.Nq; ++i) std::fill_n(r.o.begin() + i * r.ldo, c.Dv, kNaN);
  return r;
}

void run_kernel(const Case& c, Run& r) {
  std::vector<float> scratch(latent_attention_scratch_floats(r.Nq, c.block_rows, c.Dk), kNaN);
  latent_attention(r.q.data(), r.ldq, r.Nq, c.last.data(), r.blocks.data(),
                   static_cast<int64_t>(r.blocks.size()), c.block_rows, r.ld_kv, c.Dk, c.Dv,
                   c.scale, r.o.data(), r.ldo, scratch.data());
}

// o_ref: [Nq, Dv] in double.
std::vector<double> reference(const Case& c, const Run& r) {
  std::vector<double> out(r.Nq * c.Dv, 0.0);
  for (int64_t i = 0; i < r.Nq; ++i) {
    const float* qi = r.q.data() + i * r.ldq;
    std::vector<double> s(c.last[i] + 1);
    for (int64_t p = 0; p <= c.last[i]; ++p) {
      const float* kp = r.row(p, c.block_rows);
      double d = 0;
      for (int64_t k = 0; k < c.Dk; ++k) d += static_cast<double>(qi[k]) * kp[k];
      s[p] = c.scale * d;
    }
    const double mx = *std::max_element(s.begin(), s.end());
    double sum = 0;
    for (double& x : s) sum += x = std::exp(x - mx);
    for (int64_t p = 0; p <= c.last[i]; ++p) {
      const float* vp = r.row(p, c.block_rows);
      for (int64_t k = 0; k < c.Dv; ++k) out[i * c.Dv + k] += s[p] / sum * vp[k];
    }
  }
  return out;
}

// Runs the kernel and checks every output against the reference, and o's padding. Returns the
// largest error relative to the largest |value|.
//
// Tolerance 1e-4 of the largest |value| read: an output is a convex combination of value rows,
// so the f32 rounding of the scores (relative error of a weight ~ |score| * 2^-24 * a few) and
// of the weighted sum (a few 2^-24 per term) scales with the value magnitude, not the output's
// (which cancellation over thousands of positions makes much smaller). These cases measure at
// most ~6e-7, so 1e-4 leaves a wide margin, while a dropped or extra position, a missed rescale
// or a NaN row read is off by far more (each such kernel bug fails these tests).
double check(const Case& c) {
  constexpr double kTol = 1e-4;
  Run r = make(c);
  run_kernel(c, r);
  const std::vector<double> ref = reference(c, r);
  double vmax = 0;
  const int64_t hi = r.Nq ? *std::max_element(c.last.begin(), c.last.end()) : -1;
  for (int64_t p = 0; p <= hi; ++p)
    for (int64_t k = 0; k < c.Dv; ++k)
      vmax = std::max(vmax, std::fabs(double{r.row(p, c.block_rows)[k]}));
  double worst = 0;
  int bad = 0;
  for (int64_t i = 0; i < r.Nq; ++i) {
    for (int64_t k = 0; k < c.Dv; ++k) {
      const float got = r.o[i * r.ldo + k];
      const double err = std::fabs(got - ref[i * c.Dv + k]) / std::max(vmax, 1e-30);
      if (!(err <= kTol) && bad++ < 5)  // NaN fails too
        ADD_FAILURE() << "o[" << i << ", " << k << "] = " << got << ", reference "
                      << ref[i * c.Dv + k] << " (last " << c.last[i] << ")";
      if (std::isfinite(err)) worst = std::max(worst, err);
    }
    for (int64_t k = c.Dv; k < r.ldo; ++k)
      if (r.o[i * r.ldo + k] != kSentinel && bad++ < 5)
        ADD_FAILURE() << "padding o[" << i << ", " << k << "] written";
  }
  EXPECT_EQ(bad, 0) << "wrong outputs";
  return worst;
}

std::vector<int64_t> repeat(int64_t n, int64_t v) { return std::vector<int64_t>(n, v); }

// T tokens at positions start.. start + T - 1, H heads each, token-major (the prefill order).
std::vector<int64_t> prefill_last(int64_t T, int64_t H, int64_t start) {
  std::vector<int64_t> v;
  for (int64_t t = 0; t < T; ++t)
    for (int64_t h = 0; h < H; ++h) v.push_back(start + t);
  return v;
}

constexpr int64_t kBlockRows[] = {1, 3, 64};

TEST(LatentAttention, DecodeHeadsShareOneLast) {
  for (int64_t br : kBlockRows) {
    SCOPED_TRACE("block_rows " + std::to_string(br));
    Case c{.block_rows = br, .scale = 0.3f, .last = repeat(16, 200)};  // Dk 37, Dv 29
    check(c);
    // DeepSeek dims (C 512, R 64), scale 1/sqrt(192); last 1000 ends mid-block for br 3 and 64.
    Case d{.Dk = 576, .Dv = 512, .block_rows = br, .scale = 0.0722f, .last = repeat(16, 1000)};
    const double err = check(d);
    RecordProperty("decode_576_err_br" + std::to_string(br), std::to_string(err));
  }
}

TEST(LatentAttention, PrefillIsCausalPerToken) {
  for (int64_t br : kBlockRows) {
    SCOPED_TRACE("block_rows " + std::to_string(br));
    // 150 tokens x 4 heads after a 20-position prefix: 600 rows, many tiles, tiles split tokens.
    check(Case{.block_rows = br, .last = prefill_last(150, 4, 20), .seed = 2});
    // From position 0 (the first token sees only itself), DeepSeek dims.
    check(Case{.Dk = 576, .Dv = 512, .block_rows = br, .scale = 0.0722f,
               .last = prefill_last(70, 2, 0), .seed = 3});
  }
}

TEST(LatentAttention, RaggedUnsortedLast) {
  std::mt19937 rng(4);
  std::uniform_int_distribution<int64_t> pos(0, 299);
  std::vector<int64_t> last(150);
  for (int64_t& v : last) v = pos(rng);
  last[17] = 0;  // a row that sees one position in a tile whose max is far away
  for (int64_t br : kBlockRows) {
    SCOPED_TRACE("block_rows " + std::to_string(br));
    check(Case{.block_rows = br, .last = last, .seed = 5});
    // Dv == Dk: the value is the whole row.
    check(Case{.Dk = 29, .Dv = 29, .block_rows = br, .last = last, .seed = 6});
  }
}

TEST(LatentAttention, LastAtBlockBoundaries) {
  for (int64_t br : kBlockRows) {
    SCOPED_TRACE("block_rows " + std::to_string(br));
    // Last row of a block, first row of the next, and the cache ends exactly at a block end.
    const std::vector<int64_t> last = {br - 1, br, 2 * br - 1, 2 * br, 0, 3 * br - 1};
    check(Case{.block_rows = br, .n_blocks = 3, .last = last, .seed = 7});
    // The largest last is the first row of a block: one valid row there, the rest NaN.
    check(Case{.block_rows = br, .last = {2 * br, br - 1, 2 * br, 0}, .seed = 8});
    // Chunks of 128 + 72 rows in place of 200-row blocks; gathered chunks of short blocks.
    check(Case{.block_rows = br == 64 ? 200 : br, .last = {127, 128, 255, 299}, .seed = 9});
  }
}

TEST(LatentAttention, PartialFinalBlockAndSpareBlocksAreNotRead) {
  for (int64_t br : kBlockRows) {
    SCOPED_TRACE("block_rows " + std::to_string(br));
    // 10 blocks allocated, positions up to 2 * br + br / 2 written, NaN in every row after.
    check(Case{.block_rows = br, .n_blocks = 10, .last = repeat(20, 2 * br + br / 2), .seed = 10});
  }
}

TEST(LatentAttention, LargeScoresStayFiniteAndMatch) {
  // Integer data and power-of-two scales make every f32 score exact (integers < 2^24), so the
  // comparison isolates the softmax: scores reach 1e3..1e4, where exp without the max overflows.
  for (int64_t br : kBlockRows) {
    SCOPED_TRACE("block_rows " + std::to_string(br));
    std::mt19937 rng(11);
    std::uniform_int_distribution<int64_t> pos(0, 299);
    std::vector<int64_t> last(80);
    for (int64_t& v : last) v = pos(rng);
    check(Case{.block_rows = br, .scale = 16.0f, .last = last, .int_range = 8, .seed = 12});
    // The running max jumps by ~1e4 between chunks (rows with +8 see growing scores).
    check(Case{.block_rows = br, .scale = 4.0f, .last = last, .int_range = 2,
               .position_trend = true, .seed = 13});
    check(Case{.Dk = 576, .Dv = 512, .block_rows = br, .scale = 4.0f, .last = repeat(16, 400),
               .int_range = 8, .seed = 14});
  }
}

TEST(LatentAttention, NoPadding) {
  check(
      Case{.ldq_pad = 0, .ldo_pad = 0, .ldkv_pad = 0, .last = prefill_last(40, 3, 5), .seed = 15});
  check(Case{.block_rows = 64, .ldq_pad = 0, .ldo_pad = 0, .ldkv_pad = 0,
             .last = prefill_last(40, 3, 70), .seed = 16});
}

TEST(LatentAttention, EmptyQueryIsANoOp) {
  EXPECT_EQ(latent_attention_scratch_floats(0, 64, 576), 0u);
  EXPECT_NO_THROW(latent_attention(nullptr, 576, 0, nullptr, nullptr, 0, 64, 576, 576, 512, 1.0f,
                                   nullptr, 512, nullptr));
  check(Case{.last = {}});
}

// Expects invalid_argument whose message contains `needle` (the offending numbers).
void expect_invalid(const std::function<void()>& fn, const std::string& needle) {
  try {
    fn();
    ADD_FAILURE() << "no exception, expected one mentioning '" << needle << "'";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
  }
}

TEST(LatentAttention, RejectsBadArguments) {
  const int64_t Dk = 8, Dv = 6, br = 4;
  std::vector<float> q(2 * Dk, 1.0f), o(2 * Dv), block(br * Dk, 1.0f);
  std::vector<float> scratch(latent_attention_scratch_floats(2, br, Dk));
  const float* blocks[] = {block.data(), block.data()};
  int64_t last[] = {3, 7};
  struct Args {
    const float* q;
    int64_t ldq, Nq;
    const int64_t* last;
    const float* const* blocks;
    int64_t n_blocks, block_rows, ld_kv, Dk, Dv, ldo;
    float* o;
    float* scratch;
  };
  const Args good{q.data(), Dk, 2, last, blocks, 2, br, Dk, Dk, Dv, Dv, o.data(), scratch.data()};
  auto call = [](Args a) {
    return [a] {
      latent_attention(a.q, a.ldq, a.Nq, a.last, a.blocks, a.n_blocks, a.block_rows, a.ld_kv, a.Dk,
                       a.Dv, 1.0f, a.o, a.ldo, a.scratch);
    };
  };
  auto with = [&](auto edit) {
    Args a = good;
    edit(a);
    return call(a);
  };
  EXPECT_NO_THROW(call(good)());

  expect_invalid(with([](Args& a) { a.Nq = -1; }), "Nq -1");
  expect_invalid(with([](Args& a) { a.Dv = 0; }), "Dk 8, Dv 0");
  expect_invalid(with([](Args& a) { a.Dv = 9; }), "Dk 8, Dv 9");
  expect_invalid(with([](Args& a) { a.block_rows = 0; }), "block_rows 0");
  expect_invalid(with([](Args& a) { a.n_blocks = -2; }), "n_blocks -2");
  expect_invalid(with([](Args& a) { a.ld_kv = 7; }), "ld_kv 7 < Dk 8");
  expect_invalid(with([](Args& a) { a.ldq = 7; }), "ldq 7 < Dk 8");
  expect_invalid(with([](Args& a) { a.ldo = 5; }), "ldo 5 < Dv 6");
  expect_invalid(with([](Args& a) { a.q = nullptr; }), "null q with Nq 2");
  expect_invalid(with([](Args& a) { a.last = nullptr; }), "null last");
  expect_invalid(with([](Args& a) { a.blocks = nullptr; }), "null blocks");
  expect_invalid(with([](Args& a) { a.o = nullptr; }), "null o");
  expect_invalid(with([](Args& a) { a.scratch = nullptr; }), "null scratch");
  const float* holes[] = {block.data(), nullptr};
  expect_invalid(with([&](Args& a) { a.blocks = holes; }), "null blocks[1] with last up to 7");

  int64_t negative[] = {3, -1}, past[] = {8, 0};
  expect_invalid(with([&](Args& a) { a.last = negative; }), "last[1] = -1 outside [0, 8)");
  expect_invalid(with([&](Args& a) { a.last = past; }), "last[0] = 8 outside [0, 8)");
  expect_invalid(with([&](Args& a) { a.n_blocks = 1; }), "last[1] = 7 outside [0, 4)");

  // Sizes are checked even when there is nothing to do.
  expect_invalid(with([](Args& a) { a.Nq = 0, a.ldq = 1; }), "ldq 1 < Dk 8");
  expect_invalid([] { latent_attention_scratch_floats(-1, 4, 8); }, "Nq -1");
  expect_invalid([] { latent_attention_scratch_floats(2, 0, 8); }, "block_rows 0");
  expect_invalid([] { latent_attention_scratch_floats(2, 4, 0); }, "Dk 0");
}

}  // namespace
}  // namespace dsrt::kernels
