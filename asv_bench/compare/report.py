"""Rows and the markdown table of a step comparison."""
import numpy as np

from .timing import fmt_time, round_ratios, summary


def step_row(net, batch, result, target, floor=None):
    """One batch size's row from ``timing.alternate``'s result (keys ``fastnn``,
    optionally ``torch``, ``fastnn_skip`` (the ``gradInput = None`` idiom) and ``floor``
    (the NumPy GEMMs))."""
    row = {"net": net, "batch": batch, "target": target,
           "fastnn": summary(result["fastnn"]["times"])}
    for other in ("fastnn_skip", "torch", "floor"):
        if other in result:
            row[other] = summary(result[other]["times"])
    if "torch" in result:
        for mine in ("fastnn", "fastnn_skip"):
            if mine in result:
                ratios = round_ratios(result, "torch", mine)
                row[f"ratio_{mine}"] = {"median": float(np.median(ratios)),
                                        "min": min(ratios), "max": max(ratios),
                                        "rounds": ratios}
    if "floor" in result:
        over = round_ratios(result, "fastnn_skip" if "fastnn_skip" in result else "fastnn",
                            "floor")
        row["over_floor"] = {"median": float(np.median(over)), "min": min(over),
                             "max": max(over)}
    return row


def met(row, key="ratio_fastnn"):
    """Whether the target holds in every round (None without a target or torch)."""
    if row.get("target") is None or key not in row:
        return None
    return row[key]["min"] >= row["target"]


def line(row):
    parts = [f"  batch {row['batch']:5d}: fastnn {fmt_time(row['fastnn']['median_s']):>10s}"]
    if "fastnn_skip" in row:
        parts.append(f"(gradInput=None {fmt_time(row['fastnn_skip']['median_s'])})")
    if "torch" in row:
        parts.append(f"torch {fmt_time(row['torch']['median_s']):>10s}")
        for key, label in (("ratio_fastnn", "torch/fastnn"), ("ratio_fastnn_skip", "skip")):
            if key in row:
                r = row[key]
                parts.append(f"{label} {r['median']:.2f} ({r['min']:.2f}-{r['max']:.2f})")
        if row.get("target") is not None:
            best = "ratio_fastnn_skip" if "ratio_fastnn_skip" in row else "ratio_fastnn"
            parts.append(f"target >= {row['target']}: "
                         f"{'met in every round' if met(row, best) else 'MISSED'}")
    if "over_floor" in row:
        parts.append(f"fastnn/GEMM floor {row['over_floor']['median']:.2f}x")
    return "  ".join(parts)


def _ratio_cell(row, key):
    r = row.get(key)
    return f"{r['median']:.2f} ({r['min']:.2f}–{r['max']:.2f})" if r else "-"


def markdown(rows, meta):
    out = ["| net | batch | fastnn | fastnn, gradInput = None | torch | torch / fastnn "
           "(min–max) | torch / fastnn, gradInput = None | target | fastnn / GEMM floor |",
           "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for r in rows:
        cell = {k: fmt_time(r[k]["median_s"]) if k in r else "-"
                for k in ("fastnn", "fastnn_skip", "torch")}
        target = f"≥ {r['target']}" if r.get("target") is not None else "-"
        floor = f"{r['over_floor']['median']:.2f}x" if "over_floor" in r else "-"
        out.append(f"| {r['net'].upper()} | {r['batch']} | {cell['fastnn']} | "
                   f"{cell['fastnn_skip']} | {cell['torch']} | {_ratio_cell(r, 'ratio_fastnn')} "
                   f"| {_ratio_cell(r, 'ratio_fastnn_skip')} | {target} | {floor} |")
    out.append("")
    out.append(f"{meta['rounds']} rounds of alternating {meta['block_steps']}-step blocks, "
               f"{meta['pause_s']} s pause before each; {meta['threads']} threads on "
               f"{meta['cpu_count']} CPUs; load average {meta['load_before']:.2f} before, "
               f"{meta['load_after']:.2f} after; torch {meta.get('torch')}, numpy "
               f"{meta['numpy']}, numba {meta.get('numba')}.")
    return "\n".join(out)
