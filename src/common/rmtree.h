/* rmtree.h -- removing a folder tree that untrusted code wrote: never following a
 * symlink, never leaving its filesystem, whatever its depth, with a few fds.
 *
 * Every step is relative to an open directory fd (openat, unlinkat, renameat2) and
 * every open refuses a symlink (O_NOFOLLOW), so a name swapped for a symlink while the
 * walk runs makes that step fail, never reach outside the tree: safe for root to run on
 * a folder a worker filled. A folder deeper than RMTREE_DEPTH_MAX below the top is
 * moved up to the top first (a rename within the tree), so a tree 100,000 folders deep
 * costs no more fds than one RMTREE_DEPTH_MAX deep. A folder its owner left without
 * read, write or search permission (mode 0500, 0) is given u+rwx when the caller owns
 * it: the owner may, and needs it to empty it. */
#ifndef PYRT_RMTREE_H
#define PYRT_RMTREE_H

#define RMTREE_DEPTH_MAX 32 /* folders open at once: one fd each */

/* Empties the folder open as `dirfd` (which stays, open): 0, or -1 with errno of the
 * first failure (the walk goes on past one, removing what it can). */
int rmtree_contents(int dirfd);

/* Removes `name` in the folder open as `parentfd` and everything in it; a file or a
 * symlink is unlinked. 0 (also when it does not exist), or -1 with errno. */
int rmtree_at(int parentfd, const char *name);

#endif
