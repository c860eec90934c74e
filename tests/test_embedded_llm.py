"""Training of the embedded LLM: examples, the reduced-but-exact softmax, a few real steps, and
the exported folder loading through the runtime the published 7B model uses."""

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np
import pytest
import torch

from backend.embedded import train_llm as T
from backend.embedded.splits import split_shapes
from backend.models.codec import MeshCodec
from backend.models.llm import ShapeLLMRuntime
from backend.models.presets import REFERENCE_PROMPTS, EditSettings

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def setup():
    tokenizer = T.make_tokenizer()
    shapes = split_shapes(1, held_out=False)[:4]
    rng = np.random.default_rng(0)
    codes = rng.integers(0, 50, (len(shapes), 1024))  # stand-in codes: only the format matters here
    data = dict(shape_meta=[T.shape_meta(s) for s in shapes], shape_codes=codes,
                edit_meta=[dict(T.shape_meta(s), edit="taller") for s in shapes], edit_src=codes, edit_tgt=codes[::-1])
    return tokenizer, data


def test_examples_follow_the_published_prompt_format(setup):
    tokenizer, data = setup
    sampler = T.ExampleSampler(tokenizer, data, REFERENCE_PROMPTS, seed=0)
    codec = MeshCodec(tokenizer)
    ids, start = sampler.sample("text_to_3d")
    prompt = tokenizer.decode(ids[:start])
    assert "Please generate a 3D asset based on the prompt I provided: " in prompt
    assert prompt.endswith("<|im_start|>assistant\n")
    answer = codec.parse_ids(ids[start:])
    assert answer.exact and (answer.codes == data["shape_codes"]).all(axis=1).any()
    ids, start = sampler.sample("edit")
    user = tokenizer.decode(ids[:start])
    assert "<mesh-end>\nEdit this 3D mesh: " in user
    assert codec.parse_ids(ids[start:]).exact
    ids, start = sampler.sample("describe")
    assert tokenizer.decode(ids[start:]).endswith("<|im_end|>") and "<mesh" not in tokenizer.decode(ids[start:])


def test_the_sampler_mixes_made_up_words_in_when_asked(setup):
    tokenizer, data = setup
    from backend.embedded import language as L
    known = {w for f in L.FRAMES["train"] + L.DESCRIBE_QUESTIONS["train"] + [REFERENCE_PROMPTS["describe"]]
             for w in f.split()} | {w for ns in L.NOUNS.values() for n in ns for w in n.split()}

    def user_words(sampler, task):
        ids, start = sampler.sample(task)
        user = tokenizer.decode(ids[:start]).split("<|im_start|>user\n")[1].split("<|im_end|>")[0]
        return user.split(": ", 1)[1].split() if task == "text_to_3d" else user.split("\n")[-1].split()

    for task in ("text_to_3d", "describe"):
        plain = T.ExampleSampler(tokenizer, data, REFERENCE_PROMPTS, seed=4)
        noisy = T.ExampleSampler(tokenizer, data, REFERENCE_PROMPTS, seed=4, made_up_frames=1.0, filler_chance=1.0)
        strange = [sum(w.rstrip("?.") not in known for w in user_words(s, task)) for s in (plain, noisy)
                   for _ in range(20)]
        assert sum(strange[20:]) > 20 + sum(strange[:20]), (task, strange)


def test_reduced_softmax_equals_the_full_one_after_tying(setup):
    tokenizer, data = setup
    model = T.new_model(tokenizer, T.LLMTrainSettings(hidden=32, layers=1))
    vocab = T.ActiveVocab(tokenizer, data["shape_codes"])
    sampler = T.ExampleSampler(tokenizer, data, REFERENCE_PROMPTS, seed=1)
    ids, start = sampler.sample("text_to_3d")
    with torch.no_grad():
        torch.nn.init.normal_(model.lm_head.weight, std=0.5)
        vocab.tie_unused_rows(model.lm_head)
        x = torch.tensor([ids])
        full = model(input_ids=x).logits[0, start - 1:-1].log_softmax(-1)
        hidden = model.model(input_ids=x).last_hidden_state[0, start - 1:-1]
        reduced = vocab.logits(model.lm_head, hidden).log_softmax(-1)
    target = torch.tensor(ids[start:])
    rows = torch.arange(len(target))
    assert torch.allclose(full[rows, target], reduced[rows, vocab.index[target]], atol=1e-4)


