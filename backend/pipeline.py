"""The four tasks end to end: geometry + VQVAE + LLM runtime (contract in docs/architecture.md).

    mesh (caller's coordinates) -> clean -> normalise (preset convention) -> 64^3 surface voxels
        -> VQVAE encode -> 1024 codes -> LLM -> 1024 codes -> VQVAE decode -> occupancy
        -> surface mesh (unit cube; for edit mapped back to the caller's coordinates)

Models load lazily on the first task (stage "load") and stay loaded until release(). Stages
reported through progress(stage, done, total): load, encode, tokens (from the LLM runtime, per
mesh token), decode, surface. cancelled() is checked between stages (and by the runtime after
every decoding step); when true, the task raises Cancelled.
"""

from __future__ import annotations

import contextlib
import io
import threading
from dataclasses import dataclass, replace

import numpy as np

from addon.wire.protocol import ProtocolError, validate_options
from backend import edit as edit_policy
from backend.captions import consistent_caption
from backend.checks import checked_text
from backend.errors import CancelCheck, Cancelled, Progress, TaskError
from backend.geometry import errors as geometry_errors
from backend.geometry.attributes import CHECKED as CHECKED_ATTRIBUTES
from backend.geometry.attributes import missing, shape_attributes
from backend.geometry.parts import find_layout
from backend.geometry.deform import caller_maps, deform, edit_summary, exact_ratio
from backend.geometry.errors import GeometryError
from backend.models.presets import GENERATION_KEYS, TASKS, Preset, load_preset
from backend.prompt_words import Lexicon, PromptRead, names_fronted, read_prompt



DEFAULT_VLLM_JOBS = 8  # jobs at once on a vLLM engine unless max_jobs says otherwise
# an answer that is not what the prompt asked (the model's caption of it names another object, or
# an asked back, armrests, round top or pedestal is missing): this many sampled answers, in one
# batch, at the panel's temperature, are tried for one that is
RETRY_SAMPLES = 4
RETRY_TEMPERATURE = 0.7

# Geometry error codes -> wire error codes, for meshes the caller sent.
_INPUT_MESH_CODES = {
    geometry_errors.EMPTY_MESH: "empty_mesh",
    geometry_errors.INVALID_MESH: "bad_mesh",
    geometry_errors.NON_FINITE: "bad_mesh",
    geometry_errors.DEGENERATE_MESH: "bad_mesh",
    geometry_errors.INVALID_ARGUMENT: "bad_field",
}


@dataclass
class MeshResult:
    vertices: np.ndarray  # float32 [N, 3]
    faces: np.ndarray  # int32 [M, 3]
    codes: np.ndarray  # int32 [1024]: the shape's VQVAE codes
    edit_kind: str | None = None  # an edit's kind as the model read it (presets that name kinds)
    edit_kind_confidence: float | None = None  # the model's probability of that kind among the six
    # bool [R, R, R]: the occupancy the mesh was meshed from, in the model's unit frame (before
    # the mesh was mapped back to the caller's)
    voxels: np.ndarray | None = None
    # a proportion edit: the caller's own mesh moved by these maps of its axes (resize.AxisMap,
    # caller's coordinates); vertices and faces are then the caller's, moved, not a remesh
    deform: list | None = None
    edit_summary: str | None = None  # what an edit did, for the artist ("height x1.35: 0.8 -> 1.08")
    # the artist's own mesh kept: vertices are the caller's, in order (moved), faces the caller's
    # less `removed_faces` (their indices); `added` a new part (vertices, faces), or None
    kept_mesh: bool = False
    removed_faces: np.ndarray | None = None
    added: tuple | None = None
    seed: int | None = None  # a generated shape's sampling seed (variation i of a job: seed + i)
    read_as: str | None = None  # text to 3D: the prompt as the model was asked it (a preset's lexicon)
    index: int = 0  # which variation of its job this is


def _no_progress(stage: str, done: int, total: int) -> None:
    pass


def _never() -> bool:
    return False


