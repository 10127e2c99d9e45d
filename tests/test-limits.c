/* test-limits.c: the resource limits (engine/limits.c), issue 15. */
#include <string.h>

#include "ddpm.h"

static void
test_image (void)
{
  GError *error = NULL;

  /* 16384² is the old 2^28 cap: the decompression bomb's size, refused */
  g_assert_false (ddpm_limits_check_image (16384, 16384, 1, FALSE, "bomb.png", &error));
  g_assert_error (error, DDPM_ERROR, DDPM_ERROR_UNSUPPORTED);
  g_assert_nonnull (strstr (error->message, "bomb.png"));
  g_clear_error (&error);
  /* --size 40000x40000: each side is fine, the product is not */
  g_assert_false (ddpm_limits_check_image (40000, 40000, 3, FALSE, "The image", &error));
  g_clear_error (&error);
  g_assert_null (ddpm_image_try_new (65535, 65535, 3, FALSE, &error));
  g_assert_error (error, DDPM_ERROR, DDPM_ERROR_UNSUPPORTED);
  g_clear_error (&error);
  g_assert_true (ddpm_limits_check_image (48, 40, 3, TRUE, "The image", NULL));
}

static void
test_model (void)
{
  DdpmUNetConfig config;
  GError *error = NULL;

  g_assert_true (ddpm_unet_config_from_preset ("tiny", 1, &config, NULL));
  g_assert_true (ddpm_limits_check_model (&config, 1000, "m.safetensors", NULL));
  g_assert_false (ddpm_limits_check_model (&config, 16777216, "m.safetensors", &error));
  g_assert_nonnull (strstr (error->message, "m.safetensors"));
  g_assert_nonnull (strstr (error->message, "T ="));
  g_clear_error (&error);
  config.ch = 4096;
  g_assert_false (ddpm_limits_check_model (&config, 1000, "m.safetensors", &error));
  g_assert_nonnull (strstr (error->message, "ch = 4096"));
  g_clear_error (&error);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/engine/limits/image", test_image);
  g_test_add_func ("/engine/limits/model", test_model);
  return g_test_run ();
}
