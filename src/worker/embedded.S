/* embedded.S -- pyrt's own Python sources, built into the binary so that one file is
 * the whole runtime. Each is NUL-terminated for Py_CompileString. */
    .section .rodata
    .global pyrt_src_runtime
pyrt_src_runtime:
    .incbin "python/runtime/pyrt_runtime.py"
    .byte 0
    .global pyrt_src_function_types
pyrt_src_function_types:
    .incbin "python/function_types/function_types/__init__.py"
    .byte 0
    .global pyrt_src_validate
pyrt_src_validate:
    .incbin "python/runtime/pyrt_validate.py"
    .byte 0
    .section .note.GNU-stack,"",@progbits
