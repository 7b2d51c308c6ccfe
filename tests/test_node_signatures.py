"""Every node's public signature stays exactly what it was (node ids and inputs are public
API: saved workflows and API prompts name them)."""

from __future__ import annotations

import json

import pytest
from conftest import PACK, REPO_ROOT
from node_signatures import dump, signatures

FIXTURE = REPO_ROOT / "tests" / "fixtures" / "node_signatures.json"
SAVED = json.loads(FIXTURE.read_text(encoding="utf-8"))


def test_the_same_nodes_as_before():
    assert list(PACK.NODE_CLASS_MAPPINGS) == list(SAVED)


@pytest.mark.parametrize("node_id", list(SAVED))
def test_signature_is_byte_for_byte_the_saved_one(node_id):
    now = signatures({node_id: PACK.NODE_CLASS_MAPPINGS[node_id]})[node_id]
    # Compared as text: key order, int vs float and tuple vs list all count.
    assert json.dumps(now, ensure_ascii=False) == json.dumps(SAVED[node_id],
                                                             ensure_ascii=False)


def test_the_fixture_is_what_the_dump_writes():
    assert FIXTURE.read_text(encoding="utf-8") == dump(PACK.NODE_CLASS_MAPPINGS)
