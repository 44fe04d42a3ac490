"""Human output: a rich table of the ELF files with findings, and a summary line."""

from __future__ import annotations

from typing import TextIO

from rich.console import Console
from rich.table import Table
from rich.text import Text

from bindrift.schema.severity import rank
from bindrift.schema.triage import TriageReport
from bindrift.sinks.scan_report.summary import ScanSummary
from bindrift.visible_text import visible

STYLES = {"critical": "bold white on red", "high": "bold red", "medium": "yellow", "low": "cyan", "info": "dim"}


class TableWriter:
    """Collects the reports that have findings and prints them as one table at the end."""

    def __init__(self, out: TextIO) -> None:
        self._console = Console(file=out, highlight=False, soft_wrap=False)
        self._rows: list[TriageReport] = []

    def write(self, report: TriageReport) -> None:
        if report.findings or report.error:
            self._rows.append(report)

    def close(self, summary: ScanSummary) -> None:
        if self._rows:
            self._console.print(self._table())
        for path, message in summary.errors:
            self._console.print(Text(f"error: {visible(path)}: {message}", style="red"))
        self._console.print(Text(summary.line(), style="bold"))

    def _table(self) -> Table:
        table = Table(show_lines=True, expand=False)
        table.add_column("file", overflow="fold")
        table.add_column("arch / type")
        table.add_column("severity")
        table.add_column("findings", overflow="fold")
        self._rows.sort(key=lambda r: -max((rank(f.severity) for f in r.findings), default=-1))
        for report in self._rows:
            where = visible(report.path) + (f"\n{visible(report.image)} @ {report.layer}" if report.image else "")
            identity = f"{report.arch or '?'} {report.bits or '?'}-bit\n{report.type or '?'} {report.linking or ''}"
            if report.kind not in (None, "program"):
                identity += f"\n{report.kind}"
            if report.package:
                state = {"packaged": "packaged", "modified": "MODIFIED packaged file", "listed": "listed in"}
                identity += f"\n{state[report.provenance or 'listed']} ({visible(report.package)})"
            top = max(report.findings, key=lambda f: rank(f.severity), default=None)
            severity = Text(top.severity, style=STYLES[top.severity]) if top else Text("error", style="red")
            details = Text()
            for finding in report.findings:
                details.append(f"{finding.severity:<8}", style=STYLES[finding.severity])
                details.append(f"{finding.category}/{finding.check}: ", style="bold")
                details.append(visible(finding.detail) + "\n")
            if report.error:
                details.append(f"error: {visible(report.error)}\n", style="red")
            # Text objects are never parsed for markup, so names like "[red]x" print literally.
            table.add_row(Text(where), Text(identity), severity, details)
        return table
