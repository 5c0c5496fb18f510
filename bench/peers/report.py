"""Markdown tables of a run's results (the JSON of bench/compare.py)."""
from __future__ import annotations

import statistics
from typing import Any, Optional, Sequence

from bench.peers.workload import OPS, Op


def number(value: float, unit: str) -> str:
    if unit == "points/s":
        return f"{value:,.0f}"
    if value >= 1000:
        return f"{value:,.0f}"
    if value >= 100:
        return f"{value:.0f}"
    if value >= 10:
        return f"{value:.1f}"
    if value >= 1:
        return f"{value:.2f}"
    return f"{value:.3f}"


def summarise(samples: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The median of the rounds that gave a figure; otherwise why there is none."""
    values = [s["value"] for s in samples if s.get("value") is not None]
    out: dict[str, Any] = {"n": len(values), "values": values,
                           "capped": any(s.get("capped") for s in samples),
                           "errors": [s["error"] for s in samples if s.get("error")],
                           "unsupported": next((s["unsupported"] for s in samples if s.get("unsupported")), None)}
    out["median"] = statistics.median(values) if values else None
    if values:
        out["min"], out["max"] = min(values), max(values)
    return out


def cell(summary: Optional[dict[str, Any]], unit: str) -> str:
    if summary is None:
        return "–"
    if summary["median"] is not None:
        text = number(summary["median"], unit)
        if summary["capped"]:
            text += " (capped)"
        if summary["errors"]:
            text += f" ({len(summary['errors'])} failed)"
        return text
    if summary["unsupported"]:
        return "(none)"
    if summary["errors"]:
        return "error"
    return "–"


def ratio(ours: Optional[dict[str, Any]], theirs: Optional[dict[str, Any]], better: str) -> str:
    """'N× better' or 'N× worse' for the first system against another, whatever the row's direction."""
    if not ours or not theirs or not ours["median"] or not theirs["median"]:
        return "–"
    r = ours["median"] / theirs["median"] if better == "higher" else theirs["median"] / ours["median"]
    factor, word = (r, "better") if r >= 1 else (1 / r, "worse")
    return f"{factor:.1f}× {word}" if factor < 10 else f"{factor:.0f}× {word}"


def _table(header: Sequence[str], rows: Sequence[Sequence[str]], right_from: int = 1) -> str:
    align = ["---" if i < right_from else "---:" for i in range(len(header))]
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join(align) + " |"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def main_table(results: dict[str, Any]) -> str:
    systems: list[str] = results["systems"]
    titles = results["titles"]
    reference = systems[0]
    others = systems[1:]
    header = ["operation", "unit", "better"] + [titles[s] for s in systems]
    header += [f"{titles[reference]} vs {titles[s]}" for s in others]
    rows = []
    op: Op
    for op in OPS:
        row = results["rows"].get(op.id)
        if row is None:
            continue
        per = row["systems"]
        cells = [op.label, op.unit, f"{op.better} ↑" if op.better == "higher" else f"{op.better} ↓"]
        cells += [cell(per.get(s), op.unit) for s in systems]
        cells += [ratio(per.get(reference), per.get(s), op.better) for s in others]
        rows.append(cells)
    return _table(header, rows, right_from=3)


def _kb(n: float) -> str:
    return f"{n / 1024:,.1f}"


def _ops(requests: dict[str, float]) -> str:
    total = sum(requests.values())
    if not total:
        return "0"
    return f"{total:g}: " + ", ".join(f"{k} {v:g}" for k, v in requests.items())


def storage_table(storage: dict[str, Any]) -> str:
    rows = []
    for row in storage["rows"]:
        d, s3 = row["dynamodb"], row["s3"]
        if row.get("error"):
            rows.append([row["label"], row["per"], "error", row["error"][:80], "", "", "", "", "", ""])
            continue
        rows.append([row["label"], row["per"], f"{row['api_requests']:g}", _ops(d["requests"]),
                     f"{d['items_read']:,g}", f"{d['items_written']:,g}", _kb(d["bytes_read"]), _kb(d["bytes_written"]),
                     _ops(s3["requests"]), f"{_kb(s3['bytes_read'])} / {_kb(s3['bytes_written'])}"])
    return _table(["operation", "per", "API requests", "DynamoDB requests", "items read", "items written",
                   "KB read", "KB written", "S3 requests", "S3 KB read / written"], rows, right_from=2)


def coldstart_table(cold: dict[str, Any]) -> str:
    rows = [[f"`python -c \"{code}\"`", f"{cold[name]['median_s'] * 1000:,.0f} ms",
             f"{cold[name]['median_rss_mb']:.1f} MB"]
            for name, code in (("python", "pass"), ("boto3", "import boto3"), ("app", "import app"))]
    return _table(["program", "median wall", "median peak RSS"], rows)


def render(results: dict[str, Any]) -> str:
    m, v = results["machine"], results["versions"]
    titles = results["titles"]
    out = [f"# Agora vs MLflow vs FastTrackML — {results['started']}", ""]
    out.append(f"- machine: {m['cpus']} CPUs ({m['cpu_model']}), {m['mem_gb']} GB RAM; 1/5/15-min load average "
               f"{' / '.join(f'{x:.2f}' for x in m['load_before'])} before, "
               f"{' / '.join(f'{x:.2f}' for x in m['load_after'])} after (other processes share this machine)")
    out.append("- versions: " + ", ".join(f"{k} {val}" for k, val in v.items()))
    s = results["settings"]
    out.append(f"- {s['rounds']} round(s), interleaved per operation (system order rotated each round), medians; "
               f"1M rows: {s['rounds_1m']} round(s){' (skipped: FAST=1)' if results['fast'] else ''}; "
               f"wall {results.get('duration_s', 0):.0f} s")
    for kind, srv in results["servers"].items():
        out.append(f"- server {kind}: started in {srv['startup_s']:.1f} s; {srv['processes']} process(es), "
                   f"{srv['rss_mb_end']:.0f} MB RSS, {srv['cpu_s_end']:.0f} CPU s at the end"
                   + (f"; {'; '.join(srv['notes'])}" if srv.get("notes") else ""))
    out += ["", main_table(results), ""]
    notes = results.get("notes", [])
    if notes:
        out += [f"- {n}" for n in notes] + [""]
    storage = results.get("agora_storage")
    if storage:
        out += [f"## {titles.get('agora', 'Agora')}: DynamoDB and S3 work per operation "
                f"(in-process, chalice.test.Client on moto; {storage['wall_s']:.0f} s)", ""]
        out += [storage_table(storage), ""]
        for op_id, st in storage.get("stored", {}).items():
            out.append(f"- stored after `{op_id}`: {st['points']:,} points in {st['items']} items, {st['bytes']:,} B: "
                       f"**{st['bytes_per_point']} B per point** ({st['billed_bytes_per_point']} B with DynamoDB's "
                       f"100 B per-item storage overhead)")
        lookups = sum(r["key_lookups"] * r["units"] for r in storage["rows"])
        calls = sum(r["api_requests"] * r["units"] for r in storage["rows"])
        if lookups:
            out.append(f"- not counted above: the authorizer's API-key GetItem ({lookups:,.0f} for {calls:,.0f} API "
                       "requests; deployed, API Gateway caches the authorizer's answer for 300 s)")
        out.append("- items/bytes read are the items DynamoDB returned (projected); written: items put, "
                   "plus key and values of each UpdateItem")
        out.append("")
    cold = results.get("cold_start")
    if cold:
        out += [f"## Cold start ({cold['repeats']} fresh interpreters each, medians)", "", coldstart_table(cold), ""]
        out.append(f"- `import app` / `import boto3`: {cold['app_vs_boto3_time']}× the time, "
                   f"{cold['app_vs_boto3_rss']}× the RSS")
        out.append("")
    return "\n".join(out)
