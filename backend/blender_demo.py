"""The main job: headless Blender with the extension, one prompt, a scene on disk.

    python -m backend.blender_demo --prompt "a dining chair" --out out/ [--preset embedded]

1. builds the extension zip with .ci/build_extension.py,
2. imports Blender as the bpy module with its user folder under out/ (nothing global is
   touched), installs the zip with Blender's own extensions operator and enables it,
3. points the add-on at this Python so that it starts (and later stops) the backend itself,
4. generates through the add-on's own Generate operator and job pump, printing the progress,
5. writes out/scene.blend, out/result.glb and a Workbench render out/render.png.
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
    import importlib

    pump = importlib.import_module(f"{PACKAGE}.pump")
    session = importlib.import_module(f"{PACKAGE}.session").get()
    settings = bpy.context.scene.shapellm
    settings.prompt, settings.seed, settings.variations = prompt, seed, 1
    bpy.ops.shapellm.generate()
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
        raise GenerationFailed(f"generation {job.state}: {job.message}\n{log}", "(no_shape)" in job.message)
    print(f"done in {job.duration:.1f} s; worst pump tick while running {worst_tick * 1000:.2f} ms",
          flush=True)
    return bpy.data.objects[job.result_name]


def stage_scene(bpy, obj) -> None:
    """Ground, camera and Workbench look, framed on the object."""
    scene = bpy.context.scene
    size = max(obj.dimensions)
    centre = obj.location.copy()
    centre.z += obj.dimensions.z / 2
    bpy.ops.mesh.primitive_plane_add(size=size * 8, location=(obj.location.x, obj.location.y, obj.location.z))
    ground = bpy.context.active_object
    ground.name = "Ground"
    ground.color = (0.82, 0.82, 0.8, 1.0)
    obj.color = (0.85, 0.55, 0.3, 1.0)
    distance = size * 3.2
    camera_data = bpy.data.cameras.new("Camera")
    camera = bpy.data.objects.new("Camera", camera_data)
    scene.collection.objects.link(camera)
    direction = (math.cos(math.radians(-50)), math.sin(math.radians(-50)), 0.55)
    camera.location = [c + distance * d for c, d in zip(centre, direction)]
    track = camera.constraints.new("TRACK_TO")
    empty = bpy.data.objects.new("Camera target", None)
    empty.location = centre
    scene.collection.objects.link(empty)
    track.target = empty
    scene.camera = camera
    scene.render.engine = "BLENDER_WORKBENCH"
    scene.render.resolution_x, scene.render.resolution_y = 1024, 768
    scene.render.film_transparent = False
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
        stage_scene(bpy, obj)
        write_outputs(bpy, obj, out)
    finally:
        import addon_utils

        addon_utils.disable(PACKAGE)   # stops the backend the add-on started
    print(f"wrote {out / 'scene.blend'}, {out / 'result.glb'}, {out / 'render.png'}")


if __name__ == "__main__":
    main()