def test_the_first_answer_tokens_weigh_more(setup):
    """The lead weighting: the first K answer tokens count W times, the rest once, over the
    number of answer tokens (per-token losses recomputed here from the model's full softmax)."""
    tokenizer, data = setup
    model = T.new_model(tokenizer, T.LLMTrainSettings(hidden=32, layers=1)).eval()
    vocab = T.ActiveVocab(tokenizer, data["shape_codes"])
    vocab.tie_unused_rows(model.lm_head)
    ids, start = T.ExampleSampler(tokenizer, data, REFERENCE_PROMPTS, seed=3).sample("text_to_3d")
    pad = tokenizer.convert_tokens_to_ids("<|endoftext|>")
    with torch.no_grad():
        logp = model(input_ids=torch.tensor([ids])).logits[0, start - 1:-1].log_softmax(-1)
        per_token = -logp[torch.arange(len(ids) - start), torch.tensor(ids[start:])]
        weighted = T.batch_loss(model, [(ids, start)], pad, vocab, lead_tokens=5, lead_weight=7.0)
        plain = T.batch_loss(model, [(ids, start)], pad, vocab)
    expected = (7.0 * per_token[:5].sum() + per_token[5:].sum()) / len(per_token)
    assert torch.isclose(weighted, expected, rtol=1e-4) and torch.isclose(plain, per_token.mean(), rtol=1e-4)


def test_a_few_training_steps_reduce_the_loss(setup):
    tokenizer, data = setup
    torch.manual_seed(0)
    model = T.new_model(tokenizer, T.LLMTrainSettings(hidden=32, layers=1))
    vocab = T.ActiveVocab(tokenizer, data["shape_codes"])
    sampler = T.ExampleSampler(tokenizer, data, REFERENCE_PROMPTS, seed=2)
    batch = [sampler.sample("text_to_3d") for _ in range(2)]
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(8):
        loss = T.batch_loss(model, batch, tokenizer.convert_tokens_to_ids("<|endoftext|>"), vocab)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0] - 0.5, losses


def test_exported_model_loads_in_the_runtime_and_answers(tmp_path, setup):
    tokenizer, data = setup
    model = T.new_model(tokenizer, T.LLMTrainSettings(hidden=32, layers=1)).eval()
    T.export_llm(model, tokenizer, tmp_path / "llm", {"temperature": 0.6, "top_p": 0.9, "top_k": 20})
    assert (tmp_path / "llm" / "model.safetensors").is_file()
    runtime = ShapeLLMRuntime.load(tmp_path / "llm", dict(REFERENCE_PROMPTS), device="cpu")
    answer = runtime.describe(data["shape_codes"][0], {"max_new_tokens": 5, "seed": 1})
    assert isinstance(answer, str)
    from backend.errors import TaskError
    with pytest.raises(TaskError, match="does not name edit kinds"):  # no kind tokens: no kind question
        runtime.read_edit_kind("make it taller")


def test_a_later_stage_starts_from_the_saved_model_with_its_own_checkpoint(tmp_path, setup):
    """The polish stage: train_llm from a save_pretrained folder, resumable apart from the llm stage."""
    from dataclasses import replace

    _, data = setup
    settings = T.LLMTrainSettings(hidden=32, layers=1, steps=2, batch=1, warmup=1)
    base, _ = T.train_llm(data, tmp_path, settings, log=lambda _: None)
    base.save_pretrained(str(tmp_path / "base"))
    llm_checkpoint = (tmp_path / "llm_resume.pt").read_bytes()
    polish = replace(settings, steps=0, filler_chance=1.0, seed=1)
    same, _ = T.train_llm(data, tmp_path, polish, log=lambda _: None, start_from=tmp_path / "base", name="polish")
    for (name, a), b in zip(base.state_dict().items(), same.state_dict().values()):
        assert torch.equal(a, b), name
    moved, _ = T.train_llm(data, tmp_path, replace(polish, steps=2), log=lambda _: None,
                           start_from=tmp_path / "base", name="polish")
    assert torch.load(tmp_path / "polish_resume.pt", weights_only=False)["step"] == 2
    assert (tmp_path / "llm_resume.pt").read_bytes() == llm_checkpoint
    assert not all(torch.equal(a, b) for a, b in zip(base.state_dict().values(), moved.state_dict().values()))


