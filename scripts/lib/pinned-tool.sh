# Shared steps of the scripts that install a pinned Python tool into the project-local tools
# folder (install-terraform.sh, install-checkov.sh). Source it after setting:
#   TOOL       the tool's name, for messages and the lock file (`terraform`, `checkov`)
#   tools_dir  the tools folder;  force  1 to reinstall;  python  the Python to use
# and defining `installed_version` (prints the installed version, fails when there is none).

log() { printf 'install-%s: %s\n' "$TOOL" "$*" >&2; }
die() { log "error: $*"; exit 1; }

# Shell-quotes one word, for the wrappers the scripts write.
quote() { printf "'%s'" "$(printf '%s' "$1" | sed "s/'/'\\\\''/g")"; }

# Exits printing PATH when VERSION is installed already; otherwise takes a lock that
# serialises concurrent installers (parallel CI jobs, where flock exists) and checks again.
exit_if_installed() {
  local label=$1 version=$2 path=$3
  if [ "$force" -eq 0 ] && [ "$(installed_version || true)" = "$version" ]; then
    log "$label $version is already installed"
    printf '%s\n' "$path"
    exit 0
  fi
  if command -v flock >/dev/null 2>&1; then
    exec 9>"$tools_dir/.install-$TOOL.lock"
    flock 9
    if [ "$force" -eq 0 ] && [ "$(installed_version || true)" = "$version" ]; then
      log "$label $version was installed by a concurrent run"
      printf '%s\n' "$path"
      exit 0
    fi
  fi
}

# Fails unless $python is a Python >= 3.9 (`what` says who needs it).
require_python() {
  local what=$1
  command -v "$python" >/dev/null 2>&1 || die "$python not found (set PYTHON to a Python >= 3.9)"
  "$python" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 9) else 1)' ||
    die "$python is older than 3.9; $what needs Python >= 3.9"
}

# Adds pip's offline arguments for the wheelhouse folder $wheelhouse (if set) to pip_args.
add_wheelhouse() {
  if [ -n "${wheelhouse:-}" ]; then
    [ -d "$wheelhouse" ] || die "wheelhouse $wheelhouse is not a folder"
    wheelhouse="$(cd -- "$wheelhouse" && pwd)"
    pip_args+=(--no-index --find-links "$wheelhouse")
  fi
}

# Creates an empty virtualenv at STAGING, beside the one it will replace (see swap_venv).
new_venv() {
  local staging=$1
  rm -rf -- "$staging"
  "$python" -m venv "$staging" >&2 || die "could not create a virtualenv (Debian: apt-get install python3-venv)"
}

# Replaces the virtualenv VENV with STAGING once pip succeeded in it, and removes the old
# wrapper WRAPPER first (it would point into the old one).
swap_venv() {
  local staging=$1 venv=$2 wrapper=$3
  rm -f -- "$wrapper"
  rm -rf -- "$venv"
  mv -- "$staging" "$venv"
}
