// Flash-style latent attention: per tile of query rows, one pass over the cached positions in
// chunks; per chunk two sgemms (scores, then weights · values) and an online softmax in between.
#include "kernels/attention.h"

#include <cblas.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>
#include <string>

#include "kernels/blas.h"

namespace dsrt::kernels {

namespace {

// Query rows per tile. Every cached row loaded is used by all rows of the tile (2 * 64 flops per
// float read, enough to be compute-bound), and at Dk = 576, Dv = 512 the tile's q [64, 576],
// o [64, 512] and scores [64, 128] plus a [128, 576] key chunk stay within a 1 MB L2.
constexpr int64_t kTileRows = 64;
// Positions per chunk. Blocks of at least kMinChunk rows are used in place, in pieces of at most
// kMaxChunk rows; shorter blocks are copied into scratch until a chunk has kMinChunk rows, since
// an sgemm over 1-3 positions is mostly call and packing overhead.
constexpr int64_t kMinChunk = 64, kMaxChunk = 128;

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// Where the scratch goes: s [tile, chunk] | m [tile] | l [tile] | gathered rows [gather, Dk].
struct Layout {
  int64_t tile = 0, chunk = 0, gather = 0;  // gather == 0: chunks are read in place
  size_t floats = 0;
};

Layout layout(int64_t Nq, int64_t block_rows, int64_t Dk) {
  Layout L;
  if (Nq == 0) return L;
  L.tile = std::min(Nq, kTileRows);
  if (block_rows >= kMinChunk) {
    L.chunk = std::min(block_rows, kMaxChunk);
  } else {
    L.chunk = ceil_div(kMinChunk, block_rows) * block_rows;  // whole blocks, < 2 * kMinChunk
    L.gather = L.chunk;
  }
  L.floats = static_cast<size_t>(L.tile * (L.chunk + 2) + L.gather * Dk);
  return L;
}

[[noreturn]] void fail(const std::string& what) {
  throw std::invalid_argument("latent_attention: " + what);
}

std::string num(int64_t v) { return std::to_string(v); }

void check_args(const float* q, int64_t ldq, int64_t Nq, const int64_t* last,
                const float* const* blocks, int64_t n_blocks, int64_t block_rows, int64_t ld_kv,
                int64_t Dk, int64_t Dv, const float* o, int64_t ldo, const float* scratch) {
  if (Nq < 0) fail("Nq " + num(Nq) + " < 0");
  if (Dv <= 0 || Dk < Dv) fail("need Dk >= Dv > 0, got Dk " + num(Dk) + ", Dv " + num(Dv));
  if (block_rows <= 0) fail("block_rows " + num(block_rows) + " <= 0");
  if (n_blocks < 0) fail("n_blocks " + num(n_blocks) + " < 0");
  if (ld_kv < Dk) fail("ld_kv " + num(ld_kv) + " < Dk " + num(Dk));
  if (ldq < Dk) fail("ldq " + num(ldq) + " < Dk " + num(Dk));
  if (ldo < Dv) fail("ldo " + num(ldo) + " < Dv " + num(Dv));
  if (Nq == 0) return;  // nothing to read, but the sizes above are still checked
  if (!q || !last || !blocks || !o || !scratch)
    fail(std::string("null ") +
         (!q ? "q" : !last ? "last" : !blocks ? "blocks" : !o ? "o" : "scratch") + " with Nq " +
         num(Nq));
  // Clamped so that an absurd n_blocks cannot overflow.
  const int64_t positions = n_blocks > INT64_MAX / block_rows ? INT64_MAX : n_blocks * block_rows;
  int64_t hi = -1;
  for (int64_t i = 0; i < Nq; ++i) {
    if (last[i] < 0 || last[i] >= positions)
      fail("last[" + num(i) + "] = " + num(last[i]) + " outside [0, " + num(positions) + ") (" +
           num(n_blocks) + " blocks of " + num(block_rows) + " rows)");
    hi = std::max(hi, last[i]);
  }
  for (int64_t b = 0; b <= hi / block_rows; ++b)
    if (!blocks[b]) fail("null blocks[" + num(b) + "] with last up to " + num(hi));
}

}  // namespace

size_t latent_attention_scratch_floats(int64_t Nq, int64_t block_rows, int64_t Dk) {
  if (Nq < 0 || block_rows <= 0 || Dk <= 0)
    fail("scratch for Nq " + num(Nq) + ", block_rows " + num(block_rows) + ", Dk " + num(Dk));
  return layout(Nq, block_rows, Dk).floats;
}

void latent_attention(const float* q, int64_t ldq, int64_t Nq, const int64_t* last,
                      const float* const* blocks, int64_t n_blocks, int64_t block_rows,
                      int64_t ld_kv, int64_t Dk, int64_t Dv, float scale, float* o, int64_t ldo,
                      float* scratch) {
  check_args(q, ldq, Nq, last, blocks, n_blocks, block_rows, ld_kv, Dk, Dv, o, ldo, scratch);
  if (Nq == 0) return;
  detail::init_blas();
  const Layout L = layout(Nq, block_rows, Dk);
  float* s = scratch;               // s: [tile, chunk] scores, then softmax weights
  float* m = s + L.tile * L.chunk;  // m: [tile] running max of each row's scores
  float* l = m + L.tile;            // l: [tile] running sum of exp(score - m)
  float* gathered = l + L.tile;     // gathered: [gather, Dk] rows of short blocks

  for (int64_t i0 = 0; i0 < Nq; i0 += L.tile) {
    const int64_t tq = std::min(L.tile, Nq - i0);
    const int64_t* lt = last + i0;   // lt: [tq]
    const float* qt = q + i0 * ldq;  // qt: [tq, Dk] rows ldq apart
    float* ot = o + i0 * ldo;        // ot: [tq, Dv] rows ldo apart; accumulates unnormalized
    const int64_t end = *std::max_element(lt, lt + tq) + 1;  // positions [0, end) exist here
    std::fill(m, m + tq, -std::numeric_limits<float>::infinity());
    std::fill(l, l + tq, 0.0f);
    for (int64_t t = 0; t < tq; ++t) std::fill(ot + t * ldo, ot + t * ldo + Dv, 0.0f);

    for (int64_t p0 = 0; p0 < end;) {
      // kv: [n, ld] rows of positions [p0, p0 + n); keys are their Dk floats, values the first Dv.
      const float* kv;
      int64_t ld, n;
      if (L.gather == 0) {
        n = std::min({L.chunk, block_rows - p0 % block_rows, end - p0});
        kv = blocks[p0 / block_rows] + (p0 % block_rows) * ld_kv;
        ld = ld_kv;
      } else {
        n = std::min(L.chunk, end - p0);
        for (int64_t j = 0; j < n; ++j) {
          const int64_t p = p0 + j;
          const float* row = blocks[p / block_rows] + (p % block_rows) * ld_kv;
          std::copy(row, row + Dk, gathered + j * Dk);
        }
        kv = gathered;
        ld = Dk;
      }
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, tq, n, Dk, scale, qt, ldq, kv, ld, 0.0f,
                  s, L.chunk);

      // Online softmax. Positions past a row's last get weight 0 rather than a -inf score, so a
      // row with nothing visible in this chunk adds nothing and no inf - inf arises; the max is
      // subtracted before exp, so large scores cannot overflow.
      for (int64_t t = 0; t < tq; ++t) {
        float* st = s + t * L.chunk;  // st: [n]
        const int64_t visible = std::clamp<int64_t>(lt[t] + 1 - p0, 0, n);
        std::fill(st + visible, st + n, 0.0f);
        if (visible == 0) continue;
        const float m_new = std::max(m[t], *std::max_element(st, st + visible));
        if (m_new > m[t]) {
          if (l[t] > 0.0f) {  // rescale what was accumulated under the old max
            const float a = std::exp(m[t] - m_new);
            l[t] *= a;
            for (float *x = ot + t * ldo, *e = x + Dv; x < e; ++x) *x *= a;
          }
          m[t] = m_new;
        }
        float sum = 0.0f;
        for (int64_t j = 0; j < visible; ++j) sum += st[j] = std::exp(st[j] - m_new);
        l[t] += sum;
      }
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, tq, Dv, n, 1.0f, s, L.chunk, kv, ld,
                  1.0f, ot, ldo);
      p0 += n;
    }
    // Every row sees position 0, so l >= exp(0) = 1 at the row's max: no division by 0.
    for (int64_t t = 0; t < tq; ++t) {
      const float inv = 1.0f / l[t];
      for (float *x = ot + t * ldo, *e = x + Dv; x < e; ++x) *x *= inv;
    }
  }
}

}  // namespace dsrt::kernels
