"""The command line: a thin layer over audit, shortfall, repair and the renderers.

Exit codes are the table in :mod:`wheelvet.errors` (``EXIT_CODES``, shown in
the README).  Errors are one line on stderr, never a traceback.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from concurrent.futures import ProcessPoolExecutor
from typing import Sequence

from . import __version__
from .audit import AuditOptions, WheelAudit, audit_wheel
from .errors import (EXIT_INTERNAL, EXIT_INTERRUPTED, EXIT_OK, EXIT_POLICY, EXIT_TERMINATED, EXIT_USAGE, Terminated,
                     UsageError, WheelvetError, forget_signals, signalled, stop, stop_if_signalled)
from .escape import printable
from .providers import find_providers
from .report import render_json, render_text
from .shortfall import explain, shortfalls


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit 2
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def _add_audit_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--disable-isa-ext-check", dest="disable_isa_ext_check", action="store_true",
                   help="do not check for instruction-set extensions beyond the architecture's baseline")
    p.add_argument("--allow-pure-python-wheel", dest="allow_pure_python_wheel", action="store_true",
                   help="accept a pure Python wheel instead of failing on it")
    p.add_argument("--ldpaths", dest="ldpaths", metavar="DIRS", default=None,
                   help="colon-separated directories to search instead of the system's "
                        "(AUDITWHEEL_LD_LIBRARY_PATH is still added)")
    p.add_argument("--exclude", action="append", default=[], metavar="PATTERN",
                   help="do not graft libraries whose SONAME or path matches this glob, nor what only they need "
                        "(repeatable)")
    p.add_argument("--provider", action="append", default=[], metavar="PATH_OR_DIR",
                   help="a wheel (or a directory of wheels) the wheel requires that ships libraries it needs: "
                        "those are provided, not grafted; the RPATH leads to where it installs (repeatable)")
    p.add_argument("--provider-env", dest="provider_env", action="append", default=[], metavar="PYTHON",
                   help="take the providers from an environment: its Python interpreter, or a site-packages "
                        "directory (repeatable)")


PATCHERS = ("patchelf", "lief-patchelf", "none")  # auditwheel's --patcher choices


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="wheelvet", description="Audit and repair Linux binary wheels (manylinux / musllinux).")
    parser.add_argument("-V", "--version", action="version", version=f"wheelvet {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0,
                        help="say what is done on stderr (-vv: also every library found and every lookup); "
                             "stdout stays as it is")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True

    show = sub.add_parser("show", help="audit wheels: the tags they meet and what holds them back")
    show.add_argument("wheels", nargs="+", metavar="WHEEL_FILE")
    show.add_argument("--json", action="store_true", help="print auditwheel-compatible JSON (one object, or an array for several wheels)")
    _add_audit_options(show)

    check = sub.add_parser("check", help="exit 1 unless every wheel meets its own tags (or --plat)")
    check.add_argument("wheels", nargs="+", metavar="WHEEL_FILE")
    check.add_argument("--plat", metavar="POLICY", default=None,
                       help="the policy each wheel must meet (e.g. manylinux_2_17_x86_64, manylinux2014); "
                            "by default every platform tag in the wheel's own file name")
    check.add_argument("--json", action="store_true", help="also print the JSON report")
    _add_audit_options(check)

    sub.add_parser("action", help="run the GitHub Action's job from the environment the runner gives a container action")

    tree = sub.add_parser("lddtree", help="print what one ELF file loads, as JSON in auditwheel's shape")
    tree.add_argument("file", metavar="FILE")
    tree.add_argument("--ldpaths", dest="ldpaths", metavar="DIRS", default=None,
                      help="colon-separated directories to search instead of the system's "
                           "(AUDITWHEEL_LD_LIBRARY_PATH is still added)")

    repair = sub.add_parser("repair", help="graft external libraries into wheels, patch them and retag them")
    repair.add_argument("wheels", nargs="+", metavar="WHEEL_FILE")
    repair.add_argument("-w", "--wheel-dir", dest="wheel_dir", default="wheelhouse/",
                        help="directory for the repaired wheels (default: wheelhouse/)")
    repair.add_argument("--plat", default=None, metavar="PLATFORM",
                        help="the policy to repair to (env AUDITWHEEL_PLAT; default: auto, the most compatible possible)")
    repair.add_argument("--only-plat", dest="only_plat", action="store_true",
                        help="tag only with --plat, even if a more compatible tag is met")
    repair.add_argument("--strip", action="store_true", help="strip symbols from the ELF files before patching them")
    repair.add_argument("-L", "--lib-sdir", dest="lib_sdir", default=".libs",
                        help="suffix of the directory for grafted libraries: <dist><LIB_SDIR> (default: .libs)")
    repair.add_argument("-z", "--zip-compression-level", dest="level", default=None, metavar="LEVEL",
                        help="deflate level 0-9 for new and patched files (env AUDITWHEEL_ZIP_COMPRESSION_LEVEL; default 6, "
                             "where patched files keep the input's deflate blocks that patching left alone)")
    repair.add_argument("--no-update-tags", dest="update_tags", action="store_false",
                        help="keep the file name and WHEEL tags as they are")
    repair.add_argument("--dry-run", dest="dry_run", action="store_true", help="print the repair plan and write nothing")
    repair.add_argument("--include", action="append", default=[], metavar="LIB",
                        help="also graft this library, which no DT_NEEDED names (loaded with dlopen): a SONAME, "
                             "found as the loader finds libraries, or a path; it keeps its name (repeatable)")
    repair.add_argument("--patcher", default=None, metavar="PATCHER",
                        help="the ELF patcher: patchelf (default), lief-patchelf (the same command line, another "
                             "program) or none (only repairs that change no ELF file) (env AUDITWHEEL_PATCHER)")
    _add_audit_options(repair)
    return parser


def _options(args: argparse.Namespace, environ: dict) -> AuditOptions:
    return AuditOptions(
        ldpaths=args.ldpaths,
        environ=environ,
        exclude=tuple(args.exclude),
        disable_isa_ext_check=args.disable_isa_ext_check,
        allow_pure_python_wheel=args.allow_pure_python_wheel,
        providers=find_providers(args.provider, args.provider_env),
        # a path is the file it names (from here); a name is searched for as the loader would
        include=tuple(os.path.abspath(n) if "/" in n else n for n in getattr(args, "include", ())),
    )


def _audit_one(job: tuple[str, AuditOptions]) -> tuple[WheelAudit | None, str | None, int]:
    """Audit one wheel; errors come back as data (they cross processes)."""
    path, options = job
    try:
        return audit_wheel(path, options), None, EXIT_OK
    except WheelvetError as exc:
        return None, str(exc), exc.exit_code


def _audit_all(paths: Sequence[str], options: AuditOptions) -> list[tuple[WheelAudit | None, str | None, int]]:
    jobs = [(p, options) for p in paths]
    if len(paths) > 1 and (os.cpu_count() or 1) > 1:
        # One wheel per core; each wheel is then read in a single process.
        single = AuditOptions(**{**options.__dict__, "jobs": 1})
        with ProcessPoolExecutor(max_workers=min(2, len(paths))) as pool:
            return list(pool.map(_audit_one, [(p, single) for p in paths]))
    return [_audit_one(j) for j in jobs]


def _error_audit(path: str, message: str) -> WheelAudit:
    return WheelAudit(wheel=os.path.basename(path), path=path, pure=False, error=message)


def _audit_args(args: argparse.Namespace, environ: dict) -> tuple[list[WheelAudit], list[bool], int]:
    """Audit the wheels on the command line.

    Returns the audits in argument order (an unreadable wheel becomes an
    audit carrying its error, so JSON output keeps one entry per argument),
    which of them could be read, and the exit status so far.
    """
    status = EXIT_OK
    audits, readable = [], []
    results = _audit_all(args.wheels, _options(args, environ))
    stop_if_signalled()
    for path, (audit, error, code) in zip(args.wheels, results):
        if error is not None:
            print(f"wheelvet: error: {error}", file=sys.stderr)
            status = max(status, code)
            audit = _error_audit(path, error)
        audits.append(audit)
        readable.append(error is None)
    return audits, readable, status


def cmd_show(args: argparse.Namespace, environ: dict) -> int:
    audits, readable, status = _audit_args(args, environ)
    if any(a.error is not None for a, ok in zip(audits, readable) if ok):
        status = max(status, EXIT_POLICY)
    if args.json:
        print(render_json(audits))
    else:
        shown = [a for a, ok in zip(audits, readable) if ok]
        if shown:
            sys.stdout.write(render_text(shown))
    return status


def cmd_check(args: argparse.Namespace, environ: dict) -> int:
    audits, readable, status = _audit_args(args, environ)
    for audit, ok_read in zip(audits, readable):
        if not ok_read:
            continue
        ok, lines = _check_one(audit, args.plat)
        for line in lines:
            print(printable(line))
        if not ok:
            status = max(status, EXIT_POLICY)
    if args.json:
        print(render_json(audits))
    return status


def _check_one(a: WheelAudit, plat: str | None) -> tuple[bool, list[str]]:
    if a.error is not None:
        return False, [f"FAIL {a.wheel}: {a.error}"]
    if a.pure:
        return True, [f"ok   {a.wheel}: pure Python wheel"]
    wanted = [plat] if plat else list(a.platforms)
    pset = a.policy_set
    named = pset is not None and plat is not None and pset.get(plat) is not None  # android_24_arm64_v8a
    if plat and a.arch and not named and not plat.endswith("_" + a.arch) and not plat.startswith("linux"):
        wanted = [f"{plat}_{a.arch}"]
    lines, ok = [], True
    for tag in wanted:
        met = a.meets(tag)
        if met is None and plat:
            raise UsageError(f"--plat {plat}: not a policy for this {a.libc} {a.arch} wheel ({a.wheel})")
        if met:
            lines.append(f"ok   {a.wheel}: meets {tag}")
            continue
        ok = False
        if met is None:
            lines.append(f"FAIL {a.wheel}: its tag {tag} names no policy for what it contains ({a.libc}, {a.arch})")
        else:
            lines.append(f"FAIL {a.wheel}: claims {tag} but meets only {a.overall_tag}")
            lines += ["  " + line for line in explain(shortfalls(a, tag))]
    return ok, lines


def _level(args: argparse.Namespace, environ: dict) -> int:
    raw = args.level if args.level is not None else environ.get("AUDITWHEEL_ZIP_COMPRESSION_LEVEL", "-1")
    try:
        level = int(raw)
    except ValueError:
        level = -2
    if not -1 <= level <= 9:
        raise UsageError(f"compression level must be -1 to 9, not {raw!r}")
    return level


def _patcher(args: argparse.Namespace, environ: dict):
    """--patcher, else AUDITWHEEL_PATCHER, as auditwheel reads them."""
    from .repair import patcher_named

    name, source = args.patcher, "--patcher"
    if name is None and "AUDITWHEEL_PATCHER" in environ:
        name, source = environ["AUDITWHEEL_PATCHER"], "AUDITWHEEL_PATCHER"
    name = "patchelf" if name is None else name
    if name not in PATCHERS:
        raise UsageError(f"{source}: {name!r} is not a patcher (choose from {', '.join(PATCHERS)})")
    return patcher_named(name)


def cmd_lddtree(args: argparse.Namespace, environ: dict) -> int:
    from .lddtree import lddtree, render_lddtree

    print(render_lddtree(lddtree(args.file, environ, args.ldpaths)))
    return EXIT_OK


def cmd_repair(args: argparse.Namespace, environ: dict) -> int:
    from .ahead import ahead
    from .repair import Prepared, RepairOptions, RepairSession, prepare_repair, read_ahead_options, repair_wheel

    patcher = _patcher(args, environ)
    level = _level(args, environ)
    plat = args.plat or environ.get("AUDITWHEEL_PLAT") or "auto"
    options = RepairOptions(plat=plat, only_plat=args.only_plat, lib_sdir=args.lib_sdir, strip=args.strip,
                            update_tags=args.update_tags, exclude=tuple(args.exclude))
    audit_options = _options(args, environ)
    status = EXIT_OK
    # One session for the call: the wheels of a release graft the same
    # libraries, patched and compressed once for all of them.
    with RepairSession(wheels=len(args.wheels)) as session:
        session.protect(args.wheels)  # no output of the call replaces one of its inputs
        # (each wheel read, audited and planned while the ones before it are repaired)
        def prepare(path):
            return prepare_repair(path, options, read_ahead_options(audit_options, len(args.wheels)),
                                  level=level, dry_run=args.dry_run)

        for path, prepared in ahead(args.wheels, prepare, catch=(WheelvetError,), size=Prepared.held_bytes):
            try:
                if isinstance(prepared, BaseException):
                    raise prepared
                plan, out = repair_wheel(path, args.wheel_dir, options, audit_options, level=level,
                                         dry_run=args.dry_run, patcher=patcher, session=session, prepared=prepared)
            except UsageError:
                raise
            except WheelvetError as exc:
                print(f"wheelvet: error: {exc}", file=sys.stderr)
                status = max(status, exc.exit_code)
                continue
            same = " (unchanged: it already held these bytes; nothing written)" if out and session.unchanged(out) else ""
            if plan is None:
                print(printable(f"{os.path.basename(path)}: pure Python wheel, copied to {out}{same}"))
            elif out is None:
                print(plan.describe())
            else:
                grafted = f", grafted {len(plan.grafts)} librar{'y' if len(plan.grafts) == 1 else 'ies'}" if plan.grafts else ""
                platlib = ", Root-Is-Purelib set to false: binaries belong in platlib" if plan.root_is_purelib is False else ""
                dropped = f", dropped tags it does not meet: {', '.join(plan.dropped_tags)}" if plan.dropped_tags else ""
                print(printable(f"{os.path.basename(path)} -> {out} ({plan.policy}{grafted}{dropped}{platlib}){same}"))
    return status


def _configure_logging(verbose: int) -> None:
    """-v: what is done (INFO), -vv: also every library found and lookup (DEBUG),
    all on stderr; without -v only warnings.  stdout's contracts are untouched."""
    logger = logging.getLogger("wheelvet")
    for handler in list(logger.handlers):
        if getattr(handler, "_wheelvet", False):
            logger.removeHandler(handler)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("wheelvet: %(message)s"))
    handler._wheelvet = True  # type: ignore[attr-defined]
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG if verbose >= 2 else logging.INFO if verbose else logging.WARNING)
    logger.propagate = False


