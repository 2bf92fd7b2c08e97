#!/usr/bin/env bash
# Install a pinned checkov (3.3.30) into the project-local tools folder.
#
# checkov is a Python package: it goes into its own virtualenv, `.tools/checkov/venv`, with
# every dependency at the version pinned in scripts/checkov-constraints.txt, and a wrapper,
# `.tools/bin/checkov`, that runs it offline. Nothing is installed system-wide.
#
#   scripts/install-checkov.sh                 install (or confirm) and print the wrapper's path
#   scripts/install-checkov.sh --force         reinstall even if a working 3.3.30 is present
#   scripts/install-checkov.sh --wheelhouse D  install offline from wheels in folder D
#
# Environment:
#   STAMP_TOOLS_DIR   tools folder (default: <project>/.tools)
#   STAMP_WHEELHOUSE  same as --wheelhouse
#   PYTHON            Python >= 3.9 used to create the virtualenv (default: python3)
#
# Only the path of the wrapper is printed on stdout, so `CKV=$(scripts/install-checkov.sh)`
# works; progress goes to stderr.
#
# Offline: checkov 3.3.30 calls Prisma Cloud (Bridgecrew) for its check-id mappings and
# guidelines unless BC_SKIP_MAPPING=TRUE, and downloads doc links, severities and custom
# policies unless run with --skip-download. The wrapper sets the first; callers pass
# --skip-download. Without an API key nothing is uploaded.
set -euo pipefail

CHECKOV_VERSION="3.3.30"

TOOL=checkov
# shellcheck source=lib/pinned-tool.sh
. "$(dirname -- "${BASH_SOURCE[0]}")/lib/pinned-tool.sh"

usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2; }

force=0
wheelhouse="${STAMP_WHEELHOUSE:-}"
while [ $# -gt 0 ]; do
  case "$1" in
    --force) force=1 ;;
    --wheelhouse) [ $# -ge 2 ] || die "--wheelhouse needs a folder"; wheelhouse="$2"; shift ;;
    --wheelhouse=*) wheelhouse="${1#*=}" ;;
    -h | --help) usage; exit 0 ;;
    *) usage; die "unknown argument: $1" ;;
  esac
  shift
done

script_dir="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)"
project_dir="$(dirname -- "$script_dir")"
constraints="$script_dir/checkov-constraints.txt"
tools_dir="${STAMP_TOOLS_DIR:-$project_dir/.tools}"
mkdir -p -- "$tools_dir"
tools_dir="$(cd -- "$tools_dir" && pwd)"

bin_dir="$tools_dir/bin"
ckv_dir="$tools_dir/checkov"
venv_dir="$ckv_dir/venv"
wrapper="$bin_dir/checkov"
python="${PYTHON:-python3}"

# The installed package's version, read without importing checkov (which takes seconds).
installed_version() {
  [ -x "$wrapper" ] && [ -x "$venv_dir/bin/python" ] || return 1
  "$venv_dir/bin/python" -I -c 'import importlib.metadata as m; print(m.version("checkov"))' </dev/null 2>/dev/null
}

exit_if_installed checkov "$CHECKOV_VERSION" "$wrapper"
require_python "checkov $CHECKOV_VERSION"
[ -f "$constraints" ] || die "missing $constraints"

pip_args=(--disable-pip-version-check --no-input --quiet -c "$constraints")
add_wheelhouse

start=$(date +%s)
log "installing checkov $CHECKOV_VERSION into $ckv_dir${wheelhouse:+ (offline, from $wheelhouse)} (about a minute)"
mkdir -p -- "$ckv_dir" "$bin_dir"
# Build the new virtualenv beside the old one and swap it in only once pip succeeded.
staging="$ckv_dir/venv.new"
new_venv "$staging"
"$staging/bin/python" -m pip install "${pip_args[@]}" "checkov==$CHECKOV_VERSION" >&2 || {
  rm -rf -- "$staging"
  die "pip could not install checkov==$CHECKOV_VERSION"
}
swap_venv "$staging" "$venv_dir" "$wrapper"
# A virtualenv's scripts name its interpreter by absolute path: the move broke them, so run
# checkov through the interpreter (`python -m checkov.main`) instead.

tmp_wrapper="$(mktemp "$bin_dir/.checkov.XXXXXX")"
cat >"$tmp_wrapper" <<SH
#!/bin/sh
# checkov $CHECKOV_VERSION; written by scripts/install-checkov.sh. Same arguments and exit codes
# as checkov, offline: no Prisma Cloud mappings or guidelines (pass --skip-download too).
BC_SKIP_MAPPING="\${BC_SKIP_MAPPING-TRUE}"
export BC_SKIP_MAPPING
exec $(quote "$venv_dir/bin/python") -m checkov.main "\$@"
SH
chmod 0755 "$tmp_wrapper"
mv -f -- "$tmp_wrapper" "$wrapper"

got="$("$wrapper" --version </dev/null 2>/dev/null | tail -n 1 || true)"
[ "$got" = "$CHECKOV_VERSION" ] || die "installed checkov reports version '${got:-nothing}', expected $CHECKOV_VERSION"
log "checkov $CHECKOV_VERSION installed in $(($(date +%s) - start))s"
printf '%s\n' "$wrapper"
