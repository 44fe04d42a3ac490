"""Types of the compiled ELF table reader (`_native.c`); see reader.py."""

from collections.abc import Iterator

from bindrift.analysis.elf.reader import Phdr, Shdr
from bindrift.analysis.source import ByteSource

MAX_PHT_BYTES: int
MAX_SECTIONS: int
TAIL_SLACK: int
UPX_FORMAT_VERSIONS: tuple[int, ...]

class SectionTable:
    """The section headers as written (at most MAX_SECTIONS); indexing gives a `Shdr`."""

    def __len__(self) -> int: ...
    def __getitem__(self, index: int) -> Shdr: ...
    def __iter__(self) -> Iterator[Shdr]: ...  # through the sequence protocol
    def code_sections(self, address: int, skip_nobits: bool) -> tuple[int, bool]: ...
    def nobits_cover(self, address: int) -> bool: ...
    def has_type(self, sh_type: int) -> bool: ...
    def sized_at(self, address: int) -> bool: ...

class ElfImage:
    """The raw headers of one ELF file, with the layout (class, byte order) used to read them."""

    src: ByteSource
    head: bytes
    size: int
    bits: int
    little: bool
    ei_class: int
    ei_data: int
    ei_version: int
    osabi: int
    abiversion: int
    type: int
    machine: int
    version: int
    entry: int
    phoff: int
    shoff: int
    flags: int
    ehsize: int
    phentsize: int
    phnum: int
    shentsize: int
    shnum: int
    shstrndx: int
    phdrs: list[Phdr]
    # The PT_LOAD program headers (the same tuples as in `phdrs`), in table order.
    loads: list[Phdr]
    shdrs: SectionTable
    # Effective counts after the extended-numbering escapes (e_phnum = PN_XNUM, e_shnum = 0).
    phnum_eff: int
    shnum_eff: int
    shstrndx_eff: int
    # True when EI_CLASS / EI_DATA were invalid or contradicted by the header, so the layout was inferred.
    layout_inferred: bool
    # Why a table was not (fully) read, e.g. "pht-truncated", "sht-beyond-eof", "sht-not-available".
    problems: list[str]
    # The end of the file from `tail_offset` on, read once with the section table that usually ends it.
    tail: bytes
    tail_offset: int
    def read(self, offset: int, length: int) -> bytes: ...
    def header_hits(self, executable: bool) -> dict[str, tuple[int, ...]]: ...
    # (the first three PT_INTERP paths, raw; whether the file links dynamically)
    def linkage(self) -> tuple[list[bytes], bool]: ...
    # (l_info row, PackHeader magic bytes, stub PT_LOAD index, expanding PT_LOAD index, code bytes present)
    def packer_probe(
        self,
    ) -> tuple[tuple[int, bytes, int, int, int, int, int, bool] | None, bytes, int | None, int | None, bool] | None: ...

def bind(phdr: type[Phdr], shdr: type[Shdr]) -> None: ...
def parse(src: ByteSource, head: bytes) -> ElfImage | None: ...
