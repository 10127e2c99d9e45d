/* intl.h: the engine's translatable messages (internal to libddpm).
 *
 * _("…") marks a user-facing message and translates it with
 * g_dgettext (GETTEXT_PACKAGE, "…"), from the gimp-ddpm catalogue, so the
 * engine's errors speak the language of a front end that binds that
 * domain (the GIMP plug-in does, plugin/plugin.h).  The command line does
 * not bind it, so it stays English (unless a gimp-ddpm catalogue happens
 * to sit in the C library's default locale folder, /usr/share/locale, and
 * the user's locale asks for it).  N_("…") marks a string to translate
 * later.  A file that uses them must be listed in po/POTFILES
 * (tests/test-potfiles.c checks), and every marked message translated in
 * each po/LINGUAS language (the 'translations' test checks).
 */
#ifndef DDPM_INTL_H
#define DDPM_INTL_H

#include "config.h"

#include <glib/gi18n-lib.h>

#endif /* DDPM_INTL_H */
