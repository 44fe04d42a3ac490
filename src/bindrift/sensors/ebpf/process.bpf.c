// SPDX-License-Identifier: GPL-2.0
/* bindrift's process sensor: exec (with argv, cwd, executable path, inode and device), fork and exit of
 * every process, as they happen, into one ring buffer. Built by build.sh; record layouts are
 * mirrored in events.py. A process image is named by (tgid, start time of its leader, exec count): stable
 * for the image's lifetime, never reused by a later process that gets the same pid. The writer of a
 * file is then told apart in user space from these events' times and the file's mtime (fentry programs,
 * which could hook the close itself, do not load on every kernel: they need BPF trampolines). */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>

#define ARGV_BYTES 4096  /* argv beyond this is cut (flag TRUNCATED_ARGV) */
#define PATH_BYTES 512   /* executable path and cwd, each */
#define NAME_BYTES 256   /* one path component (NAME_MAX + 1) */
#define PATH_DEPTH 16    /* components walked up from a dentry; deeper paths are cut (TRUNCATED_PATH) */

enum kind { EXEC = 1, FORK = 2, EXIT = 3, RENAME = 4 };
enum flags { TRUNCATED_ARGV = 1, TRUNCATED_EXE = 2, TRUNCATED_CWD = 4, ARGV_UNREADABLE = 8, EXE_DELETED = 16 };

struct image {            /* 24 bytes */
	u32 tgid;
	u32 exec_id;
	u64 start_ns;
	u64 pad;
};

struct header {           /* 112 bytes */
	u32 kind;
	u32 flags;
	struct image self;
	struct image parent;
	u64 ts_ns;
	u64 cgroup_id;
	u32 uid, gid;
	u32 ns_pid;       /* the pid as the process's own namespace sees it */
	u32 pid_ns, mnt_ns;
	s32 exit_code;
	char comm[16];
};

struct exec_event {
	struct header h;
	u64 ino;
	u32 dev;          /* kernel encoding: major << 20 | minor */
	u32 argv_len;
	u32 exe_len;      /* components leaf first, each NUL-terminated; user space reverses them */
	u32 cwd_len;
	char exe[PATH_BYTES];
	char cwd[PATH_BYTES];
	char argv[ARGV_BYTES];
};

/* 4 MiB: the reader maps it twice (32 MiB of its RSS at 16 MiB); an exec record is sent with only the argv
 * bytes it holds (about 1.2 KiB for a short command line), so this holds some 3,000 execs between reads. */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 4 << 20);
} events SEC(".maps");

/* An exec record is built here (it is larger than the BPF stack), then copied to the ring at its size. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, u32);
	__type(value, struct exec_event);
} scratch SEC(".maps");

/* Set by the loader before load (.rodata; one struct, so its layout is fixed for the loader). */
const volatile struct {
	u32 self_tgid;  /* the agent: its own events are not reported */
	u32 pad;
	u64 wake_every; /* wake user space once per this many records (it also reads on a timer) */
} settings = { 0, 0, 64 };
struct counters {
	u64 dropped;   /* records lost to a full ring */
	u64 submitted;
} counters = {};

static __always_inline void image_of(struct image *out, struct task_struct *task)
{
	out->tgid = BPF_CORE_READ(task, tgid);
	out->exec_id = (u32)BPF_CORE_READ(task, self_exec_id);
	out->start_ns = BPF_CORE_READ(task, group_leader, start_time);
}

static __always_inline void fill_header(struct header *h, u32 kind, struct task_struct *task)
{
	struct task_struct *parent = BPF_CORE_READ(task, real_parent);
	struct pid *pid = BPF_CORE_READ(task, thread_pid);
	unsigned int level = BPF_CORE_READ(pid, level);
	struct upid upid = {};

	h->kind = kind;
	h->flags = 0;
	image_of(&h->self, task);
	image_of(&h->parent, parent);
	h->parent.exec_id = (u32)BPF_CORE_READ(task, parent_exec_id); /* the parent's image when this one forked */
	h->ts_ns = bpf_ktime_get_ns();
	h->cgroup_id = bpf_get_current_cgroup_id();
	u64 ug = bpf_get_current_uid_gid();
	h->uid = (u32)ug;
	h->gid = ug >> 32;
	bpf_probe_read_kernel(&upid, sizeof(upid), &pid->numbers[level & 31]);
	h->ns_pid = upid.nr;
	h->pid_ns = BPF_CORE_READ(upid.ns, ns.inum);
	h->mnt_ns = BPF_CORE_READ(task, nsproxy, mnt_ns, ns.inum);
	h->exit_code = 0;
	BPF_CORE_READ_STR_INTO(&h->comm, task, comm);
}

/* Component names from `dentry` up to the task's root (a container's root for its processes), leaf first,
 * each NUL-terminated; sets *cut when the walk stopped early. Returns the bytes written. */
static __always_inline u32 walk_path(char *buf, struct dentry *dentry, struct vfsmount *vfsmnt,
				     struct path *root, bool *cut)
{
	struct mount *mnt = container_of(vfsmnt, struct mount, mnt);
	struct dentry *root_dentry = BPF_CORE_READ(root, dentry);
	struct vfsmount *root_mnt = BPF_CORE_READ(root, mnt);
	u32 off = 0;

