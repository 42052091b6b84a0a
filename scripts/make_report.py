#!/usr/bin/env python
"""Regenerate every figure and table of docs/report.md.

  FASTNN_DATA=../shared/data python scripts/make_report.py [--only STEP,...] [--epochs N]
        [--seeds N] [--ae-best-epochs N] [--threads N] [--tables-only]

How long it takes: 20 to 45 minutes with the defaults on a 2-core machine shared with
other jobs. The run behind docs/report.md took 18 minutes of steps (load average 2-12):
the comparisons 1-2 minutes each, pre-training 4, the seed and best autoencoders 1 and 5,
the four seed-recipe variants 4; an earlier run under load averages of 7-30 took 44.

Each STEP runs the command that docs/report.md names for it, as a child process, with its
log, JSON and PNGs under runs/report/; then the PNGs are copied to docs/img/ and the
tables between ``<!-- make_report:NAME -->`` and ``<!-- /make_report -->`` in
docs/report.md are rewritten from the results. ``--tables-only`` rewrites the tables from
the results already under runs/report/. Steps:

  compare-activations, compare-normalization, compare-dropout, compare-optimizers,
  compare-pretraining   ``fastnn compare WHAT --epochs N --seeds N``
  ae-seed, ae-best      ``fastnn train mnist --model autoencoder --recipe {seed,best}``
  ae-variants           ``scripts/autoencoder_seed_variants.py``: the seed recipe without
                        each choice the homework leaves open (``VARIANTS``)
"""
import argparse
import glob
import json
import os
import shutil
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RUNS = os.path.join(ROOT, "runs", "report")
IMG = os.path.join(ROOT, "docs", "img")
REPORT = os.path.join(ROOT, "docs", "report.md")
WHATS = ("activations", "normalization", "dropout", "optimizers", "pretraining")
#: The seed recipe (CLI default: biasinit+small+hid2+mom0.8) with one open choice undone.
VARIANTS = {
    "biasinit+small+mom0.8": "without the x2 initial scale of the hidden Linears",
    "hid2+mom0.8": "without the mean-image output bias (output layer at its default init)",
    "biasinit+small+hid2+mom0.8+nocodebn": "without the BatchNormalization after the code",
    "biasinit+small+mom0.8+nobn": "without any BatchNormalization (and without the x2 scale, "
                                  "which only matters under BatchNormalization)",
}
STEPS = tuple(f"compare-{w}" for w in WHATS) + ("ae-seed", "ae-variants", "ae-best")


def commands(opts):
    """STEP -> (argv, environment additions, output folder)."""
    py = [sys.executable]
    th = ["--threads", str(opts.threads), "--no-progress"]
    out = {}
    for w in WHATS:
        folder = os.path.join(RUNS, "compare")
        out[f"compare-{w}"] = (py + ["-m", "fastnn", "compare", w, "--epochs", str(opts.epochs),
                                     "--seeds", str(opts.seeds)] + th + ["--out", folder],
                               {}, folder)
    for recipe in ("seed", "best"):
        folder = os.path.join(RUNS, f"ae_{recipe}")
        extra = (["--epochs", str(opts.ae_best_epochs)]
                 if recipe == "best" and opts.ae_best_epochs else [])
        out[f"ae-{recipe}"] = (py + ["-m", "fastnn", "train", "mnist", "--model", "autoencoder",
                                     "--recipe", recipe] + extra + th + ["--out", folder],
                               {}, folder)
    folder = os.path.join(RUNS, "ae_variants")
    out["ae-variants"] = (py + [os.path.join(ROOT, "scripts", "autoencoder_seed_variants.py"),
                                "--out", folder] + list(VARIANTS),
                          {"FASTNN_NUM_THREADS": str(opts.threads)}, folder)
    return out


