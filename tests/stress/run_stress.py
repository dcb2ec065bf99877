"""Run the whole test suite N times with CPU-burning processes beside it.

    .venv/bin/python tests/stress/run_stress.py --rounds 10 --burners 2 [-- PYTEST ARGS]

Each round is one ``pytest -q -p no:cacheprovider --junitxml=...`` run (with
HYPOTHESIS_PROFILE=ci unless it is set); the burners spin from the first round
to the last. At the end it prints each round's wall time and counts, and a
table of the tests that failed in any round (failures/rounds). Exits 1 when
any test failed or any round did not finish, 0 otherwise. This file is not
collected by pytest (tests/conftest.py ignores tests/stress/).
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Counter, List, Optional, Tuple

ROOT = Path(__file__).resolve().parents[2]


def _burn() -> None:  # pragma: no cover - runs in a child process
    x = 0
    while True:
        x = (x * 1103515245 + 12345) & 0xFFFFFFFF


def _test_id(classname: str, name: str) -> str:
    """A junit classname and name as a pytest node id.

    ``tests.client.test_x.TestY`` + ``test_z[p]`` -> ``tests/client/test_x.py::TestY::test_z[p]``
    """
    parts = classname.split(".") if classname else []
    for cut in range(len(parts), 0, -1):
        module = ROOT.joinpath(*parts[:cut]).with_suffix(".py")
        if module.is_file():
            return "::".join(["/".join(parts[:cut]) + ".py", *parts[cut:], name])
    return "::".join([*parts, name]) if parts else name


def _read_junit(path: Path) -> Tuple[Counter[str], List[str]]:
    """The counts of one round and the ids of the tests that failed or errored."""
    counts: Counter[str] = Counter()
    failed: List[str] = []
    for case in ET.parse(path).getroot().iter("testcase"):
        outcome = "passed"
        for child in case:
            if child.tag in ("failure", "error"):
                outcome = "failed"
                break
            if child.tag == "skipped":
                outcome = "skipped"
        counts[outcome] += 1
        if outcome == "failed":
            failed.append(_test_id(case.get("classname", ""), case.get("name", "")))
    return counts, failed


def _run_round(
    number: int, args: argparse.Namespace, workdir: Path
) -> Tuple[float, int, Counter[str], List[str]]:
    junit = workdir / f"round-{number}.xml"
    log = workdir / f"round-{number}.log"
    command = [args.python, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--junitxml={junit}"]
    command += args.pytest_args
    env = dict(os.environ)
    env.setdefault("HYPOTHESIS_PROFILE", "ci")
    started = time.monotonic()
    status: Optional[int]
    with log.open("wb") as out:
        try:
            status = subprocess.run(
                command,
                cwd=ROOT,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                timeout=args.round_timeout,
            ).returncode
        except subprocess.TimeoutExpired:
            status = None
    wall = time.monotonic() - started
    counts: Counter[str] = Counter()
    failed: List[str] = []
    if junit.is_file():
        counts, failed = _read_junit(junit)
    if status is None:
        failed.append(f"<round overran {args.round_timeout:.0f} s>")
    elif status not in (0, 1):  # 1 = some test failed; others: crash, usage error, no test
        failed.append(f"<pytest exit code {status}>")
    elif status == 1 and not failed:
        failed.append("<pytest exit code 1 with no failed test in the report>")
    return wall, -1 if status is None else status, counts, failed


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=10, help="how many suite runs (default 10)")
    parser.add_argument("--burners", type=int, default=2, help="CPU-burning processes (default 2)")
    parser.add_argument(
        "--python", default=sys.executable, help="interpreter for pytest (default: this one)"
    )
    parser.add_argument(
        "--round-timeout", type=float, default=1800, help="seconds per round at most"
    )
    parser.add_argument("--keep", metavar="DIR", help="put the rounds' XML and output in DIR")
    parser.add_argument("pytest_args", nargs="*", help="extra pytest arguments, after --")
    args = parser.parse_args(argv)

    workdir = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="p3-stress-"))
    workdir.mkdir(parents=True, exist_ok=True)
    burners = [multiprocessing.Process(target=_burn, daemon=True) for _ in range(args.burners)]
    for burner in burners:
        burner.start()
    failures: Counter[str] = Counter()
    rounds: List[Tuple[int, float, int, Counter[str], List[str]]] = []
    try:
        for number in range(1, args.rounds + 1):
            wall, status, counts, failed = _run_round(number, args, workdir)
            rounds.append((number, wall, status, counts, failed))
            for test_id in set(failed):
                failures[test_id] += 1
            print(
                f"round {number}/{args.rounds}: {wall:7.1f} s, exit {status}, "
                f"{counts['passed']} passed, {counts['failed']} failed, "
                f"{counts['skipped']} skipped",
                flush=True,
            )
    except KeyboardInterrupt:
        print("interrupted; reporting the rounds that finished", flush=True)
    finally:
        for burner in burners:
            burner.terminate()
        for burner in burners:
            burner.join()

    done = len(rounds)
    print()
    print(f"{done} round(s) with {args.burners} burner(s), pytest run by {args.python}")
    print(f"{'round':>5}  {'wall s':>8}  {'exit':>4}  {'passed':>6}  {'failed':>6}  {'skipped':>7}")
    for number, wall, status, counts, _failed in rounds:
        print(
            f"{number:>5}  {wall:>8.1f}  {status:>4}  {counts['passed']:>6}"
            f"  {counts['failed']:>6}  {counts['skipped']:>7}"
        )
    if done:
        print(f"{'mean':>5}  {sum(r[1] for r in rounds) / done:>8.1f}")
    print()
    if failures:
        width = max(len(test_id) for test_id in failures)
        print(f"{'test':<{width}}  failures/rounds")
        for test_id, count in sorted(failures.items(), key=lambda item: (-item[1], item[0])):
            print(f"{test_id:<{width}}  {count}/{done}")
    else:
        print(f"no test failed in {done} round(s)")
    print(f"reports and output: {workdir}")
    return 1 if failures or done < args.rounds else 0


if __name__ == "__main__":
    sys.exit(main())
