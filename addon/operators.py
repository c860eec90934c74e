"""Operators: each one sends work or a control request and returns at once.

Results arrive later through the job pump. Bad input is refused here, with a message, before
anything is sent and without touching the scene.
"""

from __future__ import annotations

import os
import tempfile

import bpy
import numpy as np
from bpy.props import EnumProperty, IntProperty, StringProperty

from . import preferences, session as session_mod
from .jobs import IDENTITY, Placement
from .mesh_bridge import LARGE_MESH_TRIANGLES, MeshInputError, read_object_triangles
from .supervisor import SupervisorError
from .wire.protocol import ProtocolError


class Refused(Exception):
    """An operator cannot go ahead; the message says why and what to do."""


def current_session():
    session = session_mod.get()
    if session is None:
        raise Refused("The ShapeLLM add-on is not running")
    return session


def start_or_connect(context, session) -> None:
    """Start our own backend (when one is configured) or connect to the configured address."""
    prefs = preferences.get(context)
    try:
        address, keys = prefs.connection()
    except ValueError as exc:
        raise Refused(str(exc)) from None
    if prefs.use_remote and not bpy.app.online_access:
        raise Refused("Online access is off in Blender's preferences: a remote backend needs it")
    try:
        if not prefs.use_remote and prefs.backend_python:
            session.start_backend(bpy.path.abspath(prefs.backend_python), prefs.backend_args,
                                  bpy.path.abspath(prefs.backend_folder) or None, address)
        else:
            session.disconnect()
            session.connect(address, **keys)
    except (SupervisorError, ValueError, OSError) as exc:
        raise Refused(str(exc)) from None


def ready_session(context):
    """The session, connected or connecting; starts the backend if the preferences say so."""
    session = current_session()
    if session.state in ("connected", "connecting"):
        return session
    prefs = preferences.get(context)
    if prefs.auto_start and not prefs.use_remote and prefs.backend_python:
        start_or_connect(context, session)
        return session
    raise Refused(f"{session.message}. No backend running: press Start in the ShapeLLM panel")


def job_options(context) -> dict:
    settings, prefs = context.scene.shapellm, preferences.get(context)
    options = {"seed": int(settings.seed), "mesh_style": prefs.mesh_style}
    if settings.custom_temperature:
        options["temperature"] = float(settings.temperature)
    return options


def variation_options(context) -> dict:
    """A generate job's options: with Variations > 1, one job for all of them. Variations need
    sampling, so the panel's temperature goes along unless the backend said that its model
    samples by itself (a greedy model would make K equal shapes; not yet connected: unknown)."""
    options, settings = job_options(context), context.scene.shapellm
    if settings.variations > 1:
        options["variations"] = int(settings.variations)  # only then: older backends refuse the option
        session = session_mod.get()
        model_samples = session is not None and session.server_info.get("greedy") is False
        if not model_samples:
            options.setdefault("temperature", float(settings.temperature))
    return options


def selected_mesh(context, operator):
    """World-space triangles of the active selected object, or Refused."""
    obj = context.active_object
    if obj is None or not obj.select_get():
        raise Refused("Select a mesh object first")
    try:
        local, faces, matrix = read_object_triangles(obj, context.evaluated_depsgraph_get())
    except MeshInputError as exc:
        raise Refused(str(exc)) from None
    if len(faces) > LARGE_MESH_TRIANGLES:
        operator.report({"WARNING"}, f'"{obj.name}" has {len(faces):,} triangles: sending it takes a moment')
    # The backend sees the shape as it stands in the scene (scale, rotation, Z up).
    world = (local @ matrix[:3, :3].T + matrix[:3, 3]).astype(np.float32)
    return obj, world, faces, matrix


def object_own_mesh(context, operator):
    """The active object's own mesh (before modifiers, vertex for vertex as its copy will have
    them) in its own coordinates, and its world matrix, or Refused. An edit reads width, depth
    and height in the object's own frame, and the result lands on a copy of this very mesh."""
    obj = context.active_object
    if obj is None or not obj.select_get():
        raise Refused("Select a mesh object first")
    if obj.mode == "EDIT":
        obj.update_from_editmode()  # the mesh as the artist sees it in Edit Mode
    try:
        local, faces, matrix = read_object_triangles(obj, context.evaluated_depsgraph_get(), evaluated=False)
    except MeshInputError as exc:
        raise Refused(str(exc)) from None
    if len(faces) > LARGE_MESH_TRIANGLES:
        operator.report({"WARNING"}, f'"{obj.name}" has {len(faces):,} triangles: sending it takes a moment')
    return obj, local, faces, matrix


def metres_per_unit(matrix, scale_length: float) -> list[float]:
    """Metres per unit of the object's own mesh along each of its axes: its world matrix's
    column lengths (the object's scale) times the scene's unit scale."""
    columns = np.linalg.norm(np.asarray(matrix, dtype=np.float64)[:3, :3], axis=0)
    return [float(np.clip(c * (scale_length or 1.0), 1e-6, 1e6)) for c in columns]