def shown(argv, env):
    """The command as docs/report.md shows it (relative paths, ``fastnn`` for the module)."""
    words = ["fastnn"] + argv[3:] if argv[1:3] == ["-m", "fastnn"] else ["python"] + argv[1:]
    words = [os.path.relpath(w, ROOT) if w.startswith(ROOT) else w for w in words]
    return " ".join([f"{k}={v}" for k, v in env.items()] + words)


def run_step(step, argv, env, folder):
    os.makedirs(os.path.join(RUNS, "logs"), exist_ok=True)
    log = os.path.join(RUNS, "logs", f"{step}.log")
    print(f"[{time.strftime('%H:%M:%S')}] {step}: {shown(argv, env)} (log: {log})", flush=True)
    t0 = time.perf_counter()
    commit = git_commit()  # the code the step runs: HEAD when it starts
    with open(log, "w") as f:
        f.write(f"$ {shown(argv, env)}\n")
        f.flush()
        rc = subprocess.call(argv, stdout=f, stderr=subprocess.STDOUT, cwd=ROOT,
                             env=dict(os.environ, PYTHONUNBUFFERED="1", **env))
    wall = time.perf_counter() - t0
    print(f"[{time.strftime('%H:%M:%S')}] {step}: exit {rc}, {wall / 60:.1f} min", flush=True)
    record_run(step, shown(argv, env), rc, wall, commit)
    return rc


def git_commit():
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                          text=True).stdout.strip()
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "fastnn",
                            "kernels", "scripts"], cwd=ROOT, capture_output=True,
                           text=True).stdout.strip()
    return head + (" (with uncommitted changes)" if dirty else "")


def record_run(step, command, rc, wall, commit):
    path = os.path.join(RUNS, "runs.json")
    runs = json.load(open(path)) if os.path.exists(path) else {}
    runs[step] = dict(command=command, exit=rc, minutes=round(wall / 60, 1), commit=commit,
                      finished=time.strftime("%Y-%m-%d %H:%M"),
                      load_average=[round(x, 1) for x in os.getloadavg()])
    with open(path, "w") as f:
        json.dump(runs, f, indent=1)


def copy_images():
    pats = ["compare/compare_*.png", "ae_seed/autoencoder_seed_*.png",
            "ae_best/autoencoder_best_*.png", "ae_variants/autoencoder_variant_*.png"]
    os.makedirs(IMG, exist_ok=True)
    for pat in pats:
        for src in glob.glob(os.path.join(RUNS, pat)):
            shutil.copy(src, os.path.join(IMG, os.path.basename(src)))


def _load(path):
    return json.load(open(path)) if os.path.exists(path) else None


