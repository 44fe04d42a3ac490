#!/usr/bin/env bash
# Builds the process sensor's BPF object (process.bpf.o, committed: no compiler runs on a node) and records
# the digest of its inputs (process.bpf.inputs, checked by tests/sensors/test_ebpf_object.py).
#   build.sh             compile process.bpf.c against the checked-in vmlinux.h
#   build.sh --vmlinux   first regenerate vmlinux.h from this machine's kernel BTF (CO-RE: any BTF kernel
#                        then relocates the object at load; regenerate only for new kernel types)
# Needs clang (>= 14), llvm-strip, bpftool and libbpf-dev (Debian: clang llvm bpftool libbpf-dev).
set -euo pipefail
cd "$(dirname "$0")"
if [ "${1:-}" = "--vmlinux" ]; then
  bpftool btf dump file /sys/kernel/btf/vmlinux format c > vmlinux.h
fi
out="${OUT:-process.bpf.o}"
# The build folder is mapped away so that the object is the same bytes wherever it is built.
clang -O2 -g -fdebug-prefix-map="$PWD"=. -target bpf -D__TARGET_ARCH_x86 -I. -c process.bpf.c -o "$out"
llvm-strip -g "$out"  # DWARF only; the BTF that CO-RE needs stays
if [ "$out" = process.bpf.o ]; then
  cat build.sh process.bpf.c vmlinux.h | sha256sum | cut -d' ' -f1 > process.bpf.inputs
fi