	*cut = true;
	for (int i = 0; i < PATH_DEPTH; i++) {
		if (dentry == root_dentry && vfsmnt == root_mnt) {
			*cut = false;
			break;
		}
		struct dentry *mnt_root = BPF_CORE_READ(vfsmnt, mnt_root);
		struct dentry *parent = BPF_CORE_READ(dentry, d_parent);
		if (dentry == mnt_root) {
			struct mount *up = BPF_CORE_READ(mnt, mnt_parent);
			if (up == mnt) { /* the top of the mount tree */
				*cut = false;
				break;
			}
			dentry = BPF_CORE_READ(mnt, mnt_mountpoint);
			mnt = up;
			vfsmnt = &up->mnt;
			continue;
		}
		if (off > PATH_BYTES - NAME_BYTES)
			break;
		const unsigned char *name = BPF_CORE_READ(dentry, d_name.name);
		long n = bpf_probe_read_kernel_str(buf + off, NAME_BYTES, name);
		if (n <= 0)
			break;
		off += n;
		if (dentry == parent) { /* a pseudo file's lone dentry (memfd:NAME): its name is the path */
			*cut = false;
			break;
		}
		dentry = parent;
	}
	return off;
}

SEC("tp_btf/sched_process_exec")
int BPF_PROG(on_exec, struct task_struct *task, pid_t old_pid, struct linux_binprm *bprm)
{
	if (task->tgid == settings.self_tgid)
		return 0;
	u32 zero = 0;
	struct exec_event *e = bpf_map_lookup_elem(&scratch, &zero);
	if (!e)
		return 0;
	bool cut = false;
	fill_header(&e->h, EXEC, task);
	struct file *file = BPF_CORE_READ(bprm, file);
	struct inode *inode = BPF_CORE_READ(file, f_inode);
	e->ino = BPF_CORE_READ(inode, i_ino);
	e->dev = BPF_CORE_READ(inode, i_sb, s_dev);
	if (BPF_CORE_READ(inode, __i_nlink) == 0)
		e->h.flags |= EXE_DELETED; /* named as /proc/PID/exe names it: "… (deleted)" */
	struct fs_struct *fs = BPF_CORE_READ(task, fs);
	e->exe_len = walk_path(e->exe, BPF_CORE_READ(file, f_path.dentry), BPF_CORE_READ(file, f_path.mnt),
			       &fs->root, &cut);
	if (cut)
		e->h.flags |= TRUNCATED_EXE;
	e->cwd_len = walk_path(e->cwd, BPF_CORE_READ(fs, pwd.dentry), BPF_CORE_READ(fs, pwd.mnt), &fs->root, &cut);
	if (cut)
		e->h.flags |= TRUNCATED_CWD;
	unsigned long start = BPF_CORE_READ(task, mm, arg_start);
	unsigned long len = BPF_CORE_READ(task, mm, arg_end) - start;
	if (len > ARGV_BYTES) {
		len = ARGV_BYTES;
		e->h.flags |= TRUNCATED_ARGV;
	}
	if (bpf_probe_read_user(e->argv, len, (void *)start) == 0) {
		e->argv_len = len;
	} else {
		e->argv_len = 0;
		e->h.flags |= ARGV_UNREADABLE;
	}
	u64 size = offsetof(struct exec_event, argv) + e->argv_len;
	if (size > sizeof(*e))
		size = sizeof(*e);
	u64 n = __sync_fetch_and_add(&counters.submitted, 1);
	if (bpf_ringbuf_output(&events, e, size, n % settings.wake_every ? BPF_RB_NO_WAKEUP : 0))
		__sync_fetch_and_add(&counters.dropped, 1);
	return 0;
}

static __always_inline int report(u32 kind, struct task_struct *task, s32 exit_code)
{
	struct header *h = bpf_ringbuf_reserve(&events, sizeof(*h), 0);
	if (!h) {
		__sync_fetch_and_add(&counters.dropped, 1);
		return 0;
	}
	fill_header(h, kind, task);
	h->exit_code = exit_code;
	u64 n = __sync_fetch_and_add(&counters.submitted, 1);
	bpf_ringbuf_submit(h, n % settings.wake_every ? BPF_RB_NO_WAKEUP : 0);
	return 0;
}

SEC("tp_btf/sched_process_fork")
int BPF_PROG(on_fork, struct task_struct *parent, struct task_struct *child)
{
	if (child->pid != child->tgid || parent->tgid == settings.self_tgid) /* threads are not processes */
		return 0;
	return report(FORK, child, 0);
}

SEC("tp_btf/sched_process_exit")
int BPF_PROG(on_exit, struct task_struct *task)
{
	if (task->pid != task->tgid || task->tgid == settings.self_tgid)
		return 0;
	return report(EXIT, task, task->exit_code);
}

/* A new name without an exec (prctl PR_SET_NAME): a busybox shell runs `cp` as an applet in a forked child,
 * whose argv is still the shell's. Reported with the new name in comm. */
SEC("tp_btf/task_rename")
int BPF_PROG(on_rename, struct task_struct *task, const char *comm)
{
	if (task->pid != task->tgid || task->tgid == settings.self_tgid)
		return 0;
	/* every exec renames too, and says so in its own event (the flag is gone from some kernels: then kept) */
	if (bpf_core_field_exists(task->in_execve) && BPF_CORE_READ_BITFIELD_PROBED(task, in_execve))
		return 0;
	struct header *h = bpf_ringbuf_reserve(&events, sizeof(*h), 0);
	if (!h) {
		__sync_fetch_and_add(&counters.dropped, 1);
		return 0;
	}
	fill_header(h, RENAME, task);
	bpf_probe_read_kernel_str(h->comm, sizeof(h->comm), comm);
	u64 n = __sync_fetch_and_add(&counters.submitted, 1);
	bpf_ringbuf_submit(h, n % settings.wake_every ? BPF_RB_NO_WAKEUP : 0);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
