"""The main job: headless Blender with the extension, one prompt, a scene on disk.

    python tools/blender_demo.py --prompt "a dining chair" --out out/ [--preset embedded]

1. builds the extension zip with .ci/build_extension.py,
2. imports Blender as the bpy module with its user folder under out/ (nothing global is
   touched), installs the zip with Blender's own extensions operator and enables it,
3. points the add-on at this Python so that it starts (and later stops) the backend itself,
4. generates through the add-on's own Generate operator and job pump, printing the progress,
5. with --edit, edits the result through the add-on's Edit operator the same way (the edited
   copy takes the original's place; out/edit.png shows the two side by side),
6. writes out/scene.blend, out/result.glb (the last result) and a Workbench render out/render.png.
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGE = "bl_ext.user_default.shapellm_omni"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def build_zip(out: Path) -> Path:
    done = subprocess.run([sys.executable, str(REPO / ".ci" / "build_extension.py"), "--out", str(out)],
                          check=True, capture_output=True, text=True)
    zips = [Path(p) for p in done.stdout.splitlines() if p.endswith("linux_x64.zip")]
    if not zips:
        raise SystemExit(f"the build wrote no linux zip:\n{done.stdout}{done.stderr}")
    return zips[0]


def install_extension(bpy, zip_path: Path):
    bpy.ops.wm.read_factory_settings(use_empty=True)
    result = bpy.ops.extensions.package_install_files(filepath=str(zip_path), repo="user_default",
                                                      enable_on_install=True)
    if result != {"FINISHED"}:
        raise SystemExit(f"installing {zip_path} failed: {result}")
    return bpy.context.preferences.addons[PACKAGE].preferences


class GenerationFailed(RuntimeError):
    def __init__(self, message: str, empty_shape: bool):
        super().__init__(message)
        self.empty_shape = empty_shape


def generate_with_retries(bpy, prompt: str, seed: int, attempts: int, timeout: float):
    """A sampled shape can come out empty for one seed: then the next seed gets a turn."""
    for attempt in range(attempts):
        try:
            return generate(bpy, prompt, seed + attempt, timeout)
        except GenerationFailed as failure:
            if not failure.empty_shape or attempt == attempts - 1:
                raise SystemExit(str(failure)) from None
            print(f"seed {seed + attempt} gave an empty shape; trying seed {seed + attempt + 1}", flush=True)


def generate(bpy, prompt: str, seed: int, timeout: float):
    """Press Generate and pump like the add-on's timer does, until the object is there."""
    settings = bpy.context.scene.shapellm
    settings.prompt, settings.seed, settings.variations = prompt, seed, 1
    bpy.ops.shapellm.generate()
    return run_job(bpy, timeout)


def edit(bpy, obj, instruction: str, timeout: float):
    """Select `obj`, apply the edit as the sidebar's button does, pump until the copy is there."""
    bpy.context.view_layer.objects.active = obj
    obj.select_set(True)
    bpy.ops.shapellm.edit(instruction=instruction)
    return run_job(bpy, timeout, report=True)


def run_job(bpy, timeout: float, report: bool = False):
    """Pump the newest job like the add-on's timer does; its result object once it is done.
    `report`: print the add-on's notices (what the artist would see reported) then."""
    import importlib

    pump = importlib.import_module(f"{PACKAGE}.pump")
    session = importlib.import_module(f"{PACKAGE}.session").get()
    job = list(session.book.jobs.values())[-1]
    deadline, last_line, worst_tick = time.monotonic() + timeout, "", 0.0
    while job.active or session.results:
        if time.monotonic() > deadline:
            bpy.ops.shapellm.cancel_job(key=job.key)
            raise SystemExit(f"no result within {timeout:.0f} s ({job.progress_text})")
        started = time.perf_counter()
        pump.pump()
        worst_tick = max(worst_tick, time.perf_counter() - started) if job.active else worst_tick
        line = f"{session.message}: {job.progress_text}"
        if line != last_line and (job.stage != "tokens" or job.done % 128 == 0 or job.done == job.total):
            print(line, flush=True)
            last_line = line
        time.sleep(0.02)
    if job.state != "done":
        log = session.supervisor.log_tail(15) if session.supervisor else ""
        raise GenerationFailed(f"{job.task} {job.state}: {job.message}\n{log}", "(no_shape)" in job.message)
    print(f"done in {job.duration:.1f} s; worst pump tick while running {worst_tick * 1000:.2f} ms",
          flush=True)
    for level, text in session.notices if report else ():
        print(f"{level}: {text}", flush=True)
    return bpy.data.objects[job.result_name]