def _cmd_action(args: argparse.Namespace, environ: dict) -> int:
    # PyGithub comes with wheelvet[action]: without it, one line (exit 2) before any work
    from .github import comment  # noqa: F401
    from .action import main as action_main

    return action_main(environ)


def _on_sigterm(signum, frame):  # pragma: no cover - exercised by a subprocess test
    stop(Terminated)


def _on_sigint(signum, frame):  # pragma: no cover - exercised by a subprocess test
    stop(KeyboardInterrupt)


def _quiet_when_signalled(hook):
    """An unraisable hook that says nothing of the stop a signal raised
    inside a finalizer (it is raised again at the next checkpoint:
    :func:`wheelvet.errors.stop_if_signalled`), and passes anything else on."""
    def unraisable(info):
        if isinstance(info.exc_value, (KeyboardInterrupt, Terminated)) and signalled():
            return
        hook(info)
    return unraisable


def main(argv: Sequence[str] | None = None, environ: dict | None = None) -> int:
    import signal
    import threading

    forget_signals()
    if threading.current_thread() is not threading.main_thread():
        return _main(argv, environ)
    # SIGINT only where Python handles it as it does by default: a shell's
    # background job has it ignored, and so it stays (the Unix convention).
    sigint = signal.getsignal(signal.SIGINT) is signal.default_int_handler
    before = (signal.signal(signal.SIGTERM, _on_sigterm),
              signal.signal(signal.SIGINT, _on_sigint) if sigint else None, sys.unraisablehook)
    sys.unraisablehook = _quiet_when_signalled(sys.unraisablehook)
    try:
        return _main(argv, environ)
    finally:
        for signum, handler in ((signal.SIGTERM, before[0]), (signal.SIGINT, before[1])):
            if handler is not None:  # (None: not one Python set, or SIGINT left alone)
                signal.signal(signum, handler)
        sys.unraisablehook = before[2]


def _main(argv: Sequence[str] | None, environ: dict | None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    env = dict(os.environ if environ is None else environ)
    _configure_logging(args.verbose)
    try:
        commands = {"show": cmd_show, "check": cmd_check, "repair": cmd_repair, "lddtree": cmd_lddtree,
                    "action": _cmd_action}
        if args.command not in commands:
            parser.error(f"unknown command {args.command}")
        code = commands[args.command](args, env)
        stop_if_signalled()  # (a Ctrl-C a finalizer swallowed: the call still ends as interrupted)
        return code
    except WheelvetError as exc:
        print(f"wheelvet: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("wheelvet: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Terminated:
        print("wheelvet: terminated", file=sys.stderr)
        return EXIT_TERMINATED
    except BrokenPipeError:
        return EXIT_OK
    except Exception as exc:  # noqa: BLE001 - the promise is: never a traceback
        if env.get("WHEELVET_DEBUG"):
            raise
        print(printable(f"wheelvet: internal error ({type(exc).__name__}: {exc}); please report it (WHEELVET_DEBUG=1 shows the traceback)"), file=sys.stderr)
        return EXIT_INTERNAL


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
