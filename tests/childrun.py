"""Run test cases in child processes: a case that kills the interpreter (an
out-of-bounds write in a kernel) fails by itself instead of taking pytest down.

A test module registers cases in a dict ``CASES`` (name -> (function, ...)); the
child imports that module and runs the named functions in order, printing one JSON
line when each starts and one with its outcome.
"""
import importlib
import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def child_main(module, names):
    """Run the named cases in order, one JSON line each (the name is printed first so
    that the parent knows which case a crash killed)."""
    cases = importlib.import_module(module).CASES
    for name in names:
        print(json.dumps({"start": name}), flush=True)
        fn = cases[name][0]
        try:
            fn()
            res = {"name": name, "error": None, "message": ""}
        except Exception as exc:  # noqa: BLE001 - the type is the result
            res = {"name": name, "error": type(exc).__name__, "message": str(exc)}
        print(json.dumps(res), flush=True)


def run_cases(module, names, timeout=600):
    """{name: result} for every case; a case that kills its child gets the exit code,
    and the rest go on in a fresh child. A child that dies after its cases returned
    (heap corruption found at exit) has its cases rerun one per child."""
    results, todo = {}, list(names)
    while todo:
        ran, started, rc, err = _one_child(module, todo, timeout)
        if started is not None:
            ran[started] = {"name": started, "crash": rc, "stderr": err}
        elif rc != 0 and len(todo) > 1:
            for name in todo:
                results.update(run_cases(module, [name], timeout))
            return results
        elif rc != 0:
            ran[todo[0]] = {"name": todo[0], "crash": rc, "stderr": err}
        results.update(ran)
        todo = [n for n in todo if n not in results]
    return results


def _one_child(module, todo, timeout):
    code = (f"import sys; sys.path.insert(0, {HERE!r}); import childrun; "
            f"childrun.child_main({module!r}, {todo!r})")
    try:
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                              timeout=timeout)
        out, rc, err = proc.stdout, proc.returncode, proc.stderr[-2000:]
    except subprocess.TimeoutExpired as exc:
        out = exc.stdout.decode() if isinstance(exc.stdout, bytes) else (exc.stdout or "")
        rc, err = "timeout", ""
    ran, started = {}, None
    for line in out.splitlines():
        if line.startswith("{"):
            msg = json.loads(line)
            if "start" in msg:
                started = msg["start"]
            else:
                ran[msg["name"]] = msg
                started = None
    return ran, started, rc, err


def registry():
    """``(CASES, case)``: a test module's dict of cases and the decorator that fills it.
    ``@case("ValueError", "Linear", "(8, 64)")`` registers a function that must raise one
    of the named exception classes with every given part in its message;
    ``@case("")`` one that must not raise."""
    cases = {}

    def case(errors, *parts):
        def register(fn):
            cases[fn.__name__] = (fn, tuple(errors.split()), parts)
            return fn
        return register
    return cases, case


def check_outcome(name, res, cases):
    """Assert that case ``name`` ended as registered (``res`` from run_cases)."""
    assert "crash" not in res, f"{name} killed the interpreter (exit {res['crash']}):\n" \
                               f"{res['stderr']}"
    _, errors, parts = cases[name]
    if not errors:  # a state the module must put right by itself
        assert res["error"] is None, f"{name}: {res['error']}: {res['message']}"
        return
    assert res["error"] is not None, f"{name}: no error raised"
    assert res["error"] in errors, f"{name}: {res['error']}: {res['message']}"
    for p in parts:
        assert p in res["message"], f"{name}: {p!r} not in {res['message']!r}"
