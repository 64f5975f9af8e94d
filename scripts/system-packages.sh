#!/usr/bin/env bash
# What the tests need from Debian rather than PyPI, installed when missing (`make test` runs
# this first): Chromium, which the browser test drives; an emoji font, for the page icons in its
# screenshots; PostgreSQL's server programs, with which the tests start a server of their own.
# As root directly, otherwise through sudo; without either it stops and says what to run.
#   SYSTEM_PACKAGES_ROOT=DIR  look for the programs under DIR instead of / (for its tests)
#   SYSTEM_PACKAGES_DRY_RUN=1 print the install commands instead of running them
set -euo pipefail
root="${SYSTEM_PACKAGES_ROOT:-}"

missing=()
[ -x "$root/usr/bin/chromium" ] || missing+=(chromium)
[ -f "$root/usr/share/fonts/truetype/noto/NotoColorEmoji.ttf" ] || missing+=(fonts-noto-color-emoji)
compgen -G "$root/usr/lib/postgresql/*/bin/initdb" >/dev/null || missing+=(postgresql)
[ "${#missing[@]}" -eq 0 ] && exit 0

if [ "$(id -u)" -eq 0 ]; then
    sudo=()
elif command -v sudo >/dev/null; then
    sudo=(sudo)
else
    echo "The tests need ${missing[*]} from Debian: as root, run" \
        "apt-get update && apt-get install -y ${missing[*]}" >&2
    exit 1
fi

run() {
    if [ -n "${SYSTEM_PACKAGES_DRY_RUN:-}" ]; then echo "$*"; else "$@"; fi
}
echo "installing ${missing[*]} from Debian" >&2
# A fresh machine has no package lists yet: update before installing.
run "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
run "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
