/* sysinfo.h -- facts about the machine this process runs on. */
#ifndef PYRT_SYSINFO_H
#define PYRT_SYSINFO_H

/* The CPUs this process may use: its affinity mask, bounded by a cgroup CPU quota
 * (v2 cpu.max or v1 cfs_quota/period), rounded up; at least 1. */
int sys_usable_cpus(void);

#endif
