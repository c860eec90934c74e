"""Is the process that started the backend still there? `serve --parent-pid PID` asks this
about once a second, so a backend started by Blender exits when Blender crashes.

Standard library only, no psutil. POSIX: when PID is our direct parent, `os.getppid()` changes
once it dies (we are re-parented), which also holds when the dead parent lingers as a zombie;
otherwise `os.kill(PID, 0)` says whether it exists. Windows: a process handle opened at start
(so a reused PID cannot fool us), polled with a zero-timeout wait. Never os.kill on Windows:
there it terminates the process whatever the signal number.
"""

from __future__ import annotations

import functools
import os


class ParentWatch:
    def __init__(self, pid: int):
        self.pid = int(pid)
        self._direct = os.name != "nt" and os.getppid() == self.pid
        self._handle = _open_process(self.pid) if os.name == "nt" else None

    def alive(self) -> bool:
        if os.name == "nt":
            if self._handle is _CANNOT_WATCH:
                return True
            return self._handle is not None and _windows_running(self._handle)
        if self._direct:
            return os.getppid() == self.pid
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True  # exists, owned by someone else
        return True


# -- Windows ---------------------------------------------------------------------------------------

_SYNCHRONIZE = 0x00100000
_WAIT_TIMEOUT = 0x00000102
_ERROR_ACCESS_DENIED = 5
_CANNOT_WATCH = object()  # the process exists but we may not wait on it: assume it lives


@functools.cache  # polled every second: load the DLL and declare the signatures once
def _kernel32():
    import ctypes
    from ctypes import wintypes

    kernel32 = ctypes.WinDLL("kernel32", use_last_error=True)
    kernel32.OpenProcess.argtypes = (wintypes.DWORD, wintypes.BOOL, wintypes.DWORD)
    kernel32.OpenProcess.restype = wintypes.HANDLE
    kernel32.WaitForSingleObject.argtypes = (wintypes.HANDLE, wintypes.DWORD)
    kernel32.WaitForSingleObject.restype = wintypes.DWORD
    return kernel32


def _open_process(pid: int):
    """A handle to wait on, or None when no such process exists (it is gone already)."""
    import ctypes

    handle = _kernel32().OpenProcess(_SYNCHRONIZE, False, pid)
    if handle:
        return handle
    return _CANNOT_WATCH if ctypes.get_last_error() == _ERROR_ACCESS_DENIED else None


def _windows_running(handle) -> bool:
    # WAIT_TIMEOUT: still running; WAIT_OBJECT_0 (0): it has exited.
    return _kernel32().WaitForSingleObject(handle, 0) == _WAIT_TIMEOUT
