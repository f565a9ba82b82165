#!/usr/bin/env bash
# System packages for speech rendering: espeak-ng and sox (Debian main), MBROLA and its four English
# voices (Debian contrib/non-free, added through a private apt source list so /etc/apt is untouched).
# Idempotent: does nothing when everything is present. Never fails the setup: MBROLA is optional
# (modevo falls back to espeak-ng's own voices and says so), espeak-ng is reported if it cannot be had.
set -u
SUDO=""
if [ "$(id -u)" != 0 ]; then
  if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then SUDO="sudo -n"; else SUDO=""; fi
fi
can_install() { [ "$(id -u)" = 0 ] || [ -n "$SUDO" ]; }
have_mbrola() { command -v mbrola >/dev/null 2>&1 && for v in us1 us2 us3 en1; do [ -e /usr/share/mbrola/$v/$v ] || return 1; done; }

if ! command -v espeak-ng >/dev/null 2>&1 || ! command -v sox >/dev/null 2>&1 || ! ldconfig -p 2>/dev/null | grep -q libespeak-ng.so; then
  if can_install; then
    echo "setup: installing espeak-ng and sox from Debian"
    $SUDO apt-get update -qq >/dev/null 2>&1
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq espeak-ng libespeak-ng1 sox >/dev/null 2>&1 \
      || echo "setup: espeak-ng could not be installed (apt-get failed); speech renderings will not build"
  else
    echo "setup: espeak-ng is missing and this user cannot install packages: run 'apt-get install espeak-ng sox' as root"
  fi
fi

if ! have_mbrola; then
  if can_install && [ -f /etc/apt/sources.list.d/debian.sources ]; then
    echo "setup: installing MBROLA voices us1 us2 us3 en1 from Debian contrib/non-free"
    A=$(mktemp -d)
    mkdir -p "$A/sources.list.d" "$A/lists/partial" "$A/cache/archives/partial"
    sed 's/^Components: main$/Components: main contrib non-free/' /etc/apt/sources.list.d/debian.sources \
      > "$A/sources.list.d/debian-nonfree.sources"
    O=(-o Dir::Etc::sourcelist=/dev/null -o "Dir::Etc::sourceparts=$A/sources.list.d" -o "Dir::State::Lists=$A/lists" -o "Dir::Cache=$A/cache")
    if $SUDO apt-get "${O[@]}" update -qq >/dev/null 2>&1 && \
       DEBIAN_FRONTEND=noninteractive $SUDO apt-get "${O[@]}" install -y -qq mbrola mbrola-us1 mbrola-us2 mbrola-us3 mbrola-en1 >/dev/null 2>&1; then
      :
    fi
    rm -rf "$A"
  fi
  have_mbrola || echo "setup: MBROLA voices unavailable (non-free, Debian contrib/non-free); renderings fall back to espeak-ng voices"
fi
exit 0