class Pipeline:
    def __init__(self, preset: Preset | str, device: str = "auto", dtype: str | None = None,
                 quantization: str | None = None, engine: str | None = None, engine_url: str | None = None,
                 max_jobs: int | None = None):
        """dtype, quantization, engine: how the LLM loads and runs; None keeps the preset's.
        engine "vllm": engine_url names a running vLLM server (None: start one from .venv-vllm);
        max_jobs: how many tasks may run at once (the engine's batch; own: always 1)."""
        from backend.models.checkpoints import resolve_device
        from backend.models.presets import LLM_ENGINES

        self.preset = preset if isinstance(preset, Preset) else load_preset(preset)
        self.device = str(resolve_device(device))
        self.dtype = self.preset.dtype if dtype is None else dtype
        self.quantization = self.preset.quantization if quantization is None else quantization
        self.engine = self.preset.engine if engine is None else engine
        if self.engine not in LLM_ENGINES:
            raise TaskError("bad_field", f"engine must be one of {LLM_ENGINES}, not {self.engine!r}")
        if self.engine == "vllm" and self.quantization != "none":
            raise TaskError("bad_field", "8/4-bit loading is our own loop's (bitsandbytes); a vLLM engine "
                                         "quantises with its own options (docs/serving.md)")
        self.engine_url = engine_url
        self.max_jobs = 1 if self.engine == "own" else int(max_jobs or DEFAULT_VLLM_JOBS)
        self._vqvae = None
        self._llm = None
        # Loading and release(); with our own loop also the whole task (one at a time).
        self._lock = threading.RLock()
        # With a batching engine tasks run side by side: release() waits until none runs.
        self._idle = threading.Condition()
        self._active = 0
        self._releasing = False

    # -- public API ------------------------------------------------------------------------
    def info(self) -> dict:
        return {
            "preset": self.preset.name,
            "device": self.device,
            "supports": {task: self.preset.supports(task) for task in TASKS},
            # greedy decoding: the same prompt gives the same shape whatever the seed
            "greedy": float(self.preset.generation.get("temperature", 1.0)) == 0.0,
            "engine": self.engine,
            "max_jobs": self.max_jobs,  # tasks that may run at once (the server's worker count)
        }

    def text_to_3d(self, prompt: str, options=None, progress=None, cancelled=None) -> MeshResult:
        return _one(self.text_to_3d_variations(prompt, options, progress, cancelled))

    def image_to_3d(self, image_bytes: bytes, options=None, progress=None, cancelled=None) -> MeshResult:
        return _one(self.image_to_3d_variations(image_bytes, options, progress, cancelled))

    def text_to_3d_variations(self, prompt: str, options=None, progress=None, cancelled=None) -> list[MeshResult]:
        """options["variations"] = K shapes of one prompt (default 1), decoded as one batch;
        variation i samples with seed + i. A variation that makes no shape is left out (its
        index is missing); none at all is no_shape."""
        self._require("text_to_3d")
        prompt = self.preset.model_text(checked_text(prompt, "prompt"))
        return self._generate("text_to_3d", dict(text=prompt), options, progress, cancelled)

    def image_to_3d_variations(self, image_bytes: bytes, options=None, progress=None, cancelled=None) -> list[MeshResult]:
        self._require("image_to_3d")
        image = decode_image(image_bytes)
        return self._generate("image_to_3d", dict(image=image), options, progress, cancelled)

    def describe(self, vertices, faces, options=None, progress=None, cancelled=None) -> str:
        progress, cancelled = progress or _no_progress, cancelled or _never
        self._require("describe")
        opts = self._options(options, "describe")
        if "question" in opts:
            opts["question"] = self.preset.model_text(checked_text(opts["question"], "question"))
        vertices, faces = _cleaned(vertices, faces)  # a broken mesh is refused before any model loads
        with self._task():
            llm, vqvae = self._models(progress, cancelled)
            codes, _, _ = self._encode(vqvae, vertices, faces, opts, progress, cancelled)
            text = llm.describe(codes, options=self._llm_options(opts), progress=progress, cancelled=cancelled)
        return consistent_caption(str(text))

    def edit(self, vertices, faces, instruction: str, options=None, progress=None, cancelled=None) -> MeshResult:
        progress, cancelled = progress or _no_progress, cancelled or _never
        self._require("edit")
        instruction = self.preset.model_text(checked_text(instruction, "instruction"))
        opts = self._options(options, "edit")
        cleaned = _cleaned(vertices, faces)  # refused before any model loads or runs
        own = np.asarray(vertices, np.float32), np.asarray(faces, np.int32)
        vertices, faces = cleaned
        settings = self.preset.edit
        with self._task():
            llm, vqvae = self._models(progress, cancelled)
            # the object's own frame: its parts, and which side is its width (a sofa's back says)
            layout = find_layout(*own, opts["up"]) if settings.read_kind else None
            width, depth = (0, 1) if layout is None else (layout.width_axis, 1 - layout.width_axis)
            if layout is not None and layout.back_axis is None and self._names_fronted(opts.get("object_name")):
                width = int(np.argmin(np.ptp(layout.frame[:, :2], axis=0)))  # a truck is wide across, long
                depth = 1 - width                                            # front to back
            caller = [0, 1] if layout is None else [int(np.argmax(np.abs(layout.rotation[a]))) for a in (width, depth)]
            read = edit_policy.read_instruction(llm, settings, instruction, own[0], opts["up"], cancelled, *caller,
                                                metres_per_unit=opts.get("metres_per_unit", (1.0, 1.0, 1.0)))
            if read.part:  # one part changed on the artist's own mesh
                return self._part_edit(vqvae, read, own, layout, opts, progress, cancelled)
            read = replace(read, width_axis=depth if read.kind in ("deeper", "shallower") else width)
            codes, normalization, source = self._encode(vqvae, vertices, faces, opts, progress, cancelled,
                                                        fill=read.fill, to_codes=not read.resize)

            def model_answer():
                answer = llm.edit(codes, instruction, options=self._llm_options(opts), progress=progress,
                                  cancelled=cancelled)
                answer, logits = self._decode(vqvae, answer, progress, cancelled)
                return answer, logits > 0

            answer = edit_policy.make_edit(settings, read, source, model_answer,
                                           lambda grid: self._codes_of(vqvae, grid), cancelled)
            if answer.maps:  # the artist's own mesh, moved: topology and every other vertex kept
                maps = exact_ratio(caller_maps(answer.maps, normalization, source.shape[0]), own[0], read.ratio)
                moved = deform(own[0], maps)
                return MeshResult(moved, own[1], answer.codes, read.kind, read.confidence, answer.voxels, maps,
                                  edit_summary(own[0], moved, maps, read.amount), kept_mesh=True)
            vertices_unit, faces_out = self._surface(answer.voxels, opts, progress, cancelled)
        # Back through the normalisation: the edit lands where the original stood.
        return MeshResult(normalization.from_unit(answer.placed(vertices_unit)), faces_out, answer.codes,
                          read.kind, read.confidence, answer.voxels)

    def _part_edit(self, vqvae, read, own, layout, opts, progress, cancelled) -> MeshResult:
        """The part edit on the caller's mesh; the codes are the edited shape's, added part included."""
        read, edit = edit_policy.part_edit(read, own[0], own[1], layout)
        faces = np.delete(own[1], edit.removed, axis=0)
        shape_v, shape_f = edit.vertices, faces
        if edit.added is not None:
            shape_v = np.concatenate([edit.vertices, edit.added[0]])
            shape_f = np.concatenate([faces, edit.added[1] + len(edit.vertices)])
        codes, _, voxels = self._encode(vqvae, *_cleaned(shape_v, shape_f), opts, progress, cancelled)
        return MeshResult(edit.vertices, faces, codes, read.kind, None, voxels, edit_summary=edit.summary,
                          kept_mesh=True, removed_faces=edit.removed, added=edit.added)

    @staticmethod
    def _codes_of(vqvae, grid: np.ndarray) -> np.ndarray:
        """The VQVAE's codes (int32 [T]) of a bool [R, R, R] occupancy."""
        import torch

        return vqvae.encode(torch.from_numpy(grid).float()[None, None])[0].cpu().numpy().astype(np.int32)

    def edit_kind(self, instruction: str) -> str:
        """The edit kind the model reads in an instruction (presets whose model names kinds)."""
        self._require("edit")
        instruction = self.preset.model_text(checked_text(instruction, "instruction"))
        with self._task():
            llm, _ = self._models(_no_progress, _never)
            return llm.read_edit_kind(instruction)[0]

    @property
    def loaded(self) -> bool:
        """True while the models are in memory (after a task loaded them, until release())."""
        return self._llm is not None and self._vqvae is not None

    def release(self) -> None:
        """Free model memory (a vLLM engine we started is stopped); the next task loads again.
        Waits for running tasks to end; tasks that come meanwhile wait for it."""
        with self._idle:
            while self._releasing:  # one release at a time
                self._idle.wait()
            self._releasing = True
            while self._active:  # side-by-side tasks (they take _lock to load: not held here)
                self._idle.wait()
        try:
            with self._lock:  # our own loop's task holds it while it runs
                if self._llm is not None:
                    self._llm.release()
                self._llm = None
                self._vqvae = None
                _empty_cuda_cache()
        finally:
            with self._idle:
                self._releasing = False
                self._idle.notify_all()

    @contextlib.contextmanager
    def _task(self):
        """Held while a task runs: alone with our own loop, side by side with a batching engine."""
        if self.max_jobs == 1:
            with self._lock:
                yield
            return
        with self._idle:
            while self._releasing:
                self._idle.wait()
            self._active += 1
        try:
            yield
        finally:
            with self._idle:
                self._active -= 1
                self._idle.notify_all()

    # -- steps -----------------------------------------------------------------------------
    def _generate(self, task: str, inputs: dict, options, progress, cancelled) -> list[MeshResult]:
        progress, cancelled = progress or _no_progress, cancelled or _never
        self._require(task)
        opts = self._options(options, task)
        count = int(opts.get("variations", 1))
        if count > 1 and float(opts["temperature"]) == 0:
            raise TaskError("bad_field", f"{count} variations need sampling, but the temperature is 0 (greedy "
                                         "decoding, this model's default): every variation would be the same "
                                         "shape; set a temperature in [0.01, 5]")
        read = None
        if task == "text_to_3d" and self.preset.lexicon and self.preset.folder:  # words first: no model to refuse
            read = self._read_prompt(inputs["text"])
            inputs = dict(inputs, text=read.prompt) if read else inputs
        read_as = read.prompt if read else None
        with self._task():
            llm, vqvae = self._models(progress, cancelled)
            if task == "text_to_3d" and self.preset.known_objects and read_as is None:
                self._refuse_unknown_object(llm, inputs["text"], cancelled)
            made = self._shapes(llm, vqvae, inputs, opts, count, progress, cancelled, read_as)
            if count == 1 and read is not None and not self._fits(llm, made[0], read, cancelled):
                made = self._fitting(llm, vqvae, inputs, opts, read, progress, cancelled) or made
        return made

    def _shapes(self, llm, vqvae, inputs, opts, count, progress, cancelled, read_as) -> list[MeshResult]:
        """`count` shapes from the model (one batch), decoded and meshed; a variation that makes
        no shape is left out, none at all is no_shape."""
        rows = llm.generate_shapes(**inputs, options=self._llm_options(opts), count=count,
                                   progress=progress, cancelled=cancelled)
        # One shape at a time through the VQVAE: its decoder's memory grows with the batch.
        grids = [self._decode(vqvae, codes, _part(progress, index, count), cancelled)
                 for index, codes in enumerate(rows)]
        made = []
        for index, (codes, logits) in enumerate(grids):
            voxels = logits > 0
            try:
                vertices, faces = self._surface(voxels, opts, _part(progress, index, count), cancelled)
            except TaskError as err:
                if err.code != "no_shape" or count == 1:
                    raise
                continue  # left out; the others are still worth having
            made.append(MeshResult(vertices, faces, codes, voxels=voxels, seed=int(opts["seed"]) + index,
                                   index=index, read_as=read_as))
        if not made:
            raise TaskError("no_shape", f"none of the {count} variations has an occupied voxel")
        return made

    def _fits(self, llm, shape: MeshResult, read: PromptRead, cancelled) -> bool:
        """The answer is what the prompt asked: the model's own caption of it names the object the
        words named, and it has the asked back, armrests, round top or pedestal."""
        caption = llm.describe(shape.codes, options=self._llm_options({**self.preset.generation, "temperature": 0}),
                               cancelled=cancelled)
        if read_prompt(str(caption), self._lexicon()).category != read.category:
            return False
        asked = {k: v for k, v in read.attributes.items() if k in CHECKED_ATTRIBUTES}
        return not (asked and missing(shape_attributes(shape.vertices, shape.faces), asked))

    def _fitting(self, llm, vqvae, inputs, opts, read: PromptRead, progress, cancelled) -> list[MeshResult]:
        """The first answer does not fit (_fits): RETRY_SAMPLES sampled answers in one batch, and
        the first that fits, or nothing (the caller keeps the first answer)."""
        sampled = {**opts, "temperature": RETRY_TEMPERATURE}
        try:
            tries = self._shapes(llm, vqvae, inputs, sampled, RETRY_SAMPLES, progress, cancelled, read.prompt)
        except TaskError:
            return []
        for shape in tries:
            if self._fits(llm, shape, read, cancelled):
                return [replace(shape, index=0)]
        return []

    def _lexicon(self) -> Lexicon:
        return Lexicon.load(self.preset.folder / self.preset.lexicon)

    def _read_prompt(self, text: str) -> PromptRead | None:
        """How the lexicon reads the prompt: the object it names or describes and the prompt in the
        model's training wording; None when it cannot tell (the model reads the prompt as typed);
        no_shape for a thing the model does not know."""
        read = read_prompt(text, self._lexicon())
        if read.unknown:
            known = ", ".join(self.preset.known_objects) or "the objects it was trained on"
            raise TaskError("no_shape", f'The {self.preset.name} model cannot make "{read.unknown}": it can make '
                                        f"{known}. Name one of those, or load the published model for anything else.")
        return read if read.category else None

    def _names_fronted(self, name: str | None) -> bool:
        """The object's name (from Blender, or the file's) says its length runs front to back."""
        if not (name and self.preset.lexicon and self.preset.folder):
            return False
        return names_fronted(name, self._lexicon())

    def _refuse_unknown_object(self, llm, text: str, cancelled) -> None:
        answer = llm.declines(text, cancelled, self.preset.decline_below)
        if answer is not None:
            known = ", ".join(self.preset.known_objects)
            raise TaskError("no_shape", f"The {self.preset.name} model does not know what this prompt asks for "
                                        f"(it answered: {answer!r}). It can make: {known}. Name one of those, "
                                        "or load the published model for anything else.")

    def _models(self, progress: Progress, cancelled: CancelCheck):
        """The (llm, vqvae) pair, loaded on first use."""
        _check(cancelled)
        with self._lock:  # side-by-side tasks: the first loads, the others wait for it
            if self._vqvae is None or self._llm is None:
                progress("load", 0, 2)
                if self._vqvae is None:
                    self._vqvae = self._load_vqvae()
                progress("load", 1, 2)
                _check(cancelled)
                if self._llm is None:
                    self._llm = self._load_llm(cancelled)
        progress("load", 2, 2)
        _check(cancelled)
        return self._llm, self._vqvae

    def _load_vqvae(self):
        from backend.models.checkpoints import load_vqvae

        try:
            return load_vqvae(self.preset.vqvae_source(), self.device, filename=self.preset.vqvae_file)
        except TaskError:
            raise
        except Exception as err:
            raise TaskError("model_error", f"could not load the VQVAE of preset {self.preset.name}: {err}") from err

    def _load_llm(self, cancelled=None):
        from backend.models.llm import ShapeLLMRuntime

        try:
            if self.engine == "vllm":
                from backend.models.vllm_runtime import VllmRuntime

                return VllmRuntime.load(self.preset.llm_source(), self.preset.prompts, self.preset.edit,
                                        url=self.engine_url, max_jobs=self.max_jobs, dtype=self.dtype,
                                        cancelled=cancelled)
            return ShapeLLMRuntime.load(str(self.preset.llm_source()), self.preset.prompts, device=self.device,
                                        edit=self.preset.edit, dtype=self.dtype, quantization=self.quantization)
        except (TaskError, Cancelled):
            raise
        except Exception as err:
            raise TaskError("model_error", f"could not load the LLM of preset {self.preset.name}: {err}") from err

    def _encode(self, vqvae, vertices, faces, opts, progress, cancelled, fill: float = 1.0, to_codes: bool = True):
        """A _cleaned() mesh -> (codes int32 [T], Normalization, occupancy bool [R,R,R]); `fill` as
        in normalize(); codes None unless `to_codes` (a resize encodes its own grid)."""
        from backend.geometry.normalize import normalize
        from backend.geometry.voxelize import voxelize_surface

        progress("encode", 0, 1)
        try:
            v_unit, normalization = normalize(vertices, convention=self.preset.normalization, up=opts["up"], fill=fill)
            grid = voxelize_surface(v_unit, faces, resolution=vqvae.config.resolution)
        except GeometryError as err:
            raise TaskError(_INPUT_MESH_CODES.get(err.code, "bad_mesh"), err.message) from err
        if not grid.any():
            raise TaskError("empty_mesh", "the mesh covers no voxel of the model's grid")
        _check(cancelled)
        codes = self._codes_of(vqvae, grid) if to_codes else None
        progress("encode", 1, 1)
        _check(cancelled)
        return codes, normalization, grid

    def _decode(self, vqvae, codes, progress, cancelled):
        """1024 codes -> (codes int32, the VQVAE's logits [R,R,R])."""
        codes = np.asarray(codes, dtype=np.int32).reshape(-1)
        if codes.shape != (vqvae.config.num_tokens,):
            raise TaskError("no_shape", f"the model returned {codes.size} codes, not {vqvae.config.num_tokens}")
        _check(cancelled)
        progress("decode", 0, 1)
        logits = vqvae.decode(codes[None].astype(np.int64))[0, 0].float().cpu().numpy()
        progress("decode", 1, 1)
        _check(cancelled)
        return codes, logits

    @staticmethod
    def _surface(voxels: np.ndarray, opts, progress, cancelled):
        """bool [R,R,R] -> (vertices in the unit cube, faces)."""
        from backend.geometry.surface import occupancy_to_mesh

        progress("surface", 0, 1)
        try:
            vertices, faces = occupancy_to_mesh(voxels, mode=opts["mesh_style"])
        except GeometryError as err:
            if err.code == geometry_errors.EMPTY_MESH:
                raise TaskError("no_shape", "the generated shape has no occupied voxel") from err
            raise TaskError("internal", f"meshing the generated shape failed: {err.message}") from err
        progress("surface", 1, 1)
        _check(cancelled)
        return vertices, faces

    # -- options ---------------------------------------------------------------------------
    def _require(self, task: str) -> None:
        if not self.preset.supports(task):
            raise TaskError("unsupported", f"preset {self.preset.name} does not support {task}")

    def _options(self, options, task: str | None = None) -> dict:
        """Preset generation defaults, overridden by the caller's options, which are checked by
        the wire's own rules (protocol.validate_options); `question` is describe's own."""
        options = dict(options or {})
        question = options.pop("question", None)
        try:
            validate_options(options, task)
        except ProtocolError as err:
            raise TaskError(err.code, err.message) from None
        opts = {**self.preset.generation, "mesh_style": "smooth", "up": "z", **options}
        if question is not None:
            opts["question"] = question
        return opts

    @staticmethod
    def _llm_options(opts: dict) -> dict:
        llm_opts = {k: opts[k] for k in GENERATION_KEYS if k in opts}
        if "question" in opts:
            llm_opts["question"] = opts["question"]
        return llm_opts


