"""The few libbpf 1.x calls the sensor makes, bound with ctypes (Debian's libbpf1; no compiler on a node).

ctypes rather than cffi: cffi is not a dependency. The ring buffer is not read through libbpf (a callback per
record) but straight from its mapping (`ring.py`). libbpf 1.x reports errors as NULL + errno (pointer
calls) or -errno (int calls)."""

from __future__ import annotations

import ctypes
import logging
import os
from typing import Any

log = logging.getLogger(__name__)
PRINT_FN = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_void_p)
LIBBPF_WARN = 0
MAX_LOG_LINE = 4096


class LibbpfError(OSError):
    """A libbpf call failed; `errno` is set."""


_VP, _INT, _STR, _SIZE = ctypes.c_void_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_size_t
SIGNATURES: dict[str, tuple[Any, list[Any]]] = {
    "bpf_object__open_file": (_VP, [_STR, _VP]),
    "bpf_object__load": (_INT, [_VP]),
    "bpf_object__close": (None, [_VP]),
    "bpf_object__next_program": (_VP, [_VP, _VP]),
    "bpf_program__attach": (_VP, [_VP]),
    "bpf_program__name": (_STR, [_VP]),
    "bpf_link__destroy": (_INT, [_VP]),
    "bpf_object__find_map_by_name": (_VP, [_VP, _STR]),
    "bpf_map__initial_value": (_VP, [_VP, ctypes.POINTER(_SIZE)]),
    "bpf_map__fd": (_INT, [_VP]),
    "bpf_map_lookup_elem": (_INT, [_INT, _VP, _VP]),
    "bpf_map__max_entries": (ctypes.c_uint32, [_VP]),
    "libbpf_set_print": (_VP, [PRINT_FN]),
}


class Libbpf:
    """libbpf.so.1 with the signatures above declared (a pointer result must never be read as an int)."""

    def __init__(self) -> None:
        self.lib = ctypes.CDLL("libbpf.so.1", use_errno=True)  # OSError when libbpf1 is not installed
        for function, (result, arguments) in SIGNATURES.items():
            bound = getattr(self.lib, function)
            bound.restype, bound.argtypes = result, arguments
        self.libc = ctypes.CDLL(None)
        self.libc.vsnprintf.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_char_p, ctypes.c_void_p]
        self.messages: list[str] = []  # libbpf's warnings since load began (why a load failed)
        self._print = PRINT_FN(self._log)  # referenced for as long as libbpf may call it
        self.lib.libbpf_set_print(self._print)

    def _log(self, level: int, fmt: bytes, args: int) -> int:
        # on x86-64 the va_list arrives as a pointer, which vsnprintf takes as it is
        buffer = ctypes.create_string_buffer(MAX_LOG_LINE)
        self.libc.vsnprintf(buffer, MAX_LOG_LINE, fmt, args)
        if level == LIBBPF_WARN:
            self.messages = [*self.messages[-20:], buffer.value.decode(errors="replace").rstrip()]
        return 0

    def pointer(self, function: str, *arguments: Any) -> int:
        """Call a pointer-returning function; LibbpfError on NULL."""
        result: int | None = getattr(self.lib, function)(*arguments)
        if not result:
            code = ctypes.get_errno() or 22
            raise LibbpfError(code, f"{function}: {os.strerror(code)}")
        return result

    def call(self, function: str, *arguments: Any) -> int:
        """Call an int-returning function; LibbpfError on a negative result."""
        result: int = getattr(self.lib, function)(*arguments)
        if result < 0:
            raise LibbpfError(-result, f"{function}: {os.strerror(-result)}")
        return result