def up_axis(matrix) -> str:
    """The object's own axis that stands up in the world: "y" when its +Y points up most (a
    Y-up import turned upright by its object rotation), else "z"."""
    column = int(np.argmax(np.abs(np.asarray(matrix)[2, :3])))
    return "y" if column == 1 and np.asarray(matrix)[2, 1] > 0 else "z"


def image_bytes(settings) -> tuple[bytes, str]:
    """PNG/JPEG bytes of the chosen image and a label for it."""
    if settings.image_source == "FILE":
        path = bpy.path.abspath(settings.image_path)
        if not settings.image_path or not os.path.isfile(path):
            raise Refused(f"Image file not found: {settings.image_path or '(none chosen)'}")
        try:
            with open(path, "rb") as f:
                return f.read(), os.path.basename(path)
        except OSError as exc:
            raise Refused(f"Cannot read image file {settings.image_path}: {exc.strerror or exc}") from None
    image = settings.image
    if image is None:
        raise Refused("Choose a Blender image first")
    if image.size[0] == 0 or image.size[1] == 0:
        raise Refused(f'Image "{image.name}" has no pixels')
    # Blender writes the image out as PNG: packed, generated and rendered images all work.
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "image.png")
        copy = image.copy()
        try:
            copy.file_format = "PNG"
            copy.save(filepath=path)
        except RuntimeError as exc:  # Blender's message says why (no pixel data, ...)
            raise Refused(f'Cannot export image "{image.name}" as PNG: {exc}') from None
        finally:
            bpy.data.images.remove(copy)
        with open(path, "rb") as f:
            return f.read(), image.name


# What each task makes, for "the loaded model cannot ..." messages.
TASK_WORDS = {"text_to_3d": "make shapes from text", "image_to_3d": "make shapes from images",
              "describe": "describe shapes", "edit": "edit shapes"}


def unsupported_reason(task: str) -> str | None:
    """Why the connected backend's model cannot do `task`, or None when it can (or nobody knows
    yet: not connected, or a backend that does not say)."""
    session = session_mod.get()
    if session is None or not session.connected:
        return None
    supports = session.server_info.get("supports")
    if not isinstance(supports, dict) or supports.get(task, True):
        return None
    return f"The loaded model ({session.server_info.get('preset', '?')}) cannot {TASK_WORDS[task]}"


class ShapeLLMOperator(bpy.types.Operator):
    """Shared error handling: Refused and wire errors become a report, nothing changes.
    `task`: the backend task the operator sends; greyed out, with the reason, when the loaded
    model does not support it."""

    bl_options = {"REGISTER"}
    task = None

    @classmethod
    def poll(cls, context):
        reason = unsupported_reason(cls.task) if cls.task else None
        if reason:
            cls.poll_message_set(reason)
        return reason is None

    def execute(self, context):
        try:
            return self.run(context)
        except Refused as exc:
            self.report({"ERROR"}, str(exc))
        except ProtocolError as exc:
            self.report({"ERROR"}, f"{exc.message} ({exc.code})")
        except ConnectionError as exc:
            self.report({"ERROR"}, str(exc))
        return {"CANCELLED"}

    def run(self, context):
        raise NotImplementedError


class SHAPELLM_OT_report(bpy.types.Operator):
    """Show a message from the job pump in the info log"""

    bl_idname = "shapellm.report"
    bl_label = "ShapeLLM Report"
    bl_options = {"INTERNAL"}

    level: EnumProperty(items=[(k, k, "") for k in ("INFO", "WARNING", "ERROR")])
    message: StringProperty()

    def execute(self, context):
        self.report({self.level}, self.message)
        return {"FINISHED"}


class SHAPELLM_OT_backend_start(ShapeLLMOperator):
    """Start the backend (or connect to the configured one)"""

    bl_idname = "shapellm.backend_start"
    bl_label = "Start"

    def run(self, context):
        start_or_connect(context, current_session())
        return {"FINISHED"}


class SHAPELLM_OT_backend_stop(ShapeLLMOperator):
    """Stop the backend this add-on started and disconnect"""

    bl_idname = "shapellm.backend_stop"
    bl_label = "Stop"

    def run(self, context):
        session = current_session()
        if session.supervisor is not None:
            session.stop_backend()  # returns at once; the job pump reaps the process
        else:
            session.disconnect()
        return {"FINISHED"}


class SHAPELLM_OT_generate(ShapeLLMOperator):
    """Generate a mesh from the prompt, at the 3D cursor"""

    task = "text_to_3d"
    bl_idname = "shapellm.generate"
    bl_label = "Generate"

    def run(self, context):
        settings = context.scene.shapellm
        prompt = settings.prompt.strip()
        if not prompt:
            raise Refused("Type a prompt first")
        submit_variations(context, "text_to_3d", prompt, {"prompt": prompt})
        return {"FINISHED"}


