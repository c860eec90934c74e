"""Command line: `python -m backend <command>` (or the `shapellm-backend` console script).

    serve      run the ZeroMQ backend service
    keygen     create a CurveZMQ key pair for remote use
    generate   prompt or image -> mesh file (GLB/OBJ/...), in-process, no Blender
    describe   mesh file -> caption
    edit       mesh file + instruction -> mesh file

Adding a command from another module:

    from backend.cli import add_command
    add_command("demo", "run the Blender demo", configure=lambda p: p.add_argument(...), run=main_fn)

and list that module in COMMAND_MODULES below so `main()` imports it before parsing.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

# Modules that register extra commands with add_command() when imported.
COMMAND_MODULES: tuple[str, ...] = ()


@dataclass
class Command:
    name: str
    help: str
    configure: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]


COMMANDS: dict[str, Command] = {}


def add_command(name: str, help: str, configure, run) -> None:
    """Register a subcommand: `configure(parser)` adds its arguments, `run(args)` returns the exit code."""
    if name in COMMANDS:
        raise ValueError(f"command {name!r} is already registered")
    COMMANDS[name] = Command(name, help, configure, run)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m backend", description="ShapeLLM-Omni backend")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in COMMANDS.values():
        command.configure(sub.add_parser(command.name, help=command.help, description=command.help))
    return parser


def quiet_libraries() -> None:
    """No library FutureWarnings, deprecation notes or download bars on the artist's terminal: they
    say nothing a user can act on. Set before transformers is imported; an explicit
    TRANSFORMERS_VERBOSITY or HF_HUB_DISABLE_PROGRESS_BARS wins."""
    import warnings

    warnings.filterwarnings("ignore", category=FutureWarning)
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")


def main(argv=None) -> int:
    import importlib

    for module in COMMAND_MODULES:
        importlib.import_module(module)
    args = build_parser().parse_args(argv)
    quiet_libraries()
    logging.basicConfig(level=getattr(args, "log_level", "WARNING"), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return COMMANDS[args.command].run(args) or 0


# -- serve ----------------------------------------------------------------------------------------


def _configure_serve(p: argparse.ArgumentParser) -> None:
    from addon.wire import protocol
    from backend.server import DEFAULT_BIND

    p.add_argument("--preset", default="embedded", help="built-in preset name or preset folder (default: embedded)")
    p.add_argument("--bind", default=DEFAULT_BIND,
                   help=f"ZeroMQ endpoint (default {DEFAULT_BIND}); port 0 picks a free port. "
                        "A non-loopback address needs --curve-secret and --allowed-clients")
    _add_load_arguments(p)
    p.add_argument("--queue-size", type=_positive_int, default=8, help="jobs waiting at most (default 8)")
    p.add_argument("--max-jobs", type=_positive_int, metavar="N",
                   help="with --engine vllm: jobs run at once, batched by the engine (default 8); "
                        "our own loop always runs one")
    p.add_argument("--max-message-mb", type=float, default=protocol.DEFAULT_MAX_MESSAGE_BYTES / 2**20,
                   help="largest request accepted, in MiB (default %(default)s)")
    p.add_argument("--curve-secret", help="server key pair file (NAME.key_secret from keygen)")
    p.add_argument("--allowed-clients", help="folder of the allowed clients' public NAME.key files")
    p.add_argument("--client-timeout", type=_positive_float, default=protocol.CLIENT_TIMEOUT_S, metavar="SECONDS",
                   help="cancel the jobs of a client silent this long: no ping, no request (default %(default)s)")
    p.add_argument("--parent-pid", type=_positive_int, metavar="PID",
                   help="shut down when this process exits (the add-on passes Blender's)")
    p.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])


def _run_serve(args) -> int:
    from backend import auth
    from backend.errors import TaskError
    from backend.models.presets import load_preset
    from backend.server import BindError, Server, ServerConfig

    try:
        load_preset(args.preset)  # cheap (reads preset.json): a typo fails here, not at the first job
    except TaskError as err:
        print(f"error: {err.code}: {err.message}", file=sys.stderr)
        return 2

    bind = args.bind
    if bind.startswith("tcp://") and bind.endswith(":0"):
        bind = bind[:-2] + ":*"  # ZeroMQ's spelling of "any free port"
    config = ServerConfig(preset=args.preset, bind=bind, device=args.device, queue_size=args.queue_size,
                          max_message_bytes=int(args.max_message_mb * 2**20),
                          curve_secret=args.curve_secret, allowed_clients=args.allowed_clients,
                          client_timeout_s=args.client_timeout, parent_pid=args.parent_pid,
                          dtype=args.dtype, quantization=args.quantize, engine=args.engine,
                          engine_url=args.engine_url, max_jobs=args.max_jobs)
    try:
        server = Server(config)
    except auth.AuthError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    # The first stdout line names the bound endpoint; tests and the add-on's supervisor read it.
    try:
        server.serve(ready=lambda endpoint: print(f"listening on {endpoint}", flush=True))
    except BindError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


def _add_load_arguments(p: argparse.ArgumentParser) -> None:
    from backend.models.presets import LLM_DTYPES, LLM_ENGINES, LLM_QUANTIZATIONS

    p.add_argument("--device", default="auto",
                   help="auto, cpu, cuda, cuda:N, mps (auto: CUDA, else Apple's MPS, else the CPU; MPS is untested)")
    p.add_argument("--dtype", choices=LLM_DTYPES,
                   help="the LLM's dtype (default: the preset's, normally auto: the checkpoint's own dtype; "
                        "a bfloat16 checkpoint on a CPU: bfloat16 where the CPU has it, else float32)")
    p.add_argument("--quantize", choices=LLM_QUANTIZATIONS,
                   help="load the LLM's linear weights in 8 or 4 bits (bitsandbytes: for 8-16 GB GPUs; runs on "
                        "CPUs too, slower than bfloat16; pip install 'shapellm-blender-backend[quantize]')")
    p.add_argument("--engine", choices=LLM_ENGINES,
                   help="who runs the LLM (default: the preset's, normally own): own = our decoding loop, "
                        "one job at a time; vllm = a vLLM server, many jobs batched (docs/serving.md)")
    p.add_argument("--engine-url", metavar="URL",
                   help="with --engine vllm: a running vLLM server (http://HOST:PORT); without it the "
                        "backend starts one from .venv-vllm (bash .ci/setup-vllm)")


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError("must be a positive number of seconds")
    return value


# -- keygen ---------------------------------------------------------------------------------------


def _configure_keygen(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", required=True, help="folder for NAME.key (public) and NAME.key_secret (private)")
    p.add_argument("--name", required=True, help="key name, e.g. server or the artist's machine name")


def _run_keygen(args) -> int:
    from backend.auth import AuthError, create_key_pair

    try:
        public, secret = create_key_pair(args.out, args.name)
    except AuthError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"public key: {public}\nsecret key: {secret} (keep it private)")
    return 0


# -- one-shot tasks ---------------------------------------------------------------------------------


class ProgressBar:
    """`progress(stage, done, total)` callback drawing one bar per stage on stderr."""

    WIDTH = 30

    def __init__(self, stream=None):
        self.stream = stream or sys.stderr
        self.interactive = self.stream.isatty()
        self._stage = None
        self._last_draw = 0.0

    def __call__(self, stage: str, done: int, total: int) -> None:
        now = time.monotonic()
        if stage != self._stage:
            if self._stage is not None and self.interactive:
                self.stream.write("\n")
            self._stage = stage
        elif done < total and now - self._last_draw < (0.1 if self.interactive else 2.0):
            return
        self._last_draw = now
        filled = self.WIDTH * done // total if total > 0 else self.WIDTH
        line = f"{stage:<8} [{'#' * filled}{'.' * (self.WIDTH - filled)}] {done}/{total}"
        self.stream.write(("\r" + line) if self.interactive else line + "\n")
        self.stream.flush()

    def close(self) -> None:
        if self._stage is not None and self.interactive:
            self.stream.write("\n")
            self.stream.flush()


def _add_model_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--preset", default="embedded", help="built-in preset name or preset folder")
    _add_load_arguments(p)
    p.add_argument("--seed", type=int)
    p.add_argument("--temperature", type=float)
    p.add_argument("--top-p", type=float)
    p.add_argument("--top-k", type=int)
    p.add_argument("--max-new-tokens", type=int)
    p.add_argument("--log-level", default="WARNING", choices=["DEBUG", "INFO", "WARNING", "ERROR"])


def _add_mesh_style(p: argparse.ArgumentParser) -> None:
    from addon.wire import protocol

    p.add_argument("--mesh-style", choices=protocol.MESH_STYLES)


def _options(args) -> dict:
    from addon.wire import protocol

    names = ("seed", "temperature", "top_p", "top_k", "max_new_tokens", "mesh_style")
    options = {n: getattr(args, n) for n in names if getattr(args, n, None) is not None}
    return protocol.validate_options(options)


def _configure_generate(p: argparse.ArgumentParser) -> None:
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--prompt", help="what to make, in words")
    source.add_argument("--image", help="PNG or JPEG of the object")
    p.add_argument("-o", "--output", required=True, help="mesh file to write (.glb, .obj, .ply, .stl)")
    _add_mesh_style(p)
    p.add_argument("--codes", help="also write the 1024 shape codes to this .npy file")
    p.add_argument("--variations", type=int, metavar="K",
                   help="make K shapes of the prompt (1-8) as one batch, seeds --seed, --seed+1, ...; they "
                        "need sampling (--temperature > 0 with a greedy model); writes NAME-1.EXT ... NAME-K.EXT")
    _add_model_arguments(p)


def _run_generate(args) -> int:
    from addon.wire import protocol

    def prepare():
        _check_output(args.output)
        options()
        if args.prompt is not None:
            return {"prompt": protocol.validate_prompt(args.prompt)}
        image = _read_file(args.image)
        protocol.validate_image(image)
        return {"image": image}

    count = args.variations or 1

    def options():  # --variations is checked by the wire's rule, before any model loads
        extra = {"variations": args.variations} if args.variations is not None else {}
        return protocol.validate_options({**_options(args), **extra}, "text_to_3d")

    def task(pipe, inputs, progress, cancelled):
        if "prompt" in inputs:
            return pipe.text_to_3d_variations(inputs["prompt"], options(), progress, cancelled)
        return pipe.image_to_3d_variations(inputs["image"], options(), progress, cancelled)

    def finish(results):
        import numpy as np

        if results and results[0].read_as:  # the preset's lexicon rewrote the prompt
            print(f'made as "{results[0].read_as}"')
        for result in results:
            output, codes = args.output, args.codes
            if count > 1:
                output, codes = variation_path(output, result.index), codes and variation_path(codes, result.index)
            _save_mesh(output, result.vertices, result.faces)
            if codes:
                np.save(codes, np.asarray(result.codes, dtype=np.int32))
            seed = f" (seed {result.seed})" if count > 1 else ""
            print(f"wrote {output}: {len(result.vertices)} vertices, {len(result.faces)} triangles{seed}")
        missing = sorted(set(range(count)) - {r.index for r in results})
        if missing:
            print(f"variations {', '.join(str(i + 1) for i in missing)} made no shape", file=sys.stderr)

    return _run_task(args, prepare, task, finish)


def _add_up_argument(p: argparse.ArgumentParser) -> None:
    p.add_argument("--up", choices=["auto", "y", "z"], default="auto",
                   help="the input file's up axis; auto: its format's convention (glTF and OBJ Y-up, "
                        "PLY and STL Z-up). Use it for a file some tool wrote otherwise")


def _configure_describe(p: argparse.ArgumentParser) -> None:
    p.add_argument("mesh", help="mesh file (.glb, .obj, .ply, .stl, ...)")
    _add_up_argument(p)
    p.add_argument("--question", help="what to ask about the shape (default: the preset's overview question)")
    _add_model_arguments(p)


def _run_describe(args) -> int:
    from addon.wire import protocol

    def prepare():
        vertices, faces, up = _load_mesh(args.mesh, args.up)
        options = {"up": up, **_options(args)}
        if args.question is not None:
            options["question"] = protocol.validate_prompt(args.question, "question")
        return vertices, faces, options

    def task(pipe, inputs, progress, cancelled):
        vertices, faces, options = inputs
        return pipe.describe(vertices, faces, options, progress, cancelled)

    return _run_task(args, prepare, task, print)


def _configure_edit(p: argparse.ArgumentParser) -> None:
    p.add_argument("mesh", help="mesh file to edit (left unchanged)")
    _add_up_argument(p)
    p.add_argument("--instruction", required=True, help="what to change, in words")
    p.add_argument("-o", "--output", required=True, help="mesh file to write")
    _add_mesh_style(p)
    _add_model_arguments(p)


def _run_edit(args) -> int:
    from addon.wire import protocol

    def prepare():
        _check_output(args.output)
        instruction = protocol.validate_prompt(args.instruction, "instruction")
        vertices, faces, up = _load_mesh(args.mesh, args.up)
        name = Path(args.mesh).stem[:256] or "mesh"  # "truck.glb": its width is across its length
        return vertices, faces, instruction, {"up": up, "object_name": name, **_options(args)}

    def task(pipe, inputs, progress, cancelled):
        return pipe.edit(*inputs, progress, cancelled)

    def finish(result):
        import numpy as np

        vertices, faces = result.vertices, result.faces
        if result.added is not None:  # a new part: in the same file, a loose part of its own
            vertices = np.concatenate([vertices, result.added[0]])
            faces = np.concatenate([faces, result.added[1] + len(result.vertices)])
        _save_mesh(args.output, vertices, faces)
        if result.edit_kind:  # how the instruction was read (and how sure the model was)
            sure = f" ({result.edit_kind_confidence:.0%} sure)" if result.edit_kind_confidence is not None else ""
            print(f'read as "{result.edit_kind}"{sure}')
        if result.edit_summary:  # the file's own mesh kept: what the edit did to it
            print(f"kept the mesh: {result.edit_summary}")
        print(f"wrote {args.output}: {len(result.vertices)} vertices, {len(result.faces)} triangles")

    return _run_task(args, prepare, task, finish)


def _run_task(args, prepare, task, finish) -> int:
    """Check the inputs (`prepare`, before any model loads), run one pipeline task with a
    progress bar, then `finish(result)`. Ctrl+C cancels at the next decoding step."""
    from addon.wire.protocol import ProtocolError
    from backend.errors import Cancelled, TaskError
    from backend.geometry.errors import GeometryError

    interrupted = threading.Event()
    previous = signal.signal(signal.SIGINT, lambda *_: interrupted.set())
    bar = ProgressBar()
    try:
        inputs = prepare()
        from backend.server import make_pipeline

        pipe = make_pipeline(args.preset, args.device, dtype=args.dtype, quantization=args.quantize,
                             engine=args.engine, engine_url=args.engine_url)
        result = task(pipe, inputs, bar, interrupted.is_set)
        bar.close()
        finish(result)
        return 0
    except Cancelled:
        bar.close()
        print("cancelled", file=sys.stderr)
        return 130
    except (TaskError, ProtocolError, GeometryError) as err:
        bar.close()
        print(f"error: {err.code}: {err.message}", file=sys.stderr)
        return 1
    except OSError as err:
        bar.close()
        print(f"error: {err}", file=sys.stderr)
        return 1
    finally:
        signal.signal(signal.SIGINT, previous)


def _read_file(path: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as err:
        raise OSError(f"cannot read {path}: {err.strerror}") from None


def _load_mesh(path: str, up: str = "auto"):
    """(vertices Z-up, faces, "z"), checked like a mesh on the wire. A Y-up file (glTF, OBJ by
    their convention, or `up` "y") is turned Z-up on read, as Blender's importers do, so a file
    this CLI wrote reads back as it was made."""
    import numpy as np

    from addon.wire import protocol
    from backend.geometry.meshio import file_up_axis, load_mesh

    vertices, faces = load_mesh(path)
    if (file_up_axis(path) if up == "auto" else up) == "y":
        vertices = y_up_to_z_up(vertices)
    vertices, faces = np.ascontiguousarray(vertices, np.float32), np.ascontiguousarray(faces, np.int32)
    protocol.validate_mesh(vertices, faces)
    return vertices, faces, "z"


def y_up_to_z_up(vertices):
    """glTF/OBJ (x, y, z) -> Blender (x, -z, y): the rotation Blender's glTF importer applies."""
    import numpy as np

    v = np.asarray(vertices)
    return np.stack([v[:, 0], -v[:, 2], v[:, 1]], axis=1)


