"""The sidebar, context menu and status-bar drawing code, run against Blender's own UI API
description. Background Blender has no window, so no real UILayout can exist here: the layout
below records the calls and checks each one against bpy.types.UILayout's RNA (function names,
keyword names, icon names), the drawn properties against their data's RNA, and the operators
against the registered operators and their properties."""

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import pytest  # noqa: E402

import tests.addon_harness as harness  # noqa: E402

pytestmark = pytest.mark.slow   # real Blender and a real backend process


class OperatorProperties:
    def __init__(self, rna):
        object.__setattr__(self, "_names", set(rna.properties.keys()))
        object.__setattr__(self, "values", {})

    def __setattr__(self, name, value):
        assert name in self._names, f"operator has no property {name!r}"
        self.values[name] = value


class RecordingLayout:
    def __init__(self, bpy, log):
        self._bpy, self.log = bpy, log
        self._rna = bpy.types.UILayout.bl_rna
        self._icons = set(self._rna.functions["label"].parameters["icon"].enum_items.keys())

    def __setattr__(self, name, value):
        if not name.startswith("_") and name != "log":
            assert name in self._rna.properties, f"UILayout has no attribute {name!r}"
        object.__setattr__(self, name, value)

    def __getattr__(self, name):
        function = self._rna.functions.get(name)
        assert function is not None, f"UILayout has no function {name!r}"

        def call(*args, **kwargs):
            params = function.parameters.keys()
            for key in kwargs:
                assert key in params, f"UILayout.{name} takes no keyword {key!r}"
            if "icon" in kwargs:
                assert kwargs["icon"] in self._icons, f"unknown icon {kwargs['icon']!r}"
            if name in ("prop", "template_ID"):
                data, prop = args[:2]
                assert prop in data.bl_rna.properties, f"{data} has no property {prop!r}"
            self.log.append((name, args, kwargs))
            if name == "operator":
                module, op = args[0].split(".")
                operator = getattr(getattr(self._bpy.ops, module), op)
                kwargs["_props"] = OperatorProperties(operator.get_rna_type())  # what the button will run with
                return kwargs["_props"]
            if name == "progress":
                assert 0.0 <= kwargs["factor"] <= 1.0
            if name in ("row", "column", "box", "split"):
                return RecordingLayout(self._bpy, self.log)
            return None

        return call


def draw(bpy, draw_function):
    log = []
    holder = type("Holder", (), {})()
    holder.layout = RecordingLayout(bpy, log)
    draw_function(holder, bpy.context)
    return log


def texts(log):
    return " | ".join(str(kw.get("text", "")) for _, _, kw in log)


@pytest.fixture()
def bpy():
    bpy = harness.installed_blender()
    harness.clear_scene(bpy)
    harness.module("session").get().disconnect()
    yield bpy
    session = harness.module("session").get()
    session.book.jobs.clear()
    session.disconnect()


def panels(bpy):
    return [getattr(bpy.types, name) for name in
            ("SHAPELLM_PT_main", "SHAPELLM_PT_generate", "SHAPELLM_PT_object", "SHAPELLM_PT_jobs",
             "SHAPELLM_PT_history")]


def test_offline_panel_offers_start(bpy):
    log = draw(bpy, bpy.types.SHAPELLM_PT_main.draw)
    assert any(name == "operator" and args == ("shapellm.backend_start",) and kw.get("icon") == "PLAY"
               for name, args, kw in log)
    assert "Not connected" in texts(log)
    for panel in panels(bpy):
        draw(bpy, panel.draw)


