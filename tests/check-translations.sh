#!/bin/sh
# check-translations.sh: every translatable string of the sources is
# translated, not fuzzy, in every language of po/LINGUAS, and every
# catalogue compiles with its format strings checked.  TAP output.
#
# The strings are extracted afresh from po/POTFILES with the keywords of
# meson's 'glib' gettext preset (what `meson compile gimp-ddpm-pot` runs),
# so a string added to the code without a translation fails here.  The fix:
#   meson compile -C build gimp-ddpm-pot gimp-ddpm-update-po
# then translate the new entries in po/*.po.
set -u
srcdir=${1:?usage: check-translations.sh SOURCE_ROOT}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

cd "$srcdir" || exit 1
languages=$(grep -v '^#' po/LINGUAS)
n=$(( 1 + 2 * $(echo $languages | wc -w) ))
echo "1..$n"
i=0
status=0

ok () { i=$((i + 1)); echo "ok $i - $1"; }
not_ok () { i=$((i + 1)); echo "not ok $i - $1"; sed 's/^/# /' "$2"; status=1; }

if xgettext --package-name=gimp-ddpm --from-code=UTF-8 --add-comments \
     --keyword=_ --keyword=N_ --keyword=C_:1c,2 --keyword=NC_:1c,2 \
     --keyword=g_dcgettext:2 --keyword=g_dngettext:2,3 --keyword=g_dpgettext2:2c,3 \
     --flag=N_:1:pass-c-format --flag=C_:2:pass-c-format --flag=NC_:2:pass-c-format \
     --flag=g_dngettext:2:pass-c-format --flag=g_strdup_printf:1:c-format \
     --flag=g_string_printf:2:c-format --flag=g_string_append_printf:2:c-format \
     --flag=g_error_new:3:c-format --flag=g_set_error:4:c-format \
     -f po/POTFILES -o "$tmp/template.pot" >"$tmp/xgettext.log" 2>&1 \
   && [ -s "$tmp/template.pot" ]; then
  ok "xgettext extracts the messages of po/POTFILES"
else
  not_ok "xgettext on po/POTFILES" "$tmp/xgettext.log"
  exit 1
fi

for lang in $languages; do
  # msgcmp fails for every message of the template that the catalogue
  # lacks, leaves untranslated or marks fuzzy.
  if msgcmp "po/$lang.po" "$tmp/template.pot" >"$tmp/msgcmp.log" 2>&1; then
    ok "$lang: every message translated"
  else
    not_ok "$lang: untranslated, fuzzy or missing messages" "$tmp/msgcmp.log"
  fi
  if msgfmt --check --statistics -o "$tmp/$lang.mo" "po/$lang.po" >"$tmp/msgfmt.log" 2>&1 \
     && ! grep -q 'fuzzy\|untranslated' "$tmp/msgfmt.log"; then
    ok "$lang: msgfmt --check: $(cat "$tmp/msgfmt.log")"
  else
    not_ok "$lang: msgfmt --check" "$tmp/msgfmt.log"
  fi
done
exit $status
