#!/usr/bin/env python3
"""Benchmark Stamp on a synthetic organisation (run by `make bench`).

Generates N accounts across the three archetypes (copies of the fixture accounts with their
own names, account ids, networks, zones and buckets), then times `stamp check` and
`stamp render --all` on them, reporting wall time, accounts per second and peak memory
(max RSS of the stamp process). Usage: scripts/bench.py [--stamp PATH] [N ...]
"""
import argparse
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ARCHETYPES = {
    "service-platform": "production.yaml",
    "data-engineering": "data-prod.yaml",
    "local-platform": "local-staging.yaml",
}


def account_text(template: str, archetype: str, i: int) -> str:
    """The fixture account rewritten with values unique to account number i."""
    name = f"{archetype}-{i:05d}"
    lines = []
    for line in template.splitlines():
        stripped = line.strip()
        indent = line[: len(line) - len(line.lstrip())]
        if line.startswith("name:"):
            line = f"name: {name}"
        elif line.startswith("account_id:"):
            line = f'account_id: "{100000000000 + i}"'
        elif line.startswith("protected:"):
            line = "protected: false"
        elif stripped.startswith("cidr:") and indent == "  ":
            line = f"  cidr: {cidr(archetype, i)}"
        elif stripped.startswith("zone:"):
            line = f"{indent}zone: {name}.bench.acme.internal"
        elif stripped.startswith("bucket:"):
            line = f"{indent}bucket: {stripped.split(':', 1)[1].strip()}-{i:05d}"
        lines.append(line)
    if not any(l.startswith("name:") for l in lines):
        lines.insert(1, f"name: {name}")
    return "\n".join(lines) + "\n"


def cidr(archetype: str, i: int) -> str:
    """Non-overlapping networks: /20s in 10/8 for AWS accounts, /24s in 172.16/12 locally."""
    if archetype == "local-platform":
        n = i // 3
        return f"172.{16 + n // 256}.{n % 256}.0/24"
    n = i - i // 3  # two AWS archetypes share 10/8
    return f"10.{n // 16}.{(n % 16) * 16}.0/20"


def make_org(n: int, where: Path) -> Path:
    project = where / f"org-{n}"
    shutil.copytree(ROOT / "archetypes", project / "archetypes")
    shutil.copytree(ROOT / "blueprints", project / "blueprints")
    shutil.copy(ROOT / "stamp.yaml", project / "stamp.yaml")
    accounts = project / "fixtures" / "accounts"
    accounts.mkdir(parents=True)
    templates = {a: (ROOT / "fixtures/accounts" / f).read_text() for a, f in ARCHETYPES.items()}
    names = list(ARCHETYPES)
    for i in range(n):
        archetype = names[i % 3]
        (accounts / f"{archetype}-{i:05d}.yaml").write_text(account_text(templates[archetype], archetype, i))
    return project


def run(stamp: str, args: list, cwd: Path) -> tuple:
    """Wall seconds and peak RSS (MiB) of one stamp run; fails loudly on a non-zero exit."""
    with tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        proc = subprocess.Popen([stamp, "--quiet", *args], cwd=cwd, stdout=subprocess.DEVNULL, stderr=err,
                                env={**os.environ, "STAMP_VERSION": "1.0.0"})
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
        code = os.waitstatus_to_exitcode(status)
        if code != 0:
            err.seek(0)
            sys.exit(f"stamp {' '.join(args)} failed ({code}):\n{err.read().decode()[-3000:]}")
    return wall, usage.ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--stamp", default=str(ROOT / "target/release/stamp"))
    parser.add_argument("sizes", nargs="*", type=int, default=[1000, 10000])
    args = parser.parse_args()
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
    print(f"machine: {os.cpu_count()} cores ({cpu}), {platform.system()} {platform.release()}")
    print(f"{'accounts':>8}  {'command':<22} {'wall':>8}  {'accounts/s':>10}  {'peak RSS':>9}")
    with tempfile.TemporaryDirectory() as tmp:
        for n in sorted(args.sizes):
            project = make_org(n, Path(tmp))
            for label, command in [("check", ["check"]), ("render --all", ["render", "--all", "--out", "out"])]:
                wall, peak = run(args.stamp, command, project)
                print(f"{n:>8}  stamp {label:<16} {wall:>7.2f}s  {n / wall:>10.0f}  {peak:>6.0f} MiB", flush=True)
            shutil.rmtree(project)


if __name__ == "__main__":
    main()
