"""Per-scene settings shown in the sidebar (saved with the .blend)."""

from __future__ import annotations

import bpy
from bpy.props import BoolProperty, EnumProperty, FloatProperty, IntProperty, PointerProperty, StringProperty


class ShapeLLMSceneSettings(bpy.types.PropertyGroup):
    prompt: StringProperty(name="Prompt", default="", description="What to generate")
    image_source: EnumProperty(name="Image from", default="FILE",
                               items=[("FILE", "File", "An image file on disk"),
                                      ("IMAGE", "Blender image", "An image loaded in Blender")])
    image_path: StringProperty(name="Image file", subtype="FILE_PATH")
    image: PointerProperty(name="Image", type=bpy.types.Image)
    seed: IntProperty(name="Seed", default=0, min=0, description="Same seed, same prompt: same shape")
    # Each model preset ships the sampling it was tuned for; the panel overrides it only on request.
    custom_temperature: BoolProperty(name="Own temperature", default=False,
                                     description="Use the temperature below instead of the model's own")
    temperature: FloatProperty(name="Temperature", default=0.7, min=0.05, max=2.0)
    variations: IntProperty(name="Variations", default=1, min=1, max=8,
                            description="How many shapes to make, laid out side by side")
    instruction: StringProperty(name="Instruction", default="",
                                description='How to change the selected object, e.g. "make it taller", '
                                            '"reduce the width", "remove the backrest"')
    caption: StringProperty(name="Caption", default="", description="The last description")


classes = (ShapeLLMSceneSettings,)


def register_props():
    bpy.types.Scene.shapellm = PointerProperty(type=ShapeLLMSceneSettings)


def unregister_props():
    del bpy.types.Scene.shapellm
