"""ShapeLLM-Omni LLM runtime: Qwen2.5-VL with its own KV-cache decoding loop.

    rt = ShapeLLMRuntime.load(llm_source, prompts, device="auto")   # folder or hub repo id
    rt.generate_shape(text=..., image=...) -> np.int32[1024]      # text/image to 3D
    rt.generate_shapes(text=..., count=K) -> np.int32[K, 1024]     # K variations, one batch
    rt.describe(codes) -> str                                      # 3D to text
    rt.edit(codes, instruction) -> np.int32[1024]                  # 3D + text to 3D
    rt.release()

Why our own loop instead of model.generate(): a grammar over mesh blocks (below), a progress
call per token and a cancel check per step, and less per-step overhead (the decode step calls
the decoder layers directly; see bench/llm.py for the measured ratio).

The mesh block grammar (`MeshBlockConstraint`): after `<mesh-start>` only `<meshK>` tokens
until exactly 1024, then `<mesh-end>`. For generate/edit the answer is forced to open with
`<mesh-start>` and ends at `<mesh-end>`, so every answer is a complete, decodable shape even
from a weak or random model. For describe, mesh tokens are banned: the answer is text.

Prompts (format strings of the preset): `text_to_3d` holds `{text}`, `edit` holds
`{instruction}`. `describe` and `edit` get the mesh block, a newline, then the prompt, as in
the reference demo for describe; a template may instead place `{mesh}` itself (the embedded
model's edit template puts the instruction first, and its preset's EditSettings give the edit
answer the input block's positions, `aligned_positions`, and ask the model the `edit_kind`
prompt, `read_kind`). `image_to_3d` follows the image in the user turn. Edit has no published template: the user turn holds the mesh block and the
instruction, the assistant turn a new mesh block, as in the training data.

Sampling follows the reference (generate() with the model's generation_config): repetition
penalty on every token seen so far (prompt included), then temperature, top-k, top-p;
`temperature` 0 means greedy (the published generation_config samples; we do not read its
do_sample, so a model saved with a default config still honours the seed and temperature).
`max_new_tokens` bounds describe; a mesh answer is always exactly one block (1026 tokens).

Variations: K answers to one prompt are decoded as one batch (prefill once, the KV cache
copied to K rows, one forward pass per step for all rows; every mesh answer is 1024 codes, so
the rows never differ in length). Row i draws with its own generator seeded seed + i, so
variation i is (up to float summation order in the batched matmuls) the shape a single run
with seed + i gives; K = 1 is the single loop itself. Under greedy decoding the K rows would be
equal: the pipeline refuses variations then.
"""

from __future__ import annotations

import gc
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from backend.checks import checked_text
from backend.errors import Cancelled, TaskError
from backend.models.codec import (CODEBOOK_SIZE, EDIT_KINDS, NUM_CODES, MeshCodec, aligned_positions, edit_kind_ids,
                                  edit_kind_token, edit_user_text, with_mesh_block)
from backend.models.images import prepare_image
from backend.models.presets import REFERENCE_GENERATION, TASKS, EditSettings
from backend.models.prompting import chat_prompt_ids, stop_token_ids

# Files of a Qwen2.5-VL repo that the runtime needs (no remote code, no pickles).
HUB_PATTERNS = ["*.json", "*.safetensors", "*.txt", "*.jinja"]
MAX_VARIATIONS = 8  # shapes of one prompt decoded as one batch (the wire's `variations` limit)

log = logging.getLogger(__name__)


# ------------------------------------------------------------------------------------------
# Sampling


@dataclass
class Sampling:
    seed: int
    temperature: float
    top_p: float
    top_k: int
    max_new_tokens: int
    repetition_penalty: float = 1.0
    greedy: bool = False

    @classmethod
    def from_options(cls, options: dict | None, generation_config=None) -> "Sampling":
        merged = {**REFERENCE_GENERATION, **{k: v for k, v in (options or {}).items() if v is not None}}
        try:
            s = cls(
                seed=int(merged["seed"]),
                temperature=float(merged["temperature"]),
                top_p=float(merged["top_p"]),
                top_k=int(merged["top_k"]),
                max_new_tokens=int(merged["max_new_tokens"]),
                repetition_penalty=float(getattr(generation_config, "repetition_penalty", None) or 1.0),
            )
        except (TypeError, ValueError) as err:
            raise TaskError("bad_field", f"bad generation option: {err}") from None
        problems = []
        if not (s.temperature >= 0 and np.isfinite(s.temperature)):
            problems.append(f"temperature must be >= 0, got {s.temperature}")
        if not 0 < s.top_p <= 1:
            problems.append(f"top_p must be in (0, 1], got {s.top_p}")
        if s.top_k < 1:
            problems.append(f"top_k must be >= 1, got {s.top_k}")
        if s.max_new_tokens < 1:
            problems.append(f"max_new_tokens must be >= 1, got {s.max_new_tokens}")
        if problems:
            raise TaskError("bad_field", "; ".join(problems))
        s.greedy = s.temperature == 0
        return s


