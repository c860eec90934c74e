"""Loading the LLM: strict weight names, the dtype rule, the memory plan, the device choice.

Real tiny Qwen2.5-VL folders are saved and loaded through ShapeLLMRuntime.load, the loader of
the published 7B. Replaced where they cannot run here: the free memory (injected through the
`available_memory` parameter or the SHAPELLM_MEMORY_AVAILABLE variable, as the tests say), CUDA
and MPS (their availability checks are monkeypatched; no tensor goes to them). The 7B-sized
configs are only built on the meta device (shapes, no memory)."""

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import json
import logging

import pytest
import torch
from safetensors.torch import load_file, save_file
from transformers import AutoConfig, Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration

from backend.errors import TaskError
from backend.models import checkpoints, memory
from backend.models.llm import ShapeLLMRuntime
from backend.models.memory import checkpoint_dtype, choose_dtype, count_parameters, plan_load
from backend.models.presets import EMBEDDED_FOLDER, REFERENCE_PROMPTS
from backend.models.tiny_llm import write_tiny_llm

torch.set_num_threads(1)

PROMPTS = dict(REFERENCE_PROMPTS)
CPU = torch.device("cpu")
# The published model's shapes (vocab 159,859: Qwen2.5-VL's 151,665 + 8,194 mesh tokens).
PUBLISHED = dict(
    text_config=dict(vocab_size=159859, hidden_size=3584, intermediate_size=18944, num_hidden_layers=28,
                     num_attention_heads=28, num_key_value_heads=4),
    vision_config=dict(depth=32, hidden_size=1280, intermediate_size=3420, num_heads=16, out_hidden_size=3584),
)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return write_tiny_llm(tmp_path_factory.mktemp("tiny_llm"), seed=0)


def copy_with_weights(src, dst, change):
    """A copy of the model folder `src` whose model.safetensors went through change(dict)."""
    dst.mkdir()
    for path in src.iterdir():
        (dst / path.name).write_bytes(path.read_bytes())
    state = load_file(str(dst / "model.safetensors"))
    change(state)
    save_file(state, str(dst / "model.safetensors"), metadata={"format": "pt"})
    return dst


# -- strict loading -----------------------------------------------------------------------------


def test_a_renamed_weight_fails_the_load_naming_it(folder, tmp_path):
    def rename(state):
        state["model.layers.0.mlp.down_projection.weight"] = state.pop("model.layers.0.mlp.down_proj.weight")

    bad = copy_with_weights(folder, tmp_path / "renamed", rename)
    with pytest.raises(TaskError) as err:
        ShapeLLMRuntime.load(bad, PROMPTS, device="cpu")
    assert err.value.code == "model_error"
    message = err.value.message
    assert "missing (left random)" in message and "layers.0.mlp.down_proj.weight" in message
    assert "unexpected (not used)" in message and "down_projection" in message


def test_a_missing_weight_fails_the_load(folder, tmp_path):
    bad = copy_with_weights(folder, tmp_path / "missing", lambda s: s.pop("lm_head.weight"))
    with pytest.raises(TaskError, match="lm_head.weight"):
        ShapeLLMRuntime.load(bad, PROMPTS, device="cpu")


def test_the_embedded_and_tiny_checkpoints_load_strictly(folder):
    for source in (folder, EMBEDDED_FOLDER / "llm"):
        model, info = Qwen2_5_VLForConditionalGeneration.from_pretrained(str(source), output_loading_info=True)
        assert not any(info[k] for k in ("missing_keys", "unexpected_keys", "mismatched_keys", "error_msgs"))


# -- dtype ----------------------------------------------------------------------------------------


def test_checkpoint_dtype_reads_both_spellings(tmp_path):
    assert checkpoint_dtype(EMBEDDED_FOLDER / "llm") == torch.float32  # the embedded model: float32
    (tmp_path / "config.json").write_text(json.dumps({"torch_dtype": "bfloat16"}))  # the 7B's spelling
    assert checkpoint_dtype(tmp_path) == torch.bfloat16
    (tmp_path / "config.json").write_text(json.dumps({"text_config": {"dtype": "float16"}}))
    assert checkpoint_dtype(tmp_path) == torch.float16
    (tmp_path / "config.json").write_text("{}")
    assert checkpoint_dtype(tmp_path) is None


