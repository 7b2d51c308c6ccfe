"""Run many random fault schedules against the real job runner and print the counts.

    python bench/fault_schedules.py --count 500 [--processes 20] [--seed 1]

Each schedule starts two local Runware doubles (two endpoints) and a fresh cache folder,
runs a random list of jobs, faults, cancels, restarts, damaged files and endpoint
switches, settles every journal and checks the money invariants (tests/fault_engine.py
says which). ``--processes N`` adds N schedules where two processes share one store. The
last line is ``schedules: N, violations: M``; M must be 0 (exit status 1 otherwise).
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

TESTS = Path(__file__).resolve().parent.parent / "tests"
sys.path.insert(0, str(TESTS))

import fault_engine  # noqa: E402
from hypothesis import HealthCheck, Phase, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=500, help="single-process schedules")
    parser.add_argument("--processes", type=int, default=0,
                        help="extra schedules with two processes sharing one store")
    parser.add_argument("--seed", type=int, default=0, help="hypothesis seed")
    parser.add_argument("--show", type=int, default=5, help="violations to print in full")
    args = parser.parse_args()
    fault_engine.pack_module("nodes.runware.logs").get_logger().setLevel(logging.CRITICAL)

    counts = {"schedules": 0, "violations": 0, "actions": 0}
    shown: list[str] = []
    started = time.monotonic()

    def record(violations: list[str], size: int) -> None:
        counts["schedules"] += 1
        counts["actions"] += size
        counts["violations"] += len(violations)
        for text in violations[: max(0, args.show - len(shown))]:
            shown.append(text)
            print("VIOLATION:", text[:3000], flush=True)
        if counts["schedules"] % 25 == 0:
            print(f"  ... {counts['schedules']} schedules, {counts['violations']} violations, "
                  f"{time.monotonic() - started:.0f} s", flush=True)

    common = dict(derandomize=False, deadline=None, database=None,
                  phases=[Phase.generate], suppress_health_check=list(HealthCheck))

    @settings(max_examples=args.count, **common)
    @given(fault_engine.schedules)
    def single(actions: list) -> None:
        record(fault_engine.run_schedule(actions), len(actions))

    @settings(max_examples=max(args.processes, 1), **common)
    @given(fault_engine.process_actions, fault_engine.process_actions,
           st.lists(st.tuples(st.sampled_from(fault_engine.ENDPOINTS),
                              st.sampled_from(fault_engine.FAULTS)), max_size=4))
    def double(first: list, second: list, faults: list) -> None:
        record(fault_engine.run_two_processes(first, second, faults),
               len(first) + len(second))

    from hypothesis import seed as hypothesis_seed

    hypothesis_seed(args.seed)(single)()
    if args.processes:
        hypothesis_seed(args.seed)(double)()
    print(f"schedules: {counts['schedules']}, actions: {counts['actions']}, "
          f"violations: {counts['violations']} ({time.monotonic() - started:.0f} s)")
    return 1 if counts["violations"] else 0


if __name__ == "__main__":
    sys.exit(main())
