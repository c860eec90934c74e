"""The job pump: the only place where backend events reach Blender data.

`pump()` is a plain function: bpy.app.timers calls it in the UI (through `timer()`), tests
call it directly (timers do not fire in background mode). It runs on the main thread, polls
the client without blocking, and stops taking new work once its time budget is spent.
"""

from __future__ import annotations

import dataclasses
import time

import bpy

from . import mesh_bridge, preferences, results, session as session_mod
from .wire import protocol

TICK_BUDGET_S = 0.002
BUSY_INTERVAL_S = 0.05    # while jobs run: smooth progress bars
IDLE_INTERVAL_S = 0.5


def pump(context=None, budget_s: float = TICK_BUDGET_S) -> bool:
    """One tick. Returns True when anything changed (the panel is then redrawn)."""
    session = session_mod.get()
    if session is None:
        return False
    context = context or bpy.context
    deadline = time.perf_counter() + budget_s
    changed = session.tick()
    # Results are applied one per tick so one tick stays short; building a big mesh is the
    # single unavoidable cost, and the next tick follows right after.
    if session.results and time.perf_counter() < deadline:
        if context.mode == "OBJECT":
            job, event = session.results.pop(0)
            _apply_result(context, session, job, event)
            session.results_held = False
            changed = True
        elif not session.results_held:
            # Adding objects in Edit or Sculpt Mode would go into that mode's undo history
            # (or none): results wait, in order, until the artist is back in Object Mode.
            session.results_held = True
            session.notices.append(("INFO", "ShapeLLM result ready: it is placed when you return to Object Mode"))
    while session.notices:
        level, text = session.notices.pop(0)
        report(level, text)
    if changed:
        redraw(context)
    return changed


def _apply_result(context, session, job, event) -> None:
    preset = str(session.server_info.get("preset", ""))
    prefs = preferences.get(context)
    try:
        if job.task == "describe":
            caption = results.clean_caption(str(event.fields.get("caption", "")))
            results.apply_caption(context, job, caption, preset)
            session.history.add(job.task, job.label, caption)
            session.notices.append(("INFO", f'{job.label}: "{caption}"'))
            results.push_undo("ShapeLLM describe")
            return
        # One shape, or the K variations of one job (split before anything is made)
        shapes = protocol.split_variations(event.fields, event.arrays)
        several = "variations" in event.fields
        name = results.shape_name(job.task, job.label, job.placement)
        obj = None
        if event.fields.get("kept_mesh") is True:  # the artist's own mesh edited: keep everything it carries
            added = None
            if "added_vertices" in event.arrays and "added_faces" in event.arrays:
                added = mesh_bridge.check_arrays(event.arrays["added_vertices"], event.arrays["added_faces"])
            obj = results.edited_copy(context, job.placement, shapes[0][1], event.arrays.get("removed_faces"),
                                      added, name)
        objects = [obj] if obj is not None else results.place_side_by_side(
            context, job.placement, [(v, f) for _, v, f, _ in shapes], name, smooth=prefs.mesh_style == "smooth")
        for obj, (info, vertices, faces, _) in zip(objects, shapes):
            results.set_job_provenance(obj, job, preset, info if several else None)
            placement = dataclasses.replace(job.placement, variation=int(info.get("index", 0)))
            session.history.add(job.task, job.label, obj.name, vertices, faces, placement)
        obj = objects[0]
        job.result_name, job.result_names = obj.name, [o.name for o in objects]
        read_as = event.fields.get("read_as")
        if isinstance(read_as, str) and read_as:  # the prompt as the model was asked it
            obj["shapellm_read_as"] = read_as
            session.notices.append(("INFO", f'{job.label}: made as "{read_as}"'))
        kind = event.fields.get("edit_kind")
        if isinstance(kind, str) and kind:  # how the model read the instruction: wrong reads show
            obj["shapellm_edit_kind"] = kind
            done = event.fields.get("edit_summary")
            done = f"; {done}" if isinstance(done, str) and done else ""
            session.notices.append(("INFO", f'{job.label}: read as "{kind}"{_how_sure(event.fields)}{done}'))
        results.push_undo(f"ShapeLLM {job.task}")  # one undo step, however many shapes
    except (KeyError, ValueError) as exc:
        # A result we cannot use loses nothing in the scene: the job fails with the reason.
        job.finish("failed", f"unusable result: {exc}")
        session.notices.append(("ERROR", f"{job.task} failed: {job.message}"))


def _how_sure(fields: dict) -> str:
    """" (62% sure)" from the result's edit_kind_confidence, or nothing if it is not a share."""
    sure = fields.get("edit_kind_confidence")
    if isinstance(sure, bool) or not isinstance(sure, (int, float)) or not 0 <= sure <= 1:
        return ""
    return f" ({sure:.0%} sure)"


def report(level: str, text: str) -> None:
    """Into the info log and the status bar (an operator is the only way to report from here)."""
    try:
        bpy.ops.shapellm.report(level=level, message=text)
    except RuntimeError:
        print(f"ShapeLLM {level}: {text}")


def redraw(context) -> None:
    wm = context.window_manager
    for window in wm.windows if wm else ():
        for area in window.screen.areas:
            if area.type in ("VIEW_3D", "STATUSBAR"):
                area.tag_redraw()


def timer() -> float | None:
    """bpy.app.timers callback: pump, then come back soon while work is under way."""
    session = session_mod.get()
    if session is None:
        return None
    try:
        pump()
    except Exception as exc:  # a timer that raises is dropped by Blender: keep pumping
        print(f"ShapeLLM pump error: {exc!r}")
    busy = session.book.active() or session.results or session.state == "connecting"
    return BUSY_INTERVAL_S if busy else IDLE_INTERVAL_S


def start_timer() -> None:
    if not bpy.app.timers.is_registered(timer):
        bpy.app.timers.register(timer, first_interval=IDLE_INTERVAL_S, persistent=True)


def stop_timer() -> None:
    if bpy.app.timers.is_registered(timer):
        bpy.app.timers.unregister(timer)
