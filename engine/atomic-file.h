/* atomic-file.h: the engine's one atomic file writer (internal to libddpm;
 * the tensor writer and the PNG writer use it).
 */
#ifndef DDPM_ATOMIC_FILE_H
#define DDPM_ATOMIC_FILE_H

#include <glib.h>

#include "ddpm.h"

G_BEGIN_DECLS

/* Replace a file atomically: the data goes to a temporary file in the same
 * directory (".NAME.XXXXXX", hidden so folder scans skip it), which commit
 * flushes, fsyncs and renames over `path`.  Readers see the old file or
 * the new one, never a mixture; after a crash at most a stray hidden
 * temporary remains, until the next write to the same path removes it.  Used by the tensor writer (safetensors.c) and
 * ddpm_image_save_png (image.c). */
typedef struct _DdpmAtomicFile DdpmAtomicFile;

DdpmAtomicFile *ddpm_atomic_file_new    (const char      *path,
                                         GError         **error);
/* Buffered write; DDPM_ERROR_IO naming the file on failure (disk full). */
gboolean        ddpm_atomic_file_write  (DdpmAtomicFile  *file,
                                         const void      *data,
                                         gsize            n,
                                         GError         **error);
/* Flush, fsync, rename into place; frees `file` whether or not it
 * succeeds (on failure the temporary file is removed). */
gboolean        ddpm_atomic_file_commit (DdpmAtomicFile  *file,
                                         GError         **error);
/* Remove the temporary file and free `file`; `path` is untouched. */
void            ddpm_atomic_file_abort  (DdpmAtomicFile  *file);
/* Remove the temporaries that killed writers left for `path`
 * (".NAME.XXXXXX", ours, unlocked, untouched for a minute); a live
 * writer's is kept.  ddpm_atomic_file_new calls it; train.c too, at the
 * start of a run, for its checkpoint. */
void            ddpm_atomic_file_remove_stale (const char *path);

G_END_DECLS

#endif /* DDPM_ATOMIC_FILE_H */
