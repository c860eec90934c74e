"""Loading weights from a local file/folder or a Hugging Face repo id; saving/loading VQVAE folders.

Sources:
- a local file (`.bin`, `.pt`, `.safetensors`): loaded as is;
- a local folder: `folder / filename`;
- anything else of the form `owner/name`: a Hugging Face repo id, fetched through huggingface_hub
  (its cache; with HF_HUB_OFFLINE set nothing is downloaded and a missing file is a clear
  `model_unavailable` error naming the repo and the file).

Pickled `.bin` files are read with torch.load(weights_only=True): tensors only, never arbitrary
objects.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import torch

from backend.errors import TaskError
from backend.models.vqvae import VQVAE3D, VQVAEConfig

MODEL_UNAVAILABLE = "model_unavailable"
MODEL_ERROR = "model_error"

PUBLISHED_VQVAE_REPO = "yejunliang23/3DVQVAE"
PUBLISHED_VQVAE_FILE = "3DVQVAE.bin"
PUBLISHED_VQVAE_CONFIG = VQVAEConfig()  # the published sizes are the defaults

VQVAE_CONFIG_FILE = "config.json"
VQVAE_WEIGHTS_FILE = "model.safetensors"

_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
_TRUE = {"1", "ON", "YES", "TRUE"}


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """"auto" -> CUDA when available, else Apple's MPS when available, else CPU. A named
    device that this machine lacks is a clear error here, not a crash at the first tensor.
    MPS is untested here (no Apple hardware): it is what PyTorch offers on Apple Silicon."""
    if str(device) == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        return torch.device("mps" if _mps_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as err:
        raise TaskError("bad_field", f"unknown device {device!r}: use auto, cpu, cuda, cuda:N or mps") from err
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise TaskError(MODEL_ERROR, "CUDA was asked for but is not available")
    if dev.type == "mps" and not _mps_available():
        raise TaskError(MODEL_ERROR, "MPS (Apple Silicon GPU) was asked for but is not available")
    if dev.type not in ("cpu", "cuda", "mps"):
        raise TaskError("bad_field", f"unsupported device {device!r}: use auto, cpu, cuda, cuda:N or mps")
    return dev


def _mps_available() -> bool:
    mps = getattr(torch.backends, "mps", None)
    return bool(mps is not None and mps.is_available())


def hub_offline() -> bool:
    """HF_HUB_OFFLINE, read now (huggingface_hub reads it once, at import)."""
    from huggingface_hub import constants

    return bool(constants.HF_HUB_OFFLINE) or os.environ.get("HF_HUB_OFFLINE", "").upper() in _TRUE


def is_repo_id(source: str | Path) -> bool:
    """True for `owner/name` that is not an existing local path."""
    text = str(source)
    return not Path(text).expanduser().exists() and bool(_REPO_ID.match(text))


def resolve_file(source: str | Path, filename: str | None = None) -> Path:
    """The local path of `filename` in `source` (a file, a folder or a hub repo id)."""
    path = Path(str(source)).expanduser()
    if path.is_file():
        return path
    if path.is_dir():
        if filename is None:
            raise TaskError(MODEL_UNAVAILABLE, f"{path} is a folder; name the weights file to load from it")
        target = path / filename
        if not target.is_file():
            raise TaskError(MODEL_UNAVAILABLE, f"{filename} not found in {path}")
        return target
    if is_repo_id(source):
        if filename is None:
            raise TaskError(MODEL_UNAVAILABLE, f"name the file to load from the Hugging Face repo {source}")
        return _hub_download(str(source), filename)
    raise TaskError(MODEL_UNAVAILABLE, f"{source} is neither a file, a folder nor a Hugging Face repo id")


def _hub_download(repo_id: str, filename: str) -> Path:
    from huggingface_hub import hf_hub_download

    offline = hub_offline()
    # HF_HUB_CACHE read now, for the same reason as HF_HUB_OFFLINE.
    cache_dir = os.environ.get("HF_HUB_CACHE") or None
    try:
        return Path(hf_hub_download(repo_id, filename, cache_dir=cache_dir, local_files_only=offline))
    except Exception as err:  # hub errors are many (network, 404, gated); all mean "not available"
        if offline:
            message = (
                f"{filename} from the Hugging Face repo {repo_id} is not in the local cache and "
                f"HF_HUB_OFFLINE is set; download it first (huggingface-cli download {repo_id} {filename})"
            )
        else:
            message = f"could not fetch {filename} from the Hugging Face repo {repo_id}: {err}"
        raise TaskError(MODEL_UNAVAILABLE, message) from err


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """A state_dict from a local `.safetensors` file or a pickled torch file (tensors only)."""
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path), device="cpu")
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise TaskError(MODEL_ERROR, f"could not read weights from {path}: {err}") from err
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise TaskError(MODEL_ERROR, f"{path} does not hold a flat state_dict of tensors")
    return state


def load_state_dict(source: str | Path, filename: str | None = None) -> dict[str, torch.Tensor]:
    """Tensors from `filename` in `source` (file, folder or hub repo id), on the CPU."""
    return read_state_dict(resolve_file(source, filename))


def save_vqvae(folder: str | Path, model: VQVAE3D) -> Path:
    """Write `config.json` + `model.safetensors` (fp32) into `folder`."""
    from safetensors.torch import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    model.config.save(folder / VQVAE_CONFIG_FILE)
    tensors = {k: v.detach().to("cpu", torch.float32).contiguous() for k, v in model.state_dict().items()}
    save_file(tensors, str(folder / VQVAE_WEIGHTS_FILE))
    return folder


def load_vqvae(
    source: str | Path = PUBLISHED_VQVAE_REPO,
    device: str | torch.device = "cpu",
    filename: str | None = None,
) -> VQVAE3D:
    """A VQVAE ready for inference on `device` (fp16 inner blocks on CUDA, fp32 on CPU).

    `source` is either
    - our folder format (`config.json` + `model.safetensors`, written by save_vqvae), as a local
      folder or a hub repo id; or
    - the published checkpoint, with the published config: the repo `yejunliang23/3DVQVAE`
      (file `3DVQVAE.bin`), a local copy of that file, or a folder holding it. A hub repo is
      read this way when it is the published repo or `filename` is the published file name.
    """
    path = Path(str(source)).expanduser()
    if path.is_file():
        config, state = PUBLISHED_VQVAE_CONFIG, load_state_dict(path)
    elif path.is_dir() and not (path / VQVAE_CONFIG_FILE).is_file():
        config, state = PUBLISHED_VQVAE_CONFIG, load_state_dict(path, filename or PUBLISHED_VQVAE_FILE)
    elif is_repo_id(source) and (str(source) == PUBLISHED_VQVAE_REPO or filename == PUBLISHED_VQVAE_FILE):
        config, state = PUBLISHED_VQVAE_CONFIG, load_state_dict(source, filename or PUBLISHED_VQVAE_FILE)
    else:  # our folder format, local or on the hub
        config_path = resolve_file(source, VQVAE_CONFIG_FILE)
        try:
            config = VQVAEConfig.load(config_path)
        except (ValueError, TypeError) as err:
            raise TaskError(MODEL_ERROR, f"bad VQVAE config in {config_path}: {err}") from err
        state = load_state_dict(source, filename or VQVAE_WEIGHTS_FILE)
    return build_vqvae(config, state, device, origin=str(source))


def build_vqvae(config: VQVAEConfig, state: dict, device: str | torch.device, origin: str = "") -> VQVAE3D:
    # Built on the meta device and filled by assignment: no time spent on a random init of
    # 133 M parameters that the checkpoint overwrites anyway.
    with torch.device("meta"):
        model = VQVAE3D(config)
    mismatch = describe_mismatch(model.state_dict(), state)
    if mismatch:
        raise TaskError(MODEL_ERROR, f"weights from {origin} do not fit the VQVAE config: {mismatch}")
    model.load_state_dict(state, strict=True, assign=True)
    return model.prepare(resolve_device(device))


def describe_mismatch(expected: dict, given: dict, show: int = 3) -> str:
    """"" when keys and shapes agree; else a short account of what differs."""
    missing = [k for k in expected if k not in given]
    unexpected = [k for k in given if k not in expected]
    shapes = [
        f"{k} {tuple(given[k].shape)} instead of {tuple(expected[k].shape)}"
        for k in expected
        if k in given and tuple(given[k].shape) != tuple(expected[k].shape)
    ]
    parts = []
    for label, items in (("missing keys", missing), ("unexpected keys", unexpected), ("shape mismatches", shapes)):
        if items:
            more = f", ... ({len(items)} in all)" if len(items) > show else ""
            parts.append(f"{label}: {', '.join(items[:show])}{more}")
    return "; ".join(parts)
