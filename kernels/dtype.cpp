// Scalar dtype conversions, dtype metadata and WeightView slicing.
#include "kernels/dtype.h"

#include <cmath>
#include <limits>
#include <stdexcept>
#include <string>

#include "kernels/kernel_table.h"
#include "kernels/weight_view.h"

namespace dsrt::kernels {

namespace {

uint32_t bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}
float from_bits(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

// e4m3fn decoded with exact float arithmetic: normal (1 + m/8) * 2^(e-7), subnormal m/8 * 2^-6.
constexpr float fp8_decode(unsigned v) {
  const unsigned e = (v >> 3) & 15, m = v & 7;
  if ((v & 0x7F) == 0x7F) return std::numeric_limits<float>::quiet_NaN();
  float mag = e == 0 ? m / 8.0f : 1.0f + m / 8.0f;
  const int shift = e == 0 ? -6 : static_cast<int>(e) - 7;
  for (int i = 0; i < shift; ++i) mag *= 2.0f;
  for (int i = 0; i > shift; --i) mag *= 0.5f;
  return (v & 0x80) ? -mag : mag;
}

struct Fp8Table {
  float v[256];
};
constexpr Fp8Table make_fp8_table() {
  Fp8Table t{};
  for (unsigned v = 0; v < 256; ++v) t.v[v] = fp8_decode(v);
  return t;
}
constexpr Fp8Table kFp8Table = make_fp8_table();

}  // namespace

const float (&detail::kFp8ToF32)[256] = kFp8Table.v;

uint16_t f32_to_bf16(float f) {
  uint32_t u = bits(f);
  if ((u & 0x7FFFFFFF) > 0x7F800000) {
    // NaN: truncate, but keep a mantissa bit so it cannot turn into an infinity.
    uint16_t h = static_cast<uint16_t>(u >> 16);
    return (h & 0x7F) ? h : static_cast<uint16_t>(h | 0x40);
  }
  u += 0x7FFF + ((u >> 16) & 1);  // round to nearest even (overflows to inf as it should)
  return static_cast<uint16_t>(u >> 16);
}

float f16_to_f32(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000) << 16;
  const uint32_t e = (h >> 10) & 0x1F, m = h & 0x3FF;
  if (e == 0) {  // zero or subnormal: m * 2^-24, exact in f32
    float v = static_cast<float>(m) * 5.9604644775390625e-8f;
    return (h & 0x8000) ? -v : v;
  }
  if (e == 31) return from_bits(sign | 0x7F800000 | (m << 13));
  return from_bits(sign | ((e + 112) << 23) | (m << 13));
}

uint16_t f32_to_f16(float f) {
  uint32_t u = bits(f);
  const uint16_t sign = static_cast<uint16_t>((u >> 16) & 0x8000);
  u &= 0x7FFFFFFF;
  if (u > 0x7F800000) {  // NaN: keep the payload's top bits, stay NaN
    uint16_t m = static_cast<uint16_t>((u >> 13) & 0x3FF);
    return sign | 0x7C00 | (m ? m : 0x200);
  }
  if (u >= 0x477FF000) return sign | 0x7C00;  // >= 65520 rounds to infinity
  if (u >= 0x38800000) {                      // normal f16 (>= 2^-14): rebias, round mantissa
    uint32_t r = u - (112u << 23);
    r += 0xFFF + ((r >> 13) & 1);
    return sign | static_cast<uint16_t>(r >> 13);
  }
  // Subnormal: adding 0.5 leaves the value in units of 2^-24 in the low mantissa bits, rounded
  // to nearest even by the FPU; 2^-14 itself comes out as 0x400, the smallest normal.
  const float t = from_bits(u) + 0.5f;
  return sign | static_cast<uint16_t>(bits(t) - bits(0.5f));
}

float fp8_e4m3_to_f32(uint8_t v) { return detail::kFp8ToF32[v]; }

