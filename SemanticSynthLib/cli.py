"""One command line for Slicer and for people: generate, translate, evaluate, the five trainers, run, serve.

Each command's options are its request's fields (engine/requests): the flags, their help, defaults and checks
are read from there, so the command line, a request file and the GUIs accept the same values. The CLI builds a
request from its flags and hands it to engine/commands/run.py; `run REQUEST.json` reads the same request from a
file (the Slicer bridge and the web page start the engine that way).
"""
from __future__ import annotations

import argparse
import sys
import traceback

from .engine.requests import REQUESTS
from .engine.requests.base import flag_of, spec
from .checks import THREADS, integer, number
from .errors import SynthError

HELP = {
    "generate": "generate a volume on the label map's grid",
    "translate": "translate a volume to the model's target contrast, with a displacement field",
    "train-autoencoder": "train the VQ-GAN autoencoder",
    "train-diffusion": "train the latent diffusion U-Net on top of an autoencoder package",
    "evaluate": "fidelity and realism of a generator against real labelled cases",
    "make-dataset": "generate an nnU-Net v2 training set from many label maps (resumable)",
    "train-segmenter": "train the auxiliary segmenter used by evaluate (MONAI SegResNet)",
    "train-translator": "train a traceable translator (spatial transform + intensity translator)",
    "train-refiner": "add a detail refiner to a generator: its output at the label map's own, finer spacing",
}
PROGRESS = ("bar", "json", "none")


class Parser(argparse.ArgumentParser):
    """argparse, but a bad option is one line (no usage block), as every other error is."""

    def error(self, message):
        self.exit(2, f"error: {message}; see {self.prog} --help\n")


def _argparse_type(check):
    """argparse's view of a request check: the same function, its ValueError shown as argparse's one line."""
    def parse(text):
        try:
            return check(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
    parse.__name__ = getattr(check, "__name__", "value")
    return parse


def _help(info) -> str:
    text = info.description or ""
    default = info.default
    if not info.is_required() and default not in (None, False, True) and "default" not in text:
        shown = ",".join(map(str, default)) if isinstance(default, tuple) else default
        text += f" (default: {shown})"
    return text


def add_request_options(parser: argparse.ArgumentParser, request_class) -> None:
    """One argparse option per request field; values are left as typed (the request converts and checks them),
    and an option not given is absent, so the request's default applies."""
    for name, info in request_class.model_fields.items():
        s = spec(info)
        if not s.get("cli", True):
            continue
        if s.get("positional"):
            parser.add_argument(name, help=_help(info), type=_argparse_type(s["check"]) if s.get("check") else str)
            continue
        kwargs = {"dest": name, "default": argparse.SUPPRESS, "help": _help(info)}
        if info.annotation is bool:
            kwargs["action"] = "store_false" if info.default is True else "store_true"
        else:
            if s.get("check"):
                kwargs["type"] = _argparse_type(s["check"])
            choices = getattr(s.get("check"), "choices", None)
            if choices:
                kwargs["metavar"] = "{" + ",".join(map(str, choices())) + "}"
            if s.get("metavar"):
                kwargs["metavar"] = s["metavar"]
            kwargs["required"] = info.is_required()
        parser.add_argument(flag_of(name, info), **kwargs)


def _run_options(p: argparse.ArgumentParser) -> None:
    """How a job runs, not what it computes: not part of its request, the same for every command."""
    p.add_argument("--progress", default="bar", choices=PROGRESS, help="a bar, JSON lines (for the bridge) or none")
    p.add_argument("--threads", type=_argparse_type(THREADS), default=None, help="CPU threads (default: torch's choice)")
    p.add_argument("--debug", action="store_true", help="show the traceback of unexpected errors")


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="semanticsynth", description="Label map -> CT/MRI by 3D latent semantic diffusion")
    parser.add_argument("--debug", dest="debug_all", action="store_true", help="show the traceback of unexpected errors")
    sub = parser.add_subparsers(dest="command", required=True)
    for command, request_class in REQUESTS.items():
        p = sub.add_parser(command, help=HELP[command], description=HELP[command])
        add_request_options(p, request_class)
        _run_options(p)

    r = sub.add_parser("run", help="run a request file (JSON: {\"command\": ..., options}), as the Slicer module does")
    r.add_argument("request", help="request file, as written by Request.write or the Slicer module")
    r.add_argument("--result", default=None, help="write the result (outputs, provenance, report) to this JSON file")
    _run_options(r)

    m = sub.add_parser("models", help="model packages outside git: download one, or pack a release and its manifest")
    msub = m.add_subparsers(dest="models_command", required=True)
    f = msub.add_parser("fetch", help="download a manifest model into the user cache (nothing to do when present)")
    f.add_argument("name")
    f.add_argument("--workdir", default=None, help="staging folder (removed by the caller)")
    f.add_argument("--progress", choices=["json", "none"], default="none")
    r = msub.add_parser("manifest", help="pack the bundled packages and write their manifest")
    r.add_argument("--base-url", required=True, help="where the release will publish the archives")
    r.add_argument("--out", default=None, help="folder for the archives (default: a temporary folder)")
    r.add_argument("--manifest", default=None, help="manifest to write (default: the bundled models/manifest.json)")

    w = sub.add_parser("serve", help="the web app in a browser (trame-slicer; needs the [web] extra)")
    w.add_argument("--port", type=_argparse_type(integer(0, 65535)), default=8080)
    w.add_argument("--host", default="127.0.0.1", help="address to listen on (default: this machine only)")
    w.add_argument("--max-upload-mb", type=_argparse_type(number(0, 1e6, low_open=True)), default=512,
                   help="largest upload accepted")
    w.add_argument("--device", default=None, choices=["auto", "cpu", "cuda"], help="device of the engine runs")
    w.add_argument("--debug", action="store_true", help="show the traceback of unexpected errors")
    return parser


