"""One reading of the spec (issue 17): the node pre-flight and the local double agree.

The harness lives in bench/spec_differential.py (its script mode runs thousands of cases
and prints the agreement matrix); here a few hundred derandomized cases run in CI.
"""

from __future__ import annotations

import sys
from collections import Counter

# hypothesis-jsonschema is in the [test] extra: without it this fails, never skips, so
# CI cannot lose the differential run silently.
import hypothesis_jsonschema  # noqa: F401
import pytest
from conftest import REPO_ROOT

sys.path.insert(0, str(REPO_ROOT / "bench"))
import spec_differential as sd  # noqa: E402

# The harness's quick "uri" strategy replaces hypothesis-jsonschema's own, on purpose.
pytestmark = pytest.mark.filterwarnings("ignore:Overriding standard format")


@pytest.fixture(scope="module")
def harness(tmp_path_factory):
    h = sd.Harness(tmp_path_factory.mktemp("differential"))
    try:
        yield h
    finally:
        h.close()


def _report(outcomes: list[sd.Outcome]) -> str:
    bad = [o for o in outcomes if not o.agree]
    return sd.matrix(outcomes) + "\n" + "\n".join(sd.describe(o) for o in bad[:10])


def test_generated_tasks_get_the_same_verdict(harness):
    """Schema-generated tasks, repaired ones and single mutations: same verdict, no crash."""
    cases = sd.generated_cases(harness, 250, seed=None, derandomize=True)
    outcomes = sd.run(harness, cases)
    assert all(o.agree for o in outcomes), _report(outcomes)
    cells = Counter((o.preflight.accept, o.double.accept) for o in outcomes)
    # Both verdicts occur often: the comparison is not vacuous.
    assert cells[(True, True)] >= 40 and cells[(False, False)] >= 80, _report(outcomes)
    families = {o.case.family for o in outcomes}
    for kind in ("drop", "range", "odd", "edge", "url", "prose", "media_edge", "media_kind",
                 "remote", "overlap"):
        assert f"mutation:{kind}" in families, kind


def test_every_odd_json_shape_in_every_field(harness):
    """Each odd JSON value (and NaN, infinities, lone surrogates) in each field of each
    model's complete tasks, and each field removed: never a crash, always one verdict."""
    outcomes = sd.run(harness, list(sd.odd_shape_cases(harness)))
    assert len(outcomes) > 3000
    assert all(o.agree for o in outcomes), _report(outcomes)
    assert not any(o.double.crash for o in outcomes)
    base = [o for o in outcomes if o.case.family == "base"]
    assert base and all(o.preflight.accept and o.double.accept for o in base), _report(base)


def test_each_boundary_decision_on_and_past_the_edge(harness):
    """The documented boundary rules, exactly at the edge (accepted) and one step past
    it (refused), by both the pre-flight and the double."""
    wrong = []
    for case, expected in sd.edge_cases(harness):
        outcome = harness.judge(case)
        if (outcome.preflight.accept, outcome.double.accept) != (expected, expected):
            wrong.append(f"{case.note}: expected {expected}\n{sd.describe(outcome)}")
    assert wrong == []