def decode_image(image_bytes: bytes):
    """PNG or JPEG bytes -> a loaded PIL image; anything else is a bad_image error. The one place
    an image is decoded (the server calls it in its worker): the wire's header checks first, so
    a decompression bomb is refused from its declared size before any pixel is decoded."""
    from PIL import Image, UnidentifiedImageError

    from addon.wire.protocol import ProtocolError, check_image_size, validate_image

    if not isinstance(image_bytes, (bytes, bytearray, memoryview)) or len(image_bytes) == 0:
        raise TaskError("bad_image", "no image data")
    image_bytes = bytes(image_bytes)
    try:
        validate_image(image_bytes)
        image = Image.open(io.BytesIO(image_bytes))  # reads the header only
        if image.format not in ("PNG", "JPEG"):
            raise TaskError("bad_image", f"the image is {image.format}, not PNG or JPEG")
        check_image_size(*image.size)  # Pillow's own size, should the header walk have missed one
        image.load()
    except TaskError:
        raise
    except ProtocolError as err:
        raise TaskError("bad_image", err.message) from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, Image.DecompressionBombError) as err:
        raise TaskError("bad_image", f"the image does not decode: {err}") from err
    return image


def _cleaned(vertices, faces):
    """The caller's mesh, validated and cleaned (geometry.validate), or a TaskError saying what is wrong."""
    from backend.geometry.validate import clean_mesh

    try:
        return clean_mesh(vertices, faces)
    except GeometryError as err:
        raise TaskError(_INPUT_MESH_CODES.get(err.code, "bad_mesh"), err.message) from err


def _one(results: list[MeshResult]) -> MeshResult:
    if len(results) != 1:
        raise TaskError("bad_field", "this call returns one shape: ask the *_variations call for several")
    return results[0]


def _part(progress: Progress, index: int, count: int) -> Progress:
    """Progress of variation `index` of `count` in a per-shape stage (decode, surface): the
    stage counts shapes done of `count`; one shape reports the stage's own 0/1, 1/1."""
    if count == 1:
        return progress
    return lambda stage, done, total: progress(stage, index + (done >= total), count)


def _check(cancelled: CancelCheck) -> None:
    if cancelled():
        raise Cancelled()


def _empty_cuda_cache() -> None:
    import sys

    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        torch.cuda.empty_cache()
