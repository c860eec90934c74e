"""The LLM runtime on vLLM: the same tasks, prompts, mesh grammar and sampling defaults as our
own loop (backend/models/llm.py), run by a vLLM engine that batches many requests at once.

    rt = VllmRuntime.load(llm_source, prompts, edit, url=None, max_jobs=8)   # url None: start one
    rt.generate_shape(text=...) / rt.describe(codes) / rt.edit(codes, instruction)
    rt.read_edit_kind(instruction); rt.release(); rt.max_jobs

How the grammar maps onto vLLM's request fields:
- A mesh answer: the prompt ends with the forced `<mesh-start>`; `allowed_token_ids` = the 8192
  `<meshK>` ids with `min_tokens = max_tokens = 1024`, so exactly one full block comes back;
  the closing `<mesh-end>` is forced, so it is appended here without a model step (as our loop
  does).
- Text (describe): `allowed_token_ids` = every text id (mesh tokens, block markers and the
  embedding rows with no token banned), stop at the model's eos ids, at most max_new_tokens.
- The edit kind: one step with `allowed_token_ids` = the six kind tokens and
  `logprob_token_ids` = the same six; their probabilities renormalised among the six equal our
  loop's softmax over the six logits.
- Sampling: temperature 0 is greedy; else temperature, top_k, top_p, the seed and the model's
  repetition penalty (vLLM applies it to prompt and answer tokens, as generate() does). The
  random streams differ from torch's, so a sampled shape differs from our loop's for one seed;
  greedy shapes agree (bench/engines.py).
- Progress: the stream's token ids, per chunk. Cancel: the connection is closed, vLLM aborts.

Not through vLLM: edit answers at the input block's positions (`edit.aligned_positions`, the
embedded model's add/remove): vLLM numbers positions one after another. Image to 3D needs
vLLM's Qwen2.5-VL class (torchvision: a GPU host); an engine serving the text model alone says so.
"""

from __future__ import annotations

import base64
import io
import json
import logging
import math
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from backend.checks import checked_text
from backend.errors import Cancelled, TaskError
from backend.models.codec import (EDIT_KINDS, NUM_CODES, MeshCodec, edit_kind_ids, edit_user_text,
                                  with_mesh_block)
from backend.models.presets import TASKS, EditSettings
from backend.models.prompting import chat_prompt_ids, stop_token_ids
from backend.models.vllm_client import VllmClient

log = logging.getLogger(__name__)

# Files a remote engine's client needs locally: tokenizer, chat template, configs; no weights.
TOKENIZER_PATTERNS = ["*.json", "*.txt", "*.jinja"]
DEFAULT_MAX_JOBS = 8
TEXT_ONLY_MESSAGE = ("image to 3D through vLLM needs vLLM's Qwen2.5-VL model class, which needs torchvision: "
                     "serve the model on a GPU host (docs/serving.md); this engine serves the language model "
                     "text-only (torchvision does not load beside the CPU build of torch)")


