"""What the LLM load will take, decided before anything is loaded.

    dtype = choose_dtype("auto", device, checkpoint_dtype(folder))
    plan = plan_load(config, device, dtype, quantization="none")   # bytes needed vs free
    plan.check()   # TaskError("model_unavailable") naming what would fit, before any weight is read

The dtype rule ("auto"):
- CPU: the checkpoint's dtype (config.json `dtype` / `torch_dtype`) when it is float32 (the
  embedded model: trained and saved in float32, so its outputs stay exactly as trained); a
  half-precision checkpoint (the published 7B: bfloat16) loads in bfloat16 where the CPU computes
  bfloat16 natively (AVX512-BF16/AMX on x86, BF16 on Arm), else in float32 with a log message
  (emulated bfloat16 is slow; `--dtype bfloat16` still asks for it).
- CUDA: the checkpoint's dtype; bfloat16 becomes float16 on a GPU without bfloat16.
- MPS (Apple Silicon, untested here): the checkpoint's dtype.
- No dtype in config.json: float32.

The plan counts parameters from the config's shapes (text model, LM head, vision tower), times
the bytes per parameter of the dtype (8-bit/4-bit: the linear weights of the text decoder and
of the vision tower at 1 or ~0.56 bytes, all else in the compute dtype), plus working memory
(the KV cache of a 4096-token context, the process's buffers). Free memory: MemAvailable of
/proc/meminfo on CPU (free pages where there is no /proc), torch.cuda.mem_get_info on CUDA,
Metal's recommended working set less what it holds on MPS; where none can be read the plan is
logged and not enforced.
SHAPELLM_MEMORY_AVAILABLE (bytes, or with a K/M/G/T suffix: binary units) plans for that much
instead: to keep headroom on a shared machine, and for tests.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import torch

from backend.errors import TaskError
from backend.models.presets import LLM_DTYPES as DTYPE_CHOICES
from backend.models.presets import LLM_QUANTIZATIONS as QUANTIZATIONS

log = logging.getLogger(__name__)

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
MEMORY_ENV = "SHAPELLM_MEMORY_AVAILABLE"

# Tokens of context the plan keeps KV cache for: an edit (mesh block in, mesh block out) or a
# describe of up to 2048 tokens stays under it.
PLAN_CONTEXT = 4096
# Process buffers besides the weights (allocator slack, logits, activations, the loader's
# per-tensor conversion); half of it on a GPU, where the loader keeps no CPU-side copies there.
WORKING_MARGIN = 1 << 30
WORKING_SHARE = 0.05
# bitsandbytes: int8 weights + one scale per row; NF4: half a byte + a scale per 64 weights.
QUANT_BYTES = {"8bit": 1.0, "4bit": 0.5 + 4 / 64}


def gib(n: float) -> str:
    return f"{n / 2**30:.1f} GiB"


# ------------------------------------------------------------------------------------------
# dtype


def checkpoint_dtype(folder: str | Path) -> torch.dtype | None:
    """The dtype config.json says the weights were saved in (None when it says nothing)."""
    try:
        raw = json.loads((Path(folder) / "config.json").read_text())
    except (OSError, ValueError):
        return None
    for where in (raw, raw.get("text_config") or {}):
        name = where.get("dtype") or where.get("torch_dtype")
        if isinstance(name, str) and name in DTYPES:
            return DTYPES[name]
    return None


def cpu_has_bf16() -> bool:
    """True when this CPU computes bfloat16 natively (not emulated through float32)."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except Exception:  # a private op: fall back to the CPU's own feature flags
        pass
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    flags = set(text.split())
    return bool({"avx512_bf16", "amx_bf16", "bf16"} & flags)


def choose_dtype(requested: str, device: torch.device, checkpoint: torch.dtype | None,
                 cpu_bf16: bool | None = None) -> torch.dtype:
    """The dtype to load the LLM in (the rule in the module docstring)."""
    if requested not in DTYPE_CHOICES:
        raise TaskError("bad_field", f"dtype must be one of {DTYPE_CHOICES}, not {requested!r}")
    if requested != "auto":
        return DTYPES[requested]
    saved = checkpoint or torch.float32
    if device.type == "cpu":
        if saved == torch.float32:
            return torch.float32
        if cpu_has_bf16() if cpu_bf16 is None else cpu_bf16:
            return torch.bfloat16
        log.warning("this CPU has no native bfloat16: loading the %s checkpoint in float32 (twice the "
                    "memory; --dtype bfloat16 forces bfloat16, emulated and slower)", str(saved).removeprefix("torch."))
        return torch.float32
    if device.type == "cuda" and saved == torch.bfloat16 and not torch.cuda.is_bf16_supported():
        return torch.float16
    return saved