def test_the_auto_dtype_rule(monkeypatch, caplog):
    f32, bf16, f16 = torch.float32, torch.bfloat16, torch.float16
    # CPU: a float32 checkpoint stays float32 (the embedded model's outputs unchanged)
    assert choose_dtype("auto", CPU, f32, cpu_bf16=True) == f32
    assert choose_dtype("auto", CPU, None, cpu_bf16=True) == f32
    # CPU: a half checkpoint loads in bf16 where the CPU has it, else float32 with a message
    assert choose_dtype("auto", CPU, bf16, cpu_bf16=True) == bf16
    assert choose_dtype("auto", CPU, f16, cpu_bf16=True) == bf16
    with caplog.at_level(logging.WARNING, logger="backend.models.memory"):
        assert choose_dtype("auto", CPU, bf16, cpu_bf16=False) == f32
    assert "no native bfloat16" in caplog.text
    # an explicit choice is honoured
    assert choose_dtype("bfloat16", CPU, f32) == bf16 and choose_dtype("float32", CPU, bf16) == f32
    # CUDA (availability faked; no tensor goes there): the checkpoint's own dtype
    cuda = torch.device("cuda")
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    assert choose_dtype("auto", cuda, bf16) == bf16 and choose_dtype("auto", cuda, f32) == f32
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    assert choose_dtype("auto", cuda, bf16) == f16
    with pytest.raises(TaskError, match="dtype must be one of"):
        choose_dtype("int8", CPU, f32)


def test_a_bf16_checkpoint_loads_in_bf16_on_a_cpu_that_has_it(folder, tmp_path):
    model = Qwen2_5_VLForConditionalGeneration.from_pretrained(str(folder), dtype=torch.bfloat16)
    half = tmp_path / "bf16"
    model.save_pretrained(str(half))
    for name in folder.iterdir():  # the processor files
        if not (half / name.name).exists():
            (half / name.name).write_bytes(name.read_bytes())
    assert checkpoint_dtype(half) == torch.bfloat16
    rt = ShapeLLMRuntime.load(half, PROMPTS, device="cpu")
    expected = torch.bfloat16 if memory.cpu_has_bf16() else torch.float32
    assert rt.model.lm_head.weight.dtype == expected and rt.plan.dtype == expected
    assert ShapeLLMRuntime.load(half, PROMPTS, device="cpu", dtype="float32").model.dtype == torch.float32


# -- the memory plan --------------------------------------------------------------------------------


@pytest.mark.parametrize("which", ["embedded", "published", "tied-small"])
def test_parameter_count_from_the_config_equals_the_built_model(which):
    if which == "embedded":
        config = AutoConfig.from_pretrained(str(EMBEDDED_FOLDER / "llm"))
    elif which == "published":
        config = Qwen2_5_VLConfig(**PUBLISHED)
    else:
        config = Qwen2_5_VLConfig(
            text_config=dict(vocab_size=500, hidden_size=64, intermediate_size=96, num_hidden_layers=3,
                             num_attention_heads=4, num_key_value_heads=1),
            vision_config=dict(depth=1, hidden_size=32, intermediate_size=40, num_heads=2, out_hidden_size=64,
                               spatial_merge_size=2),
            tie_word_embeddings=True)
    with torch.device("meta"):
        model = Qwen2_5_VLForConditionalGeneration._from_config(config)
    built = sum(p.numel() for p in model.parameters())
    assert sum(count_parameters(config).values()) == built
    if which == "published":
        assert built == 8_348_041_216  # the 8.35 B of the issue


def test_the_published_model_in_float32_does_not_fit_24_gib_and_the_plan_says_what_would():
    config = Qwen2_5_VLConfig(**PUBLISHED)
    plan = plan_load(config, CPU, torch.float32, available=24 * 2**30, other_devices=())  # a 24 GiB machine, given
    assert not plan.fits and 31 * 2**30 < plan.weight_bytes < 32 * 2**30
    with pytest.raises(TaskError) as err:
        plan.check()
    assert err.value.code == "model_unavailable"
    assert "not enough memory" in err.value.message and "--dtype bfloat16" in err.value.message
    bf16 = plan_load(config, CPU, torch.bfloat16, available=24 * 2**30, other_devices=())
    assert bf16.fits and 15 * 2**30 < bf16.weight_bytes < 16 * 2**30


def test_an_8_gib_gpu_is_told_about_4bit(monkeypatch):
    """CUDA faked: only is_bf16_supported is asked; the free VRAM is given, and the CPU's free
    RAM comes from SHAPELLM_MEMORY_AVAILABLE (a fake number)."""
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    monkeypatch.setenv(memory.MEMORY_ENV, "64G")
    config = Qwen2_5_VLConfig(**PUBLISHED)
    plan = plan_load(config, torch.device("cuda"), torch.bfloat16, available=8 * 2**30, other_devices=("cpu",))
    assert not plan.fits
    text = ", ".join(plan.alternatives)
    assert "--quantize 4bit" in text and "--quantize 8bit" not in text  # 8-bit needs ~9.5 GiB
    assert "--device cpu" in text
    eight = plan_load(config, torch.device("cuda"), torch.bfloat16, "8bit", available=12 * 2**30, other_devices=())
    assert eight.fits


def test_a_load_that_cannot_fit_is_refused_before_reading_any_weight(folder, monkeypatch):
    def must_not_load(*a, **k):
        raise AssertionError("weights were read")

    monkeypatch.setattr(Qwen2_5_VLForConditionalGeneration, "from_pretrained", must_not_load)
    with pytest.raises(TaskError) as err:
        ShapeLLMRuntime.load(folder, PROMPTS, device="cpu", available_memory=10 * 2**20)  # 10 MiB, given
    assert err.value.code == "model_unavailable" and "not enough memory" in err.value.message


