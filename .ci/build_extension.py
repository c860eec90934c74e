"""Build the installable Blender extension zip(s).

    python .ci/build_extension.py [--out dist] [--no-split]

1. Fetches the pyzmq wheels named in blender_manifest.toml, unmodified, from PyPI with
   `pip download --only-binary=:all:` (cached under build/wheels).
2. Stages addon/ + the manifest + the wheels into build/extension/.
3. Runs Blender's own `blender_ext.py validate` and `build` (one zip per platform by default)
   and writes the zip(s) to dist/.

Prints the written zip paths, one a line. Needs the `bpy` module only for its copy of
blender_ext.py (found without importing bpy).
"""

from __future__ import annotations

import argparse
import importlib.util
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MANIFEST = ROOT / "blender_manifest.toml"
WHEEL_CACHE = ROOT / "build" / "wheels"
STAGE = ROOT / "build" / "extension"


def blender_ext_script() -> Path:
    """Blender's extension CLI as shipped inside the bpy module."""
    spec = importlib.util.find_spec("bpy")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("the bpy module is not installed; it carries blender_ext.py")
    base = Path(list(spec.submodule_search_locations)[0])
    found = sorted(base.glob("*/scripts/addons_core/bl_pkg/cli/blender_ext.py"))
    if not found:
        raise SystemExit(f"blender_ext.py not found under {base}")
    return found[-1]


def manifest_wheels() -> list[str]:
    with open(MANIFEST, "rb") as f:
        manifest = tomllib.load(f)
    return [Path(w).name for w in manifest.get("wheels", [])]


def fetch_wheel(filename: str) -> Path:
    """Download one wheel exactly as named (name-version-py-abi-platform.whl) unless cached."""
    target = WHEEL_CACHE / filename
    if target.exists():
        return target
    WHEEL_CACHE.mkdir(parents=True, exist_ok=True)
    name, version, python_tag, abi, platform = filename[: -len(".whl")].split("-")
    cmd = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
           "--only-binary=:all:", "--implementation", "cp", "--abi", abi,
           "--python-version", python_tag[2:3] + "." + python_tag[3:],
           "--dest", str(WHEEL_CACHE), f"{name}=={version}"]
    for tag in platform.split("."):
        cmd += ["--platform", tag]
    subprocess.run(cmd, check=True)
    if not target.exists():
        got = sorted(p.name for p in WHEEL_CACHE.glob(f"{name}-{version}-*.whl"))
        raise SystemExit(f"pip did not fetch {filename}; the cache holds {got}")
    return target


def stage(wheels: list[Path]) -> Path:
    if STAGE.exists():
        shutil.rmtree(STAGE)
    shutil.copytree(ROOT / "addon", STAGE,
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    shutil.copy2(MANIFEST, STAGE / "blender_manifest.toml")
    (STAGE / "wheels").mkdir()
    for wheel in wheels:
        shutil.copy2(wheel, STAGE / "wheels" / wheel.name)
    return STAGE


def build(out_dir: Path, split: bool = True) -> list[Path]:
    wheels = [fetch_wheel(name) for name in manifest_wheels()]
    source = stage(wheels)
    script = blender_ext_script()
    # Blender's tools talk on stdout; keep ours for the list of zips.
    subprocess.run([sys.executable, str(script), "validate", str(source)], check=True, stdout=sys.stderr)
    out_dir.mkdir(parents=True, exist_ok=True)
    before = {p: p.stat().st_mtime for p in out_dir.glob("*.zip")}
    cmd = [sys.executable, str(script), "build", "--source-dir", str(source),
           "--output-dir", str(out_dir)]
    if split:
        cmd.append("--split-platforms")
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    written = [p for p in sorted(out_dir.glob("*.zip"))
               if p not in before or p.stat().st_mtime != before[p]]
    if not written:
        raise SystemExit("blender_ext.py build wrote no zip")
    return written


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "dist")
    parser.add_argument("--no-split", action="store_true",
                        help="one zip holding every platform's wheel")
    args = parser.parse_args(argv)
    for path in build(args.out.resolve(), split=not args.no_split):
        print(path)


if __name__ == "__main__":
    main()
