"""ShapeLLM-Omni for Blender: generate, describe and edit meshes with a local backend.

bpy is imported only inside register()/unregister(): the backend imports `addon.wire`
from this package without Blender.
"""

_registered_classes = []


def register():
    import bpy

    from . import operators, preferences, properties, pump, session, ui

    for cls in (*preferences.classes, *properties.classes, *operators.classes, *ui.classes):
        bpy.utils.register_class(cls)
        _registered_classes.append(cls)
    properties.register_props()
    ui.register_menus()
    folder = bpy.utils.extension_path_user(__package__, path="", create=True)
    session.set_current(session.Session(folder))
    pump.start_timer()


def unregister():
    import bpy

    from . import properties, pump, session, ui

    pump.stop_timer()
    current = session.get()
    if current is not None:
        current.shutdown()
    session.set_current(None)
    ui.unregister_menus()
    properties.unregister_props()
    for cls in reversed(_registered_classes):
        bpy.utils.unregister_class(cls)
    _registered_classes.clear()
