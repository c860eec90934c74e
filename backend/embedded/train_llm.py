"""Training of the small embedded LLM: Qwen2_5_VLForConditionalGeneration at a tiny size, our
own tokenizer with the 8194 mesh tokens, the published prompt format and chat template.

Three tasks share one model, mixed in every run of steps:
  text -> 3D   user: text_to_3d template with a caption   assistant: mesh block
  describe     user: mesh block + "\n" + question           assistant: a caption
  edit         user: edit template + "\n" + mesh block     assistant: edited mesh block
Edit puts the instruction first (EMBEDDED_PROMPTS) and gives the answer block the input
block's positions (codec.aligned_positions): an unchanged code is then one fixed relative
position away, whatever the instruction's length (docs/embedded-model.md, "Edit").
The loss covers the assistant turn only (its tokens and the closing <|im_end|>).
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tokenizers import AddedToken
from transformers import GenerationConfig, Qwen2_5_VLForConditionalGeneration

from backend.geometry.resize import PROPORTION_KINDS
from backend.models.codec import (EDIT_KINDS, aligned_positions, codes_to_text, edit_kind_ids, edit_kind_token,
                                  edit_user_text, with_mesh_block)
from backend.models.presets import REFERENCE_PROMPTS
from backend.models.tiny_llm import TINY_MAX_PIXELS, TINY_MIN_PIXELS, tiny_config, write_processor_files
from backend.models.tokenizer_build import build_tokenizer

from . import language as L
from .categories import CATEGORIES
from .kind_probe import fit_kind_rows
from .shape import Shape, sample_shape


# Edit has no published template; ours puts the instruction before the mesh (see above).
EMBEDDED_PROMPTS = {**REFERENCE_PROMPTS, "edit": "Edit this 3D mesh: {instruction}\n{mesh}"}
# The kind is asked on its own, the instruction without the mesh: with the 1024 mesh tokens in
# the context the model never learnt to name it (chance after 1200 steps, measured).
EDIT_KIND_PROMPT = "Which edit is this: {instruction}"


def embedded_prompts(edit_resize: bool = False) -> dict:
    if edit_resize:
        return {**EMBEDDED_PROMPTS, "edit_kind": EDIT_KIND_PROMPT}
    return dict(EMBEDDED_PROMPTS)


@dataclass
class LLMTrainSettings:
    hidden: int = 192
    layers: int = 4
    # 10k instead of Qwen's 1M: with head_dim 48 the 1M base leaves few rotary frequencies that
    # resolve offsets of 1..64 tokens, the row and slab strides of the mesh token grid
    rope_theta: float = 10000.0
    steps: int = 4000  # the schedule's length; max_minutes caps the wall clock on a slow machine
    batch: int = 3
    lr: float = 1.5e-3
    final_lr_fraction: float = 0.1  # cosine decay over the steps (or the time cap, if sooner)
    keep_empty: float = 0.25  # share of empty-code targets that get logits (see batch_loss)
    warmup: int = 100
    # The prompt decides only the first few mesh tokens (later ones follow from the tokens
    # before them), so the first tokens of an answer get a larger loss weight: unweighted,
    # they are ~0.1% of the loss and the model learnt to ignore the prompt (measured).
    lead_tokens: int = 32
    lead_weight: float = 10.0
    task_weights: tuple[float, float, float] = (0.4, 0.35, 0.25)  # text->3D, describe, edit
    # edit answers positioned like the input block (codec.aligned_positions), so copying an
    # unchanged code is one fixed relative position; the preset says so to the runtime
    aligned_edit_positions: bool = True
    checkpoint_every_s: float = 420.0
    # text -> 3D on only the first N shapes per category (0 = all): a small model learns a few
    # shapes by heart in the budget, and the whole variety came out as noise (measured)
    text_shapes_per_category: int = 3
    # share of prompts, questions and instructions with made-up words inserted (with_filler),
    # and of prompts and questions made of made-up words around the noun (made_up_frame)
    filler_chance: float = 0.0
    made_up_frames: float = 0.0
    # proportion edits resized at run time (the preset reads the kind): every step adds the kind
    # questions (EDIT_KIND_PROMPT, answered by the kind token), and edit answers are trained for
    # the other kinds (add, remove) alone
    edit_resize: bool = False
    # kind questions per step (with edit_resize): short examples, a small share of a
    # step's cost; each asks a kind drawn evenly, so add and remove are asked as often as the rest
    kind_questions: int = 8
    # the edit instructions' wording pool (language.edit_instruction): "train", or "wide", the
    # training wordings and the grammar of wide_wording.py
    edit_wording: str = "train"
    # when the kind tokens are new to the model (a kinds stage), start their LM-head rows as a
    # linear probe of its hidden states (kind_probe.py) instead of zero
    kind_probe: bool = False
    max_minutes: float = 150.0
    seed: int = 0
    device: str = "cpu"


def corpus() -> list[str]:
    """Training wordings only: the BPE never sees the held-out frames."""
    texts = list(REFERENCE_PROMPTS.values()) + ["You are a helpful assistant."]
    texts += L.FRAMES["train"] + L.DESCRIBE_QUESTIONS["train"] + L.ANSWER_FRAMES
    texts += [n for ns in L.NOUNS.values() for n in ns] + list(CATEGORIES)
    texts += [p for e in L.EDIT_PHRASES.values() for p in e["train"]]
    texts += [c.part for c in CATEGORIES.values() if c.part]
    texts += ["tall", "short", "wide", "narrow", "with", "without", "and", "legs", "boards", "rungs", "doors"]
    return texts * 4


def make_tokenizer(edit_kinds: bool = False):
    """Our BPE with the chat and mesh tokens; `edit_kinds` appends the edit kind tokens."""
    tokenizer = build_tokenizer(corpus(), vocab_size=600)
    if edit_kinds:
        tokenizer.add_tokens([AddedToken(edit_kind_token(k), special=True, normalized=False) for k in EDIT_KINDS])
    return tokenizer


def chat_prompt(tokenizer, user_text: str) -> str:
    messages = [{"role": "user", "content": [{"type": "text", "text": user_text}]}]
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)


def encode_example(tokenizer, user_text: str, answer: str) -> tuple[list[int], int]:
    """Token ids of the whole conversation and where the assistant answer starts."""
    prompt_ids = tokenizer(chat_prompt(tokenizer, user_text), add_special_tokens=False)["input_ids"]
    answer_ids = tokenizer(answer + "<|im_end|>", add_special_tokens=False)["input_ids"]
    return prompt_ids + answer_ids, len(prompt_ids)


class ExampleSampler:
    """Draws fresh wordings every time, over the encoded shapes and edit pairs."""

    def __init__(self, tokenizer, data: dict, prompts: dict, seed: int, text_shapes_per_category: int = 0,
                 filler_chance: float = 0.0, made_up_frames: float = 0.0,
                 edit_answer_kinds: tuple[str, ...] | None = None, edit_wording: str = "train"):
        """edit_answer_kinds: the edit kinds whose answers edit examples train (None: all);
        kind questions draw from every pair."""
        self.tok, self.data, self.prompts = tokenizer, data, prompts
        self.edit_wording = edit_wording
        self.filler_chance, self.made_up_frames = filler_chance, made_up_frames
        self.rng = np.random.default_rng(seed)
        self.shapes = [shape_from_meta(m) for m in data["shape_meta"]]
        self.edit_src = [shape_from_meta(m) for m in data["edit_meta"]]
        self.edit_answer_pairs = [i for i, m in enumerate(data["edit_meta"])
                                  if edit_answer_kinds is None or m["edit"] in edit_answer_kinds]
        self.pairs_of_kind: dict[str, list[int]] = {}
        for i, m in enumerate(data["edit_meta"]):
            self.pairs_of_kind.setdefault(m["edit"], []).append(i)
        # text -> 3D may be limited to a few shapes per category (see LLMTrainSettings);
        # describe and edit still see every shape.
        seen: dict[str, int] = {}
        self.text_shapes = []
        for i, s in enumerate(self.shapes):
            seen[s.category] = seen.get(s.category, 0) + 1
            if not text_shapes_per_category or seen[s.category] <= text_shapes_per_category:
                self.text_shapes.append(i)

    def sample(self, task: str) -> tuple[list[int], int]:
        rng = self.rng
        if task == "text_to_3d":
            i = self.text_shapes[int(rng.integers(len(self.text_shapes)))]
            text = L.text_prompt(self.shapes[i], rng, made_up=self.made_up_frames)
            text = L.with_filler(text, rng, self.filler_chance)
            user = self.prompts["text_to_3d"].format(text=text)
            return encode_example(self.tok, user, codes_to_text(self.data["shape_codes"][i]))
        if task == "describe":
            i = int(rng.integers(len(self.shapes)))
            question = self.prompts["describe"] if rng.random() < 0.5 else L.describe_question(rng)
            if self.made_up_frames > 0 and rng.random() < self.made_up_frames:
                question = L.made_up_frame(rng).format(d=L.made_up_word(rng)) + "?"
            question = L.with_filler(question, rng, self.filler_chance)
            user = with_mesh_block(question, self.data["shape_codes"][i])
            return encode_example(self.tok, user, L.describe_answer(self.shapes[i], rng))
        i, _, instruction = self._edit_draw(self.edit_answer_pairs)
        user = edit_user_text(self.prompts["edit"], self.data["edit_src"][i], instruction)
        return encode_example(self.tok, user, codes_to_text(self.data["edit_tgt"][i]))

    def _edit_draw(self, pairs: list[int] | None = None) -> tuple[int, str, str]:
        """An edit pair's index (of `pairs`, or any), its kind and a fresh training wording of
        its instruction."""
        pairs = range(len(self.edit_src)) if pairs is None else pairs
        i = pairs[int(self.rng.integers(len(pairs)))]
        kind = self.data["edit_meta"][i]["edit"]
        instruction = L.edit_instruction(self.edit_src[i], kind, self.rng, self.edit_wording)
        return i, kind, L.with_filler(instruction, self.rng, self.filler_chance)

    def sample_kind_question(self) -> tuple[list[int], int]:
        """The kind question of an edit pair of an evenly drawn kind: its instruction alone,
        answered by the kind token."""
        kinds = sorted(self.pairs_of_kind)
        _, kind, instruction = self._edit_draw(self.pairs_of_kind[kinds[int(self.rng.integers(len(kinds)))]])
        return encode_example(self.tok, self.prompts["edit_kind"].format(instruction=instruction), edit_kind_token(kind))


def shape_meta(shape: Shape) -> dict:
    return {"category": shape.category, "seed": shape.seed, "stretch": list(shape.stretch),
            "part": bool(shape.params.get("part", False))}


def shape_from_meta(meta: dict) -> Shape:
    s = sample_shape(meta["category"], meta["seed"])
    if "part" in s.params:
        s = s.with_params(part=meta["part"])
    return s.with_stretch(meta["stretch"])


def new_model(tokenizer, settings: LLMTrainSettings) -> Qwen2_5_VLForConditionalGeneration:
    torch.manual_seed(settings.seed)
    config = tiny_config(tokenizer, hidden=settings.hidden, layers=settings.layers, rope_theta=settings.rope_theta)
    config.text_config.max_position_embeddings = 4096
    return Qwen2_5_VLForConditionalGeneration(config)


@torch.no_grad()
def grow_vocabulary(model, size: int) -> bool:
    """Rows for tokens a saved model lacks (the edit kind tokens when the kinds stage adds them),
    zero: the model answers as before until they are trained. True if it added any."""
    old = model.get_input_embeddings().weight.shape[0]
    if size > old:
        model.resize_token_embeddings(size, mean_resizing=False)
        model.get_input_embeddings().weight[old:] = 0
        model.lm_head.weight[old:] = 0
    return size > old


class ActiveVocab:
    """The softmax used in training: every text token, the mesh codes the data uses, and ONE
    row standing for all never-used mesh codes, its logit counted once per such code. Tying
    those rows (see `tie_unused_rows`) makes this exactly the full-vocabulary softmax, at a
    fraction of the cost of the 8.8k-row LM head."""

    def __init__(self, tokenizer, used_codes: np.ndarray):
        mesh0 = tokenizer.convert_tokens_to_ids("<mesh0>")
        markers = tokenizer.convert_tokens_to_ids(["<mesh-start>", "<mesh-end>"])
        used = np.unique(used_codes)
        unused = np.setdiff1d(np.arange(8192), used)
        after = np.arange(markers[1] + 1, len(tokenizer))  # the edit kind tokens, when there are any
        self.ids = torch.tensor(np.concatenate([np.arange(mesh0), mesh0 + used, markers, after]), dtype=torch.long)
        self.unused_ids = torch.tensor(mesh0 + unused, dtype=torch.long)
        self.index = torch.full((len(tokenizer),), -1, dtype=torch.long)
        self.index[self.ids] = torch.arange(len(self.ids))

    def logits(self, lm_head: torch.nn.Linear, hidden: torch.Tensor) -> torch.Tensor:
        w = lm_head.weight
        logits = hidden @ w[self.ids.to(w.device)].t()
        if len(self.unused_ids):
            shared = hidden @ w[int(self.unused_ids[0])] + float(np.log(len(self.unused_ids)))
            logits = torch.cat([logits, shared[:, None]], dim=1)
        return logits

    @torch.no_grad()
    def tie_unused_rows(self, lm_head: torch.nn.Linear) -> None:
        if len(self.unused_ids):
            lm_head.weight[self.unused_ids] = lm_head.weight[self.unused_ids[0]].clone()


def batch_loss(model, batch: list[tuple[list[int], int]], pad_id: int, vocab: ActiveVocab,
               empty_id: int | None = None, keep_empty: float = 1.0, generator=None,
               lead_tokens: int = 0, lead_weight: float = 1.0, align_with: int | None = None) -> torch.Tensor:
    """Weighted next-token loss over the assistant answers of a right-padded batch, divided by
    the number of answer tokens.

    The first `lead_tokens` answer tokens count `lead_weight` times (see LLMTrainSettings).
    align_with: the <mesh-start> id, to position edit answers with codec.aligned_positions.
    The LM head over ~8.8k rows is the largest cost of a step. Most mesh targets are the empty
    code and easy, so only a random `keep_empty` share of them gets logits, weighted by
    1 / keep_empty: the same expected loss for a fraction of the head's work."""
    length = max(len(ids) for ids, _ in batch)
    input_ids = torch.full((len(batch), length), pad_id, dtype=torch.long)
    attention = torch.zeros((len(batch), length), dtype=torch.long)
    labels = torch.full((len(batch), length), -100, dtype=torch.long)
    positions = torch.zeros((3, len(batch), length), dtype=torch.long)
    lead = torch.ones((len(batch), length - 1))
    for b, (ids, start) in enumerate(batch):
        input_ids[b, : len(ids)] = torch.tensor(ids)
        attention[b, : len(ids)] = 1
        labels[b, start: len(ids)] = torch.tensor(ids[start:])
        if align_with is None:
            positions[:, b, : len(ids)] = torch.arange(len(ids))
        else:
            where = aligned_positions(ids, start, align_with)
            positions[:, b, : len(ids)] = torch.tensor(np.broadcast_to(where, (3, len(ids))))
        lead[b, max(start - 1, 0): start - 1 + lead_tokens] = lead_weight  # targets ids[start...]
    # hidden states first, then the LM head only where there is a label: most prompt
    # positions (the mesh block of describe/edit) need no logits at all
    hidden = model.model(input_ids=input_ids.to(model.device), attention_mask=attention.to(model.device),
                         position_ids=positions.to(model.device)).last_hidden_state
    targets = labels[:, 1:]
    labelled = targets != -100
    keep, weight = labelled, lead
    if empty_id is not None and keep_empty < 1.0:
        empty = targets == empty_id
        drawn = torch.rand(targets.shape, generator=generator) < keep_empty
        keep = labelled & (~empty | drawn)
        weight = lead * torch.where(empty, 1.0 / keep_empty, 1.0)
    device = hidden.device
    keep = keep.to(device)
    logits = vocab.logits(model.lm_head, hidden[:, :-1][keep])
    classes = vocab.index.to(device)[targets.to(device)[keep]]
    losses = F.cross_entropy(logits.float(), classes, reduction="none")
    return (losses * weight.to(device)[keep]).sum() / labelled.sum().to(device)