# ------------------------------------------------------------------------------------------
# Parameters from the config's shapes


def count_parameters(config) -> dict[str, int]:
    """Parameters of a Qwen2_5_VLForConditionalGeneration built from `config`, by part:
    embed (input embeddings), decoder_linear (the quantisable q/k/v/o/gate/up/down weights),
    decoder_other (their biases, the norms), lm_head, vision_linear (the vision tower's linear
    weights), vision_other (its patch conv, norms, biases). Checked against the built model
    in tests/test_memory_plan.py."""
    t = config.text_config
    hidden, inter, layers = t.hidden_size, t.intermediate_size, t.num_hidden_layers
    head_dim = getattr(t, "head_dim", None) or hidden // t.num_attention_heads
    q_dim, kv_dim = t.num_attention_heads * head_dim, t.num_key_value_heads * head_dim
    linear = hidden * q_dim + 2 * hidden * kv_dim + q_dim * hidden + 3 * hidden * inter
    other = q_dim + 2 * kv_dim + 2 * hidden  # q/k/v biases, two RMSNorms
    tied = bool(getattr(config, "tie_word_embeddings", False) or getattr(t, "tie_word_embeddings", False))
    v = config.vision_config
    vh, vi, merge = v.hidden_size, v.intermediate_size, v.spatial_merge_size
    patch = v.in_channels * v.temporal_patch_size * v.patch_size**2 * vh
    block_linear = vh * 3 * vh + vh * vh + 3 * vh * vi  # qkv, proj, gate/up/down
    block_other = 2 * vh + 3 * vh + vh + 2 * vi + vh  # norms and biases
    merged = vh * merge**2
    return {
        "embed": t.vocab_size * hidden,
        "decoder_linear": layers * linear,
        "decoder_other": layers * other + hidden,  # + the final norm
        "lm_head": 0 if tied else t.vocab_size * hidden,
        "vision_linear": v.depth * block_linear + merged * merged + merged * v.out_hidden_size,
        "vision_other": patch + v.depth * block_other + vh + merged + v.out_hidden_size,
    }


QUANTISED_PARTS = ("decoder_linear", "vision_linear")  # the nn.Linear weights bitsandbytes replaces


# ------------------------------------------------------------------------------------------
# Free memory


