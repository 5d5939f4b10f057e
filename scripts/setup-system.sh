#!/usr/bin/env bash
# System packages mood-ood needs on Debian/Ubuntu (idempotent). Build: libtorch + Gloo headers,
# libjpeg-turbo, libpng. Tests and demo: Debian's python3-torch/torchvision/PIL/sklearn as
# independent references, and the Fashion-MNIST dataset package.
set -euo pipefail
pkgs=(cmake g++ make libtorch-dev libgloo-dev libjpeg62-turbo-dev libpng-dev
      python3-torch python3-torchvision python3-pil python3-sklearn python3-numpy dataset-fashion-mnist)
pkgs+=(chromium)  # headless screenshot test of the demo's HTML report (tests/report/chromium.test.ts)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -eq 0 ]; then
  echo "setup-system: all ${#pkgs[@]} packages present"
  exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
echo "setup-system: installing ${missing[*]}"
$SUDO apt-get update -q
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
