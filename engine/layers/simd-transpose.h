/* simd-transpose.h: an 8×8 transpose of 32-bit values in eight ymm
 * registers, for the weight packers of conv3x3.c and conv-bf16.c (which
 * turn a layer's (output channel, k) rows into k-major blocks of 8 output
 * channels reading the rows front to back, where a gather per k waited on
 * eight cache misses at a time: 3 GB/s against the 15 GB/s the rows
 * stream at).  Callers are compiled for AVX-512, which includes AVX. */
#pragma once

#include <immintrin.h>

/* r[j] = row j on entry, column j (the j-th value of every row) on return */
static inline __attribute__ ((always_inline, target ("avx2"))) void
ddpm_transpose8x8_ps (__m256 r[8])
{
  const __m256 t0 = _mm256_unpacklo_ps (r[0], r[1]), t1 = _mm256_unpackhi_ps (r[0], r[1]);
  const __m256 t2 = _mm256_unpacklo_ps (r[2], r[3]), t3 = _mm256_unpackhi_ps (r[2], r[3]);
  const __m256 t4 = _mm256_unpacklo_ps (r[4], r[5]), t5 = _mm256_unpackhi_ps (r[4], r[5]);
  const __m256 t6 = _mm256_unpacklo_ps (r[6], r[7]), t7 = _mm256_unpackhi_ps (r[6], r[7]);
  const __m256 u0 = _mm256_shuffle_ps (t0, t2, 0x44), u1 = _mm256_shuffle_ps (t0, t2, 0xee);
  const __m256 u2 = _mm256_shuffle_ps (t1, t3, 0x44), u3 = _mm256_shuffle_ps (t1, t3, 0xee);
  const __m256 u4 = _mm256_shuffle_ps (t4, t6, 0x44), u5 = _mm256_shuffle_ps (t4, t6, 0xee);
  const __m256 u6 = _mm256_shuffle_ps (t5, t7, 0x44), u7 = _mm256_shuffle_ps (t5, t7, 0xee);

  r[0] = _mm256_permute2f128_ps (u0, u4, 0x20);
  r[1] = _mm256_permute2f128_ps (u1, u5, 0x20);
  r[2] = _mm256_permute2f128_ps (u2, u6, 0x20);
  r[3] = _mm256_permute2f128_ps (u3, u7, 0x20);
  r[4] = _mm256_permute2f128_ps (u0, u4, 0x31);
  r[5] = _mm256_permute2f128_ps (u1, u5, 0x31);
  r[6] = _mm256_permute2f128_ps (u2, u6, 0x31);
  r[7] = _mm256_permute2f128_ps (u3, u7, 0x31);
}
