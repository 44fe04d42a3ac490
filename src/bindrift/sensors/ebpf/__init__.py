"""The eBPF process sensor: exec, fork and exit captured in the kernel (CO-RE object built by build.sh,
loaded through libbpf with ctypes), and the exact process image that last closed each written file."""