class SHAPELLM_OT_generate_image(ShapeLLMOperator):
    """Generate a mesh of what the image shows, at the 3D cursor"""

    task = "image_to_3d"
    bl_idname = "shapellm.generate_image"
    bl_label = "Generate from Image"

    def run(self, context):
        data, label = image_bytes(context.scene.shapellm)
        submit_variations(context, "image_to_3d", label, {}, blobs={"image": data})
        return {"FINISHED"}


def submit_variations(context, task, label, fields, blobs=None):
    """One job for the panel's Variations: K shapes come back in its one result."""
    session = ready_session(context)
    placement = Placement.at_cursor(context.scene.cursor.location, preferences.get(context).object_size)
    return session.submit(task, label, {**fields, "options": variation_options(context)},
                          blobs=blobs, placement=placement)


class SHAPELLM_OT_describe(ShapeLLMOperator):
    """Describe the selected object's shape in words"""

    task = "describe"
    bl_idname = "shapellm.describe"
    bl_label = "Describe this object"

    def run(self, context):
        obj, world, faces, _ = selected_mesh(context, self)
        session = ready_session(context)
        options = job_options(context)
        options.pop("mesh_style")
        session.submit("describe", obj.name, {"options": options},
                       arrays={"vertices": world, "faces": faces}, placement=Placement.of(obj.name))
        return {"FINISHED"}


class SHAPELLM_OT_edit(ShapeLLMOperator):
    """Make an edited copy of the selected object; the original is kept"""

    task = "edit"
    bl_idname = "shapellm.edit"
    bl_label = "Edit with Instruction"

    instruction: StringProperty(name="Instruction", description="How to change the object")

    def invoke(self, context, event):
        self.instruction = context.scene.shapellm.instruction
        return context.window_manager.invoke_props_dialog(self, width=400)

    def run(self, context):
        instruction = (self.instruction or context.scene.shapellm.instruction).strip()
        if not instruction:
            raise Refused("Type an instruction first")
        obj, local, faces, matrix = object_own_mesh(context, self)
        session = ready_session(context)
        context.scene.shapellm.instruction = instruction
        placement = Placement.over(obj.name, matrix, preferences.get(context).hide_source_on_edit, local=True)
        options = {**job_options(context), "up": up_axis(matrix),
                   "metres_per_unit": metres_per_unit(matrix, context.scene.unit_settings.scale_length),
                   "object_name": obj.name[:256]}
        session.submit("edit", instruction, {"instruction": instruction, "options": options},
                       arrays={"vertices": local, "faces": faces}, placement=placement)
        return {"FINISHED"}


class SHAPELLM_OT_cancel_job(ShapeLLMOperator):
    """Cancel this job"""

    bl_idname = "shapellm.cancel_job"
    bl_label = "Cancel"

    key: StringProperty()

    def run(self, context):
        current_session().cancel(self.key)
        return {"FINISHED"}


class SHAPELLM_OT_clear_jobs(ShapeLLMOperator):
    """Remove finished jobs from the list"""

    bl_idname = "shapellm.clear_jobs"
    bl_label = "Clear Finished"

    def run(self, context):
        current_session().book.forget_finished()
        return {"FINISHED"}


class SHAPELLM_OT_release_gpu(ShapeLLMOperator):
    """Free the model's memory on the backend; the next job loads it again"""

    bl_idname = "shapellm.release_gpu"
    bl_label = "Release GPU Memory"

    def run(self, context):
        current_session().release()
        return {"FINISHED"}


class SHAPELLM_OT_reimport(ShapeLLMOperator):
    """Bring a past result back into the scene at the 3D cursor"""

    bl_idname = "shapellm.reimport"
    bl_label = "Re-import"
    bl_options = {"REGISTER", "UNDO"}

    index: IntProperty(min=0)

    def run(self, context):
        from . import results

        session = current_session()
        try:
            vertices, faces = session.history.geometry(self.index)
            saved = session.history.placement(self.index)
        except ValueError as exc:
            raise Refused(str(exc)) from None
        entry = session.history.entries[self.index]
        task, label = entry["task"], entry["label"]
        prefs = preferences.get(context)
        # An edit comes back in its source's old frame, the original left alone; a new shape at the cursor.
        if task == "edit":
            placement = Placement.over(saved.source, saved.matrix or IDENTITY, hide_source=False, local=saved.local)
        else:
            placement = Placement.at_cursor(context.scene.cursor.location, prefs.object_size)
        obj = results.place_mesh(context, placement, vertices, faces, results.shape_name(task, label, placement),
                                 smooth=prefs.mesh_style == "smooth")
        results.set_provenance(obj, task, label, "history")
        self.report({"INFO"}, f'Re-imported "{obj.name}"')
        return {"FINISHED"}


classes = (SHAPELLM_OT_report, SHAPELLM_OT_backend_start, SHAPELLM_OT_backend_stop,
           SHAPELLM_OT_generate, SHAPELLM_OT_generate_image, SHAPELLM_OT_describe, SHAPELLM_OT_edit,
           SHAPELLM_OT_cancel_job, SHAPELLM_OT_clear_jobs, SHAPELLM_OT_release_gpu, SHAPELLM_OT_reimport)
