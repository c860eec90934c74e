"""Model presets: everything a task needs (weights, prompts, normalisation, generation defaults).

A preset folder holds `preset.json`:

    {
      "name": "embedded",
      "vqvae": "vqvae",              # sub-folder of the preset folder, or a Hugging Face repo id
      "vqvae_file": null,            # the weights file inside a hub repo (published: "3DVQVAE.bin")
      "llm": "llm",                  # sub-folder (save_pretrained layout) or a hub repo id
      "prompts": {"text_to_3d": "...{text}...", "image_to_3d": "...",
                  "describe": "...", "edit": "...{instruction}..."},
      "normalization": "training",   # "training" | "demo" | "corner" (backend/geometry/normalize.py)
      "up": "z",                     # up axis of the model's own frame (only Z-up, the published one)
      "generation": {"max_new_tokens": 2048, "top_k": 8192, "top_p": 0.7,
                     "temperature": 0.7, "seed": 42},
      "tasks": ["text_to_3d", "image_to_3d", "describe", "edit"],
      "lowercase_text": false,       # lower-case the artist's prompt, question and instruction
                                     # first (a model trained on lower-case wordings only)
      "dtype": "auto",               # the LLM's dtype: auto|float32|bfloat16|float16 (auto: the
                                     # rule in backend/models/memory.py); `serve --dtype` overrides
      "quantization": "none",        # none|8bit|4bit (bitsandbytes); `--quantize` overrides
      "engine": "own",               # the LLM engine: own (our decoding loop, one job at a time)
                                     # or vllm (a vLLM server, many jobs batched); `--engine` overrides
      "edit": {                      # how the model edits (EditSettings; the published model: all off)
        "aligned_positions": false,  # edit answers positioned like the input block
        "read_kind": false,          # the model names the edit kind (the "edit_kind" prompt);
                                     # taller/shorter/wider/thinner resize the input's voxels
                                     # (geometry/resize.py), other kinds are the model's answer
        "min_overlap": 0.0,          # a model-written answer that keeps less of its source than
                                     # this (placement.best_shift_overlap) is refused (no_shape)
        "min_confidence": 0.0        # with read_kind: an instruction the model reads less sure
                                     # than this is refused as no shape edit it knows (no_shape)
      }
    }

Only "name", "vqvae" and "llm" are required; the rest default to the reference values. Built-in
names: `embedded` (the folder backend/weights/embedded/) and `shapellm-omni-7b` (the published
weights, fetched through the Hugging Face cache).
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from addon.wire.protocol import TASKS
from backend.errors import TaskError
from backend.geometry.normalize import CONVENTIONS

PRESET_FILE = "preset.json"
NORMALIZATIONS = CONVENTIONS
# The model's own frame. The published VQVAE is Z-up; inputs in other frames are turned Z-up by
# the pipeline (options["up"]), so no other model frame is needed yet.
UP_AXES = ("z",)

# How the LLM may load (backend/models/memory.py; named here so presets load without torch).
LLM_DTYPES = ("auto", "float32", "bfloat16", "float16")
LLM_QUANTIZATIONS = ("none", "8bit", "4bit")
# Who runs the LLM: our own KV-cache loop, or a vLLM server (backend/models/vllm_runtime.py).
LLM_ENGINES = ("own", "vllm")

# Reference demo settings (reference doc section 3).
REFERENCE_GENERATION = {"max_new_tokens": 2048, "top_k": 8192, "top_p": 0.7, "temperature": 0.7, "seed": 42}
GENERATION_KEYS = tuple(REFERENCE_GENERATION)

# Reference demo prompts. Edit has no published template: the instruction follows the mesh
# block in the user turn, like the describe question does.
REFERENCE_PROMPTS = {
    "text_to_3d": "Please generate a 3D asset based on the prompt I provided: {text}",
    "image_to_3d": "Generate a 3D mesh from the provided image.",
    "describe": "Give a quick overview of the object represented by this 3D mesh.",
    "edit": "Edit this 3D mesh: {instruction}",
}
# The placeholder each template must contain.
PROMPT_FIELDS = {"text_to_3d": "{text}", "edit": "{instruction}"}

EMBEDDED_FOLDER = Path(__file__).resolve().parents[1] / "weights" / "embedded"
_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


@dataclass(frozen=True)
class EditSettings:
    """How a preset's model edits; passed whole to the runtime and the edit policy."""

    # edit answers positioned like the input block (codec.aligned_positions), as the model was trained
    aligned_positions: bool = False
    # the model names the edit kind when asked the 'edit_kind' prompt; taller/shorter/wider/thinner
    # resize the source's voxels (backend/edit.py), add and remove stay the model's answer
    read_kind: bool = False
    # a model-written answer (not a resize) that keeps less of its source than this (placed, at
    # the best small shift: placement.best_shift_overlap) is refused: the model gave another
    # shape, not this one edited (0: never refused)
    min_overlap: float = 0.0
    # with read_kind: an instruction whose kind the model reads less sure than this is refused
    # ("make it red" reads as some kind at 50-65%): no edit is better than a wrong one (0: never)
    min_confidence: float = 0.0

    def problems(self) -> list[str]:
        found = [f"edit.{key} must be true or false, not {getattr(self, key)!r}"
                 for key in ("aligned_positions", "read_kind") if not isinstance(getattr(self, key), bool)]
        for key in ("min_overlap", "min_confidence"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1:
                found.append(f"edit.{key} must be a number in [0, 1), not {value!r}")
        return found


@dataclass
class Preset:
    name: str
    vqvae: str
    llm: str
    vqvae_file: str | None = None
    prompts: dict = field(default_factory=lambda: dict(REFERENCE_PROMPTS))
    normalization: str = "training"
    up: str = "z"
    generation: dict = field(default_factory=lambda: dict(REFERENCE_GENERATION))
    tasks: tuple = TASKS
    lowercase_text: bool = False
    edit: EditSettings = EditSettings()
    dtype: str = "auto"  # how the LLM loads (backend/models/memory.py)
    quantization: str = "none"
    # The objects a model can make, for a model trained to decline others (the embedded one):
    # when set, text to 3D first asks the model whether it starts a shape, and a decline is
    # refused with a message naming these. Empty: every prompt gets a shape (the published model).
    known_objects: tuple = ()
    # ...and a prompt is declined when the model's probability of starting a shape is under this
    decline_below: float = 0.5
    # a word list in the preset folder (tools/build_lexicon.py) that text to 3D reads the prompt
    # with first (backend/prompt_words.py): a named or described object is asked in the
    # training's wording, a thing the model does not know is refused. None: the prompt as typed.
    lexicon: str | None = None
    engine: str = "own"  # own | vllm
    folder: Path | None = None  # where relative sources live; None for a built-in hub preset

    def __post_init__(self):
        self.tasks = tuple(self.tasks)
        self.known_objects = tuple(self.known_objects)
        if isinstance(self.edit, dict):  # as read from preset.json
            unknown = set(self.edit) - {f.name for f in fields(EditSettings)}
            if unknown:
                raise TaskError("model_error", f"preset {self.name!r}: unknown edit settings {sorted(unknown)}")
            self.edit = EditSettings(**self.edit)
        if not isinstance(self.edit, EditSettings):
            raise TaskError("model_error", f"preset {self.name!r}: edit must be an object of edit settings")
        self.prompts = {**REFERENCE_PROMPTS, **self.prompts}
        self.generation = {**REFERENCE_GENERATION, **self.generation}
        self.validate()

    def validate(self) -> None:
        where = f"preset {self.name!r}" + (f" ({self.folder / PRESET_FILE})" if self.folder else "")
        problems = []
        if self.normalization not in NORMALIZATIONS:
            problems.append(f"normalization must be one of {NORMALIZATIONS}, not {self.normalization!r}")
        if isinstance(self.decline_below, bool) or not isinstance(self.decline_below, (int, float)) \
                or not 0 <= self.decline_below <= 1:
            problems.append(f"decline_below must be a number in [0, 1], not {self.decline_below!r}")
        if self.up not in UP_AXES:
            problems.append(f"up must be one of {UP_AXES}, not {self.up!r}")
        unknown = set(self.tasks) - set(TASKS)
        if unknown:
            problems.append(f"unknown tasks {sorted(unknown)}; known: {TASKS}")
        for task, placeholder in PROMPT_FIELDS.items():
            if placeholder not in self.prompts.get(task, ""):
                problems.append(f"prompt {task!r} must contain {placeholder}")
        if self.lexicon is not None and not (isinstance(self.lexicon, str) and self.lexicon):
            problems.append(f"lexicon must be a file name in the preset folder, not {self.lexicon!r}")
        elif self.lexicon is not None and self.folder is not None and not (self.folder / self.lexicon).is_file():
            problems.append(f"lexicon {self.lexicon!r} is not a file in {self.folder}")
        if not isinstance(self.lowercase_text, bool):
            problems.append(f"lowercase_text must be true or false, not {self.lowercase_text!r}")
        problems += self.edit.problems()
        if self.dtype not in LLM_DTYPES:
            problems.append(f"dtype must be one of {LLM_DTYPES}, not {self.dtype!r}")
        if self.quantization not in LLM_QUANTIZATIONS:
            problems.append(f"quantization must be one of {LLM_QUANTIZATIONS}, not {self.quantization!r}")
        if self.engine not in LLM_ENGINES:
            problems.append(f"engine must be one of {LLM_ENGINES}, not {self.engine!r}")
        if self.edit.read_kind is True and "{instruction}" not in self.prompts.get("edit_kind", ""):
            problems.append("edit.read_kind needs an 'edit_kind' prompt with {instruction} (the kind question)")
        bad_gen = set(self.generation) - set(GENERATION_KEYS)
        if bad_gen:
            problems.append(f"unknown generation keys {sorted(bad_gen)}; known: {GENERATION_KEYS}")
        if problems:
            raise TaskError("model_error", f"{where}: " + "; ".join(problems))

    def supports(self, task: str) -> bool:
        return task in self.tasks

    def model_text(self, text: str) -> str:
        """The artist's words as the model reads them."""
        return text.lower() if self.lowercase_text else text

    def vqvae_source(self) -> str | Path:
        return self._source(self.vqvae)

    def llm_source(self) -> str | Path:
        return self._source(self.llm)

    def _source(self, value: str) -> str | Path:
        """A sub-folder of the preset folder, or else a hub repo id / absolute path as written."""
        if self.folder is not None:
            local = self.folder / value
            if local.exists() or not _REPO_ID.match(value):
                return local
        return value

    def to_json(self) -> dict:
        d = asdict(self)
        d.pop("folder")
        d["tasks"] = list(self.tasks)
        d["known_objects"] = list(self.known_objects)
        return d

    def save(self, folder: str | Path) -> Path:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / PRESET_FILE).write_text(json.dumps(self.to_json(), indent=2) + "\n")
        return folder


