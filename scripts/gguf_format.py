"""GGUF v3 encoding shared by the project's GGUF writers (convert_to_gguf.py, write_tiny_qwen3_gguf.py): the value
types and a buffer that encodes the header (key/value metadata, tensor infos), as ggml's docs/gguf.md describes it.
Standard library only."""
import struct
from array import array

ALIGN = 32  # general.alignment: tensor infos and data start on multiples of it
# GGUF metadata value types
U32, I32, F32, BOOL, STRING, ARRAY = 4, 5, 6, 7, 8, 9


class MetaBuffer:
    """Bytes of a GGUF header under construction: metadata keys and values, then whatever the writer appends."""

    def __init__(self):
        self.buf = bytearray()

    def u32(self, v):
        self.buf += struct.pack("<I", v)

    def u64(self, v):
        self.buf += struct.pack("<Q", v)

    def string(self, s):
        e = s.encode("utf-8")
        self.u64(len(e))
        self.buf += e

    def value(self, kind, v):
        if kind == U32:
            self.u32(v)
        elif kind == I32:
            self.buf += struct.pack("<i", v)
        elif kind == F32:
            self.buf += struct.pack("<f", v)
        elif kind == BOOL:
            self.buf += struct.pack("<B", 1 if v else 0)
        elif kind == STRING:
            self.string(v)
        else:
            raise ValueError(f"GGUF value type {kind} is not written here")

    def kv(self, key, kind, v):
        self.string(key)
        self.u32(kind)
        self.value(kind, v)

    def kv_array(self, key, elem, values):
        self.string(key)
        self.u32(ARRAY)
        self.u32(elem)
        self.u64(len(values))
        if elem == I32:
            self.buf += array("i", values).tobytes()
        else:
            for v in values:
                self.value(elem, v)

    def pad(self):
        self.buf += b"\0" * (-len(self.buf) % ALIGN)

    def header(self, meta, arrays, tensors):
        """The whole header: magic, version, the key/value metadata (meta: (key, type, value); arrays: (key,
        element type, values)) and the tensor infos (tensors: (name, dims innermost first, ggml type, data
        bytes)), each tensor's data placed at the next multiple of ALIGN; padded to ALIGN at the end."""
        self.buf += b"GGUF" + struct.pack("<IQQ", 3, len(tensors), len(meta) + len(arrays))
        for key, kind, v in meta:
            self.kv(key, kind, v)
        for key, elem, values in arrays:
            self.kv_array(key, elem, values)
        offset = 0
        for name, dims, ggml_type, nbytes in tensors:
            self.string(name)
            self.buf += struct.pack(f"<I{len(dims)}QIQ", len(dims), *dims, ggml_type, offset)
            offset += nbytes + (-nbytes % ALIGN)
        self.pad()