def parse_bytes(text: str) -> int:
    """'123456', '24G', '512M' (binary units) -> bytes."""
    text = text.strip().upper().removesuffix("IB").removesuffix("B")
    scale = {"K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}.get(text[-1:], 1)
    number = text[:-1] if scale != 1 else text
    return int(float(number) * scale)


def available_bytes(device: torch.device) -> tuple[int | None, str]:
    """(free bytes the load may use or None when unknown, what was measured)."""
    forced = os.environ.get(MEMORY_ENV)
    if forced:
        try:
            return parse_bytes(forced), f"{MEMORY_ENV}"
        except ValueError:
            raise TaskError("bad_field", f"{MEMORY_ENV}={forced!r} is not a number of bytes") from None
    if device.type == "cuda":
        free, _total = torch.cuda.mem_get_info(device)
        return int(free), f"free memory on {device}"
    if device.type == "mps":  # Metal's working-set limit for this process (untested here)
        try:
            return int(torch.mps.recommended_max_memory() - torch.mps.driver_allocated_memory()), "free MPS memory"
        except Exception:
            pass
    return _free_ram(), "available RAM"  # unknown (None) where neither is readable: no refusal


def _free_ram() -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:  # no /proc (macOS): free pages only, which undercounts reclaimable cache
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


# ------------------------------------------------------------------------------------------
# The plan


@dataclass
class LoadPlan:
    device: torch.device
    dtype: torch.dtype
    quantization: str
    parameters: int
    weight_bytes: int
    working_bytes: int
    available: int | None
    measured: str  # what `available` is
    alternatives: list[str]  # what would fit instead, as the user would ask for it

    @property
    def needed(self) -> int:
        return self.weight_bytes + self.working_bytes

    @property
    def fits(self) -> bool:
        return self.available is None or self.needed <= self.available

    def describe(self) -> str:
        how = self.quantization if self.quantization != "none" else str(self.dtype).removeprefix("torch.")
        free = "unknown" if self.available is None else gib(self.available)
        count = f"{self.parameters / 1e9:.2f} B" if self.parameters >= 1e8 else f"{self.parameters / 1e6:.1f} M"
        return (f"{count} parameters in {how} on {self.device}: {gib(self.needed)} "
                f"({gib(self.weight_bytes)} weights + {gib(self.working_bytes)} working); {self.measured}: {free}")

    def check(self) -> None:
        if self.fits:
            return
        instead = ("; would fit: " + ", ".join(self.alternatives)) if self.alternatives else (
            "; nothing smaller would fit on this machine either")
        raise TaskError("model_unavailable", f"not enough memory to load the LLM: {self.describe()}{instead}")


def weight_bytes(parts: dict[str, int], dtype: torch.dtype, quantization: str = "none") -> int:
    size = torch.empty((), dtype=dtype).element_size()
    total = sum(parts.values())
    if quantization == "none":
        return total * size
    quantised = sum(parts[k] for k in QUANTISED_PARTS)
    return int(quantised * QUANT_BYTES[quantization] + (total - quantised) * size)


def working_bytes(config, device: torch.device, dtype: torch.dtype, weights: int) -> int:
    t = config.text_config
    head_dim = getattr(t, "head_dim", None) or t.hidden_size // t.num_attention_heads
    kv = 2 * t.num_hidden_layers * t.num_key_value_heads * head_dim * PLAN_CONTEXT
    margin = WORKING_MARGIN if device.type == "cpu" else WORKING_MARGIN // 2  # no loader copies on a GPU
    return kv * torch.empty((), dtype=dtype).element_size() + margin + int(WORKING_SHARE * weights)


def plan_load(config, device: torch.device, dtype: torch.dtype, quantization: str = "none",
              available: int | None = None, other_devices: tuple[str, ...] | None = None) -> LoadPlan:
    """The plan for loading `config`'s model on `device` in `dtype`; `available` (bytes) replaces
    the measured free memory (tests). other_devices: devices to suggest when nothing fits here
    (default: CUDA when present and not the target, else the CPU)."""
    if quantization not in QUANTIZATIONS:
        raise TaskError("bad_field", f"quantization must be one of {QUANTIZATIONS}, not {quantization!r}")
    parts = count_parameters(config)
    measured = "given"
    if available is None:
        available, measured = available_bytes(device)

    def need(d, q):
        w = weight_bytes(parts, d, q)
        return w + working_bytes(config, device, d, w)

    weights = weight_bytes(parts, dtype, quantization)
    alternatives = []
    if available is not None and need(dtype, quantization) > available:
        half = torch.bfloat16 if device.type != "cuda" or torch.cuda.is_bf16_supported() else torch.float16
        options = [] if quantization != "none" else [(f"--dtype {str(half).removeprefix('torch.')}", half, "none")]
        # bitsandbytes runs on CPUs too (slower there than bfloat16: say the smaller first)
        options += [(f"--quantize {q}", half, q) for q in ("8bit", "4bit")]
        for label, d, q in options:
            if (d, q) != (dtype, quantization) and need(d, q) <= available:
                alternatives.append(f"{label} ({gib(need(d, q))})")
        if other_devices is None:
            other_devices = ("cuda",) if device.type != "cuda" and torch.cuda.is_available() else (
                ("cpu",) if device.type != "cpu" else ())
        for name in other_devices:
            other = torch.device(name)
            free, _ = available_bytes(other) if name != device.type else (available, "")
            plain = torch.bfloat16 if name == "cpu" else half
            for label, d, q in [("", plain, "none"), ("--quantize 4bit ", half, "4bit")]:
                if free is not None and need(d, q) <= free:
                    alternatives.append(f"--device {name} {label}({gib(need(d, q))} of {gib(free)} free)")
                    break
    return LoadPlan(device, dtype, quantization, sum(parts.values()), weights,
                    working_bytes(config, device, dtype, weights), available, measured, alternatives)
