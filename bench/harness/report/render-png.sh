#!/bin/bash
# Renders a run's plots (plots/*.svg) to PNG with headless Chromium, each at its
# own size: for READMEs that cannot embed SVG.
#
#   render-png.sh RUN_DIR DEST_DIR [PREFIX]
#
# Needs chromium (apt-get install -y chromium).
set -euo pipefail
[[ $# -ge 2 ]] || { echo "usage: render-png.sh RUN_DIR DEST_DIR [PREFIX]" >&2; exit 2; }
run=$1 dest=$2 prefix=${3:-}
browser=$(command -v chromium || command -v chromium-browser || true)
[[ -n $browser ]] || { echo "render-png.sh: chromium not found (apt-get install -y chromium)" >&2; exit 1; }
mkdir -p "$dest"
for svg in "$run"/plots/*.svg; do
  name=$(basename "$svg" .svg)
  read -r w h < <(head -c 400 "$svg" | sed -n 's/.*width="\([0-9]*\)" height="\([0-9]*\)".*/\1 \2/p' | head -n 1)
  timeout 120 "$browser" --headless --no-sandbox --disable-gpu --hide-scrollbars --force-device-scale-factor=1 \
    --window-size="${w:-760},${h:-400}" --screenshot="$dest/$prefix$name.png" "file://$(realpath "$svg")" > /dev/null 2>&1
  echo "$dest/$prefix$name.png"
done
