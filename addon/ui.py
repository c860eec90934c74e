"""The sidebar tab, the object context menu entries and the status-bar progress."""

from __future__ import annotations

import time

import bpy

from . import session as session_mod
from .wire import protocol
from .operators import unsupported_reason

STATE_ICONS = {"connected": "CHECKMARK", "connecting": "SORTTIME", "offline": "UNLINKED",
               "lost": "ERROR", "incompatible": "ERROR"}


class ShapeLLMPanel:
    bl_space_type = "VIEW_3D"
    bl_region_type = "UI"
    bl_category = "ShapeLLM"


def say_if_unsupported(layout, task: str) -> None:
    """Under a greyed-out button: why (the loaded model cannot do that task)."""
    reason = unsupported_reason(task)
    if reason:
        layout.label(text=reason, icon="INFO")


class SHAPELLM_PT_main(ShapeLLMPanel, bpy.types.Panel):
    bl_label = "ShapeLLM"

    def draw(self, context):
        layout = self.layout
        session = session_mod.get()
        if session is None:
            layout.label(text="Add-on not running", icon="ERROR")
            return
        row = layout.row()
        row.label(text=session.message, icon=STATE_ICONS.get(session.state, "QUESTION"))
        if session.connected and session.server_info:
            info = session.server_info
            col = layout.column(align=True)
            for key, title in (("preset", "Model"), ("device", "Device"), ("version", "Version")):
                if key in info:
                    col.label(text=f"{title}: {info[key]}")
        row = layout.row(align=True)
        if session.state in ("connected", "connecting") or session.backend_running:
            row.operator("shapellm.backend_stop", icon="PAUSE")
        else:
            row.operator("shapellm.backend_start", icon="PLAY")
        row.operator("shapellm.release_gpu", text="", icon="TRASH")


class SHAPELLM_PT_generate(ShapeLLMPanel, bpy.types.Panel):
    bl_label = "Generate"
    bl_parent_id = "SHAPELLM_PT_main"

    def draw(self, context):
        settings = context.scene.shapellm
        layout = self.layout
        layout.prop(settings, "prompt", text="")
        layout.operator("shapellm.generate", icon="MESH_MONKEY")
        say_if_unsupported(layout, "text_to_3d")
        box = layout.box()
        box.prop(settings, "image_source", expand=True)
        if settings.image_source == "FILE":
            box.prop(settings, "image_path", text="")
        else:
            box.template_ID(settings, "image", open="image.open")
        box.operator("shapellm.generate_image", icon="IMAGE_DATA")
        say_if_unsupported(box, "image_to_3d")
        col = layout.column(align=True)
        col.prop(settings, "seed")
        row = col.row(align=True)
        row.prop(settings, "custom_temperature", text="")
        sub = row.row(align=True)
        sub.active = settings.custom_temperature
        sub.prop(settings, "temperature")
        col.prop(settings, "variations")
        session = session_mod.get()
        samples = bool(session and session.connected and session.server_info.get("greedy") is False)
        if settings.variations > 1 and not settings.custom_temperature and not samples:
            # variations need sampling; a greedy model would make N equal shapes (operators.variation_options)
            col.label(text=f"Variations sample at temperature {settings.temperature:.2f}", icon="INFO")


QUICK_EDITS = protocol.PROPORTION_KINDS


class SHAPELLM_PT_object(ShapeLLMPanel, bpy.types.Panel):
    bl_label = "Selected Object"
    bl_parent_id = "SHAPELLM_PT_main"

    def draw(self, context):
        settings = context.scene.shapellm
        layout = self.layout
        obj = context.active_object
        layout.label(text=obj.name if obj else "Nothing selected", icon="OBJECT_DATA")
        layout.operator("shapellm.describe", icon="INFO")
        say_if_unsupported(layout, "describe")
        if settings.caption:
            layout.label(text=settings.caption)
        layout.prop(settings, "instruction", text="")
        row = layout.row()
        row.operator_context = "EXEC_DEFAULT"   # the instruction is right above: no popup
        row.operator("shapellm.edit", text="Apply Edit", icon="MODIFIER").instruction = settings.instruction
        # one click for the proportion edits: wordings every model reads (the embedded one was
        # trained on exactly these), nothing to type
        quick = layout.row(align=True)
        quick.operator_context = "EXEC_DEFAULT"
        for word in QUICK_EDITS:
            quick.operator("shapellm.edit", text=word.capitalize()).instruction = f"make it {word}"
        say_if_unsupported(layout, "edit")


class SHAPELLM_PT_jobs(ShapeLLMPanel, bpy.types.Panel):
    bl_label = "Jobs"
    bl_parent_id = "SHAPELLM_PT_main"

    def draw(self, context):
        layout = self.layout
        session = session_mod.get()
        jobs = list(session.book.jobs.values()) if session else []
        if not jobs:
            layout.label(text="No jobs")
            return
        for job in reversed(jobs[-10:]):
            box = layout.box()
            row = box.row()
            row.label(text=f"{job.task}: {job.label}"[:60])
            if job.active:
                row.operator("shapellm.cancel_job", text="", icon="CANCEL").key = job.key
                box.progress(factor=job.fraction, type="BAR", text=job.progress_text)
            else:
                icon = {"done": "CHECKMARK", "cancelled": "X"}.get(job.state, "ERROR")
                box.label(text=job.message or f"{job.state} in {job.duration:.1f} s", icon=icon)
        layout.operator("shapellm.clear_jobs")


class SHAPELLM_PT_history(ShapeLLMPanel, bpy.types.Panel):
    bl_label = "History"
    bl_parent_id = "SHAPELLM_PT_main"
    bl_options = {"DEFAULT_CLOSED"}

    def draw(self, context):
        layout = self.layout
        session = session_mod.get()
        entries = session.history.entries if session else []
        if not entries:
            layout.label(text="No past jobs")
        for index, entry in enumerate(entries[:20]):
            row = layout.row()
            when = time.strftime("%m-%d %H:%M", time.localtime(entry["time"]))
            row.label(text=f"{when} {entry['task']}: {entry['label']} -> {entry['result']}"[:70])
            if entry.get("file"):
                row.operator("shapellm.reimport", text="", icon="IMPORT").index = index


def draw_context_menu(self, context):
    obj = context.active_object
    if obj is None or obj.type != "MESH":
        return
    layout = self.layout
    layout.separator()
    layout.operator("shapellm.describe", text="Describe this object", icon="INFO")
    layout.operator_context = "INVOKE_DEFAULT"
    layout.operator("shapellm.edit", text="Edit with Instruction...", icon="MODIFIER")


def draw_status_bar(self, context):
    session = session_mod.get()
    active = session.book.active() if session else []
    if not active:
        return
    job = active[0]
    more = f" (+{len(active) - 1})" if len(active) > 1 else ""
    self.layout.progress(factor=job.fraction, type="BAR",
                         text=f"ShapeLLM {job.task}: {job.progress_text}{more}")


classes = (SHAPELLM_PT_main, SHAPELLM_PT_generate, SHAPELLM_PT_object, SHAPELLM_PT_jobs,
           SHAPELLM_PT_history)


def register_menus():
    bpy.types.VIEW3D_MT_object_context_menu.append(draw_context_menu)
    bpy.types.STATUSBAR_HT_header.append(draw_status_bar)


def unregister_menus():
    bpy.types.VIEW3D_MT_object_context_menu.remove(draw_context_menu)
    bpy.types.STATUSBAR_HT_header.remove(draw_status_bar)