def tables():
    """NAME -> markdown, from what runs/report holds."""
    out = {}
    runs = _load(os.path.join(RUNS, "runs.json")) or {}
    for w in WHATS:
        md = os.path.join(RUNS, "compare", f"compare_{w}.md")
        if os.path.exists(md):
            note = runs.get(f"compare-{w}", {})
            text = open(md).read()
            res = _load(os.path.join(RUNS, "compare", f"compare_{w}.json"))
            if res and res.get("lr_grid"):
                text += "\nLearning-rate grid, validation accuracy after the same epochs " \
                        f"(seed {res['seeds'][0]}):\n\n| optimizer | lr | validation accuracy |\n" \
                        "| --- | ---: | ---: |\n" + "".join(
                            f"| {g['optimizer']} | {g['lr']:g} | {100 * g['val_accuracy']:.2f} % |\n"
                            for g in res["lr_grid"])
            if res and w == "pretraining":
                pre = [r for v in res["variants"] for r in v["runs"] if "test_reconstruction" in r]
                if pre:
                    recs = ", ".join(f"{r['test_reconstruction']:.2f}" for r in pre)
                    text += (f"\nThe pre-trained autoencoders' test reconstructions (seeds "
                             f"{', '.join(str(r['seed']) for r in pre)}): {recs}; pre-training "
                             f"took {sum(r['pretrain_seconds'] for r in pre) / len(pre) / 60:.1f} "
                             f"min per seed, not counted in s/epoch.\n")
            if note:
                text += (f"\n`{note['command']}` at commit {note['commit']}: {note['minutes']} min "
                         f"wall, load average {note['load_average'][0]} at the end.\n")
            out[f"compare_{w}"] = text
    rows = []
    for recipe in ("seed", "best"):
        r = _load(os.path.join(RUNS, f"ae_{recipe}", f"autoencoder_{recipe}_results.json"))
        note = runs.get(f"ae-{recipe}")
        if r and note:
            epochs = len(r["history"]["epochs"])
            rows.append(f"| {recipe} recipe | `{note['command']}` | {epochs} | "
                        f"**{r['test_reconstruction']:.2f}** | {r['pca30_test_reconstruction']:.2f} | "
                        f"{r.get('pca30_clipped_test_reconstruction', float('nan')):.2f} | "
                        f"{note['minutes']} min |")
    if rows:
        out["autoencoder"] = ("| autoencoder | command | epochs | test reconstruction | "
                              "PCA-30 | PCA-30 clipped to [0, 1] | wall |\n"
                              "| --- | --- | ---: | ---: | ---: | ---: | ---: |\n"
                              + "\n".join(rows) + "\n")
    vrows, figures = [], []
    default = _load(os.path.join(RUNS, "ae_seed", "autoencoder_seed_results.json"))
    if default:
        vrows.append(f"| the seed recipe as the CLI runs it (`biasinit+small+hid2+mom0.8`) | "
                     f"**{default['test_reconstruction']:.2f}** |")
        figures.append("The seed recipe as the CLI runs it:\n\n"
                       "![seed recipe](img/autoencoder_seed_reconstructions.png)\n")
    for v, why in VARIANTS.items():
        name = v.replace("+", "_")
        r = _load(os.path.join(RUNS, "ae_variants", f"autoencoder_variant_{name}.json"))
        if r:
            vrows.append(f"| {why} (`{v}`) | {r['test_reconstruction']:.2f} |")
            figures.append(f"{why[0].upper() + why[1:]}:\n\n"
                           f"![{v}](img/autoencoder_variant_{name}.png)\n")
    if vrows:
        note = runs.get("ae-variants")
        foot = (f"\n`{note['command']}` at commit {note['commit']}: {note['minutes']} min wall "
                f"for the four variants.\n" if note else "")
        out["ae_variants"] = ("| seed recipe | test reconstruction |\n| --- | ---: |\n"
                              + "\n".join(vrows) + "\n" + foot + "\n" + "\n".join(figures))
    return out


def fill_report(blocks):
    """Rewrite each ``<!-- make_report:NAME -->`` ... ``<!-- /make_report -->`` block."""
    if not os.path.exists(REPORT):
        return
    text = open(REPORT).read()
    for name, body in blocks.items():
        start = f"<!-- make_report:{name} -->"
        i = text.find(start)
        if i < 0:
            continue
        j = text.index("<!-- /make_report -->", i)
        text = text[:i] + start + "\n" + body + text[j:]
    with open(REPORT, "w") as f:
        f.write(text)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--only", default=",".join(STEPS), help="comma-separated steps")
    p.add_argument("--epochs", type=int, default=5, help="epochs per compare run")
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--ae-best-epochs", type=int, default=None,
                   help="best-recipe autoencoder epochs (default: the recipe's 30)")
    p.add_argument("--threads", type=int, default=1,
                   help="threads per run (default 1: on a busy machine a second thread "
                        "mostly waits)")
    p.add_argument("--tables-only", action="store_true")
    opts = p.parse_args(argv)
    if not opts.tables_only:
        cmds = commands(opts)
        for step in opts.only.split(","):
            if step not in cmds:
                p.error(f"unknown step {step!r}; steps: {', '.join(STEPS)}")
            run_step(step, *cmds[step])
            copy_images()
            fill_report(tables())
    copy_images()
    fill_report(tables())
    return 0


if __name__ == "__main__":
    sys.exit(main())
