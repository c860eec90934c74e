"""Past jobs (task, prompt, time, result), kept in the add-on's user folder for re-import.

Each finished mesh job leaves an entry in history.json and its geometry in an .npz next to
it, so a result can be brought back after the object was deleted or in another file. No bpy.
"""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path

import numpy as np

from .jobs import Placement

MAX_ENTRIES = 50


class History:
    def __init__(self, folder: Path):
        self.folder = Path(folder)
        self.entries: list[dict] = self._load()

    @property
    def index_path(self) -> Path:
        return self.folder / "history.json"

    def _load(self) -> list[dict]:
        try:
            entries = json.loads(self.index_path.read_text())
        except (OSError, ValueError):
            return []  # no history yet, or a damaged file: start a fresh one
        return [e for e in entries if isinstance(e, dict) and "task" in e] if isinstance(entries, list) else []

    def _save(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        tmp = self.index_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.entries, indent=1))
        tmp.replace(self.index_path)

    def add(self, task: str, label: str, result: str, vertices=None, faces=None,
            placement: Placement | None = None) -> dict:
        entry = {"task": task, "label": label, "time": time.time(), "result": result,
                 "place": placement.to_dict() if placement is not None else {}, "file": ""}
        if vertices is not None and faces is not None:
            self.folder.mkdir(parents=True, exist_ok=True)
            name = f"{uuid.uuid4().hex}.npz"
            np.savez(self.folder / name, vertices=vertices, faces=faces)
            entry["file"] = name
        self.entries.insert(0, entry)
        for old in self.entries[MAX_ENTRIES:]:
            self._remove_file(old)
        del self.entries[MAX_ENTRIES:]
        self._save()
        return entry

    def geometry(self, index: int):
        """(vertices, faces) of entry `index`; ValueError with a clear message if it is gone."""
        if not 0 <= index < len(self.entries):
            raise ValueError(f"no history entry {index}")
        entry = self.entries[index]
        if not entry.get("file"):
            raise ValueError(f'"{entry["label"]}" has no mesh to re-import')
        try:
            with np.load(self.folder / entry["file"]) as data:
                return data["vertices"], data["faces"]
        except (OSError, KeyError, ValueError) as exc:
            raise ValueError(f"the saved mesh of \"{entry['label']}\" cannot be read: {exc}") from None

    def placement(self, index: int) -> Placement:
        """Where entry `index`'s result was put; ValueError if the saved place is damaged."""
        try:
            return Placement.from_dict(self.entries[index].get("place") or {})
        except (AttributeError, TypeError, ValueError) as exc:
            raise ValueError(f"the saved place of \"{self.entries[index]['label']}\" cannot be read: {exc}") from None

    def clear(self) -> None:
        for entry in self.entries:
            self._remove_file(entry)
        self.entries = []
        self._save()

    def _remove_file(self, entry: dict) -> None:
        if entry.get("file"):
            (self.folder / entry["file"]).unlink(missing_ok=True)
