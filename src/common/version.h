/* version.h -- pyrt's version, for --version and the metrics' build info. */
#ifndef PYRT_VERSION_H
#define PYRT_VERSION_H

#ifndef PYRT_VERSION
#define PYRT_VERSION "0.1.0"
#endif

#endif