def test_connected_panel_shows_model_jobs_progress_and_cancel(bpy):
    session = harness.module("session").get()
    jobs = harness.module("jobs")
    session.state, session.message = "connected", "Connected"
    session.server_info = {"preset": "tiny", "device": "cpu", "version": "0.1.0"}
    running = session.book.add(jobs.Job(key="a1", task="text_to_3d", label="a chair", options={}))
    running.state, running.stage, running.done, running.total = "running", "tokens", 512, 1024
    failed = session.book.add(jobs.Job(key="b2", task="edit", label="taller", options={}))
    failed.finish("failed", "the backend exited with code -9")
    bpy.context.scene.shapellm.image_source = "IMAGE"
    bpy.context.scene.shapellm.caption = "a round shape"
    bpy.ops.mesh.primitive_cube_add()
    main = texts(draw(bpy, bpy.types.SHAPELLM_PT_main.draw))
    assert "Model: tiny" in main and "Device: cpu" in main and "Version: 0.1.0" in main
    jobs_log = draw(bpy, bpy.types.SHAPELLM_PT_jobs.draw)
    progress = [kw for name, _, kw in jobs_log if name == "progress"]
    assert progress == [{"factor": pytest.approx(0.5), "type": "BAR", "text": "tokens 512/1024"}]
    assert any(args == ("shapellm.cancel_job",) for name, args, _ in jobs_log if name == "operator")
    assert "exited with code -9" in texts(jobs_log)
    assert "a round shape" in texts(draw(bpy, bpy.types.SHAPELLM_PT_object.draw))
    draw(bpy, bpy.types.SHAPELLM_PT_generate.draw)
    ui = harness.module("ui")
    status = draw(bpy, ui.draw_status_bar)
    assert status[0][0] == "progress" and "tokens 512/1024" in status[0][2]["text"]


def test_variations_of_a_greedy_model_sample_at_the_panels_temperature(bpy):
    """Variations need sampling: with a greedy model (or before the backend said) the panel's
    temperature goes with the one job and the panel says so; a model that samples keeps its own."""
    session = harness.module("session").get()
    operators = harness.module("operators")
    settings = bpy.context.scene.shapellm
    session.state, session.message = "connected", "Connected"
    session.server_info = {"preset": "embedded", "device": "cpu", "greedy": True}
    settings.variations, settings.custom_temperature, settings.temperature = 3, False, 0.6
    told = "Variations sample at temperature 0.60"
    try:
        assert told in texts(draw(bpy, bpy.types.SHAPELLM_PT_generate.draw))
        options = operators.variation_options(bpy.context)
        assert options["variations"] == 3 and options["temperature"] == pytest.approx(0.6)
        settings.custom_temperature = True
        assert told not in texts(draw(bpy, bpy.types.SHAPELLM_PT_generate.draw))
        settings.custom_temperature, session.server_info["greedy"] = False, False
        assert told not in texts(draw(bpy, bpy.types.SHAPELLM_PT_generate.draw))
        assert "temperature" not in operators.variation_options(bpy.context)   # the model's own sampling
        settings.variations = 1
        assert "variations" not in operators.variation_options(bpy.context)   # today's request exactly
    finally:
        settings.variations, settings.custom_temperature = 1, False


def test_context_menu_offers_describe_and_edit_for_meshes_only(bpy):
    ui = harness.module("ui")
    bpy.ops.mesh.primitive_cube_add()
    ops = [args[0] for name, args, _ in draw(bpy, ui.draw_context_menu) if name == "operator"]
    assert ops == ["shapellm.describe", "shapellm.edit"]
    bpy.ops.object.camera_add()
    assert draw(bpy, ui.draw_context_menu) == []


def test_history_lists_past_jobs_with_re_import(bpy, tmp_path):
    import numpy as np

    session = harness.module("session").get()
    history = harness.module("history").History(tmp_path)
    history.add("text_to_3d", "a lamp", "Lamp", np.zeros((3, 3), np.float32), np.array([[0, 1, 2]], np.int32))
    history.add("describe", "Cube", "a box")
    saved, session.history = session.history, history
    try:
        log = draw(bpy, bpy.types.SHAPELLM_PT_history.draw)
    finally:
        session.history = saved
    assert "describe: Cube -> a box" in texts(log) and "text_to_3d: a lamp -> Lamp" in texts(log)
    assert [args for name, args, _ in log if name == "operator"] == [("shapellm.reimport",)]


