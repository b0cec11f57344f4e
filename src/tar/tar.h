/* tar.h -- the function archive: packing a folder, extracting it safely (libarchive).
 *
 * Packing is deterministic: members in byte order of their paths, each "./rel",
 * mtimes fixed, owner 0, no timestamp in the gzip header, so the same folder gives a
 * byte-identical archive.
 *
 * Extraction writes nothing outside the target folder. libarchive's SECURE flags stop
 * "..", absolute paths and writing through a symlink; every entry is also checked
 * before it is written, for what they let through: a symlink entry whose target
 * leaves the folder, a hardlink to outside, a device or FIFO. setuid, setgid and
 * sticky bits are dropped. */
#ifndef PYRT_TAR_H
#define PYRT_TAR_H

#include <stdbool.h>
#include <stddef.h>

/* Writes a tar of dir's contents to out (out itself, if inside dir, is left out),
 * gzip-compressed unless `plain`. 0, or -1 with err naming the file that failed. */
int tar_pack(const char *dir, const char *out, bool plain, char *err, size_t errlen);

/* Extracts archive into dir (created if missing). 0, or -1 with err naming the archive
 * or the member that was refused. */
int tar_extract(const char *archive, const char *dir, char *err, size_t errlen);

/* Is `target`, a symlink's text found at relative path `link`, inside the folder when
 * resolved lexically? (Exposed for the unit tests.) */
int tar_link_target_inside(const char *link, const char *target);

#endif
