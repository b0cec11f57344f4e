/* sysinfo.h -- facts about the machine this process runs on. */
#ifndef PYRT_SYSINFO_H
#define PYRT_SYSINFO_H

/* The CPUs this process may use: its affinity mask, bounded by a cgroup CPU quota
 * (v2 cpu.max or v1 cfs_quota/period), rounded up; at least 1. */
int sys_usable_cpus(void);

/* The memory limit of this process's cgroup in bytes (v2 memory.max or v1
 * memory.limit_in_bytes), 0 when there is none (or it cannot be read). */
unsigned long long sys_memory_limit(void);

#endif