def test_the_recording_layout_rejects_what_blender_would(bpy):
    layout = RecordingLayout(bpy, [])
    with pytest.raises(AssertionError, match="no function 'lable'"):
        layout.lable(text="x")
    with pytest.raises(AssertionError, match="unknown icon"):
        layout.label(text="x", icon="NOT_AN_ICON")
    with pytest.raises(AssertionError, match="no property 'promt'"):
        layout.prop(bpy.context.scene.shapellm, "promt")
    with pytest.raises(AssertionError, match="no property 'job'"):
        layout.operator("shapellm.cancel_job").job = "x"
    with pytest.raises(AssertionError, match="no keyword 'txt'"):
        layout.operator("shapellm.generate", txt="x")


def test_sampling_is_the_models_own_unless_the_artist_sets_a_temperature(bpy):
    operators = harness.module("operators")
    settings = bpy.context.scene.shapellm
    settings.custom_temperature = False
    assert "temperature" not in operators.job_options(bpy.context)  # the preset's tuned sampling
    settings.custom_temperature, settings.temperature = True, 0.4
    assert operators.job_options(bpy.context)["temperature"] == pytest.approx(0.4)
    settings.custom_temperature = False
    log = draw(bpy, bpy.types.SHAPELLM_PT_generate.draw)
    assert any(name == "prop" and args[1] == "custom_temperature" for name, args, _ in log)


def test_a_task_the_loaded_model_cannot_do_is_greyed_out_with_the_reason(bpy):
    """The embedded preset makes no shapes from images: the button says so before a click."""
    session = harness.module("session").get()
    session.state, session.message = "connected", "Connected"
    supports = {"text_to_3d": True, "image_to_3d": False, "describe": True, "edit": True}
    session.server_info = {"preset": "embedded", "device": "cpu", "supports": supports}
    assert not bpy.ops.shapellm.generate_image.poll()
    assert bpy.ops.shapellm.generate.poll() and bpy.ops.shapellm.describe.poll() and bpy.ops.shapellm.edit.poll()
    with pytest.raises(RuntimeError, match=r"embedded\) cannot make shapes from images"):
        bpy.ops.shapellm.generate_image()
    assert session.book.jobs == {}  # nothing was sent
    assert "cannot make shapes from images" in texts(draw(bpy, bpy.types.SHAPELLM_PT_generate.draw))
    assert "cannot" not in texts(draw(bpy, bpy.types.SHAPELLM_PT_object.draw))
    supports["edit"] = False
    assert not bpy.ops.shapellm.edit.poll()
    assert "cannot edit shapes" in texts(draw(bpy, bpy.types.SHAPELLM_PT_object.draw))
    # a model that can, or a backend not yet known, leaves every button on
    supports["image_to_3d"] = supports["edit"] = True
    assert bpy.ops.shapellm.generate_image.poll() and bpy.ops.shapellm.edit.poll()
    session.disconnect()
    assert bpy.ops.shapellm.generate_image.poll()
    assert "cannot" not in texts(draw(bpy, bpy.types.SHAPELLM_PT_generate.draw))


def test_quick_edit_buttons_send_wordings_the_embedded_model_was_trained_on(bpy):
    from backend.embedded import language as L

    bpy.ops.mesh.primitive_cube_add()
    log = draw(bpy, bpy.types.SHAPELLM_PT_object.draw)
    edits = {kw.get("text"): kw["_props"].values["instruction"] for name, args, kw in log
             if name == "operator" and args == ("shapellm.edit",)}
    quick = {text: instruction for text, instruction in edits.items() if text != "Apply Edit"}
    assert set(quick) == {"Taller", "Shorter", "Wider", "Thinner"}
    for text, instruction in quick.items():
        assert instruction in L.EDIT_PHRASES[text.lower()]["train"]