uint8_t f32_to_fp8_e4m3(float f) {
  const uint32_t u = bits(f);
  const uint8_t sign = static_cast<uint8_t>((u >> 24) & 0x80);
  const float a = std::fabs(f);
  if (std::isnan(f)) return sign | 0x7F;
  if (a >= 448.0f) return sign | 0x7E;  // saturate (the next step up would be the NaN code)
  if (a < 0.015625f) {                  // below 2^-6: subnormal in units of 2^-9
    const float q = a * 512.0f;         // exact
    float r = std::floor(q);
    const float frac = q - r;
    if (frac > 0.5f || (frac == 0.5f && std::fmod(r, 2.0f) != 0.0f)) r += 1.0f;
    return sign | static_cast<uint8_t>(r);  // r == 8 encodes 2^-6, the smallest normal
  }
  uint32_t r = bits(a);
  r += 0x7FFFF + ((r >> 20) & 1);  // round the 23-bit mantissa to 3 bits, nearest even
  const uint32_t e = (r >> 23) - 120;  // f32 bias 127 -> e4m3 bias 7
  return sign | static_cast<uint8_t>((e << 3) | ((r >> 20) & 7));
}

int64_t dtype_bits(DType t) {
  switch (t) {
    case DType::F32: return 32;
    case DType::BF16: return 16;
    case DType::F16: return 16;
    case DType::F8_E4M3: return 8;
    case DType::I8: return 8;
    case DType::I4: return 4;
  }
  throw std::invalid_argument("dtype_bits: unknown dtype " + std::to_string(static_cast<int>(t)));
}

size_t dtype_size(DType t) {
  if (t == DType::I4) throw std::invalid_argument("dtype_size: I4 elements are half a byte; use dtype_bits");
  return static_cast<size_t>(dtype_bits(t) / 8);
}

const char* dtype_name(DType t) {
  switch (t) {
    case DType::F32: return "F32";
    case DType::BF16: return "BF16";
    case DType::F16: return "F16";
    case DType::F8_E4M3: return "F8_E4M3";
    case DType::I8: return "I8";
    case DType::I4: return "I4";
  }
  return "?";
}

WeightView WeightView::row_slice(int64_t first, int64_t count) const {
  if (first < 0 || count < 0 || first + count > rows)
    throw std::out_of_range("WeightView::row_slice: rows [" + std::to_string(first) + ", " +
                            std::to_string(first + count) + ") of " + std::to_string(rows));
  WeightView v = *this;
  // I4: ld is even (scale_error), so first * ld elements are whole bytes.
  v.data = static_cast<const char*>(data) + dtype_bytes(dtype, first * ld);
  v.rows = count;
  v.row0 = row0 + first;
  return v;
}

WeightView WeightView::col_slice(int64_t first, int64_t count) const {
  if (first < 0 || count < 0 || first + count > cols)
    throw std::out_of_range("WeightView::col_slice: columns [" + std::to_string(first) + ", " +
                            std::to_string(first + count) + ") of " + std::to_string(cols));
  // A group split between two views would need its scale twice and, for I4, half a byte.
  if (is_grouped(dtype) && block_cols > 0 && (col0 + first) % block_cols != 0)
    throw std::invalid_argument("WeightView::col_slice: " + std::string(dtype_name(dtype)) +
                                " columns must start on a group boundary, but column " +
                                std::to_string(col0 + first) + " of the parent is not a multiple of the group size " +
                                std::to_string(block_cols));
  WeightView v = *this;
  v.data = static_cast<const char*>(data) + dtype_bytes(dtype, first);
  v.cols = count;
  v.col0 = col0 + first;
  return v;
}

std::string WeightView::scale_error() const {
  auto grid = [&](int64_t need_cols) {
    return !scale || block_rows <= 0 || block_cols <= 0 || row0 < 0 || col0 < 0 ||
           scale_ld < (need_cols + block_cols - 1) / block_cols;
  };
  if (dtype == DType::F8_E4M3 && grid(col0 + cols)) return "F8_E4M3 view without a consistent scale grid";
  if (!is_grouped(dtype)) return {};
  const std::string d = dtype_name(dtype);
  if (block_rows != 1 || (block_cols != 16 && block_cols != 32 && block_cols != 64))
    return d + " view with groups of " + std::to_string(block_rows) + " x " + std::to_string(block_cols) +
           "; groups are 1 x 16, 32 or 64";
  if (grid(col0 + cols)) return d + " view without a consistent scale grid";
  // The SIMD kernels decode 16 elements at a time inside one group.
  if (col0 % 16) return d + " view starting at column " + std::to_string(col0) + ", not a multiple of 16";
  if (dtype == DType::I4 && (ld % 2 || col0 % 2))
    return "I4 view with odd ld " + std::to_string(ld) + " or column offset " + std::to_string(col0);
  return {};
}

}  // namespace dsrt::kernels