def request_from_arguments(args: argparse.Namespace):
    """The request that the parsed flags describe (checked); SynthError naming the first bad option."""
    request_class = REQUESTS[args.command]
    values = {name: value for name, value in vars(args).items() if name in request_class.model_fields}
    return request_class.build(values)


def _report_bug(exc: BaseException, debug: bool) -> None:
    if debug:
        traceback.print_exception(type(exc), exc, exc.__traceback__, file=sys.stderr)
    text = " ".join(str(exc).split())[:200] or "no message"
    hint = "" if debug else "; rerun with --debug for the traceback"
    print(f"error: unexpected {type(exc).__name__}: {text}; this is a bug, please report it with the command line{hint}",
          file=sys.stderr)


def _models(args) -> None:
    import json
    from pathlib import Path

    from .engine.model import store

    if args.models_command == "fetch":
        printer = (lambda record: print(json.dumps(record), flush=True)) if args.progress == "json" else None
        path = store.fetch(args.name, on_progress=printer, workdir=Path(args.workdir) if args.workdir else None)
        print(json.dumps({"stage": "done", "path": str(path)}) if printer else path, flush=True)
    else:
        out, names = store.write_release_manifest(args.base_url, args.out, args.manifest)
        print(f"{len(names)} archives in {out}; manifest {args.manifest or 'SemanticSynthLib/models/manifest.json'}")


def _dispatch(args) -> None:
    if args.command == "models":
        _models(args)
        return
    if args.command == "serve":
        from .web.serve import serve

        serve(host=args.host, port=args.port, max_upload_mb=args.max_upload_mb, device=args.device)
        return
    from .engine.commands.run import run_request

    if args.command == "run":
        from .engine.requests import read_request

        request, result = read_request(args.request), args.result
    else:
        request, result = request_from_arguments(args), None
    run_request(request, progress=args.progress, threads=args.threads, result_path=result)


def _printable_streams():
    """A terminal or pipe in a C/ASCII locale cannot encode the '…' or '≤' of a message: print those as escapes
    instead of failing with UnicodeEncodeError after the work is done."""
    for stream in (sys.stdout, sys.stderr):
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="backslashreplace")


def main(argv=None) -> int:
    from .engine.volume.atomic import Interrupted, install_signal_handlers, remove_all, restore_signal_handlers

    _printable_streams()

    argv = [str(a) for a in (sys.argv[1:] if argv is None else argv)]
    debug = "--debug" in argv
    handlers = install_signal_handlers()
    try:
        try:
            args = build_parser().parse_args(argv)
        except SystemExit as exc:  # --help (0) or a bad option, already reported in one line (2)
            return exc.code if isinstance(exc.code, int) else 0
        _dispatch(args)
    except SynthError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except Interrupted as exc:
        print(f"error: interrupted by {exc}; nothing was written", file=sys.stderr)
        return 128 + exc.signum
    except KeyboardInterrupt:
        print("error: interrupted; nothing was written", file=sys.stderr)
        return 130
    except MemoryError:
        print("error: out of memory; crop the input, lower --window or --batch, or free memory", file=sys.stderr)
        return 2
    except Exception as exc:  # noqa: BLE001 - the last line of defence: no traceback reaches the user
        _report_bug(exc, debug)
        return 1
    finally:
        remove_all()
        restore_signal_handlers(handlers)
    return 0


if __name__ == "__main__":
    sys.exit(main())
