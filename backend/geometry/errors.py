"""The one exception the geometry layer raises for bad input.

`code` is a stable machine-readable string (the pipeline passes it on as a task error code);
`message` says in plain words what was wrong, for the artist.
"""

# Stable codes. Keep them short and never rename one: other layers match on them.
INVALID_MESH = "invalid_mesh"          # wrong shape/dtype, face index out of range
EMPTY_MESH = "empty_mesh"              # no vertices, no faces, or nothing left after cleaning
NON_FINITE = "non_finite"              # NaN or inf coordinates
DEGENERATE_MESH = "degenerate_mesh"    # every vertex at one point: nothing to normalise
INVALID_GRID = "invalid_grid"          # occupancy grid of the wrong shape
INVALID_ARGUMENT = "invalid_argument"  # an option outside its allowed values
FILE_NOT_FOUND = "file_not_found"
UNSUPPORTED_FORMAT = "unsupported_format"
READ_FAILED = "read_failed"
WRITE_FAILED = "write_failed"


class GeometryError(ValueError):
    """Bad geometry input. A ValueError, so generic callers can still catch it."""

    def __init__(self, code: str, message: str):
        super().__init__(f"{message} [{code}]")
        self.code = code
        self.message = message
