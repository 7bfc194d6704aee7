# Shipped inside execgov (include_str!) for `execgov init`: runs a script as
# __main__ until it asks argparse to parse its command line, then stops it there
# and prints the parser's arguments as JSON on stdout. The script's main work
# never runs, as long as it parses its arguments before doing it.
#
# Usage: python -c "$PROBE" script PATH | module NAME
import argparse
import json
import runpy
import sys


class _Captured(BaseException):
    """Raised instead of parsing; a BaseException so `except Exception` in the
    script does not swallow it."""

    def __init__(self, parser):
        super().__init__()
        self.parser = parser


def _stop(self, *args, **kwargs):
    raise _Captured(self)


def _kind(action):
    names = {
        argparse._StoreAction: "store",
        argparse._StoreTrueAction: "store_true",
        argparse._StoreFalseAction: "store_false",
        argparse._StoreConstAction: "store_const",
        argparse._AppendAction: "append",
        argparse._AppendConstAction: "append_const",
        argparse._CountAction: "count",
        argparse._HelpAction: "help",
        argparse._VersionAction: "version",
        argparse._SubParsersAction: "subcommands",
    }
    for cls, name in names.items():
        if type(action) is cls:
            return name
    boolean = getattr(argparse, "BooleanOptionalAction", None)
    if boolean is not None and type(action) is boolean:
        return "boolean_optional"
    return "custom:" + type(action).__name__


def _type_name(t):
    if t is None:
        return None
    if isinstance(t, argparse.FileType):
        return "FileType"
    return getattr(t, "__name__", type(t).__name__)


def _plain(value):
    """The value if JSON can carry it as a scalar, else its repr."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return {"repr": repr(value)}


def _help(parser, action):
    text = action.help
    if not text or text == argparse.SUPPRESS:
        return ""
    try:
        params = dict(vars(action), prog=parser.prog)
        for name in list(params):
            if params[name] is argparse.SUPPRESS:
                del params[name]
        return " ".join((text % params).split())
    except Exception:
        return " ".join(text.split())


def _describe(parser):
    exclusive = set()
    for group in getattr(parser, "_mutually_exclusive_groups", []):
        exclusive.update(id(a) for a in group._group_actions)
    actions = []
    for action in parser._actions:
        default = action.default
        if default is argparse.SUPPRESS:
            default = None
        # argparse converts string defaults through `type`; so do we.
        if isinstance(default, str) and action.type in (int, float):
            try:
                default = action.type(default)
            except ValueError:
                pass
        nargs = action.nargs
        actions.append(
            {
                "kind": _kind(action),
                "option_strings": list(action.option_strings),
                "dest": action.dest,
                "nargs": nargs if nargs is None or isinstance(nargs, int) else str(nargs),
                "type": _type_name(action.type),
                "choices": None
                if action.choices is None or isinstance(action, argparse._SubParsersAction)
                else [_plain(c) for c in action.choices],
                "subcommands": list(action.choices)
                if isinstance(action, argparse._SubParsersAction)
                else None,
                "required": bool(action.required),
                "exclusive": id(action) in exclusive,
                "default": _plain(default),
                "help": _help(parser, action),
            }
        )
    return {
        "prog": parser.prog,
        "description": " ".join((parser.description or "").split()),
        "actions": actions,
    }


def _provide_execgov_module():
    """Scripts may `import execgov` (the runner provides it); so does the probe."""
    import importlib.util
    import types

    source = __import__("os").environ.get("EXECGOV_PYTHON_MODULE")
    if not source or importlib.util.find_spec("execgov") is not None:
        return
    module = types.ModuleType("execgov")
    exec(compile(source, "execgov.py", "exec"), module.__dict__)
    sys.modules["execgov"] = module


def main():
    how, target = sys.argv[1], sys.argv[2]
    _provide_execgov_module()
    argparse.ArgumentParser.parse_args = _stop
    argparse.ArgumentParser.parse_known_args = _stop
    if hasattr(argparse.ArgumentParser, "parse_intermixed_args"):
        argparse.ArgumentParser.parse_intermixed_args = _stop
        argparse.ArgumentParser.parse_known_intermixed_args = _stop
    out = sys.stdout
    # What the script prints while it starts goes to stderr, so stdout is ours.
    sys.stdout = sys.stderr
    try:
        if how == "module":
            sys.argv = [target]
            runpy.run_module(target, run_name="__main__", alter_sys=True)
        else:
            sys.argv = [target]
            sys.path.insert(0, __import__("os").path.dirname(target))
            runpy.run_path(target, run_name="__main__")
    except _Captured as captured:
        out.write(json.dumps(_describe(captured.parser)))
        out.write("\n")
        out.flush()
        sys.exit(0)
    except SystemExit as e:
        sys.stderr.write(
            "execgov init: the script exited (%r) before it parsed its arguments with argparse\n"
            % (e.code,)
        )
        sys.exit(3)
    sys.stderr.write(
        "execgov init: the script ran to its end without parsing arguments with argparse\n"
    )
    sys.exit(3)


main()