class VllmRuntime:
    batches = True  # the engine runs many requests at once: the server may run max_jobs jobs

    def __init__(self, client: VllmClient, tokenizer, chat_template: str, prompts: dict, edit: EditSettings,
                 config: dict, generation: dict, text_only: bool, max_jobs: int, engine=None):
        self.client = client
        self.tokenizer = tokenizer
        self.chat_template = chat_template
        self.prompts = prompts
        self.edit_settings = edit
        self.text_only = text_only
        self.max_jobs = max_jobs
        self.engine = engine  # a LocalVllmEngine we started, stopped by release()
        self.codec = MeshCodec(tokenizer)
        self.code_ids = [int(i) for i in self.codec.code_ids]
        text = config.get("text_config") or config
        vocab = int(text.get("vocab_size", len(tokenizer)))
        self.tokenizer_size = min(len(tokenizer), vocab)
        self.image_token_id = config.get("image_token_id")
        self.repetition_penalty = float(generation.get("repetition_penalty") or 1.0)
        self.stop_ids = sorted(stop_token_ids(generation.get("eos_token_id", text.get("eos_token_id")), tokenizer))
        banned = set(self.code_ids) | {self.codec.start_id, self.codec.end_id}
        self.text_ids = [i for i in range(self.tokenizer_size) if i not in banned]
        self.edit_kind_ids = edit_kind_ids(tokenizer) if edit.read_kind else None
        if edit.read_kind and not self.edit_kind_ids:
            raise TaskError("model_error", "the preset says edit.read_kind, but the tokenizer lacks the kind tokens")

    # -- loading -----------------------------------------------------------------------------

    @classmethod
    def load(cls, llm_source, prompts: dict, edit: EditSettings = EditSettings(), *, url: str | None = None,
             max_jobs: int = DEFAULT_MAX_JOBS, dtype: str = "auto", cancelled=None) -> "VllmRuntime":
        """url: a running vLLM server (a studio's); None starts one from .venv-vllm."""
        from transformers import AutoTokenizer

        from backend.models.llm import _read_chat_template

        missing = [k for k in TASKS if not isinstance(prompts.get(k), str)]
        if missing:
            raise TaskError("model_error", f"prompt templates missing: {missing}")
        engine = None
        if url is None:
            from backend.models.llm import resolve_llm_folder
            from backend.models.memory import checkpoint_dtype
            from backend.models.vllm_process import LocalVllmEngine

            folder = resolve_llm_folder(llm_source)
            if dtype == "auto":  # the checkpoint's own dtype, as our loop loads it (float32 stays float32)
                dtype = str(checkpoint_dtype(folder) or "auto").replace("torch.", "")
            engine = LocalVllmEngine.start(folder, max_jobs, dtype, cancelled)
            client, text_only = VllmClient(engine.url), engine.text_only
        else:
            folder = tokenizer_folder(llm_source)
            client, text_only = VllmClient(url), None
        try:
            tokenizer = AutoTokenizer.from_pretrained(str(folder))
            config = json.loads((folder / "config.json").read_text())
            generation_file = folder / "generation_config.json"
            generation = json.loads(generation_file.read_text()) if generation_file.is_file() else {}
            served = client.model  # also checks that the engine answers
            if text_only is None:  # another's engine: our text-only export has its own name
                from backend.models.vllm_process import TEXT_ONLY_NAME

                text_only = served == TEXT_ONLY_NAME
            log.info("vLLM engine at %s serves %s", client.url, served)
            return cls(client, tokenizer, _read_chat_template(folder, tokenizer), dict(prompts), edit, config,
                       generation, text_only, max_jobs, engine)
        except BaseException:
            if engine is not None:
                engine.stop()
            raise

    def release(self) -> None:
        """Stops the engine this runtime started (its memory is freed); a studio's engine stays."""
        if self.engine is not None:
            self.engine.stop()
            self.engine = None

    # -- the four tasks ----------------------------------------------------------------------

    def generate_shape(self, text=None, image=None, options=None, progress=None, cancelled=None) -> np.ndarray:
        from backend.models.llm import Sampling

        sampling = Sampling.from_options(options, self)
        if image is not None:
            return self._image_answer(image, sampling, progress, cancelled)
        text = checked_text(text, "prompt")
        content = [{"type": "text", "text": self.prompts["text_to_3d"].replace("{text}", text)}]
        return self._mesh_answer(self._prompt_ids(content), sampling, progress, cancelled)

    def generate_shapes(self, text=None, image=None, options=None, count: int = 1, progress=None,
                        cancelled=None) -> list[np.ndarray]:
        """K shapes of one prompt: K requests at once (seeds seed, seed+1, ...), which the engine
        batches; progress is the slowest one's."""
        if count == 1:
            return [self.generate_shape(text, image, options, progress, cancelled)]
        from backend.models.llm import Sampling
        seed = Sampling.from_options(options, self).seed
        done = [0] * count
        lock = threading.Lock()

        def row(index: int) -> np.ndarray:
            def on_progress(stage, value, total):
                with lock:
                    done[index] = value
                    if progress:
                        progress(stage, min(done), total)
            return self.generate_shape(text, image, {**(options or {}), "seed": seed + index}, on_progress, cancelled)

        with ThreadPoolExecutor(max_workers=count) as pool:
            return list(pool.map(row, range(count)))

    def declines(self, text: str, cancelled=None, below: float = 0.5, max_words: int = 40) -> str | None:
        """As our loop's: the model's own text answer when its probability of <mesh-start> as
        the first answer token is under `below`, else None."""
        text = checked_text(text, "prompt")
        prompt = self._prompt_ids([{"type": "text", "text": self.prompts["text_to_3d"].replace("{text}", text)}])
        start = self.codec.start_id
        params = {"temperature": 0, "max_tokens": 1, "logprobs": 1, "logprob_token_ids": [start],
                  "return_tokens_as_token_ids": True}
        _, chunks = self.client.complete(prompt, params, cancelled=cancelled)
        top = {}
        for chunk in chunks:
            for entry in chunk.get("top_logprobs") or ():
                top.update(entry or {})
        if math.exp(float(top.get(f"token_id:{start}", -math.inf))) >= below:
            return None
        params = {"temperature": 0, "max_tokens": max_words, "allowed_token_ids": self.text_ids,
                  "stop_token_ids": self.stop_ids}
        ids, _ = self.client.complete(prompt, params, cancelled=cancelled)
        return self.tokenizer.decode(ids, skip_special_tokens=True).strip()

    def describe(self, codes, options=None, progress=None, cancelled=None) -> str:
        from backend.models.llm import Sampling, _checked_codes

        question = (options or {}).get("question")
        question = self.prompts["describe"] if question is None else checked_text(question, "question")
        content = [{"type": "text", "text": with_mesh_block(question, _checked_codes(codes))}]
        sampling = Sampling.from_options(options, self)
        total = sampling.max_new_tokens
        done = [0]

        def on_tokens(new):
            done[0] += len(new)
            if progress:
                progress("tokens", min(done[0], total), total)

        params = {**_sampling_params(sampling), "max_tokens": total, "allowed_token_ids": self.text_ids,
                  "stop_token_ids": self.stop_ids}
        ids, _ = self.client.complete(self._prompt_ids(content), params, on_tokens, cancelled)
        return self.tokenizer.decode(ids, skip_special_tokens=True).strip()

    def edit(self, codes, instruction, options=None, progress=None, cancelled=None) -> np.ndarray:
        from backend.models.llm import Sampling, _checked_codes

        if self.edit_settings.aligned_positions:
            raise TaskError("unsupported", "this preset's edit answers sit at the input block's positions "
                            "(edit.aligned_positions), which vLLM cannot give (it numbers positions one after "
                            "another): use --engine own for model-written edits of this preset")
        instruction = checked_text(instruction, "instruction")
        content = [{"type": "text", "text": edit_user_text(self.prompts["edit"], _checked_codes(codes), instruction)}]
        return self._mesh_answer(self._prompt_ids(content), Sampling.from_options(options, self), progress, cancelled)

    def read_edit_kind(self, instruction: str, cancelled=None) -> tuple[str, float]:
        """(kind, how sure): as our loop's read_edit_kind, from one vLLM step's logprobs."""
        if self.edit_kind_ids is None:
            raise TaskError("unsupported", "this model does not name edit kinds (no edit kind question)")
        if cancelled is not None and cancelled():
            raise Cancelled()
        question = self.prompts["edit_kind"].replace("{instruction}", checked_text(instruction, "instruction"))
        params = {"temperature": 0, "max_tokens": 1, "allowed_token_ids": self.edit_kind_ids, "logprobs": 1,
                  "logprob_token_ids": self.edit_kind_ids, "return_tokens_as_token_ids": True}
        _, chunks = self.client.complete(self._prompt_ids([{"type": "text", "text": question}]), params,
                                         cancelled=cancelled)
        top = {}
        for chunk in chunks:
            for entry in chunk.get("top_logprobs") or ():
                top.update(entry or {})
        try:
            logprobs = [float(top[f"token_id:{i}"]) for i in self.edit_kind_ids]
        except KeyError:
            raise TaskError("model_error", "the vLLM engine did not return the edit kinds' logprobs") from None
        best = max(range(len(logprobs)), key=logprobs.__getitem__)
        total = sum(math.exp(lp - logprobs[best]) for lp in logprobs)  # softmax among the six
        return EDIT_KINDS[best], 1.0 / total

    # -- helpers -----------------------------------------------------------------------------

    def _prompt_ids(self, content: list) -> list[int]:
        return chat_prompt_ids(self.tokenizer, self.chat_template, content)

    def _mesh_params(self, sampling) -> dict:
        return {**_sampling_params(sampling), "allowed_token_ids": self.code_ids, "min_tokens": NUM_CODES,
                "max_tokens": NUM_CODES}

    def _mesh_answer(self, prompt: list[int], sampling, progress, cancelled, **request) -> np.ndarray:
        """The 1024 codes of one mesh block; `request`: path and body for another endpoint."""
        done = [0]

        def on_tokens(new):
            done[0] += len(new)
            if progress:
                progress("tokens", min(done[0], NUM_CODES), NUM_CODES)

        prompt = prompt + [self.codec.start_id]  # the forced opening
        params = self._mesh_params(sampling)
        ids, _ = self.client.complete(prompt, params, on_tokens, cancelled, **request)
        parsed = self.codec.parse_ids([self.codec.start_id, *ids, self.codec.end_id])  # the forced closing
        if not parsed.exact:
            raise TaskError("model_error", f"the vLLM engine returned {parsed.found} mesh codes, not {NUM_CODES}")
        return parsed.codes

    def _image_answer(self, image, sampling, progress, cancelled) -> np.ndarray:
        """Through vLLM's chat endpoint (it runs the image processor): the user turn holds the
        prepared image, the assistant turn opens with <mesh-start> and is continued."""
        from backend.models.images import prepare_image

        if self.text_only:
            raise TaskError("unsupported", TEXT_ONLY_MESSAGE)
        buffer = io.BytesIO()
        prepare_image(image).save(buffer, format="PNG")
        url = "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")
        body = {"messages": [
            {"role": "user", "content": [{"type": "image_url", "image_url": {"url": url}},
                                         {"type": "text", "text": self.prompts["image_to_3d"]}]},
            {"role": "assistant", "content": "<mesh-start>"}],
            "add_generation_prompt": False, "continue_final_message": True}
        # The chat endpoint continues the assistant turn, which already holds <mesh-start>.
        return self._mesh_answer([], sampling, progress, cancelled, path="/v1/chat/completions", body=body)


def _sampling_params(sampling) -> dict:
    """Our Sampling as vLLM request fields."""
    if sampling.greedy:
        params = {"temperature": 0.0}
    else:
        params = {"temperature": sampling.temperature, "top_p": sampling.top_p, "top_k": sampling.top_k,
                  "seed": sampling.seed}
    if sampling.repetition_penalty != 1.0:
        params["repetition_penalty"] = sampling.repetition_penalty
    return params


def tokenizer_folder(llm_source) -> Path:
    """A local folder with the model's tokenizer and configs (no weights: the engine has them)."""
    from backend.models.checkpoints import hub_offline, is_repo_id

    path = Path(str(llm_source)).expanduser()
    if path.is_dir():
        return path
    if not is_repo_id(llm_source):
        raise TaskError("model_unavailable", f"{llm_source} is neither a model folder nor a Hugging Face repo id")
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(str(llm_source), allow_patterns=TOKENIZER_PATTERNS,
                                      local_files_only=hub_offline()))
    except Exception as err:
        raise TaskError("model_unavailable", f"the tokenizer of {llm_source} is not available: {err}") from err
