"""MITRE ATT&CK techniques that apply to a finding."""

from __future__ import annotations

from bindrift.schema.finding import Category, Detection, Technique

TACTIC_IDS = {"Command and Control": "TA0011", "Execution": "TA0002", "Defense Evasion": "TA0005",
              "Persistence": "TA0003"}  # fmt: skip


def _technique(technique_id: str, name: str, tactic: str) -> Technique:
    path = technique_id.replace(".", "/")
    return Technique(technique_id, name, tactic, f"https://attack.mitre.org/techniques/{path}/")


INGRESS = _technique("T1105", "Ingress Tool Transfer", "Command and Control")
NATIVE_API = _technique("T1106", "Native API", "Execution")
PACKING = _technique("T1027.002", "Obfuscated Files or Information: Software Packing", "Defense Evasion")
OBFUSCATION = _technique("T1027", "Obfuscated Files or Information", "Defense Evasion")
COMPROMISE_BINARY = _technique("T1554", "Compromise Host Software Binary", "Persistence")
SHARED_MODULES = _technique("T1129", "Shared Modules", "Execution")
REFLECTIVE = _technique("T1620", "Reflective Code Loading", "Defense Evasion")
MALICIOUS_FILE = _technique("T1204.002", "User Execution: Malicious File", "Execution")

_BY_CATEGORY: dict[Category, list[Technique]] = {
    "Added Binary Executed": [INGRESS, NATIVE_API],
    "Modified Binary Executed": [INGRESS, NATIVE_API, COMPROMISE_BINARY],
    "Added Malicious Binary Executed": [INGRESS, NATIVE_API, MALICIOUS_FILE],
    "Modified Malicious Binary Executed": [INGRESS, NATIVE_API, COMPROMISE_BINARY, MALICIOUS_FILE],
    "Added Library Loaded": [INGRESS, SHARED_MODULES],
    "Fileless execution": [REFLECTIVE],
    "Coverage degraded": [],
    "Prevention degraded": [],
}


def techniques(category: Category, detection: Detection) -> list[Technique]:
    """ATT&CK techniques for the category, plus those the evidence shows (download, packing, tampering)."""
    found = list(_BY_CATEGORY.get(category, []))
    if category == "Suspicious binary":
        if detection.writer is not None and detection.writer.downloaded_by:
            found.append(INGRESS)
        kinds = {check.category for check in detection.file.triage}
        if kinds & {"packed", "tampered-packer"}:
            found.append(PACKING)
        if "header-anomaly" in kinds:
            found.append(OBFUSCATION)
        if "incompatible-architecture" in kinds and INGRESS not in found:
            found.append(INGRESS)
    return found
