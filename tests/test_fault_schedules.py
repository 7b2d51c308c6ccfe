"""Property: the money promise holds through random fault schedules (see fault_engine).

CI runs a bounded, derandomized number of schedules; ``python bench/fault_schedules.py
--count 500`` runs many more and prints the counts.
"""

from __future__ import annotations

import fault_engine
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

CI = settings(max_examples=40, derandomize=True, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))


@CI
@given(fault_engine.schedules)
def test_fault_schedules_keep_the_money_promise(actions):
    violations = fault_engine.run_schedule(actions)
    assert not violations, "\n".join(violations)


@settings(max_examples=6, derandomize=True, deadline=None, database=None,
          suppress_health_check=list(HealthCheck))
@given(fault_engine.process_actions, fault_engine.process_actions,
       st.lists(st.tuples(st.sampled_from(fault_engine.ENDPOINTS),
                          st.sampled_from(fault_engine.FAULTS)), max_size=4))
def test_two_processes_sharing_one_store_keep_the_money_promise(first, second, faults):
    violations = fault_engine.run_two_processes(first, second, faults)
    assert not violations, "\n".join(violations)


def test_a_hand_written_schedule_with_every_kind_of_action():
    """One schedule that surely meets every action kind (the random ones may not)."""
    R, A = fault_engine.Run, fault_engine
    actions = [
        R(0, "A", fault="lost_submit"), R(1, "A", fault="fail_partial"),
        R(0, "B", fault="html_submit_processed"), A.Restart(), R(0, "B", fault="unknown_poll"),
        R(1, "B", cancel="processing"), A.CorruptResult(0), R(0, "A", fault="html_poll"),
        R(2, "A", reuse=False, fault="drop_download"), A.CorruptStore("garbage"),
        R(2, "A", short=True), A.Plant(), A.Expire("B", 0), A.Fetch("A", 1),
        R(0, "A", fault="bad_download", reuse=False), R(1, "B", fault="5xx_poll"),
        R(3, "A"), A.ModelIds("A", "docs"), R(3, "A", reuse=False, fault="lost_submit"),
        A.Restart(), R(3, "A", reuse=False), A.ModelIds("A", "spec"), A.ModelIds("B", "docs"),
        R(3, "B", cancel="submitting"), R(3, "A", reuse=False), R(3, "B"),
    ]
    violations = fault_engine.run_schedule(actions)
    assert not violations, "\n".join(violations)