def adapt_threads() -> None:
    """Two threads on an idle machine, one when others load it: OpenMP threads that wait for a
    descheduled sibling made steps several times slower than one thread (measured)."""
    others = os.getloadavg()[0] - torch.get_num_threads()
    torch.set_num_threads(2 if others < 0.5 else 1)


def learning_rate(settings: LLMTrainSettings, step: int, progress: float) -> float:
    """Linear warm-up over steps, then cosine decay over `progress`: the share of the steps
    done, or of the wall-clock cap if that runs out first."""
    floor = settings.final_lr_fraction
    decay = floor + (1 - floor) * 0.5 * (1 + np.cos(np.pi * min(1.0, progress)))
    return settings.lr * min(1.0, (step + 1) / settings.warmup) * float(decay)


def train_llm(data: dict, workdir: Path, settings: LLMTrainSettings, log=print, snapshot=None,
              start_from: Path | None = None, name: str = "llm", sampler_factory=None):
    """Trains (or resumes) and returns (model, tokenizer). `snapshot(model, tokenizer, step)` is
    called at every checkpoint so a usable preset exists early. start_from: a saved model
    (save_pretrained folder) to continue from instead of a fresh one; `name` keeps its
    checkpoint apart. sampler_factory(tokenizer, data, prompts, seed): a stage's own example
    sampler (the artist stage's) instead of ExampleSampler."""
    workdir.mkdir(parents=True, exist_ok=True)
    ckpt_path = workdir / f"{name}_resume.pt"
    names_kinds = settings.edit_resize  # kind tokens and kind questions
    tokenizer = make_tokenizer(names_kinds)
    grown = False
    if start_from is None:
        model = new_model(tokenizer, settings)
    else:
        model = Qwen2_5_VLForConditionalGeneration.from_pretrained(str(start_from))
        grown = grow_vocabulary(model, len(tokenizer))
    model = model.to(settings.device)
    opt = torch.optim.AdamW(model.parameters(), lr=settings.lr, weight_decay=0.01, betas=(0.9, 0.98))
    step, elapsed_before = 0, 0.0
    if ckpt_path.exists():
        state = torch.load(ckpt_path, weights_only=False, map_location=settings.device)
        model.load_state_dict(state["model"]), opt.load_state_dict(state["opt"])
        step, elapsed_before = state["step"], state.get("elapsed_s", 0.0)
        log(f"resumed {name} at step {step} ({elapsed_before / 60:.1f} of {settings.max_minutes} minutes done)")
    answer_kinds = tuple(k for k in EDIT_KINDS if k not in PROPORTION_KINDS) if settings.edit_resize else None
    prompts = embedded_prompts(settings.edit_resize)

    def sampler_from(seed: int) -> ExampleSampler:
        if sampler_factory is not None:
            return sampler_factory(tokenizer, data, prompts, seed)
        return ExampleSampler(tokenizer, data, prompts, seed,
                              settings.text_shapes_per_category, settings.filler_chance, settings.made_up_frames,
                              answer_kinds, settings.edit_wording)

    sampler = sampler_from(settings.seed + step)
    if grown and names_kinds and settings.kind_probe and step == 0:
        # the probe draws its own examples, so the stage's draws are the same with or without it
        t = time.time()
        fit = fit_kind_rows(model, edit_kind_ids(tokenizer), sampler_from(settings.seed + 1000), seed=settings.seed)
        log(f"kind rows from a probe: kind named {fit['accuracy']:.2f}, loss {fit['kind_loss']:.3f}, "
            f"{fit['added_loss']:.4f} added to other answers, {time.time() - t:.0f}s")
    tasks = ["text_to_3d", "describe", "edit"]
    weights = np.asarray(settings.task_weights) / np.sum(settings.task_weights)
    pad_id = tokenizer.convert_tokens_to_ids("<|endoftext|>")
    # the codes the model is asked to predict: text -> 3D targets, and edit targets if trained
    predicted = [data["shape_codes"][sampler.text_shapes].ravel()]
    if settings.task_weights[2] > 0:
        predicted.append(data["edit_tgt"].ravel())
    vocab = ActiveVocab(tokenizer, np.concatenate(predicted))
    empty_code = int(np.bincount(data["shape_codes"].ravel()).argmax())  # the all-empty column
    empty_id = tokenizer.convert_tokens_to_ids(f"<mesh{empty_code}>")
    loss_rng = torch.Generator().manual_seed(settings.seed + step)
    align_with = tokenizer.convert_tokens_to_ids("<mesh-start>") if settings.aligned_edit_positions else None
    log(f"LLM: {sum(p.numel() for p in model.parameters())} parameters, active vocabulary {len(vocab.ids)}")
    start, last_ckpt = time.time(), time.time()
    running = {t: [] for t in tasks + ["edit_kind"]}
    budget_s = settings.max_minutes * 60

    def elapsed() -> float:
        return elapsed_before + time.time() - start

    def save():
        torch.save(dict(model=model.state_dict(), opt=opt.state_dict(), step=step, elapsed_s=elapsed()), ckpt_path)
        vocab.tie_unused_rows(model.lm_head)  # the saved model's full softmax = the trained one
        if snapshot:
            snapshot(model, tokenizer, step)
        return model

    model.train()
    while step < settings.steps and elapsed() < budget_s:
        task = tasks[int(sampler.rng.choice(3, p=weights))]
        batch = [sampler.sample(task) for _ in range(settings.batch)]
        lr = learning_rate(settings, step, max(step / settings.steps, elapsed() / budget_s))
        for g in opt.param_groups:
            g["lr"] = lr
        loss = batch_loss(model, batch, pad_id, vocab, empty_id, settings.keep_empty, loss_rng,
                          settings.lead_tokens, settings.lead_weight, align_with)
        running[task].append(loss.item())
        if names_kinds:  # plain positions, as the runtime asks the kind question
            questions = [sampler.sample_kind_question() for _ in range(settings.kind_questions)]
            kind_loss = batch_loss(model, questions, pad_id, vocab)
            running["edit_kind"].append(kind_loss.item())
            loss = loss + kind_loss
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        step += 1
        if step % 20 == 0:
            if settings.device == "cpu":
                adapt_threads()
            summary = " ".join(f"{t} {np.mean(v[-20:]):.3f}" for t, v in running.items() if v)
            log(f"{name} step {step} {summary} {time.time() - start:.0f}s")
        if time.time() - last_ckpt > settings.checkpoint_every_s:
            save()
            last_ckpt = time.time()
    return save().eval(), tokenizer


def export_llm(model, tokenizer, folder: Path, generation: dict) -> None:
    """A save_pretrained folder (safetensors + config + processor), like the published one."""
    folder.mkdir(parents=True, exist_ok=True)
    ids = tokenizer.convert_tokens_to_ids
    # HF's generate() reads this file; temperature 0 (greedy) is do_sample=False there
    sampling = ({"do_sample": True, "temperature": generation["temperature"], "top_p": generation["top_p"],
                 "top_k": generation["top_k"]} if generation["temperature"] > 0 else {"do_sample": False})
    model.generation_config = GenerationConfig(
        bos_token_id=ids("<|endoftext|>"), eos_token_id=[ids("<|im_end|>"), ids("<|endoftext|>")],
        pad_token_id=ids("<|endoftext|>"), repetition_penalty=1.0, **sampling)
    model.save_pretrained(str(folder))
    write_processor_files(folder, tokenizer, TINY_MIN_PIXELS, TINY_MAX_PIXELS)
    (folder / "embedded_training.json").write_text(json.dumps({"note": "see docs/embedded-model.md"}) + "\n")
