"""One finding rendered for a terminal; every workload-controlled string is shown as plain text, its hidden
characters visible (`⟨U+202E⟩`)."""

from __future__ import annotations

from rich.console import Console
from rich.text import Text

from bindrift.schema.finding import Finding, ProcessInfo
from bindrift.sinks.scan_report.table import STYLES
from bindrift.visible_text import visible


def _process(label: str, process: ProcessInfo) -> Text:
    text = Text(f"{label}: ", style="bold")
    text.append(visible(f"pid {process.pid} {process.exe or process.comm} {' '.join(process.args)}"))
    if process.user or process.uid >= 0:
        text.append(visible(f" user {process.user or process.uid}"))
    if process.downloaded_by:
        text.append(f" (downloaded by {visible(process.downloaded_by)})", style="yellow")
    for ancestor in process.lineage:  # one line each: the break is ours, the text is theirs
        text.append("\n  ← ")
        text.append(visible(f"pid {ancestor.pid} {ancestor.exe or ancestor.comm} {' '.join(ancestor.args)}"))
    return text


def render_finding(finding: Finding) -> None:
    """Print the finding: verdict, where, what ran, who wrote it, evidence, intelligence, what to do."""
    console = Console(highlight=False)
    title = Text(f"{finding.category}  ", style="bold")
    title.append(finding.severity, style=STYLES[finding.severity])
    title.append(f"  {finding.state}  ×{finding.count}  {finding.id}")
    console.print(title)
    console.print(Text(visible(finding.summary)))
    r = finding.resource
    for label, value in (("cluster", r.cluster), ("node", r.node), ("namespace", r.namespace), ("pod", r.pod),
                         ("container", f"{r.container_name} {r.container_id}".strip()), ("image", r.image),
                         ("image digest", r.image_digest), ("runtime", r.runtime),
                         ("first seen", finding.first_seen.isoformat()), ("last seen", finding.last_seen.isoformat()),
                         ("file", f"{finding.file.path} ({finding.file.size} bytes) sha256 {finding.file.sha256}"),
                         ("incident", finding.incident_id), ("related", ", ".join(finding.related)),
                         ("suppressed by", finding.suppressed_by)):  # fmt: skip
        if value:
            console.print(Text(f"{label}: ", style="bold") + Text(visible(value)))
    for label, process in (("process", finding.process), ("writer", finding.writer)):
        if process is not None:
            console.print(_process(label, process))
    for sighting in finding.sightings:
        span = f"{sighting.first_seen.isoformat()} … {sighting.last_seen.isoformat()}"
        seen = f"seen at {sighting.path} ×{sighting.count} ({span})"
        if sighting.writer is not None:
            seen += f", written by pid {sighting.writer.pid} {sighting.writer.exe or sighting.writer.comm}"
        console.print(Text("sighting: ", style="bold") + Text(visible(seen)))
    for check in finding.file.triage:
        console.print(Text(f"  {check.severity:<8}", style=STYLES[check.severity]) + Text(visible(f"{check.check}: "
                      f"{check.detail}")))  # fmt: skip
    for item in finding.evidence:
        console.print(Text("evidence: ", style="bold") + Text(visible(item.summary)))
    if finding.indicator is not None:
        console.print(Text("VirusTotal: ", style="bold") + Text(finding.indicator.virustotal_url))
        for match in finding.indicator.matches:
            console.print(Text(visible(f"  intel match: {match.name} ({match.kind}, {match.source})"), style="red"))
    for technique in finding.techniques:
        console.print(Text(f"ATT&CK {technique.id} {technique.name} ({technique.tactic}) {technique.url}"))
    for change in finding.state_history:
        console.print(Text(visible(f"{change.at.isoformat()} {change.state} by {change.by}: {change.reason}")))
    for action in finding.actions:
        outcome = "done" if action.ok else "FAILED"
        console.print(Text(f"action {action.action} {outcome}: ", style="bold" if action.ok else "bold red")
                      + Text(visible(f"{action.detail} (by {action.by}, {action.at.isoformat()})")))  # fmt: skip
    for number, step in enumerate(finding.response, 1):
        console.print(Text(f"{number}. {step.title}", style="bold"))
        if step.command:
            console.print(Text(f"   {visible(step.command)}"))
        if step.note:
            console.print(Text(f"   {visible(step.note)}", style="dim"))
