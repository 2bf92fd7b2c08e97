"""Helpers shared by the local-platform provisioner scripts.

Every value comes from an environment variable set by the provisioner's
`environment` map (never from the command line), and every file is written
atomically (temporary file + rename), so a retried apply finds either the old
file or the new one, never half of one.
"""

import json
import os
import sys
import tempfile


def env(name):
    """The value of a required environment variable."""
    value = os.environ.get(name)
    if value is None or value == "":
        fail(f"environment variable {name} is not set")
    return value


def env_json(name):
    """A required environment variable holding JSON."""
    raw = env(name)
    try:
        return json.loads(raw)
    except json.JSONDecodeError as exc:
        fail(f"environment variable {name} is not valid JSON: {exc}")


def env_int(name, minimum=None):
    raw = env(name)
    try:
        value = int(raw)
    except ValueError:
        fail(f"environment variable {name} is not an integer: {raw!r}")
    if minimum is not None and value < minimum:
        fail(f"environment variable {name} must be at least {minimum}, got {value}")
    return value


def env_abspath(name):
    """A required environment variable holding an absolute path."""
    path = env(name)
    if not os.path.isabs(path):
        fail(f"environment variable {name} must be an absolute path, got {path!r}")
    return os.path.normpath(path)


def write_atomic(path, text):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=os.path.dirname(path))
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def write_json(path, value):
    write_atomic(path, json.dumps(value, indent=2, sort_keys=True) + "\n")


def remove(path):
    """Remove a file; a file that is already gone is fine (destroy is retryable)."""
    try:
        os.unlink(path)
        log(f"removed {path}")
    except FileNotFoundError:
        log(f"{path} was already gone")


def remove_dir_if_empty(path):
    try:
        os.rmdir(path)
        log(f"removed {path}/")
    except FileNotFoundError:
        pass
    except OSError:
        left = sorted(os.listdir(path))
        log(f"kept {path}/: it still holds {', '.join(left)}")


def log(message):
    print(f"{os.path.basename(sys.argv[0])}: {message}", flush=True)


def fail(message):
    print(f"{os.path.basename(sys.argv[0])}: error: {message}", file=sys.stderr, flush=True)
    sys.exit(1)


def action():
    """The script's one argument: create or destroy."""
    if len(sys.argv) != 2 or sys.argv[1] not in ("create", "destroy"):
        fail("usage: {} create|destroy".format(os.path.basename(sys.argv[0])))
    return sys.argv[1]
