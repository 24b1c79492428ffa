"""`python -m bench [NAME ...]`: run the benchmarks (all of bench/bench_*.py, or the named ones)."""

import importlib
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main(names: list[str]) -> int:
    available = sorted(p.stem.removeprefix("bench_") for p in HERE.glob("bench_*.py"))
    chosen = names or available
    unknown = sorted(set(chosen) - set(available))
    if unknown:
        print(f"unknown benchmark(s): {unknown}; available: {available}")
        return 2
    failed = []
    for name in chosen:
        print(f"\n=== bench {name} ===", flush=True)
        # each in its own process: every benchmark sets Django up against its own database
        if subprocess.run([sys.executable, "-m", f"bench.bench_{name}"], cwd=HERE.parent).returncode:
            failed.append(name)
    print(f"\n=== {'FAIL: ' + ', '.join(failed) if failed else 'every target PASS'} ===")
    return 1 if failed else 0


if __name__ == "__main__":
    importlib.invalidate_caches()
    sys.exit(main(sys.argv[1:]))
