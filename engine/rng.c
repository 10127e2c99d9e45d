/* rng.c: counter-based random numbers.
 *
 * HOW IT WORKS
 *
 * A counter-based generator is a keyed bijection: out = f_key(counter).
 * There is no state to advance, so the number for element i of stream s
 * under seed k can be computed directly, by any thread, in any order.  This
 * is what makes sampling reproducible whatever the thread count or tiling:
 * the sampler asks for the noise of pixel (x, y, c) at step n, and always
 * gets the same value.
 *
 * Layout: counter = (block lo, block hi, stream lo, stream hi), key = seed.
 * One Philox call yields four 32-bit words.  Normals come from Box–Muller,
 * one (u1, u2) pair per two normals (cos and sin), so a block serves four
 * consecutive normal indices; uniforms use two words (53 bits) each, so a
 * block serves two consecutive uniform indices.
 */
#include <math.h>

#include "ddpm.h"

#define PHILOX_M0 0xD2511F53u
#define PHILOX_M1 0xCD9E8D57u
#define PHILOX_W0 0x9E3779B9u /* golden ratio */
#define PHILOX_W1 0xBB67AE85u /* √3 − 1 */

/* Salmon et al. 2011, §3.3: ten rounds of two 32×32→64 multiplies, with
 * the key bumped by the Weyl constants before every round but the first. */
void
ddpm_philox4x32_10 (guint32        out[4],
                    const guint32  counter[4],
                    const guint32  key[2])
{
  guint32 c0 = counter[0], c1 = counter[1], c2 = counter[2], c3 = counter[3];
  guint32 k0 = key[0], k1 = key[1];

  for (int round = 0; round < 10; round++)
    {
      if (round > 0)
        {
          k0 += PHILOX_W0;
          k1 += PHILOX_W1;
        }
      guint64 p0 = (guint64) PHILOX_M0 * c0;
      guint64 p1 = (guint64) PHILOX_M1 * c2;
      guint32 n0 = (guint32) (p1 >> 32) ^ c1 ^ k0;
      guint32 n1 = (guint32) p1;
      guint32 n2 = (guint32) (p0 >> 32) ^ c3 ^ k1;
      guint32 n3 = (guint32) p0;
      c0 = n0; c1 = n1; c2 = n2; c3 = n3;
    }
  out[0] = c0; out[1] = c1; out[2] = c2; out[3] = c3;
}

static inline void
philox_block (guint32 out[4], guint64 seed, guint64 stream, guint64 block)
{
  const guint32 counter[4] = { (guint32) block, (guint32) (block >> 32),
                               (guint32) stream, (guint32) (stream >> 32) };
  const guint32 key[2] = { (guint32) seed, (guint32) (seed >> 32) };

  ddpm_philox4x32_10 (out, counter, key);
}

/* 53-bit uniform in [0, 1) from two words (the usual 27 + 26 bit split). */
static inline double
uniform_from_words (guint32 a, guint32 b)
{
  return ((a >> 5) * 67108864.0 + (b >> 6)) * (1.0 / 9007199254740992.0);
}

/* Box–Muller on two words: u1 ∈ (0, 1] so the log is finite (the largest
 * |z| is √(−2 ln 2⁻³²) ≈ 6.7, a tail mass of 2e-11, harmless here). */
static inline void
normal_pair_from_words (float z[2], guint32 a, guint32 b)
{
  double u1 = ((double) a + 1.0) * (1.0 / 4294967296.0);
  double u2 = (double) b * (1.0 / 4294967296.0);
  double r = sqrt (-2.0 * log (u1));
  double angle = 2.0 * G_PI * u2;

  z[0] = (float) (r * cos (angle));
  z[1] = (float) (r * sin (angle));
}

double
ddpm_rng_uniform (guint64 seed, guint64 stream, guint64 index)
{
  guint32 w[4];
  unsigned lane = (unsigned) (index & 1) * 2;

  philox_block (w, seed, stream, index >> 1);
  return uniform_from_words (w[lane], w[lane + 1]);
}

float
ddpm_rng_normal (guint64 seed, guint64 stream, guint64 index)
{
  guint32 w[4];
  float z[2];
  unsigned pair = (unsigned) ((index >> 1) & 1) * 2;

  philox_block (w, seed, stream, index >> 2);
  normal_pair_from_words (z, w[pair], w[pair + 1]);
  return z[index & 1];
}

void
ddpm_rng_normal_fill (float   *out,
                      gsize    n,
                      guint64  seed,
                      guint64  stream,
                      guint64  first)
{
  gsize i = 0;

  /* Unaligned head, one element at a time. */
  while (i < n && ((first + i) & 3) != 0)
    {
      out[i] = ddpm_rng_normal (seed, stream, first + i);
      i++;
    }
  /* Whole blocks: four normals per Philox call. */
  for (; i + 4 <= n; i += 4)
    {
      guint32 w[4];

      philox_block (w, seed, stream, (first + i) >> 2);
      normal_pair_from_words (out + i, w[0], w[1]);
      normal_pair_from_words (out + i + 2, w[2], w[3]);
    }
  for (; i < n; i++)
    out[i] = ddpm_rng_normal (seed, stream, first + i);
}

void
ddpm_rng_uniform_fill (double  *out,
                       gsize    n,
                       guint64  seed,
                       guint64  stream,
                       guint64  first)
{
  for (gsize i = 0; i < n; i++)
    out[i] = ddpm_rng_uniform (seed, stream, first + i);
}

void
ddpm_rng_init (DdpmRng *rng, guint64 seed, guint64 stream)
{
  g_return_if_fail (rng != NULL);
  rng->seed = seed;
  rng->stream = stream;
  rng->counter = 0;
}

double
ddpm_rng_next_uniform (DdpmRng *rng)
{
  return ddpm_rng_uniform (rng->seed, rng->stream, rng->counter++);
}

float
ddpm_rng_next_normal (DdpmRng *rng)
{
  return ddpm_rng_normal (rng->seed, rng->stream, rng->counter++);
}

guint32
ddpm_rng_next_below (DdpmRng *rng, guint32 n)
{
  g_return_val_if_fail (n > 0, 0);
  /* A 53-bit uniform scaled to n < 2³² has a bias below 2⁻²¹ per value;
   * rejection makes it exact. */
  guint64 limit = (G_GUINT64_CONSTANT (1) << 53) / n * n;

  for (;;)
    {
      guint64 bits = (guint64) (ddpm_rng_next_uniform (rng) * 9007199254740992.0);

      if (bits < limit)
        return (guint32) (bits % n);
    }
}
