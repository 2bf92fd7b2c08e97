#!/usr/bin/env bash
# Build the test provider `example.com/stamp/stampecho` 1.0.0 (scripts/test-provider/stampecho.py,
# a real provider written with the `tf` Python framework) and package it into a filesystem
# mirror that stands in for the registry in Stamp's offline tests of the provider cache.
#
#   scripts/install-test-provider.sh      install (or confirm) and print the mirror's path
#
# The provider runs on the virtualenv's Python (.tools/provider/venv, `tf` pinned below); the
# package is a zip of one executable, `terraform-provider-stampecho_v1.0.0`, as Terraform
# expects. Only the mirror's path is printed on stdout; progress goes to stderr.
#
# Environment:
#   STAMP_TOOLS_DIR   tools folder (default: <project>/.tools)
#   PYTHON            Python >= 3.9 used to create the virtualenv (default: python3)
set -euo pipefail

TF_FRAMEWORK="tf==1.2.0"
VERSION="1.0.0"

log() { printf 'install-test-provider: %s\n' "$*" >&2; }

script_dir="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)"
project_dir="$(dirname -- "$script_dir")"
tools_dir="${STAMP_TOOLS_DIR:-$project_dir/.tools}"
home="$tools_dir/provider"
venv="$home/venv"
origin="$home/origin"
source_file="$script_dir/test-provider/stampecho.py"
python="${PYTHON:-python3}"

if ! "$venv/bin/python" -c 'import tf.runner' 2>/dev/null; then
  log "installing $TF_FRAMEWORK into $venv"
  rm -rf "$venv"
  "$python" -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "$TF_FRAMEWORK" >&2
fi

executable="$home/terraform-provider-stampecho_v$VERSION"
stamp="$(sha256sum "$source_file" | cut -c1-16)"
package_dir="$origin/example.com/stamp/stampecho"
if [ ! -f "$home/.built-$stamp" ] || [ ! -d "$package_dir" ]; then
  log "packaging example.com/stamp/stampecho $VERSION into $origin"
  { printf '#!%s\n' "$venv/bin/python"; cat "$source_file"; } > "$executable.tmp"
  chmod 755 "$executable.tmp"
  mv "$executable.tmp" "$executable"
  rm -rf "$origin"
  mkdir -p "$package_dir"
  for platform in linux_amd64 linux_arm64 darwin_amd64 darwin_arm64; do
    "$venv/bin/python" - "$executable" "$package_dir/terraform-provider-stampecho_${VERSION}_${platform}.zip" <<'PY'
import sys, zipfile, os
executable, target = sys.argv[1], sys.argv[2]
info = zipfile.ZipInfo(os.path.basename(executable), date_time=(2026, 1, 1, 0, 0, 0))
info.external_attr = 0o100755 << 16
with open(executable, "rb") as f, zipfile.ZipFile(target, "w") as z:
    z.writestr(info, f.read())
PY
  done
  rm -f "$home"/.built-*
  touch "$home/.built-$stamp"
fi
echo "$origin"
