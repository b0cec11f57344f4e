# The import system's path machinery (importlib._bootstrap_external at run time),
# reduced to what pyrt_runtime uses: typeshed has no stub for it.
from importlib.machinery import ModuleSpec

MAGIC_NUMBER: bytes
_RAW_MAGIC_NUMBER: int

def cache_from_source(path: str, debug_override: bool | None = ..., *,
                      optimization: object = ...) -> str: ...
def spec_from_file_location(name: str, location: str | None = ...) -> ModuleSpec | None: ...
