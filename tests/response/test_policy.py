"""Response policies: the TOML file, scope matching (namespace, image, container, category, severity) and
the strictest mode winning; and what prevention counts as harmful."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from bindrift.response.policy import in_scope, load_policies, strictest
from bindrift.response.prevent import harmful
from bindrift.schema.finding import Detection, FileInfo, IntelMatch, Resource
from bindrift.schema.response import ResponsePolicy
from bindrift.schema.triage import CheckResult

SHOP = Resource(namespace="shop", container_name="api", container_id="ab" * 32,
                image="registry.example/shop/api:2.1", image_digest="sha256:" + "1" * 64)  # fmt: skip


def test_policy_file(tmp_path: Path) -> None:
    path = tmp_path / "p.toml"
    path.write_text('[[policy]]\nid = "a"\nmode = "prevent"\nnamespace = "shop"\ndrift = true\n'
                    '[[policy]]\nid = "b"\nmode = "block"\nseverity = "critical"\n')  # fmt: skip
    assert load_policies(path) == [ResponsePolicy(id="a", mode="prevent", namespace="shop", drift=True),
                                   ResponsePolicy(id="b", mode="block", severity="critical")]  # fmt: skip
    for text, message in (('[[policy]]\nid = "a"\nmode = "kill"\n', "Invalid enum value 'kill'"),
                          ('[[policy]]\nid = "a"\nimage_tag = "x"\n', "unknown field"),
                          ('[[policy]]\nid = "a"\n[[policy]]\nid = "a"\n', "duplicate policy ids"),
                          ("[[policy]\n", "Expected ']]'")):  # fmt: skip
        path.write_text(text)
        with pytest.raises(ValueError, match=message):
            load_policies(path)


def test_scopes_and_the_strictest_mode() -> None:
    policies = [
        ResponsePolicy(id="alert-all"),
        ResponsePolicy(id="prevent-shop", mode="prevent", namespace="shop", image="registry.example/shop/api"),
        ResponsePolicy(id="block-critical", mode="block", container="ap*", severity="critical"),
        ResponsePolicy(id="block-other", mode="block", namespace="other"),
    ]
    assert strictest(policies, SHOP, "Added Binary Executed", "low") == policies[1]
    assert strictest(policies, SHOP, "Added Malicious Binary Executed", "critical") == policies[2]
    assert strictest(policies, Resource(namespace="dev"), "Added Binary Executed", "high") == policies[0]
    by_category = [ResponsePolicy(id="c", mode="block", category="Fileless execution")]
    assert strictest(by_category, SHOP, "Added Binary Executed", "critical") is None
    assert strictest(by_category, SHOP, "Fileless execution", "high") == by_category[0]
    by_digest = ResponsePolicy(id="d", mode="prevent", image="sha256:" + "1" * 64)
    assert in_scope(by_digest, SHOP) and not in_scope(by_digest, Resource(image="x"))
    assert in_scope(policies[2], SHOP), "category and severity are not known before a finding"
    assert not in_scope(policies[3], SHOP)


def _detection(checks: list[CheckResult], intel: list[IntelMatch] | None = None) -> Detection:
    return Detection(category="Added Binary Executed", observed_at=datetime.now(UTC), resource=SHOP,
                     file=FileInfo(path="/tmp/x", sha256="0" * 64, triage=checks), source="agent",
                     intel=intel or [])  # fmt: skip


def _check(category: str, severity: str) -> CheckResult:
    return CheckResult(check="c", category=category, severity=severity, title="t", detail="d")  # type: ignore[arg-type]


def test_what_prevention_counts_as_harmful() -> None:
    assert not harmful(_detection([]))
    assert not harmful(_detection([_check("packed", "medium")])), "plain packing alone is not denied"
    assert not harmful(_detection([_check("incompatible-architecture", "info")])), "compat mode runs fine"
    assert harmful(_detection([_check("incompatible-architecture", "high")]))
    assert harmful(_detection([_check("tampered-packer", "high")]))
    assert harmful(_detection([_check("header-anomaly", "medium")]))
    assert not harmful(_detection([_check("header-anomaly", "low")]))
    assert harmful(_detection([], [IntelMatch(source="list.txt", kind="sha256", name="bad")]))
