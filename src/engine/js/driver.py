# The Python side of isoexec's Python runtime: runs a program as __main__,
# or a notebook cell in a namespace kept between cells, and turns their
# ends into exit codes, tracebacks and JSON results. Loaded once per
# interpreter by runtime_js/10_python.js; the value of this module's last
# expression is what the glue keeps.
import ast
import json
import linecache
import os
import sys
import traceback
import types

# An interpreter restored from a snapshot starts with the snapshot's
# random state: a module seeded then is seeded again, here, per restore.
if "random" in sys.modules:
    sys.modules["random"].seed()

# Output reaches the host as it is written, so stdout and stderr interleave
# in the order the program wrote them.
sys.stdout.reconfigure(line_buffering=True)
sys.stderr.reconfigure(line_buffering=True)

# An operator's pure-Python packages: directories and modules, and wheels
# (.whl) or zip files, which import from the archive itself.
_VENDOR = "/vendor/python"
_vendored = []
if os.path.isdir(_VENDOR):
    sys.path.append(_VENDOR)
    for _name in sorted(os.listdir(_VENDOR)):
        if _name.endswith((".whl", ".zip")):
            sys.path.append(_VENDOR + "/" + _name)
            _vendored.append(_name.split("-")[0])
        elif not _name.startswith((".", "_")) and not _name.endswith((".dist-info", ".pyc")):
            _vendored.append(_name[:-3] if _name.endswith(".py") else _name)


def _hint(exc):
    # A missing module says what is available and how an operator adds more.
    if isinstance(exc, ModuleNotFoundError) and not getattr(exc, "_isoexec", False):
        exc._isoexec = True
        extra = ", ".join(_vendored) if _vendored else "none"
        exc.add_note(
            "isoexec runs the standard library and the pure-Python packages "
            "an operator places under <VENDOR_DIR>/python (here: %s); a "
            "package with native code (numpy, pandas, ...) is not available." % extra
        )


def _print_exception(exc, skip):
    # The traceback as Python prints it, without the driver's own frames.
    _hint(exc)
    tb = exc.__traceback__
    for _ in range(skip):
        if tb is not None:
            tb = tb.tb_next
    traceback.print_exception(type(exc), exc, tb, file=sys.stderr)


def _exit_status(code):
    # sys.exit(x): None is 0, an int is itself, anything else is printed
    # and is 1, as CPython does.
    if code is None:
        return 0
    if isinstance(code, int):
        return code & 0xFF
    print(code, file=sys.stderr)
    return 1


def _flush():
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:
            pass


def run(code, filename):
    main = types.ModuleType("__main__")
    main.__file__ = filename
    main.__builtins__ = __builtins__
    sys.modules["__main__"] = main
    sys.argv = [filename]
    directory = os.path.dirname(filename) or "/"
    sys.path[0] = directory
    try:
        os.chdir(directory)
    except OSError:
        pass
    try:
        compiled = compile(code, filename, "exec", dont_inherit=True)
    except (SyntaxError, ValueError) as exc:
        traceback.print_exception(type(exc), exc, None, file=sys.stderr)
        _flush()
        return 1
    try:
        exec(compiled, main.__dict__)
    except SystemExit as exc:
        _flush()
        return _exit_status(exc.code)
    except BaseException as exc:
        _flush()
        _print_exception(exc, 1)
        _flush()
        return 1
    _flush()
    return 0


_cell_main = types.ModuleType("__main__")
_cell_main.__builtins__ = __builtins__
_cell_count = 0


def _to_json(value):
    # A value JSON can carry as itself, else its repr as a string.
    if value is None:
        return None
    try:
        return json.dumps(value, allow_nan=False)
    except (TypeError, ValueError, RecursionError):
        return json.dumps(repr(value))


def cell(code):
    # Runs a notebook cell; returns [status, result]: status 0 when it ran,
    # 1 when it raised (traceback on stderr); result is the JSON text of
    # the last expression's value, or None.
    global _cell_count
    _cell_count += 1
    filename = "<cell %d>" % _cell_count
    # Tracebacks show the cell's lines, as a file's would.
    linecache.cache[filename] = (len(code), None, code.splitlines(True), filename)
    sys.modules["__main__"] = _cell_main
    namespace = _cell_main.__dict__
    try:
        tree = ast.parse(code, filename, "exec")
        last = None
        if tree.body and isinstance(tree.body[-1], ast.Expr):
            last = ast.Expression(tree.body.pop().value)
        body = compile(tree, filename, "exec", dont_inherit=True)
        tail = compile(last, filename, "eval", dont_inherit=True) if last else None
    except (SyntaxError, ValueError) as exc:
        traceback.print_exception(type(exc), exc, None, file=sys.stderr)
        _flush()
        return [1, None]
    try:
        exec(body, namespace)
        value = eval(tail, namespace) if tail is not None else None
        result = _to_json(value)
    except SystemExit as exc:
        _flush()
        status = _exit_status(exc.code)
        return [status, None]
    except BaseException as exc:
        _flush()
        _print_exception(exc, 1)
        _flush()
        return [1, None]
    _flush()
    return [0, result]


_driver = types.SimpleNamespace(run=run, cell=cell)
_driver