def stage_scene(bpy, obj) -> None:
    """Ground, camera and Workbench look, framed on the object."""
    scene = bpy.context.scene
    size = max(obj.dimensions)
    bpy.ops.mesh.primitive_plane_add(size=size * 8, location=(obj.location.x, obj.location.y, obj.location.z))
    ground = bpy.context.active_object
    ground.name = "Ground"
    ground.color = (0.82, 0.82, 0.8, 1.0)
    obj.color = (0.85, 0.55, 0.3, 1.0)
    camera_data = bpy.data.cameras.new("Camera")
    camera = bpy.data.objects.new("Camera", camera_data)
    scene.collection.objects.link(camera)
    track = camera.constraints.new("TRACK_TO")
    empty = bpy.data.objects.new("Camera target", None)
    scene.collection.objects.link(empty)
    track.target = empty
    scene.camera = camera
    frame(bpy, [obj])
    scene.render.engine = "BLENDER_WORKBENCH"
    scene.render.resolution_x, scene.render.resolution_y = 1024, 768
    scene.render.film_transparent = False
    scene.render.use_stamp_filename = False  # PNG metadata would carry the .blend's absolute path
    shading = scene.display.shading
    shading.light = "STUDIO"
    shading.color_type = "OBJECT"
    shading.show_shadows = True
    shading.show_cavity = True
    shading.cavity_type = "WORLD"
    scene.display.shadow_shift = 0.1
    world = scene.world or bpy.data.worlds.new("World")
    scene.world = world
    world.color = (0.25, 0.28, 0.32)


def frame(bpy, objects, distance: float = 3.2) -> None:
    """Point the scene's camera at the objects' joint bounding box, from the front right, above,
    `distance` times the box's size away."""
    from mathutils import Vector

    bpy.context.view_layer.update()
    corners = [o.matrix_world @ Vector(c) for o in objects for c in o.bound_box]
    low = Vector([min(c[i] for c in corners) for i in range(3)])
    high = Vector([max(c[i] for c in corners) for i in range(3)])
    centre, size = (low + high) / 2, max(high - low)
    bpy.data.objects["Camera target"].location = centre
    direction = Vector((math.cos(math.radians(-50)), math.sin(math.radians(-50)), 0.55))
    bpy.context.scene.camera.location = centre + direction * size * distance


def render_side_by_side(bpy, original, edited, path: Path) -> None:
    """The original, shown again and moved to the left of its edited copy, rendered to `path`
    (after the scene was saved: the file keeps the copy in the original's place)."""
    original.hide_set(False)
    original.hide_render = False
    original.color = (0.45, 0.6, 0.8, 1.0)
    original.location.x -= max(original.dimensions.x, edited.dimensions.x) * 1.4
    frame(bpy, [original, edited], distance=2.4)
    bpy.context.scene.render.filepath = str(path)
    bpy.ops.render.render(write_still=True)


def write_outputs(bpy, obj, out: Path) -> None:
    bpy.ops.object.select_all(action="DESELECT")
    obj.select_set(True)
    bpy.context.view_layer.objects.active = obj
    bpy.ops.export_scene.gltf(filepath=str(out / "result.glb"), export_format="GLB", use_selection=True)
    scene = bpy.context.scene
    scene.render.filepath = str(out / "render.png")
    bpy.ops.render.render(write_still=True)
    bpy.ops.wm.save_as_mainfile(filepath=str(out / "scene.blend"))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompt", required=True)
    parser.add_argument("--out", type=Path, default=Path("out"))
    parser.add_argument("--preset", default="embedded", help="built-in preset name or preset folder")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--timeout", type=float, default=900, help="seconds to wait for the shape")
    parser.add_argument("--attempts", type=int, default=3, help="seeds to try when a shape comes out empty")
    parser.add_argument("--edit", metavar="INSTRUCTION", help="then edit the result (e.g. \"make it taller\")")
    args = parser.parse_args(argv)
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    preset = str(Path(args.preset).resolve()) if Path(args.preset).is_dir() else args.preset

    print("building the extension", flush=True)
    zip_path = build_zip(REPO / "dist")
    user = out / "blender_user"
    shutil.rmtree(user, ignore_errors=True)
    os.environ["BLENDER_USER_RESOURCES"] = str(user)   # before bpy is imported
    import bpy

    print(f"installing {zip_path.name} into Blender {bpy.app.version_string}", flush=True)
    prefs = install_extension(bpy, zip_path)
    prefs.backend_python = sys.executable
    prefs.backend_args = f'-m backend serve --preset "{preset}" --bind {{address}}'
    prefs.backend_folder = str(REPO)
    prefs.address = f"tcp://127.0.0.1:{free_port()}"
    prefs.auto_start = True
    try:
        obj = generate_with_retries(bpy, args.prompt, args.seed, max(1, args.attempts), args.timeout)
        result = obj
        if args.edit:
            try:
                result = edit(bpy, obj, args.edit, args.timeout)
            except GenerationFailed as failure:
                raise SystemExit(str(failure)) from None
        stage_scene(bpy, result)
        write_outputs(bpy, result, out)
        if args.edit:
            render_side_by_side(bpy, obj, result, out / "edit.png")
    finally:
        import addon_utils

        addon_utils.disable(PACKAGE)   # stops the backend the add-on started
    extra = f", {out / 'edit.png'}" if args.edit else ""
    print(f"wrote {out / 'scene.blend'}, {out / 'result.glb'}, {out / 'render.png'}{extra}")


if __name__ == "__main__":
    main()