def test_embedded_edit_examples_keep_the_input_and_answer_a_fixed_distance_apart(tmp_path, setup):
    """Instruction first: the answer's k-th code sits the same number of tokens after the
    input's k-th code whatever the instruction's length, and the runtime builds the very
    prompt training does."""
    tokenizer, data = setup
    sampler = T.ExampleSampler(tokenizer, data, T.EMBEDDED_PROMPTS, seed=5)
    codec = MeshCodec(tokenizer)
    distances, instructions = set(), set()
    for _ in range(12):
        ids, start = sampler.sample("edit")
        user = tokenizer.decode(ids[:start]).split("<|im_start|>user\n")[1]
        assert user.startswith("Edit this 3D mesh: ")
        instructions.add(user.split("\n")[0])
        distances.add(start - ids.index(codec.start_id))  # answer's <mesh-start> to the input's
    assert len(instructions) > 3 and len(distances) == 1, (instructions, distances)

    T.export_llm(T.new_model(tokenizer, T.LLMTrainSettings(hidden=32, layers=1)), tokenizer, tmp_path / "llm",
                 {"temperature": 0.0, "top_p": 1.0, "top_k": 1})
    runtime = ShapeLLMRuntime.load(tmp_path / "llm", dict(T.EMBEDDED_PROMPTS), device="cpu")
    instruction = "make it taller {mesh}"  # a placeholder in the artist's text stays text
    text = runtime._edit_text(data["edit_src"][0], instruction)
    assert text.count("<mesh-start>") == 1 and text.startswith("Edit this 3D mesh: make it taller {mesh}\n")
    trained_ids, start = T.encode_example(tokenizer, text, "")
    assert runtime._prompt_ids([{"type": "text", "text": text}], None) == trained_ids[:start]


def test_aligned_edit_positions_agree_between_training_and_the_runtime(tmp_path, setup):
    """The loss positions an edit answer like the input block; the runtime's prefill and decode
    steps must see the same positions, or the trained copying would not carry over."""
    from transformers import DynamicCache

    tokenizer, data = setup
    torch.manual_seed(0)
    model = T.new_model(tokenizer, T.LLMTrainSettings(hidden=32, layers=2)).eval()
    with torch.no_grad():  # large query/key weights: attention (and so positions) matter a lot
        for name, p in model.model.language_model.named_parameters():
            if "q_proj" in name or "k_proj" in name:
                torch.nn.init.normal_(p, std=1.0)
    vocab = T.ActiveVocab(tokenizer, np.concatenate([data["shape_codes"].ravel(), data["edit_tgt"].ravel()]))
    vocab.tie_unused_rows(model.lm_head)  # the reduced softmax of batch_loss = the full one
    T.export_llm(model, tokenizer, tmp_path / "llm", {"temperature": 0.0, "top_p": 1.0, "top_k": 1})
    ids, start = T.ExampleSampler(tokenizer, data, T.EMBEDDED_PROMPTS, seed=7).sample("edit")
    start_id = tokenizer.convert_tokens_to_ids("<mesh-start>")
    positions = torch.as_tensor(np.broadcast_to(T.aligned_positions(ids, start, start_id), (3, len(ids))).copy())
    positions = positions.view(3, 1, -1)
    with torch.no_grad():
        trained = model(input_ids=torch.tensor([ids]), position_ids=positions).logits[0]
        plain = model(input_ids=torch.tensor([ids])).logits[0]
    assert not torch.allclose(trained[start + 1], plain[start + 1], atol=1e-2)  # positions matter
    with torch.no_grad():
        loss = T.batch_loss(model, [(ids, start)], tokenizer.convert_tokens_to_ids("<|endoftext|>"), vocab,
                            align_with=start_id)
    expected_loss = torch.nn.functional.cross_entropy(trained[start - 1:-1], torch.tensor(ids[start:]))
    assert torch.isclose(loss, expected_loss, rtol=1e-4)

    for aligned in (True, False):
        rt = ShapeLLMRuntime.load(tmp_path / "llm", dict(T.EMBEDDED_PROMPTS), device="cpu",
                                  edit=EditSettings(aligned_positions=aligned))
        prompt = ids[: start + 1]  # the runtime forces the answer's <mesh-start> into the prompt
        cache = DynamicCache(config=rt.model.config.text_config)
        if aligned:
            where = torch.as_tensor(np.ascontiguousarray(rt._edit_positions(prompt)))
        else:
            where = torch.arange(len(prompt) + 4).expand(3, -1)
        steps = where[:, len(prompt):]
        with torch.no_grad():
            logits, _ = rt._prefill(prompt, None, cache, where[:, : len(prompt)].numpy() if aligned else None)
            table = rt._rope_table(steps[:, :3])
            got = [logits] + [rt._head(rt._step(ids[start + 1 + k], steps[:, k], k, cache, table)) for k in range(3)]
        expected = trained if aligned else plain
        for k, step_logits in enumerate(got):
            assert torch.allclose(step_logits, expected[start + k], atol=1e-4), (aligned, k)


