# The import system's own module (what importlib._bootstrap is at run time), reduced to
# what pyrt_runtime uses: typeshed has no stub for it.
from importlib.machinery import ModuleSpec
from types import ModuleType

def module_from_spec(spec: ModuleSpec) -> ModuleType: ...