def test_the_memory_variable_reaches_the_pipeline(tmp_path, monkeypatch):
    """SHAPELLM_MEMORY_AVAILABLE (a fake 'free memory' number) through the pipeline's first
    task: the job fails with the plan's message (the message the add-on shows)."""
    from backend.models.tiny import write_tiny_preset
    from backend.pipeline import Pipeline

    preset = write_tiny_preset(tmp_path / "preset")
    monkeypatch.setenv(memory.MEMORY_ENV, "100M")
    pipe = Pipeline(str(preset), device="cpu")
    with pytest.raises(TaskError) as err:
        pipe.text_to_3d("a chair")
    assert err.value.code == "model_unavailable"
    assert "not enough memory to load the LLM" in err.value.message
    assert "SHAPELLM_MEMORY_AVAILABLE: 0.1 GiB" in err.value.message


def test_parse_bytes():
    assert memory.parse_bytes("1024") == 1024 and memory.parse_bytes("2K") == 2048
    assert memory.parse_bytes("1.5G") == 3 * 2**29 and memory.parse_bytes("24GiB") == 24 * 2**30


# -- devices ---------------------------------------------------------------------------------------


def test_auto_picks_mps_where_present_and_a_missing_device_is_a_clear_error(monkeypatch):
    """MPS availability faked (no Apple hardware here); nothing runs on it."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    assert checkpoints.resolve_device("auto") == torch.device("mps")
    assert checkpoints.resolve_device("mps") == torch.device("mps")
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    assert checkpoints.resolve_device("auto") == CPU
    with pytest.raises(TaskError, match="MPS"):
        checkpoints.resolve_device("mps")
    with pytest.raises(TaskError, match="CUDA"):
        checkpoints.resolve_device("cuda:0")
    with pytest.raises(TaskError, match="device"):
        checkpoints.resolve_device("tpu")


def test_serve_and_the_task_commands_take_device_dtype_and_quantize():
    from backend.cli import build_parser

    for command in (["serve"], ["generate", "--prompt", "a chair", "-o", "x.glb"], ["describe", "x.glb"]):
        args = build_parser().parse_args(command + ["--device", "mps", "--dtype", "bfloat16", "--quantize", "4bit"])
        assert (args.device, args.dtype, args.quantize) == ("mps", "bfloat16", "4bit")
        plain = build_parser().parse_args(command)
        assert (plain.device, plain.dtype, plain.quantize) == ("auto", None, None)  # None: the preset's
    with pytest.raises(SystemExit):
        build_parser().parse_args(["serve", "--dtype", "int8"])


def test_a_preset_names_its_dtype_and_the_pipeline_passes_it_on(tmp_path):
    from backend.models.presets import read_preset_folder
    from backend.models.tiny import write_tiny_preset
    from backend.pipeline import Pipeline

    folder = write_tiny_preset(tmp_path / "preset")
    data = json.loads((folder / "preset.json").read_text())
    (folder / "preset.json").write_text(json.dumps({**data, "dtype": "bfloat16"}))
    preset = read_preset_folder(folder)
    assert preset.dtype == "bfloat16" and preset.quantization == "none"
    pipe = Pipeline(preset, device="cpu")
    pipe.text_to_3d("a chair", options={"temperature": 0})
    assert pipe._llm.model.lm_head.weight.dtype == torch.bfloat16
    assert Pipeline(preset, device="cpu", dtype="float32").dtype == "float32"  # the command line wins
    (folder / "preset.json").write_text(json.dumps({**data, "dtype": "int8"}))
    with pytest.raises(TaskError, match="dtype must be one of"):
        read_preset_folder(folder)


def test_a_hub_model_that_cannot_fit_is_refused_before_its_weights_are_fetched(tmp_path, monkeypatch):
    """The hub cannot be reached here: an offline cache holding only the published-size
    config.json stands in (the layout huggingface_hub reads). The plan needs nothing else, so
    the refusal comes before any weight would be downloaded."""
    snapshot = tmp_path / "models--someone--big-model" / "snapshots" / ("0" * 40)
    snapshot.mkdir(parents=True)
    (tmp_path / "models--someone--big-model" / "refs").mkdir()
    (tmp_path / "models--someone--big-model" / "refs" / "main").write_text("0" * 40)
    config = Qwen2_5_VLConfig(**PUBLISHED)
    config.save_pretrained(str(snapshot))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    with pytest.raises(TaskError) as err:
        ShapeLLMRuntime.load("someone/big-model", PROMPTS, device="cpu", dtype="float32", available_memory=24 * 2**30)
    assert err.value.code == "model_unavailable" and "not enough memory" in err.value.message
    assert "8.35 B parameters in float32" in err.value.message
