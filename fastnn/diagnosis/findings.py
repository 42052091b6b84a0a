"""Findings, their stable codes, and the report that ranks them.

``CODES`` is the one table of codes: the README's table (docs/diagnose.md) and every
report's "likely fix" line come from it, and tests check that each code in it can be
provoked.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Optional

__all__ = ["Finding", "Diagnosis", "CODES", "SEVERITIES"]

#: Ranking of severities, most urgent first.
SEVERITIES = ("error", "warning", "note")

#: code -> (when it is reported, the likely fix). Codes are stable: scripts may test them.
CODES = {
    "nonfinite_loss": (
        "the loss or a module's output is NaN or inf",
        "look at the named module: lower the learning rate, scale the inputs, check that "
        "zeroGradParameters() runs every step"),
    "input_nonfinite": (
        "the inputs hold NaN or inf",
        "clean the data set (np.nan_to_num, or drop the rows) before training"),
    "gradients_accumulate": (
        "backward runs again without zeroGradParameters() in between",
        "call net.zeroGradParameters() before each backward (Torch7 adds gradients up)"),
    "criterion_input_mismatch": (
        "log-probabilities into a criterion that expects probabilities, or the reverse, "
        "or raw scores into an NLL criterion",
        "end the net with LogSoftMax for ClassNLLCriterion, SoftMax for "
        "ClassNLLCriterionUnstable, nothing for CrossEntropyCriterion"),
    "gradcheck_failed": (
        "a module's backward disagrees with finite differences",
        "fix the named module's updateGradInput/accGradParameters (fastnn.gradcheck shows "
        "the first wrong entry)"),
    "labels_invalid": (
        "labels out of range for the net's outputs, or not class labels the criterion takes",
        "labels must be integers in [0, C) for C outputs (or one-hot rows of width C)"),
    "input_scale": (
        "inputs far from unit scale (e.g. 0-255 pixels)",
        "scale the inputs, e.g. X / 255 for pixels, or standardise each column"),
    "saturated_softmax": (
        "before training, most of the net's probability rows are nearly one-hot "
        "(largest entry >= 0.99)",
        "scale the inputs; prefer LogSoftMax + ClassNLLCriterion, which cannot underflow"),
    "labels_unlearnable": (
        "the net can memorise a small batch but does not beat chance on held-out data",
        "check that the labels belong to the inputs (shuffle X and y with one permutation)"),
    "diverging": (
        "the loss grows step after step",
        "lower the learning rate (try 10x smaller)"),
    "updates_too_small": (
        "the parameters barely move (update/weight ratio under ~1e-5 a step), or the "
        "optimizer is never applied",
        "raise the learning rate (update/weight ratios near 1e-3 train well), and check "
        "that the optimizer step runs after backward"),
    "loss_at_chance": (
        "the loss stays near ln(C) for C classes",
        "the net predicts the class frequencies only: run fastnn.diagnose for the cause "
        "(learning rate, labels, input scale)"),
    "dead_units": (
        "most units of a ReLU layer never activate",
        "lower the learning rate, scale the inputs, or use LeakyReLU/ELU"),
    "constant_inputs": (
        "most input columns hold one value",
        "check the data loading: those columns carry no signal"),
}


@dataclass(frozen=True)
class Finding:
    """One thing found wrong.

    Parameters
    ----------
    code : str
        A stable code from ``CODES``.
    severity : str
        ``"error"``, ``"warning"`` or ``"note"``.
    message : str
        What was seen, with the numbers.
    module : str, optional
        ``repr`` of the module concerned, when there is one.
    """

    code: str
    severity: str
    message: str
    module: Optional[str] = None

    def __post_init__(self):
        if self.code not in CODES:
            raise ValueError(f"Finding: unknown code {self.code!r}; known codes: {sorted(CODES)}")
        if self.severity not in SEVERITIES:
            raise ValueError(f"Finding: severity must be one of {SEVERITIES}, "
                             f"got {self.severity!r}")

    @property
    def fix(self) -> str:
        """The likely fix for this code."""
        return CODES[self.code][1]

    def __str__(self) -> str:
        where = f" [{self.module}]" if self.module else ""
        return f"{self.severity.upper()} {self.code}{where}: {self.message}\n    fix: {self.fix}"


def _rank(finding: Finding):
    return SEVERITIES.index(finding.severity), list(CODES).index(finding.code)


class Diagnosis:
    """The findings of ``fastnn.diagnose`` (or of a ``fastnn.watch``).

    Parameters
    ----------
    findings : iterable of Finding
        Findings to start with.
    notes : iterable of str
        Measurements to start with.

    Attributes
    ----------
    findings : list of Finding
        In the order found.
    codes : set of str
        The codes of the findings.
    notes : list of str
        Measurements worth reading even when nothing is wrong (learning-rate probe,
        per-layer ratios).
    """

    def __init__(self, findings: Iterable[Finding] = (), notes: Iterable[str] = ()):
        self.findings = list(findings)
        self.notes = list(notes)

    @property
    def codes(self) -> set:
        return {f.code for f in self.findings}

    def add(self, code: str, severity: str, message: str, module=None) -> Finding:
        """Record a finding (``module`` may be a module object or its name)."""
        name = None if module is None else (module if isinstance(module, str) else repr(module))
        finding = Finding(code, severity, message, name)
        self.findings.append(finding)
        return finding

    def ranked(self) -> list:
        """The findings, most urgent first (severity, then the order of ``CODES``)."""
        return sorted(self.findings, key=_rank)

    def __bool__(self) -> bool:
        return bool(self.findings)

    def __str__(self) -> str:
        lines = [f"{len(self.findings)} finding(s)" if self.findings else "no findings"]
        lines += [str(f) for f in self.ranked()]
        if self.notes:
            lines.append("measurements:")
            lines += [f"  {n}" for n in self.notes]
        return "\n".join(lines)

    def __repr__(self) -> str:
        return f"Diagnosis(codes={sorted(self.codes)})"