def shapellm_omni_7b() -> Preset:
    """The published weights with the reference demo's prompts, normalisation and sampling."""
    return Preset(
        name="shapellm-omni-7b",
        vqvae="yejunliang23/3DVQVAE",
        vqvae_file="3DVQVAE.bin",
        llm="yejunliang23/ShapeLLM-7B-omni",
        prompts=dict(REFERENCE_PROMPTS),
        normalization="demo",
        up="z",
        generation=dict(REFERENCE_GENERATION),
        tasks=TASKS,
    )


BUILTIN_NAMES = ("embedded", "shapellm-omni-7b")


def read_preset_folder(folder: str | Path) -> Preset:
    folder = Path(folder).expanduser().resolve()
    path = folder / PRESET_FILE
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise TaskError("model_unavailable", f"no {PRESET_FILE} in {folder}") from None
    except (OSError, ValueError) as err:
        raise TaskError("model_error", f"cannot read {path}: {err}") from err
    if not isinstance(data, dict):
        raise TaskError("model_error", f"{path} must hold a JSON object")
    known = set(Preset.__dataclass_fields__) - {"folder"}
    unknown = set(data) - known
    missing = {"name", "vqvae", "llm"} - set(data)
    if unknown or missing:
        raise TaskError("model_error", f"{path}: unknown keys {sorted(unknown)}, missing keys {sorted(missing)}")
    try:
        return Preset(**data, folder=folder)
    except TypeError as err:
        raise TaskError("model_error", f"{path}: {err}") from err


def load_preset(name_or_folder: str | Path) -> Preset:
    """A built-in preset by name, or a preset folder."""
    if name_or_folder == "shapellm-omni-7b":
        return shapellm_omni_7b()
    if name_or_folder == "embedded":
        if not (EMBEDDED_FOLDER / PRESET_FILE).is_file():
            raise TaskError(
                "model_unavailable",
                f"the embedded default model is not installed ({EMBEDDED_FOLDER / PRESET_FILE} is missing); "
                "choose the shapellm-omni-7b preset or a preset folder",
            )
        return read_preset_folder(EMBEDDED_FOLDER)
    folder = Path(str(name_or_folder)).expanduser()
    if folder.is_dir():
        return read_preset_folder(folder)
    raise TaskError(
        "model_unavailable",
        f"unknown preset {str(name_or_folder)!r}: not one of {BUILTIN_NAMES} and not a folder",
    )
