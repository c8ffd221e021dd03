"""The bad-input catalogue: each invalid resource is refused by the CRD's schema or CEL rules with
a message that names the field, through the real kubectl; none of them troubles the operator."""

from __future__ import annotations

import copy

import pytest
import yaml

from tests.bad_input import CASES


@pytest.mark.parametrize("base, change, message", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_invalid_resources_are_refused_naming_the_field(emulator, operator, kubectl, namespace, base, change, message):
    doc = copy.deepcopy(base)
    doc["metadata"]["namespace"] = namespace
    change(doc)
    result = kubectl("apply", "-f", "-", input=yaml.safe_dump(doc), check=False)
    assert result.returncode != 0, f"accepted: {yaml.safe_dump(doc)}"
    assert message in result.stderr, result.stderr
    plural = "sparksessions" if doc["kind"] == "SparkSession" else "notebookservers"
    assert emulator.list("sparkbook.io/v1alpha1", plural, namespace=namespace) == []


def test_the_catalogue_is_large_and_the_operator_is_unharmed(operator):
    assert len(CASES) >= 25
    assert operator.proc.poll() is None, "the operator died"
    assert "Traceback" not in operator.logs()
