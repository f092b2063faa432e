#!/usr/bin/env python3
"""Host memory under a guest that tries to grow it: the memory soak.

Runs ``tests/riscv/vmm/soak.S`` (new SBI extension numbers, self-modifying code
translated afresh every round, satp churn) under ``popek run --vmm trap-emulate``
for a while, sampling the resident set size of popek and its compile workers
from /proc, and prints the curve: RSS at the end of the warm-up, the peak after
it, and the growth.  A guest of N MiB should cost about N MiB plus bounded
caches, so after the warm-up the curve must be flat.

    python bench/bench_soak.py [--seconds 120] [--warmup 12] [--compile-workers N]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SOAK = ROOT / "tests" / "riscv" / "vmm" / "build" / "soak.elf"


def _rss_kb(pid: int) -> int:
    """Resident set of ``pid`` and its children (the compile workers), in KiB."""
    total = 0
    pids = [pid]
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        pids += [int(c) for c in children]
    except OSError:
        pass
    for p in pids:
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return total


def soak(seconds: float, extra=(), interval: float = 0.5) -> list[tuple[float, int]]:
    """Run the soak guest for ``seconds``; return [(seconds since start, RSS KiB)]."""
    subprocess.run(["make", "-s", "-C", str(SOAK.parent.parent)], check=True)
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    proc = subprocess.Popen([sys.executable, "-m", "popek", "run", "--vmm", "trap-emulate",
                             "--kernel", str(SOAK), "--code-cache", "none", *extra],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    samples = []
    start = time.monotonic()
    try:
        while (t := time.monotonic() - start) < seconds:
            if proc.poll() is not None:
                raise RuntimeError(f"popek stopped early ({proc.returncode}): "
                                   f"{proc.stderr.read().decode(errors='replace')[-2000:]}")
            samples.append((t, _rss_kb(proc.pid)))
            time.sleep(interval)
    finally:
        proc.kill()
        proc.wait()
    return samples


def growth(samples: list[tuple[float, int]], warmup: float) -> tuple[int, int]:
    """(RSS at the end of the warm-up, peak after it), in KiB."""
    base = max(r for t, r in samples if t <= warmup)
    peak = max(r for t, r in samples if t > warmup)
    return base, peak


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=120)
    p.add_argument("--warmup", type=float, default=12)
    p.add_argument("--compile-workers", type=int, default=None)
    args = p.parse_args()
    extra = [] if args.compile_workers is None else ["--compile-workers", str(args.compile_workers)]
    samples = soak(args.seconds, extra)
    base, peak = growth(samples, args.warmup)
    print(f"soak guest, {args.seconds:.0f} s (warm-up {args.warmup:.0f} s), popek + workers RSS:")
    for t, r in samples[:: max(1, len(samples) // 12)]:
        print(f"  {t:6.1f} s  {r / 1024:7.1f} MiB")
    print(f"after warm-up: {base / 1024:.1f} MiB; peak after: {peak / 1024:.1f} MiB; "
          f"growth {(peak - base) / 1024:+.1f} MiB")


if __name__ == "__main__":
    main()