def z_up_to_y_up(vertices):
    """The inverse of y_up_to_z_up: Blender (x, y, z) -> glTF/OBJ (x, z, -y)."""
    import numpy as np

    v = np.asarray(vertices)
    return np.stack([v[:, 0], v[:, 2], -v[:, 1]], axis=1)


def variation_path(path: str, index: int) -> str:
    """chair.glb, variation 0 -> chair-1.glb (variations are numbered from 1 in file names)."""
    p = Path(path)
    return str(p.with_name(f"{p.stem}-{index + 1}{p.suffix}"))


def _check_output(path: str) -> None:
    """Fail before the model runs, not after, when the result could not be written."""
    from backend.geometry.errors import UNSUPPORTED_FORMAT, GeometryError
    from backend.geometry.meshio import WRITABLE

    if Path(path).suffix.lower() not in WRITABLE:
        raise GeometryError(UNSUPPORTED_FORMAT, f"cannot write {path}; use one of {', '.join(WRITABLE)}")


def _save_mesh(path: str, vertices, faces) -> None:
    from backend.geometry.meshio import file_up_axis, save_mesh

    if file_up_axis(path) == "y":  # the pipeline's shapes are Z-up; glTF is Y-up by definition
        vertices = z_up_to_y_up(vertices)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    save_mesh(path, vertices, faces)


add_command("serve", "run the backend service (ZeroMQ)", _configure_serve, _run_serve)
add_command("keygen", "create a CurveZMQ key pair for remote use", _configure_keygen, _run_keygen)
add_command("generate", "generate a mesh file from a prompt or an image", _configure_generate, _run_generate)
add_command("describe", "describe the shape in a mesh file", _configure_describe, _run_describe)
add_command("edit", "edit a mesh file with an instruction", _configure_edit, _run_edit)
