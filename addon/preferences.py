"""Add-on preferences: where the backend is, how to start it, and how results look."""

from __future__ import annotations

import bpy
from bpy.props import BoolProperty, EnumProperty, FloatProperty, StringProperty

DEFAULT_ADDRESS = "tcp://127.0.0.1:5577"
DEFAULT_ARGS = "-m backend serve --preset embedded --bind {address}"


class ShapeLLMPreferences(bpy.types.AddonPreferences):
    bl_idname = __package__

    address: StringProperty(name="Backend address", default=DEFAULT_ADDRESS,
                            description="ZeroMQ address of the local backend")
    auto_start: BoolProperty(name="Start the backend automatically", default=True,
                             description="Start the local backend when a job needs it, stop it with Blender")
    backend_python: StringProperty(name="Backend Python", subtype="FILE_PATH", default="",
                                   description="Python interpreter of the backend's environment (with torch)")
    backend_args: StringProperty(name="Arguments", default=DEFAULT_ARGS,
                                 description="Arguments after the Python; {address} is the backend address")
    backend_folder: StringProperty(name="Working folder", subtype="DIR_PATH", default="",
                                   description="Folder the backend starts in (the project checkout); empty: Blender's")
    use_remote: BoolProperty(name="Remote host", default=False,
                             description="Use a backend on another machine, encrypted with CurveZMQ")
    remote_address: StringProperty(name="Remote address", default="tcp://gpu-host:5577")
    server_public_key: StringProperty(name="Server public key",
                                      description="The server's Z85 public key, or its .key file")
    client_key_file: StringProperty(name="Client key file", subtype="FILE_PATH",
                                    description="This machine's .key_secret file, authorised on the server")
    object_size: FloatProperty(name="Object size", default=2.0, min=0.01, soft_max=100.0,
                               unit="LENGTH", description="Size of the largest side of a generated object")
    mesh_style: EnumProperty(name="Mesh style", default="smooth",
                             items=[("smooth", "Smooth", "Smooth surface, smooth shading"),
                                    ("blocky", "Blocky", "Voxel blocks, flat shading")])
    # the edited copy takes the original's place; the original stays, hidden, in the outliner
    hide_source_on_edit: BoolProperty(name="Hide the source after an edit", default=True)

    def draw(self, context):
        layout = self.layout
        layout.prop(self, "use_remote")
        if self.use_remote:
            box = layout.box()
            box.prop(self, "remote_address")
            box.prop(self, "server_public_key")
            box.prop(self, "client_key_file")
        else:
            layout.prop(self, "address")
            layout.prop(self, "auto_start")
            box = layout.box()
            box.prop(self, "backend_python")
            box.prop(self, "backend_args")
            box.prop(self, "backend_folder")
        layout.prop(self, "object_size")
        layout.prop(self, "mesh_style")
        layout.prop(self, "hide_source_on_edit")

    def connection(self) -> tuple[str, dict]:
        """(address, client key arguments) for the chosen backend."""
        if not self.use_remote:
            return self.address, {}
        if not self.server_public_key:
            raise ValueError("A remote backend needs the server's public key (add-on preferences)")
        keys = {"server_public_key": self.server_public_key}
        if self.client_key_file:
            keys["client_keys"] = bpy.path.abspath(self.client_key_file)
        return self.remote_address, keys


def get(context=None) -> ShapeLLMPreferences:
    context = context or bpy.context
    return context.preferences.addons[__package__].preferences


classes = (ShapeLLMPreferences,)