def test_a_saved_model_grows_zero_rows_for_the_kind_tokens(setup):
    """The kinds stage continues a model without the kind tokens: the new rows are zero, so every
    old token's logits stay as they were."""
    tokenizer, _ = setup
    model = T.new_model(tokenizer, T.LLMTrainSettings(hidden=32, layers=1)).eval()
    ids = torch.tensor([tokenizer("a chair", add_special_tokens=False)["input_ids"]])
    with torch.no_grad():
        before = model(input_ids=ids).logits[0]
        T.grow_vocabulary(model, len(tokenizer) + 6)
        after = model(input_ids=ids).logits[0]
    assert after.shape[-1] == before.shape[-1] + 6
    assert torch.allclose(after[:, : before.shape[-1]], before, atol=1e-5) and not after[:, before.shape[-1]:].any()


def test_the_kind_question_is_the_same_in_training_and_at_run_time(tmp_path, setup):
    """The kinds stage's kind question (the instruction alone, answered by the kind token): the
    runtime asks the very prompt training scores and names the kind scored highest there."""
    _, data = setup
    tokenizer = T.make_tokenizer(edit_kinds=True)
    kinds = T.edit_kind_ids(tokenizer)
    assert len(kinds) == 6 and T.edit_kind_ids(setup[0]) == []
    prompts = T.embedded_prompts(edit_resize=True)
    q_ids, q_start = T.ExampleSampler(tokenizer, data, prompts, seed=7).sample_kind_question()
    assert "Which edit is this: " in tokenizer.decode(q_ids[:q_start]) and "<mesh" not in tokenizer.decode(q_ids)
    assert tokenizer.decode(q_ids[q_start:]) == "<edit-taller><|im_end|>"

    torch.manual_seed(0)
    model = T.new_model(tokenizer, T.LLMTrainSettings(hidden=32, layers=1)).eval()
    with torch.no_grad():
        model.lm_head.weight[kinds] = torch.randn(6, 32)
    vocab = T.ActiveVocab(tokenizer, data["shape_codes"])
    vocab.tie_unused_rows(model.lm_head)
    T.export_llm(model, tokenizer, tmp_path / "llm", {"temperature": 0.0, "top_p": 1.0, "top_k": 1})
    rt = ShapeLLMRuntime.load(tmp_path / "llm", prompts, device="cpu", edit=EditSettings(read_kind=True))
    question, start = T.encode_example(tokenizer, T.EDIT_KIND_PROMPT.format(instruction="make it taller"),
                                       "<edit-taller>")
    asked = rt.prompts["edit_kind"].replace("{instruction}", "make it taller")
    assert rt._prompt_ids([{"type": "text", "text": asked}], None) == question[:start]
    pad = tokenizer.convert_tokens_to_ids("<|endoftext|>")
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([question])).logits[0]
        loss = T.batch_loss(model, [(question, start)], pad, vocab)
    expected = torch.nn.functional.cross_entropy(logits[start - 1:-1], torch.tensor(question[start:]))
    assert torch.isclose(loss, expected, rtol=1e-4)
    picked = int(torch.argmax(logits[start - 1, kinds]))
    sure = torch.softmax(logits[start - 1, kinds], dim=0)[picked]
    assert rt.read_edit_kind("make it taller") == (T.EDIT_KINDS[picked], pytest.approx(float(sure), abs=1e-4))


def test_with_edit_resize_edit_answers_train_add_and_remove_alone(setup):
    """The kinds stage: the runtime resizes for the proportion kinds, so the model's edit answers
    are trained for the other kinds alone, while its kind questions cover every kind."""
    _, data = setup
    tokenizer = T.make_tokenizer(edit_kinds=True)
    kinds = ["taller", "add", "wider", "remove"]
    data = dict(data, edit_meta=[dict(m, edit=k) for m, k in zip(data["edit_meta"], kinds)])
    sampler = T.ExampleSampler(tokenizer, data, T.embedded_prompts(edit_resize=True), seed=3,
                               edit_answer_kinds=("add", "remove"))
    assert sampler.edit_answer_pairs == [1, 3]
    codec = MeshCodec(tokenizer)
    for _ in range(8):
        ids, start = sampler.sample("edit")
        answer = codec.parse_ids(ids[start:]).codes
        assert any(np.array_equal(answer, data["edit_tgt"][i]) for i in (1, 3))
    asked = {tokenizer.decode(sampler.sample_kind_question()[0][-2:-1]) for _ in range(40)}
    assert asked == {f"<edit-{k}>" for k in kinds}
    assert T.embedded_prompts(edit_resize=True)["edit"] == T.EMBEDDED_PROMPTS["edit"]  # the instruction first