def choose_tokens(logits: torch.Tensor, seen: torch.Tensor | None, s: Sampling, generators: list) -> list[int]:
    """One token index per row from logits [rows, n] (already restricted to the allowed
    candidates; banned entries are -inf). Same processing order as generate(): penalty,
    temperature, top-k, top-p; then each row draws with its own generator, so a row's draws
    depend on its seed alone, not on the other rows."""
    logits = logits.float()
    if seen is not None and s.repetition_penalty != 1.0:
        penalised = torch.where(logits < 0, logits * s.repetition_penalty, logits / s.repetition_penalty)
        logits = torch.where(seen, penalised, logits)
    if s.greedy:
        return torch.argmax(logits, dim=-1).tolist()
    logits = logits / s.temperature
    if s.top_k < logits.shape[-1]:
        kth = torch.topk(logits, s.top_k, dim=-1).values[:, -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if s.top_p < 1.0:
        sorted_logits, order = torch.sort(logits, dim=-1)  # ascending: drop the low tail of mass 1-top_p
        drop = sorted_logits.softmax(-1).cumsum(-1) <= 1 - s.top_p
        drop[:, -1] = False  # always keep the most likely token
        logits = logits.masked_fill(drop.scatter(-1, order, drop), float("-inf"))
    probs = logits.softmax(-1)
    return [int(torch.multinomial(row, 1, generator=g)) for row, g in zip(probs, generators)]


# ------------------------------------------------------------------------------------------
# The mesh block grammar


class MeshBlockConstraint:
    """A state machine over the answer's tokens that keeps every mesh block valid.

    choices() says what may come next: ("ids", candidate ids) inside a block, ("force", id)
    for the closing <mesh-end>, ("ban", mask of banned ids) in text. advance(id) moves on and
    returns True when the answer is complete."""

    def __init__(
        self,
        codec: MeshCodec,
        vocab_size: int,
        tokenizer_size: int,
        stop_ids: set[int],
        device,
        allow_blocks: bool,
        in_block: bool,
        stop_after_block: bool,
    ):
        self.codec = codec
        self.stop_ids = stop_ids
        self.stop_after_block = stop_after_block
        self.code_ids = torch.as_tensor(codec.code_ids, device=device)
        ban = torch.zeros(vocab_size, dtype=torch.bool, device=device)
        ban[self.code_ids] = True  # a code outside a block is invalid
        ban[codec.end_id] = True
        ban[tokenizer_size:] = True  # embedding rows with no token behind them
        if not allow_blocks:
            ban[codec.start_id] = True
        self.text_ban = ban
        self.in_block = in_block
        self.count = 0  # codes in the open block
        self.done = False

    def choices(self):
        if self.in_block:
            if self.count < NUM_CODES:
                return "ids", self.code_ids
            return "force", self.codec.end_id
        return "ban", self.text_ban

    def final_forced(self) -> int | None:
        """The closing token when it is forced and ends the answer (no forward pass needed)."""
        if self.in_block and self.count == NUM_CODES and self.stop_after_block:
            return self.codec.end_id
        return None

    def advance(self, token_id: int) -> bool:
        if self.in_block:
            if token_id == self.codec.end_id:
                if self.count != NUM_CODES:
                    raise AssertionError("mesh block closed early")  # choices() forbids it
                self.in_block, self.count = False, 0
                self.done = self.stop_after_block
            else:
                self.count += 1
        elif token_id == self.codec.start_id:
            self.in_block = True
        elif token_id in self.stop_ids:
            self.done = True
        return self.done


class MeshBlockLogitsProcessor:
    """The same grammar as a transformers LogitsProcessor, for model.generate() (batch 1).
    Our loop does not use it; the benchmark and the tests use it to run generate() on the same
    task and check that both give the same tokens."""

    def __init__(self, constraint: MeshBlockConstraint, prompt_length: int):
        self.constraint = constraint
        self.consumed = prompt_length

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        for token in input_ids[0, self.consumed :].tolist():
            self.constraint.advance(int(token))
        self.consumed = input_ids.shape[1]
        kind, allowed = self.constraint.choices()
        if kind == "ban":
            return scores.masked_fill(allowed, float("-inf"))
        keep = torch.full_like(scores, float("-inf"))
        if kind == "force":
            keep[:, allowed] = 0
            return keep
        keep[:, allowed] = scores[:, allowed]
        return keep


# ------------------------------------------------------------------------------------------
# Loading


def resolve_llm_folder(llm_source: str | Path) -> Path:
    """A local folder, or the hub cache snapshot of a repo id (HF_HUB_OFFLINE respected)."""
    from backend.models.checkpoints import hub_offline, is_repo_id

    path = Path(str(llm_source)).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise TaskError("model_unavailable", f"{path} holds no config.json: not a model folder")
        return path
    if not is_repo_id(llm_source):
        raise TaskError("model_unavailable", f"{llm_source} is neither a model folder nor a Hugging Face repo id")
    from huggingface_hub import snapshot_download

    offline = hub_offline()
    try:
        return Path(
            snapshot_download(
                str(llm_source),
                allow_patterns=HUB_PATTERNS,
                cache_dir=os.environ.get("HF_HUB_CACHE") or None,
                local_files_only=offline,
            )
        )
    except Exception as err:  # network, 404, gated, not cached: all mean "not available"
        if offline:
            message = (
                f"the LLM {llm_source} is not in the local Hugging Face cache and HF_HUB_OFFLINE is "
                f"set; download it first (huggingface-cli download {llm_source})"
            )
        else:
            message = f"could not fetch the LLM {llm_source} from the Hugging Face hub: {err}"
        raise TaskError("model_unavailable", message) from err


def _config_folder(llm_source) -> Path:
    """The folder holding the model's config.json: the model folder itself, or for a hub repo
    the cache snapshot after fetching config.json alone."""
    from backend.models.checkpoints import is_repo_id, resolve_file

    path = Path(str(llm_source)).expanduser()
    if path.is_dir() or not is_repo_id(llm_source):
        return resolve_llm_folder(llm_source)
    return resolve_file(str(llm_source), "config.json").parent


def _read_chat_template(folder: Path, tokenizer) -> str:
    """The repo's chat template: the tokenizer's, else chat_template.json/.jinja, else Qwen's."""
    if getattr(tokenizer, "chat_template", None):
        return tokenizer.chat_template
    if (folder / "chat_template.jinja").is_file():
        return (folder / "chat_template.jinja").read_text()
    if (folder / "chat_template.json").is_file():
        return json.loads((folder / "chat_template.json").read_text())["chat_template"]
    from backend.models.tokenizer_build import CHAT_TEMPLATE

    return CHAT_TEMPLATE


# ------------------------------------------------------------------------------------------
# The runtime


class ShapeLLMRuntime:
    def __init__(self, model, tokenizer, image_processor, chat_template: str, prompts: dict, device,
                 edit: EditSettings = EditSettings()):
        self.model = model
        self.plan = None  # the memory plan it was loaded under (load() sets it)
        # Inside a mesh block compute only the 8192 mesh rows of lm_head (False: the whole head;
        # bench/llm.py --lm-head compares both).
        self.mesh_rows_head = True
        self.edit_settings = edit
        self.tokenizer = tokenizer
        self.image_processor = image_processor
        self.chat_template = chat_template
        self.prompts = prompts
        self.device = str(device)
        self._device = torch.device(device)
        self.codec = MeshCodec(tokenizer)
        self.edit_kind_ids = _edit_kind_ids(tokenizer) if edit.read_kind else None
        if edit.read_kind and "{instruction}" not in prompts.get("edit_kind", ""):
            raise TaskError("model_error", "naming edit kinds needs an 'edit_kind' prompt with {instruction}")
        config = model.config
        self.image_token_id = int(config.image_token_id)
        self.vocab_size = int(model.lm_head.out_features)
        self.tokenizer_size = min(len(tokenizer), self.vocab_size)
        self.stop_ids = stop_token_ids(model.generation_config.eos_token_id, tokenizer)
        text = model.model.language_model
        # The direct decode step skips mask building; it is exact only without sliding windows.
        self._direct_step = not getattr(text, "has_sliding_layers", False)

    # -- loading -----------------------------------------------------------------------------

    @classmethod
    def load(cls, llm_source, prompts: dict, device: str = "auto", edit: EditSettings = EditSettings(), *,
             dtype: str = "auto", quantization: str = "none", available_memory: int | None = None) -> "ShapeLLMRuntime":
        """dtype: auto|float32|bfloat16|float16 (the rule in backend/models/memory.py);
        quantization: none|8bit|4bit (bitsandbytes: CUDA, and CPUs, slower); available_memory:
        bytes the memory plan may use instead of the measured free memory (tests). The plan is
        checked before any weight is read: a load that cannot fit fails at once, naming what would."""
        from transformers import AutoConfig, AutoImageProcessor, AutoTokenizer, Qwen2_5_VLForConditionalGeneration

        from backend.models.checkpoints import resolve_device
        from backend.models.memory import checkpoint_dtype, choose_dtype, plan_load

        missing = [k for k in TASKS if not isinstance(prompts.get(k), str)]
        if missing:
            raise TaskError("model_error", f"prompt templates missing: {missing}")
        dev = resolve_device(device)
        # The plan needs only config.json: from the hub, that file comes first, so a load that
        # cannot fit is refused before ~17 GB of weights are downloaded.
        config_folder = _config_folder(llm_source)
        chosen = choose_dtype(dtype, dev, checkpoint_dtype(config_folder))
        try:
            config = AutoConfig.from_pretrained(str(config_folder))
        except Exception as err:
            raise TaskError("model_error", f"could not read the LLM config in {config_folder}: {err}") from err
        plan = plan_load(config, dev, chosen, quantization, available=available_memory)
        plan.check()
        log.info("loading the LLM: %s", plan.describe())
        folder = resolve_llm_folder(llm_source)
        extra = {"quantization_config": _quantization_config(quantization, chosen)} if quantization != "none" else {}
        try:
            tokenizer = AutoTokenizer.from_pretrained(str(folder))
            image_processor = AutoImageProcessor.from_pretrained(str(folder))
            model, info = Qwen2_5_VLForConditionalGeneration.from_pretrained(
                str(folder), config=config, dtype=chosen, output_loading_info=True,
                device_map=str(dev) if dev.type != "cpu" else None, **extra,
            )
        except TaskError:
            raise
        except Exception as err:
            raise TaskError("model_error", f"could not load the LLM from {folder}: {err}") from err
        _check_loading_info(info, folder)
        if quantization == "none":
            model.to(dev)
        model.eval()
        rt = cls(model, tokenizer, image_processor, _read_chat_template(folder, tokenizer), dict(prompts), dev, edit)
        rt.plan = plan
        return rt

    def release(self) -> None:
        """Frees the model's memory; the runtime cannot be used afterwards."""
        self.model = None
        gc.collect()
        if self._device.type == "cuda":
            torch.cuda.empty_cache()
        elif self._device.type == "mps":
            torch.mps.empty_cache()

    # -- the four tasks ----------------------------------------------------------------------

    def generate_shape(self, text=None, image=None, options=None, progress=None, cancelled=None) -> np.ndarray:
        """Text to 3D, or image to 3D when `image` (a PIL image) is given."""
        return self.generate_shapes(text, image, options, 1, progress, cancelled)[0]

    def generate_shapes(self, text=None, image=None, options=None, count: int = 1, progress=None,
                        cancelled=None) -> np.ndarray:
        """`count` variations of one prompt as one batch: int32 [count, 1024]; variation i
        samples with seed + i (count 1 is generate_shape exactly)."""
        if not (isinstance(count, int) and 1 <= count <= MAX_VARIATIONS):
            raise TaskError("bad_field", f"variations must be an integer in [1, {MAX_VARIATIONS}], got {count!r}")
        if image is not None:
            content = [{"type": "image"}, {"type": "text", "text": self.prompts["image_to_3d"]}]
            pixels = self.image_processor(images=[prepare_image(image)], return_tensors="pt")
        else:
            text = checked_text(text, "prompt")
            content = [{"type": "text", "text": self.prompts["text_to_3d"].replace("{text}", text)}]
            pixels = None
        return self._mesh_answers(content, pixels, options, progress, cancelled, count=count)

    @torch.inference_mode()
    def declines(self, text: str, cancelled=None, below: float = 0.5, max_words: int = 40) -> str | None:
        """The model's own text answer when it would hardly start a shape for this prompt (its
        probability of <mesh-start> as the first answer token is under `below`), else None. One
        short prefill; the answer is decoded greedily with mesh blocks banned."""
        text = checked_text(text, "prompt")
        content = [{"type": "text", "text": self.prompts["text_to_3d"].replace("{text}", text)}]
        prompt = self._prompt_ids(content, None)
        _check_cancel(cancelled)
        from transformers import DynamicCache

        logits, _ = self._prefill(prompt, None, DynamicCache(config=self._live().config.text_config))
        if float(torch.softmax(logits.float(), -1)[self.codec.start_id]) >= below:
            return None
        greedy = Sampling(seed=0, temperature=0.0, top_p=1.0, top_k=1, max_new_tokens=max_words, greedy=True)
        constraint = self._constraint(allow_blocks=False, in_block=False)
        ids = self._decode(prompt, None, constraint, greedy, max_words, lambda done, token: None, cancelled)
        return self.tokenizer.decode(ids, skip_special_tokens=True).strip()

    def describe(self, codes, options=None, progress=None, cancelled=None) -> str:
        """3D to text. options["question"], when given, replaces the preset's question."""
        question = (options or {}).get("question")
        question = self.prompts["describe"] if question is None else checked_text(question, "question")
        content = [{"type": "text", "text": self._with_mesh(question, codes)}]
        sampling = Sampling.from_options(options, self._live().generation_config)
        constraint = self._constraint(allow_blocks=False, in_block=False)
        total = sampling.max_new_tokens

        def on_token(done: int, _token: int):
            if progress:
                progress("tokens", done, total)

        ids = self._decode(self._prompt_ids(content, None), None, constraint, sampling, total, on_token, cancelled)
        return self.tokenizer.decode(ids, skip_special_tokens=True).strip()

    def edit(self, codes, instruction, options=None, progress=None, cancelled=None) -> np.ndarray:
        instruction = checked_text(instruction, "instruction")
        content = [{"type": "text", "text": self._edit_text(codes, instruction)}]
        return self._mesh_answers(content, None, options, progress, cancelled, self.edit_settings.aligned_positions)[0]

    # -- prompt building ---------------------------------------------------------------------

    def _with_mesh(self, template: str, codes) -> str:
        return with_mesh_block(template, _checked_codes(codes))

    def _edit_text(self, codes, instruction: str) -> str:
        return edit_user_text(self.prompts["edit"], _checked_codes(codes), instruction)

    def _prompt_ids(self, content: list, pixels) -> list[int]:
        count = 0
        if pixels is not None:  # one <|image_pad|> per merged 2x2 patch group of the image
            merge = int(getattr(self.image_processor, "merge_size", 2))
            count = int(pixels["image_grid_thw"][0].prod()) // (merge * merge)
        return chat_prompt_ids(self.tokenizer, self.chat_template, content, count, self.image_token_id)

    def _constraint(self, allow_blocks: bool, in_block: bool) -> MeshBlockConstraint:
        return MeshBlockConstraint(
            self.codec,
            self.vocab_size,
            self.tokenizer_size,
            self.stop_ids,
            self._device,
            allow_blocks=allow_blocks,
            in_block=in_block,
            stop_after_block=True,
        )

    def _mesh_answers(self, content, pixels, options, progress, cancelled, aligned=False, count=1) -> np.ndarray:
        """int32 [count, 1024]: `count` answers to one prompt, decoded as one batch.
        aligned: the answer positioned like the prompt's mesh block (an edit)."""
        sampling = Sampling.from_options(options, self._live().generation_config)
        prompt = self._prompt_ids(content, pixels) + [self.codec.start_id]  # the forced opening
        positions = self._edit_positions(prompt) if aligned else None
        constraints = [self._constraint(allow_blocks=True, in_block=True) for _ in range(count)]

        def on_token(done: int, tokens: list[int]):
            # the rows move in step: every row holds the same number of codes
            if progress and constraints[0].in_block:
                progress("tokens", constraints[0].count, NUM_CODES)

        rows = self._decode_rows(prompt, pixels, constraints, sampling, NUM_CODES + 1, on_token, cancelled, positions)
        answers = []
        for ids in rows:
            parsed = self.codec.parse_ids([self.codec.start_id, *ids])
            if not parsed.exact:  # the grammar makes this impossible; fail loudly if it ever is
                raise TaskError("internal", f"mesh block grammar broken: {parsed.found} codes read")
            answers.append(parsed.codes)
        return np.stack(answers).astype(np.int32)

    @torch.inference_mode()
    def read_edit_kind(self, instruction: str, cancelled=None) -> tuple[str, float]:
        """(kind, how sure): the kind token the model finds likeliest as the answer to the kind
        question (the instruction alone; greedy: the kind decides the whole edit, so it is not
        sampled) and its probability among the six kinds."""
        from transformers import DynamicCache

        if self.edit_kind_ids is None:
            raise TaskError("unsupported", "this model does not name edit kinds (no edit kind question)")
        _check_cancel(cancelled)
        question = self.prompts["edit_kind"].replace("{instruction}", checked_text(instruction, "instruction"))
        prompt = self._prompt_ids([{"type": "text", "text": question}], None)
        cache = DynamicCache(config=self._live().config.text_config)
        logits, _ = self._prefill(prompt, None, cache)
        probabilities = torch.softmax(logits[self.edit_kind_ids].float(), dim=0)
        best = int(torch.argmax(probabilities))
        return EDIT_KINDS[best], float(probabilities[best])

    def _edit_positions(self, prompt: list[int]) -> np.ndarray:
        """Rope positions [3, len(prompt) + NUM_CODES + 1] of an edit conversation whose prompt
        ends with the answer's <mesh-start>, the answer included, as the model was trained."""
        full = prompt + [int(self.codec.code_ids[0])] * NUM_CODES + [self.codec.end_id]  # a placeholder answer
        return np.broadcast_to(aligned_positions(full, len(prompt) - 1, self.codec.start_id), (3, len(full)))

    # -- the decoding loop -------------------------------------------------------------------

    def _live(self):
        if self.model is None:
            raise TaskError("model_error", "the LLM was released; load it again")
        return self.model

    def _decode(self, prompt: list[int], pixels, constraint, sampling, max_new, on_token, cancelled,
                positions: np.ndarray | None = None) -> list[int]:
        """One answer (a batch of one row): its ids. on_token(done, token)."""
        rows = self._decode_rows(prompt, pixels, [constraint], sampling, max_new,
                                 lambda done, tokens: on_token(done, tokens[0]), cancelled, positions)
        return rows[0]

    @torch.inference_mode()
    def _decode_rows(self, prompt: list[int], pixels, constraints: list, sampling, max_new, on_token, cancelled,
                     positions: np.ndarray | None = None) -> list[list[int]]:
        """Answers to one prompt, one row per constraint, decoded as one batch: prefill once,
        copy the cache to every row, then one forward pass per step for all rows; returns each
        row's answer ids. Row i samples with seed + i. The rows must move in step (mesh answers
        are all one 1024-code block; a text answer is decoded alone). on_token(done, tokens)
        after each step. positions: [3, len(prompt) + max_new] rope positions of the prompt
        and the answer when not sequential (the same for every row)."""
        from transformers import DynamicCache

        model = self._live()
        dev = self._device
        count = len(constraints)
        generators = [torch.Generator(device=dev).manual_seed(sampling.seed + i) for i in range(count)]
        seen = None
        if sampling.repetition_penalty != 1.0:
            seen = torch.zeros(count, self.vocab_size, dtype=torch.bool, device=dev)
            seen[:, torch.as_tensor(prompt, device=dev)] = True

        _check_cancel(cancelled)
        cache = DynamicCache(config=model.config.text_config)
        logits, position = self._prefill(prompt, pixels, cache, None if positions is None else positions[:, : len(prompt)])
        logits = logits.expand(count, -1)  # every row starts from the same prompt
        if count > 1:
            cache.batch_repeat_interleave(count)
        if positions is None:  # the answer continues after the prompt
            steps = torch.arange(position, position + max_new, device=dev).expand(3, -1)
        else:
            steps = torch.as_tensor(np.ascontiguousarray(positions[:, len(prompt) : len(prompt) + max_new]), device=dev)
        rope = self._rope_table(steps) if self._direct_step else None
        answers: list[list[int]] = [[] for _ in range(count)]
        hidden = None  # after a decode step: the rows' last hidden states; logits come from them on demand
        while True:
            _check_cancel(cancelled)
            tokens = self._choose(constraints, logits, hidden, seen, sampling, generators)
            finished = [c.advance(t) for c, t in zip(constraints, tokens)]
            for answer, token in zip(answers, tokens):
                answer.append(token)
            on_token(len(answers[0]), tokens)
            if any(finished) != all(finished):
                raise TaskError("internal", "the answers of one batch ended at different steps")
            if finished[0] or len(answers[0]) >= max_new:
                return answers
            closing = constraints[0].final_forced()
            if closing is not None:  # nothing left to choose: no forward pass needed
                for constraint, answer in zip(constraints, answers):
                    constraint.advance(closing)
                    answer.append(closing)
                on_token(len(answers[0]), [closing] * count)
                return answers
            ids = torch.tensor(tokens, device=dev)
            if seen is not None:
                seen[torch.arange(count, device=dev), ids] = True
            step = len(answers[0]) - 1  # the tokens' index in the answer, their row in the rope table
            hidden = self._step(ids, steps[:, step], step, cache, rope)
            logits = None if self.mesh_rows_head else self._head(hidden)

    def _choose(self, constraints, logits, hidden, seen, sampling, generators) -> list[int]:
        """The next token of every row under its grammar; logits [rows, vocab] or None (then
        computed from hidden [rows, hidden], inside a mesh block for the mesh rows only)."""
        kinds = [c.choices() for c in constraints]
        kind, allowed = kinds[0]
        if any(k != kind for k, _ in kinds):
            raise TaskError("internal", "the answers of one batch left step")
        if kind == "force":
            return [int(a) for _, a in kinds]
        if kind == "ids":
            if self.codec.contiguous:  # a slice is a view: cheaper than gathering 8192 ids
                first = self.codec.first_code_id
                picked = slice(first, first + CODEBOOK_SIZE)
                sub = logits[:, picked] if logits is not None else self._head(hidden, picked)
            else:
                picked = allowed
                sub = (logits if logits is not None else self._head(hidden))[:, picked]
            sub_seen = seen[:, picked] if seen is not None else None
            return [int(allowed[i]) for i in choose_tokens(sub, sub_seen, sampling, generators)]
        full = logits if logits is not None else self._head(hidden)
        banned = torch.stack([ban for _, ban in kinds])
        return choose_tokens(full.masked_fill(banned, float("-inf")), seen, sampling, generators)

    def _head(self, hidden: torch.Tensor, rows: slice | None = None) -> torch.Tensor:
        """Logits of final hidden states [..., hidden]: all of lm_head, or only its `rows` (a
        contiguous slice: inside a mesh block only the 8192 mesh rows can win, so the other
        ~95% of the head's multiply-adds and weight reads are skipped)."""
        head = self.model.lm_head
        if rows is None or not self.mesh_rows_head or type(head) is not torch.nn.Linear:
            logits = head(hidden)
            return logits if rows is None else logits[..., rows]
        # The same products as the whole head's rows; in float32 the CPU kernel may sum them in
        # another order (a last-bit difference, ~1e-7 relative: only an exact near-tie could
        # change a greedy token; none did in the tests, tests/test_embedded_unchanged.py).
        bias = head.bias[rows] if head.bias is not None else None
        return torch.nn.functional.linear(hidden, head.weight[rows], bias)

    def _prefill(self, prompt: list[int], pixels, cache, text_positions=None) -> tuple[torch.Tensor, int]:
        """Runs the prompt (and image); returns the last logits and the next text position."""
        model = self.model
        ids = torch.tensor([prompt], device=self._device)
        kwargs = {}
        if pixels is not None:
            grid = pixels["image_grid_thw"].to(self._device)
            kwargs = {"pixel_values": pixels["pixel_values"].to(self._device), "image_grid_thw": grid}
            kinds = (ids == self.image_token_id).int()  # mm_token_type_ids: 1 marks image tokens
            positions, delta = model.model.get_rope_index(ids, mm_token_type_ids=kinds, image_grid_thw=grid)
            delta = int(delta.reshape(-1)[0])
        elif text_positions is not None:  # [3, len(prompt)]
            positions = torch.as_tensor(np.ascontiguousarray(text_positions), device=self._device).view(3, 1, -1)
            delta = int(text_positions[0, -1]) + 1 - len(prompt)
        else:
            positions = torch.arange(len(prompt), device=self._device).view(1, 1, -1).expand(3, 1, -1)
            delta = 0
        out = model(
            input_ids=ids, position_ids=positions, cache=cache, use_cache=True, logits_to_keep=1, **kwargs
        )
        return out.logits[0, -1], len(prompt) + delta

    def _rope_table(self, steps: torch.Tensor):
        """cos/sin of the answer's positions steps [3, count], computed once per answer. The
        same elementwise math as the model's per-call rotary embedding, so results are equal."""
        text = self.model.model.language_model
        positions = steps.view(3, 1, -1)
        probe = torch.zeros(1, dtype=text.embed_tokens.weight.dtype, device=self._device)
        return text.rotary_emb(probe, positions)

    def _step(self, tokens, position: torch.Tensor, row: int, cache, rope_table) -> torch.Tensor:
        """One decode step at `position` [3] (row `row` of the rope table) for every row of the
        batch: tokens, a LongTensor [rows] (or one int: then the result is that row's alone),
        -> the new tokens' final hidden states [rows, hidden] (normed; _head turns them into
        logits). Calls the decoder layers directly (no mask building, no output wrappers) with
        precomputed rotary tables, which is what makes this loop faster than generate().
        `cache=` is transformers' name since 5.x (`past_key_values` is deprecated, removed in
        5.40); tests/test_llm_cache.py fails if the cache is not used."""
        single = isinstance(tokens, int)
        model = self.model
        text = model.model.language_model
        ids = torch.as_tensor([tokens] if single else tokens, device=self._device).view(-1, 1)
        hidden = text.embed_tokens(ids)
        if rope_table is None:
            positions = position.view(3, 1, 1).expand(3, ids.shape[0], 1)
            out = text(inputs_embeds=hidden, position_ids=positions, cache=cache, use_cache=True)[0][:, -1]
            return out[0] if single else out
        rope = tuple(t[:, row : row + 1] for t in rope_table)  # [1, 1, dim]: broadcast over the rows
        for layer in text.layers:
            # Single query tokens attend to their row's whole cache, all rows equally long: no mask.
            hidden = layer(
                hidden,
                attention_mask=None,
                position_embeddings=rope,
                position_ids=None,
                cache=cache,
                use_cache=True,
            )
        out = text.norm(hidden)[:, -1]
        return out[0] if single else out


def _edit_kind_ids(tokenizer) -> list[int]:
    """Ids of the edit kind tokens a model that reads edit kinds needs, or a clear error."""
    ids = edit_kind_ids(tokenizer)
    if not ids:
        names = [edit_kind_token(k) for k in EDIT_KINDS]
        raise TaskError("model_error", f"the preset says edit.read_kind, but the tokenizer lacks {names}")
    return ids


def _check_loading_info(info: dict, folder: Path, show: int = 3) -> None:
    """Strict loading: a weight the checkpoint lacks would be left random, and one whose name
    maps nowhere would be dropped; transformers only warns of either. Fail with their names."""
    parts = []
    for label, key in (("missing (left random)", "missing_keys"), ("unexpected (not used)", "unexpected_keys"),
                       ("of the wrong shape", "mismatched_keys")):
        names = sorted(str(k) for k in (info.get(key) or ()))
        if names:
            more = f", ... ({len(names)} in all)" if len(names) > show else ""
            parts.append(f"weights {label}: {', '.join(names[:show])}{more}")
    parts += [str(m) for m in info.get("error_msgs") or ()]
    if parts:
        raise TaskError("model_error", f"the weights in {folder} do not match the model: " + "; ".join(parts))


def _quantization_config(quantization: str, dtype: torch.dtype):
    """bitsandbytes settings for 8-bit (LLM.int8) or 4-bit (NF4, double quantisation) linear
    weights (text decoder and vision tower); the compute dtype is the chosen dtype. lm_head stays
    unquantised, as transformers leaves output layers: the mesh-rows head slices its weight."""
    from transformers import BitsAndBytesConfig

    if quantization not in ("8bit", "4bit"):
        raise TaskError("bad_field", f"quantization must be none, 8bit or 4bit, not {quantization!r}")
    try:
        import accelerate  # noqa: F401  (transformers' quantised loading needs it)
        import bitsandbytes  # noqa: F401
    except ImportError as err:
        raise TaskError("model_unavailable", f"{quantization} loading needs bitsandbytes and accelerate "
                        f"({err.name} is missing): pip install 'shapellm-blender-backend[quantize]'") from None
    if quantization == "8bit":
        return BitsAndBytesConfig(load_in_8bit=True, llm_int8_skip_modules=["lm_head"])
    return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                              bnb_4bit_compute_dtype=dtype, llm_int8_skip_modules=["lm_head"])


def _checked_codes(codes) -> np.ndarray:
    codes = np.asarray(codes)
    if codes.shape != (NUM_CODES,) or not np.issubdtype(codes.dtype, np.integer):
        raise TaskError("bad_field", f"a shape is {NUM_CODES} integer codes, got {codes.dtype} {codes.shape}")
    if codes.min() < 0 or codes.max() >= CODEBOOK_SIZE:
        raise TaskError("bad_field", f"shape codes must lie in [0, {CODEBOOK_SIZE})")
    return codes


def _check_cancel(cancelled) -> None:
    if cancelled is not None and cancelled():
        raise Cancelled()
