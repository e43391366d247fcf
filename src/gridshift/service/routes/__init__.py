"""The API's routes, one module per area, each an ``APIRouter`` of module-level route functions that
:func:`gridshift.service.app.create_app` mounts."""