def test_kind_questions_draw_from_the_wording_pool_the_stage_asks_for(setup):
    """The kinds stage's `edit_wording`: "train" asks the training wordings only, "wide" mostly
    the grammar of wide_wording.py, and neither ever a held-out phrase."""
    from backend.embedded import language as L

    _, data = setup
    tokenizer = T.make_tokenizer(edit_kinds=True)

    def instructions(pool):
        sampler = T.ExampleSampler(tokenizer, data, T.embedded_prompts(edit_resize=True), seed=3, edit_wording=pool)
        out = []
        for _ in range(150):
            ids, start = sampler.sample_kind_question()
            out.append(tokenizer.decode(ids[:start]).split("Which edit is this: ")[1].split("<|im_end|>")[0])
            assert tokenizer.decode(ids[start:]) == "<edit-taller><|im_end|>"  # every pair of the fixture is taller
        return out

    training = set(L.EDIT_PHRASES["taller"]["train"])
    assert set(instructions("train")) <= training
    wide = instructions("wide")
    assert sum(w not in training for w in wide) > 75 and len(set(wide)) > 60
    assert not {w.lower() for w in wide} & L.held_out_phrases()


def _four_kinds(data):
    return dict(data, edit_meta=[dict(m, edit=k) for m, k in zip(data["edit_meta"], ["taller", "add", "wider", "remove"])])


def test_the_kind_probe_starts_the_kind_rows_better_than_zero_and_quiet_elsewhere(setup):
    """kind_probe.fit_kind_rows on a small model: fresh kind questions (drawn apart from the
    fit) lose less than with the zero rows a kinds stage otherwise starts from, while text to
    3D and describe answers lose about the same."""
    from backend.embedded.kind_probe import fit_kind_rows
    from backend.models.codec import edit_kind_ids

    _, data = setup
    data = _four_kinds(data)
    tokenizer = T.make_tokenizer(edit_kinds=True)
    model = T.new_model(tokenizer, T.LLMTrainSettings(hidden=32, layers=1))
    kinds = edit_kind_ids(tokenizer)
    with torch.no_grad():
        model.lm_head.weight[kinds] = 0
    prompts = T.embedded_prompts(edit_resize=True)
    fresh = T.ExampleSampler(tokenizer, data, prompts, seed=5, filler_chance=0.3)
    asked = [fresh.sample_kind_question() for _ in range(48)]
    others = [fresh.sample(t) for t in ("text_to_3d", "describe") for _ in range(3)]
    vocab = T.ActiveVocab(tokenizer, data["shape_codes"])
    pad = tokenizer.convert_tokens_to_ids("<|endoftext|>")

    def losses():
        with torch.no_grad():
            return T.batch_loss(model, asked, pad, vocab).item(), T.batch_loss(model, others, pad, vocab).item()

    zero = losses()
    fit = fit_kind_rows(model, kinds, T.ExampleSampler(tokenizer, data, prompts, seed=6, filler_chance=0.3),
                        questions=256, quiet_examples=3)
    probed = losses()
    assert model.lm_head.weight[kinds].abs().sum() > 0 and fit["accuracy"] > 0.25
    assert probed[0] < zero[0] - 0.1, (zero, probed)
    assert probed[1] < zero[1] + 0.05, (zero, probed)


@pytest.mark.slow   # trains two stages
@pytest.mark.parametrize("probe", [False, True])
def test_a_kinds_stage_starts_the_new_kind_rows_from_the_probe_when_asked(tmp_path, setup, probe):
    """A stage that adds the kind tokens to a saved model: zero rows, or the probe's."""
    from dataclasses import replace
    from backend.models.codec import edit_kind_ids

    _, data = setup
    data = _four_kinds(data)
    settings = T.LLMTrainSettings(hidden=32, layers=1, steps=1, batch=1, warmup=1)
    base, _ = T.train_llm(data, tmp_path, settings, log=lambda _: None)
    base.save_pretrained(str(tmp_path / "base"))
    logged = []
    kinds_stage = replace(settings, steps=0, edit_resize=True, kind_probe=probe)
    model, tokenizer = T.train_llm(data, tmp_path, kinds_stage, log=logged.append, start_from=tmp_path / "base",
                                   name="kinds")
    rows = model.lm_head.weight[edit_kind_ids(tokenizer)]
    assert bool(rows.abs().sum() > 0) == probe
    assert any("kind rows from a probe" in line for line in logged) == probe
